# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-host change journal and run lock for oomguard.fleet remediation.

The journal is a JSON-lines file, owner-only (0600 in a 0700 directory). Every change is
appended and fsynced as an ``intent`` record BEFORE the change is made, then followed by a
record with the outcome, so a run killed at any point can be rolled back from what the
journal says. A lock file next to the journal (fcntl.flock, released by the kernel when the
holder dies) keeps two runs from remediating one host at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fcntl
import json
import os
import re
import signal
import socket

JOURNAL_SCHEMA = 1
DEFAULT_JOURNAL = "/var/lib/oomguard/journal.jsonl"
LOCK_NAME = "oomguard.lock"
# Test hook only: when set to N, the process SIGKILLs itself right after the N-th intent record
# of this process is fsynced and before the change is made (how tests kill a run mid-remediation).
CRASH_HOOK_ENV = "OOMGUARD_TEST_CRASH_AFTER_INTENT"

CHANGE_OPS = ("runtime", "dropin")
ROLLBACK_OPS = ("rollback-runtime", "rollback-dropin")


class JournalError(Exception):
    """A journal or lock problem, with a message that says what to do."""


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(now=None, rand=None):
    """Return ``oomguard-<UTC timestamp>-<random>`` as fixed by the data contract."""
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    suffix = rand if rand is not None else int.from_bytes(os.urandom(2), "big")
    return "oomguard-%s-%d" % (stamp, suffix)


def _ensure_private_dir(path):
    if not os.path.isdir(path):
        try:
            os.makedirs(path, 0o700)
        except OSError as exc:
            raise JournalError("Failed to create the journal directory %s: %s" % (path, exc.strerror or exc))
    st = os.stat(path)
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


class RunLock:
    """Exclusive, non-blocking lock on ``<journal dir>/oomguard.lock`` naming its holder."""

    def __init__(self, journal_path, run_id, purpose):
        self.path = os.path.join(os.path.dirname(os.path.abspath(journal_path)), LOCK_NAME)
        self.run_id = run_id
        self.purpose = purpose
        self._fd = None

    def acquire(self):
        _ensure_private_dir(os.path.dirname(self.path))
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise JournalError(
                    "Another oomguard run holds the lock %s (%s); two runs must not remediate one host at once. "
                    "Wait for it to finish, then run again." % (self.path, holder))
            raise JournalError("Failed to lock %s: %s" % (self.path, exc.strerror or exc))
        holder = {"pid": os.getpid(), "run_id": self.run_id, "purpose": self.purpose,
                  "since": utc_now(), "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd):
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        info = json.loads(raw)
        return "held by pid %s, run %s (%s) since %s on %s" % (
            info.get("pid"), info.get("run_id"), info.get("purpose"), info.get("since"), info.get("host"))
    except (OSError, ValueError, AttributeError):
        return "holder unknown"


class Journal:
    """Append-only JSON-lines journal; each append is flushed and fsynced before it returns."""

    def __init__(self, path, run_id):
        self.path = path
        self.run_id = run_id
        self._seq = 0
        self._intents = 0

    def _append(self, record):
        _ensure_private_dir(os.path.dirname(os.path.abspath(self.path)))
        line = json.dumps(record, sort_keys=True) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError("Failed to open the journal %s: %s" % (self.path, exc.strerror or exc))
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        except OSError as exc:
            raise JournalError("Failed to write the journal %s: %s" % (self.path, exc.strerror or exc))
        finally:
            os.close(fd)
        return record

    def intent(self, op, **fields):
        """Record a change about to be made; returns the record id used by ``outcome``."""
        self._seq += 1
        record_id = "%s/%d/%d" % (self.run_id, os.getpid(), self._seq)
        record = dict(fields, schema=JOURNAL_SCHEMA, run_id=self.run_id, id=record_id, op=op, state="intent", at=utc_now())
        self._append(record)
        self._intents += 1
        crash_at = os.environ.get(CRASH_HOOK_ENV)
        if crash_at and re.match(r"^[0-9]+$", crash_at) and int(crash_at) == self._intents:
            os.kill(os.getpid(), signal.SIGKILL)
        return record_id

    def outcome(self, record_id, op, state, **fields):
        return self._append(dict(fields, schema=JOURNAL_SCHEMA, run_id=self.run_id, id=record_id, op=op, state=state, at=utc_now()))

    def mark(self, op, **fields):
        return self._append(dict(fields, schema=JOURNAL_SCHEMA, run_id=self.run_id, op=op, state="done", at=utc_now()))


def read_records(path):
    """Return (records, bad_lines). A torn last line (crash mid-write) is counted, never fatal."""
    records, bad = [], 0
    try:
        with open(path, "r", encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict):
                    records.append(record)
                else:
                    bad += 1
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise JournalError("Failed to read the journal %s: %s (run with become: true)" % (path, exc.strerror or exc))
    return records, bad


def _last_rollback_index(records, run_id):
    last = -1
    for index, record in enumerate(records):
        if record.get("op") == "rollback-complete" and record.get("rollback_of") == run_id:
            last = index
    return last


def change_intents(records, run_id):
    """Intent records of changes (not rollbacks) made by ``run_id`` since its last finished
    rollback (a run id reused after a rollback starts over), in journal order."""
    start = _last_rollback_index(records, run_id) + 1
    return [r for r in records[start:] if r.get("run_id") == run_id and r.get("op") in CHANGE_OPS and r.get("state") == "intent"]


def latest_change_run(records):
    """The run id of the newest change record, or None when the journal holds no change."""
    for record in reversed(records):
        if record.get("op") in CHANGE_OPS and record.get("state") == "intent":
            return record.get("run_id")
    return None


def rolled_back(records, run_id):
    """True when a finished rollback of ``run_id`` is journalled and the run changed nothing since."""
    return _last_rollback_index(records, run_id) >= 0 and not change_intents(records, run_id)
