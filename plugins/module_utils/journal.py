# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-host change journal and run lock for oomguard.fleet remediation.

The journal is a JSON-lines file, owner-only (0600 in a 0700 directory), opened without
following symlinks in a directory nobody else may write to (``safefile.py``). Every change is
appended and fsynced as an ``intent`` record BEFORE the change is made, then followed by a
record with the outcome, so a run killed at any point can be rolled back from what the
journal says. A lock file next to the journal (fcntl.flock, released by the kernel when the
holder dies) keeps two runs from remediating one host at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import re
import signal
import socket

from ansible_collections.oomguard.fleet.plugins.module_utils import pycompat as pc
from ansible_collections.oomguard.fleet.plugins.module_utils import safefile as sf
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError, format_time

JOURNAL_SCHEMA = 1
DEFAULT_JOURNAL = "/var/lib/oomguard/journal.jsonl"
LOCK_NAME = "oomguard.lock"
# Test hook only: when set to N, the process SIGKILLs itself right after the N-th intent record
# of this process is fsynced and before the change is made (how tests kill a run mid-remediation).
CRASH_HOOK_ENV = "OOMGUARD_TEST_CRASH_AFTER_INTENT"

CHANGE_OPS = ("runtime", "dropin")
RECORD_START = '{"run_id": '
_NAMED_START = re.compile(re.escape(RECORD_START) + r'("(?:[^"\\]|\\.)*")')


class JournalError(OomguardError):
    """A journal or lock problem, with a message that says what to do."""


def _ensure_private_dir(path):
    """Create the journal directory 0700, or check the existing one: no symlink, owned by root
    (or the user this runs as), writable by nobody else, sticky bit or not. Never chmodded."""
    try:
        sf.ensure_dir(path, 0o700, allow_sticky=False)
    except sf.SafeFileError as exc:
        if os.path.islink(path) or os.path.isdir(path):
            raise JournalError("Cannot use the journal directory: %s" % exc)
        raise JournalError("Failed to create the journal directory %s: %s" % (path, exc))


def _open(path, flags, what):
    try:
        return sf.open_nofollow(path, flags, 0o600)
    except sf.SafeFileError as exc:
        raise JournalError("Failed to open the %s: %s" % (what, exc))
    except OSError as exc:
        raise JournalError("Failed to open the %s %s: %s" % (what, path, exc.strerror or exc))


class RunLock:
    """Exclusive, non-blocking lock on ``<journal dir>/oomguard.lock`` naming its holder."""

    def __init__(self, journal_path, run_id, purpose):
        self.path = os.path.join(os.path.dirname(os.path.abspath(journal_path)), LOCK_NAME)
        self.run_id = run_id
        self.purpose = purpose
        self._fd = None

    def acquire(self):
        _ensure_private_dir(os.path.dirname(self.path))
        fd = _open(self.path, os.O_RDWR | os.O_CREAT, "lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:  # Python 2's fcntl raises IOError
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise JournalError(
                    "Another oomguard run holds the lock %s (%s); two runs must not remediate one host at once. "
                    "Wait for it to finish, then run again." % (self.path, holder))
            raise JournalError("Failed to lock %s: %s" % (self.path, exc.strerror or exc))
        holder = {"pid": os.getpid(), "run_id": self.run_id, "purpose": self.purpose,
                  "since": format_time(), "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        pc.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8"), 0)
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
        raw = pc.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
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
        data = encode_record(record).encode("utf-8") + b"\n"
        fd = _open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, "journal")
        try:
            size = os.fstat(fd).st_size
            if size and pc.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # the last line was torn (a crash mid-write): start a line of our own
            while data:
                data = data[os.write(fd, data):]
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
        record = dict(fields, schema=JOURNAL_SCHEMA, run_id=self.run_id, id=record_id, op=op, state="intent", at=format_time())
        self._append(record)
        self._intents += 1
        crash_at = os.environ.get(CRASH_HOOK_ENV)
        if crash_at and re.match(r"^[0-9]+$", crash_at) and int(crash_at) == self._intents:
            os.kill(os.getpid(), signal.SIGKILL)
        return record_id

    def outcome(self, record_id, op, state, **fields):
        return self._append(dict(fields, schema=JOURNAL_SCHEMA, run_id=self.run_id, id=record_id, op=op, state=state, at=format_time()))

    def mark(self, op, **fields):
        return self._append(dict(fields, schema=JOURNAL_SCHEMA, run_id=self.run_id, op=op, state="done", at=format_time()))


def encode_record(record):
    """One journal line. The run id comes first, so that a line torn by a crash still names its run
    (``bad_lines_of``); the other keys follow sorted."""
    rest = dict(record)
    if "run_id" not in rest:
        return json.dumps(rest, sort_keys=True)
    run_id = rest.pop("run_id")
    body = json.dumps(rest, sort_keys=True)
    return RECORD_START + json.dumps(run_id) + (", " + body[1:] if rest else "}")


def read_journal(path):
    """{records, lines, bad}: the records, the line number (from 1) of each, and the lines that are
    not a JSON object, each {line, text}. A missing journal is empty; a symlink, a file of another
    user or one others may write is refused (JournalError)."""
    journal = {"records": [], "lines": [], "bad": []}
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.lexists(directory):
            sf.check_dir(directory, allow_sticky=False)
        fd = sf.open_nofollow(path, os.O_RDONLY)
    except sf.SafeFileError as exc:
        raise JournalError("Failed to read the journal: %s" % exc)
    except OSError as exc:
        if pc.is_missing(exc):
            return journal
        raise JournalError("Failed to read the journal %s: %s (run with become: true)" % (path, exc.strerror or exc))
    try:
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        raise JournalError("Failed to read the journal %s: %s (run with become: true)" % (path, exc.strerror or exc))
    for number, chunk in enumerate(raw.split(b"\n"), 1):
        text = chunk.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            journal["records"].append(record)
            journal["lines"].append(number)
        else:
            journal["bad"].append({"line": number, "text": text})
    return journal


def read_records(path):
    """Return (records, bad_lines): the records, and the numbers (from 1) of the lines that are not
    a JSON object (a line torn by a crash, a damaged line), which are never fatal here."""
    journal = read_journal(path)
    return journal["records"], [bad["line"] for bad in journal["bad"]]


def _line_pieces(text):
    """Split an unreadable line where records start (every record begins with ``{"run_id": "``) and
    say what each piece names: ("run", id) a complete run id; ("partial", escaped prefix) a run id cut
    short; ("unknown", None) a piece too short to name a run, a line of the key order of earlier
    versions (run id last), or anything else."""
    starts = [match.start() for match in re.finditer(re.escape(RECORD_START), text)]
    pieces = []
    if not starts or text[:starts[0]].strip():
        pieces.append(("unknown", None))
    for start in starts:
        match = _NAMED_START.match(text, start)
        if match:
            try:
                pieces.append(("run", json.loads(match.group(1))))
            except ValueError:
                pieces.append(("unknown", None))
            continue
        rest = text[start + len(RECORD_START):]
        pieces.append(("partial", rest[1:]) if rest.startswith('"') else ("unknown", None))
    return pieces


def bad_lines_of(journal, run_id):
    """Numbers of the unreadable lines that may hold a record of ``run_id``: a line with a piece that
    names the run, names a run id cut short that the run's id starts with, or cannot name a run at all.
    With ``run_id`` None (the run is not known), every unreadable line."""
    found = []
    escaped = json.dumps(run_id)[1:-1] if run_id is not None else None
    for bad in journal["bad"]:
        for kind, value in _line_pieces(bad["text"]):
            if (run_id is None or kind == "unknown" or (kind == "run" and value == run_id)
                    or (kind == "partial" and escaped.startswith(value))):
                found.append(bad["line"])
                break
    return found


def _id_order(record_id, run_id):
    """(pid, seq) from ``<run_id>/<pid>/<seq>``; None when the id is not of that shape."""
    if not isinstance(record_id, pc.STRING_TYPES) or not record_id.startswith(run_id + "/"):
        return None
    parts = record_id[len(run_id) + 1:].split("/")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return parts[0], int(parts[1])


def disordered_lines_of(journal, run_id):
    """Numbers of the lines holding change intents of ``run_id`` that are out of journal order (an
    earlier time, or a lower sequence number of the same process, than an intent before them),
    whose id is malformed, or that repeat an id with different content and no later time (a later time
    is a later module run that got the same pid). Exact repeats are harmless."""
    seen, newest_seq, found = {}, {}, []
    newest_at = ""
    start = _last_rollback_index(journal["records"], run_id) + 1  # the records change_intents replays
    for record, number in zip(journal["records"][start:], journal["lines"][start:]):
        if record.get("run_id") != run_id or record.get("op") not in CHANGE_OPS or record.get("state") != "intent":
            continue
        record_id, at = record.get("id"), str(record.get("at", ""))
        if isinstance(record_id, pc.STRING_TYPES) and record_id in seen:
            if seen[record_id] == record:
                continue
            if at <= str(seen[record_id].get("at", "")):
                found.append(number)
                continue
        if isinstance(record_id, pc.STRING_TYPES):
            seen[record_id] = record
        order = _id_order(record_id, run_id)
        if order is None or at < newest_at:
            found.append(number)
            continue
        pid, seq = order
        if pid in newest_seq and seq <= newest_seq[pid][0] and at <= newest_seq[pid][1]:
            found.append(number)  # a later process that got the same pid starts again at 1, at a later time
            continue
        newest_seq[pid] = (seq, at)
        newest_at = at
    return found


def damage_message(path, run_id, named, bad, disordered):
    """Why the rollback of ``run_id`` is refused, naming the lines, or None when nothing blocks it.
    ``named``: the run was given by name (else it is the newest run the readable lines show)."""
    if not bad and not disordered:
        return None
    if named:
        what = "run %s" % run_id
    elif run_id:
        what = "the newest run (%s, as far as the readable lines tell)" % run_id
    else:
        what = "a run (the readable lines record no change)"
    parts = []
    if bad:
        parts.append("line(s) %s cannot be read and may hold a change of %s" % (", ".join(str(n) for n in bad), what))
    if disordered:
        parts.append("line(s) %s hold changes of %s out of order, or two different records with one id"
                     % (", ".join(str(n) for n in disordered), what))
    return ("The journal %s is damaged: %s. The rollback cannot prove it would undo every change, so it changed nothing. "
            "Look at those lines (for example sed -n '%dp' %s): repair a line that holds a record of the run, delete "
            "one that does not (keep a copy of the journal first), then run the rollback again%s."
            % (path, "; ".join(parts), (bad or disordered)[0], path, "" if named else ", or name the run with rollback_run_id"))


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
