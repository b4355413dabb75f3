# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and apply oom_score_adj changes (runtime and systemd drop-ins), and roll them back.

Private to the oomguard.fleet collection: the modules ``oom_score_adj`` and ``oom_rollback``
are thin faces over this file. Planning is pure (reads only); applying writes one journal
intent record per change before making it (see ``journal.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import select
import signal
import time

from ansible_collections.oomguard.fleet.plugins.module_utils import procfs

OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
DROPIN_NAME = "50-oomguard.conf"
DEFAULT_SYSTEMD_DIR = "/etc/systemd/system"
CAP_SYS_RESOURCE = 24

# Unit types whose exec context carries OOMScoreAdjust= (systemd.exec(5)); scopes and slices do not.
PERSISTABLE_SUFFIXES = (".service", ".socket", ".mount", ".swap")
UNIT_TYPES = ("service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice", "scope")
UNIT_NAME_MAX = 255
# systemd.unit(5): "prefix[@instance].type"; prefix and instance use ASCII letters, digits, ":", "-", "_", ".", "\\"
# (the instance may also hold "@"); an empty instance names a template.
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\-]+(?:@[A-Za-z0-9:_.\\@-]*)?\.(?:%s)\Z" % "|".join(UNIT_TYPES))
# How long a cmdline= regular expression may take over all command lines of a host.
CMDLINE_MATCH_SECONDS = 5.0


class RemediationError(Exception):
    """A failure the module reports with fail_json; ``partial`` holds what was done before it."""

    def __init__(self, message, partial=None):
        super(RemediationError, self).__init__(message)
        self.partial = partial or {}


def value_error(value):
    """Return why ``value`` is not a valid oom_score_adj, or None."""
    if value is None:
        return "value is required: an integer from -1000 (never OOM-kill) to 1000 (kill first)"
    if not OOM_SCORE_ADJ_MIN <= value <= OOM_SCORE_ADJ_MAX:
        return ("value %d is out of range: oom_score_adj must be from -1000 (never OOM-kill) to 1000 "
                "(kill first); 0 is the kernel default" % value)
    return None


def unit_name_error(unit):
    """Return why ``unit`` is not a valid systemd unit name, or None."""
    if unit is None:
        return None
    if len(unit) > UNIT_NAME_MAX or not _UNIT_NAME.match(unit):
        return ("unit %r is not a valid systemd unit name: it must be NAME.TYPE or NAME@INSTANCE.TYPE (at most %d "
                "characters: ASCII letters, digits and ':-_.\\'; TYPE one of %s), as systemctl list-units shows it"
                % (unit, UNIT_NAME_MAX, ", ".join(UNIT_TYPES)))
    return None


def systemd_dir(root):
    return os.path.join(root, DEFAULT_SYSTEMD_DIR.lstrip("/"))


def systemd_running(root):
    """systemctl may only be used for the live root, and only when systemd is PID 1 there."""
    return os.path.abspath(root) == "/" and os.path.isdir("/run/systemd/system")


def persistable(unit):
    return bool(unit) and unit.endswith(PERSISTABLE_SUFFIXES) and "/" not in unit


def dropin_path(systemd_dir, unit):
    return os.path.join(systemd_dir, unit + ".d", DROPIN_NAME)


def dropin_content(value):
    return ("# Managed by oomguard.fleet (oom_score_adj module); playbooks/rollback.yml removes it.\n"
            "[Service]\nOOMScoreAdjust=%d\n" % value)


def read_text(path):
    """File text, or None when the file does not exist."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def has_cap_sys_resource(proc_path="/proc"):
    """True when this process's effective capabilities include CAP_SYS_RESOURCE."""
    text = read_text(os.path.join(proc_path, "self", "status")) or ""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", text, re.M)
    return bool(match) and bool(int(match.group(1), 16) & (1 << CAP_SYS_RESOURCE))


class ProcessGone(Exception):
    """The process exited (its /proc entry is gone, or the kernel answered ESRCH)."""


def read_proc_file(base, name):
    """Bytes of ``<base>/<name>`` for the process directory ``base``.

    Raises ProcessGone only when the process is gone: ESRCH, or ENOENT once its directory has
    disappeared. Anything else (a permission, a file missing from a directory that is still
    there) is a RemediationError that says what to do.
    """
    path = os.path.join(base, name)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno == errno.ESRCH or (exc.errno == errno.ENOENT and not os.path.isdir(base)):
            raise ProcessGone(path)
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise RemediationError("Failed to read %s: %s. Reading another user's processes needs root: run the task "
                                   "with become: true." % (path, exc.strerror or exc))
        raise RemediationError("Failed to read %s: %s" % (path, exc.strerror or exc))


def _text(data):
    return data.decode("utf-8", "replace")


def cmdline_text(data):
    return data.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def read_process(proc_path, pid):
    """One process as {pid, name, cmdline, unit, oom_score_adj, starttime, kthread}; None when it is gone.

    ``starttime`` (stat field 22, clock ticks after boot) tells a pid apart from a later
    process that reuses it. A file that cannot be read or parsed for another reason than the
    process having exited raises RemediationError: a permission problem is not a vanished process.
    """
    base = os.path.join(proc_path, str(pid))
    try:
        stat_text = _text(read_proc_file(base, "stat"))
        adj_text = _text(read_proc_file(base, "oom_score_adj"))
        cgroup = _text(read_proc_file(base, "cgroup"))
        cmdline = read_proc_file(base, "cmdline")
    except ProcessGone:
        return None
    try:
        stat = procfs.parse_stat(stat_text, os.path.join(base, "stat"))
        starttime = int(stat_text[stat_text.rfind(")") + 2:].split()[19])
        unit = procfs.cgroup_unit(cgroup, os.path.join(base, "cgroup"))
        adj = procfs.parse_int(adj_text, os.path.join(base, "oom_score_adj"))
    except procfs.ProcParseError as exc:
        raise RemediationError("Failed to parse %s" % exc)
    except (ValueError, IndexError):
        raise RemediationError("Failed to parse %s: no start time (field 22)" % os.path.join(base, "stat"))
    return {
        "pid": int(pid),
        "name": stat["comm"],
        "cmdline": cmdline_text(cmdline),
        "unit": unit,
        "oom_score_adj": adj,
        "starttime": starttime,
        "kthread": procfs.is_kernel_thread(stat["flags"]),
    }


class _MatchTimeout(Exception):
    pass


def bounded_matches(pattern, texts, seconds=CMDLINE_MATCH_SECONDS):
    """[bool, ...]: whether ``pattern`` (compiled) is found in each text, within ``seconds`` for all.

    Python's regular expressions backtrack: ``(a+)+$`` takes twice as long with each further
    character and no signal-free timeout exists. The matching therefore runs in a forked child
    that is killed when the time is up; that raises RemediationError instead of hanging the host.
    """
    if not texts:
        return []
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        status = 1
        try:
            os.close(read_fd)
            data = bytes(bytearray(1 if pattern.search(text) else 0 for text in texts))
            while data:
                data = data[os.write(write_fd, data):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks, done = [], False
    try:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
                raise _MatchTimeout()
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        done = True
    except _MatchTimeout:
        raise RemediationError(
            "cmdline %r did not finish matching %d command line(s) within %g seconds: the expression backtracks "
            "catastrophically (nested or overlapping repetition such as (a+)+ or (a|a)*). Nothing was changed. Use a "
            "simpler expression, such as a plain word or an anchored prefix (^/usr/bin/java )."
            % (pattern.pattern, len(texts), seconds))
    finally:
        os.close(read_fd)
        if not done:
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    result = b"".join(chunks)
    if len(result) != len(texts):
        raise RemediationError("cmdline %r: matching the command lines failed" % pattern.pattern)
    return [flag == 1 for flag in bytearray(result)]


def select_processes(proc_path, pid=None, name=None, unit=None, cmdline=None, match_seconds=None):
    """Processes matching every given selector (kernel threads never match).

    Returns (processes, vanished_count); ``cmdline`` is a regular expression searched in the
    space-joined command line, within ``match_seconds`` for all processes (bounded_matches).
    """
    try:
        pattern = re.compile(cmdline) if cmdline else None
    except re.error as exc:
        raise RemediationError("cmdline %r is not a valid regular expression: %s" % (cmdline, exc))
    if pid is not None:
        pids = [pid]
    else:
        pids = sorted(int(entry) for entry in os.listdir(proc_path) if procfs.is_decimal(entry))
    # First the one file a selector needs, then every file of the processes left.
    survivors, texts, vanished = [], [], 0
    for candidate in pids:
        base = os.path.join(proc_path, str(candidate))
        try:
            if name is not None and _comm(_text(read_proc_file(base, "stat"))) != name:
                continue
            if pattern is not None:
                texts.append(cmdline_text(read_proc_file(base, "cmdline")))
        except ProcessGone:
            vanished += 1 if pid is None else 0
            continue
        survivors.append(candidate)
    if pattern is not None:
        seconds = CMDLINE_MATCH_SECONDS if match_seconds is None else match_seconds
        survivors = [c for c, hit in zip(survivors, bounded_matches(pattern, texts, seconds)) if hit]
    found = []
    for candidate in survivors:
        proc = read_process(proc_path, candidate)
        if proc is None:
            vanished += 1 if pid is None else 0
            continue
        if proc["kthread"]:
            continue
        if name is not None and proc["name"] != name:
            continue
        if unit is not None and proc["unit"] != unit:
            continue
        found.append(proc)
    return found, vanished


def select_listed(proc_path, targets):
    """Exactly the listed ``{pid, name}`` processes (what the remediate role asks for).

    Returns (processes, gone): ``gone`` lists the targets that exited, or whose pid now runs
    another command, since they were listed.
    """
    found, gone, seen = [], [], set()
    for target in targets:
        pid, name = target["pid"], target.get("name")
        if pid in seen:
            continue
        seen.add(pid)
        proc = read_process(proc_path, pid)
        if proc is None or proc["kthread"] or (name is not None and proc["name"] != name):
            gone.append({"pid": pid, "name": name})
        else:
            found.append(proc)
    return found, gone


def _comm(stat_text):
    return stat_text[stat_text.find("(") + 1:stat_text.rfind(")")]


def plan(processes, value, persist, systemd_dir, unit=None):
    """What to change: pure, from what was read.

    Returns {runtime: [...], dropins: [...], unpersisted: [...], unchanged: [...]}.
    """
    runtime, unchanged, unpersisted = [], [], []
    units = []
    if persist == "systemd" and unit is not None and persistable(unit):
        units.append(unit)
    for proc in processes:
        entry = {"pid": proc["pid"], "name": proc["name"], "unit": proc["unit"], "starttime": proc["starttime"],
                 "old": proc["oom_score_adj"], "new": value}
        (unchanged if proc["oom_score_adj"] == value else runtime).append(entry)
        if persist == "systemd":
            if persistable(proc["unit"]):
                if proc["unit"] not in units:
                    units.append(proc["unit"])
            else:
                unpersisted.append(entry)
    dropins = []
    content = dropin_content(value)
    for unit_name in units:
        path = dropin_path(systemd_dir, unit_name)
        previous = read_text(path)
        if previous != content:
            dropins.append({"unit": unit_name, "path": path, "previous": previous, "content": content})
    return {"value": value, "runtime": runtime, "dropins": dropins, "unpersisted": unpersisted, "unchanged": unchanged}


def plan_diff(the_plan):
    """Diff mode: one before/after entry per process and per file."""
    diffs = []
    for item in the_plan["dropins"]:
        diffs.append({"before_header": item["path"], "after_header": item["path"],
                      "before": item["previous"] or "", "after": item["content"] or ""})
    for item in the_plan["runtime"]:
        header = "pid %d (%s) oom_score_adj" % (item["pid"], item["name"])
        diffs.append({"before_header": header, "after_header": header,
                      "before": "%d\n" % item["old"], "after": "%d\n" % item["new"]})
    return diffs


def write_file_atomic(path, content):
    directory = os.path.dirname(path)
    os.makedirs(directory, 0o755, exist_ok=True)
    tmp = os.path.join(directory, ".%s.oomguard-tmp" % os.path.basename(path))
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def restore_file(path, content, remove_dir):
    """Put ``content`` back at ``path``; None removes the file (and our empty <unit>.d dir)."""
    if content is not None:
        write_file_atomic(path, content)
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    if remove_dir:
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass  # not empty: someone else's drop-ins live there too


def refusal_message(pid, name, old, new, proc_path):
    cap = "has" if has_cap_sys_resource(proc_path) else "lacks"
    return ("Failed to set oom_score_adj of pid %d (%s) from %d to %d: the kernel refused (EACCES). Setting a value "
            "below the process's floor (oom_score_adj_min, the lowest value ever set by a CAP_SYS_RESOURCE holder) "
            "needs CAP_SYS_RESOURCE, which this module %s. Run it as root on the host itself (not in a container or "
            "VM that drops the capability); a -1000 can only be restored by such a process or by restarting the "
            "service with its drop-in." % (pid, name, old, new, cap))


def set_runtime(proc_path, item):
    """Write one oom_score_adj; returns 'done', 'vanished' (pid gone or reused) or 'refused'."""
    current = read_process(proc_path, item["pid"])
    if current is None or current["starttime"] != item["starttime"]:
        return "vanished"
    try:
        with open(os.path.join(proc_path, str(item["pid"]), "oom_score_adj"), "w", encoding="utf-8") as handle:
            handle.write("%d\n" % item["new"])
    except (FileNotFoundError, ProcessLookupError):
        return "vanished"
    except PermissionError:
        return "refused"
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return "vanished"
        raise
    return "done"


def systemctl(run_command, *args):
    rc, out, err = run_command(["systemctl"] + list(args))
    if rc != 0:
        raise RemediationError("Failed to run systemctl %s: %s" % (" ".join(args), (err or out).strip()))


def new_outcome():
    return {"dropins": [], "processes": [], "vanished": [], "refused": [], "daemon_reload": False, "restarted": []}


def keeping_partial(steps, *args):
    """Run ``steps(outcome, *args)``; an exception leaves with ``partial`` = what was done before it."""
    outcome = new_outcome()
    try:
        steps(outcome, *args)
    except Exception as exc:  # pylint: disable=broad-except
        exc.partial = outcome
        raise
    return outcome


def apply(the_plan, journal, proc_path, systemd_running, run_command, restart=False):
    """Make the planned changes, each journalled before it is made. Returns the outcome dict."""
    return keeping_partial(_apply_steps, the_plan, journal, proc_path, systemd_running, run_command, restart)


def _apply_steps(result, the_plan, journal, proc_path, systemd_running, run_command, restart):
    for item in the_plan["dropins"]:
        dir_created = not os.path.isdir(os.path.dirname(item["path"]))
        record = journal.intent("dropin", unit=item["unit"], path=item["path"], previous=item["previous"],
                                content=item["content"], dir_created=dir_created)
        write_file_atomic(item["path"], item["content"])
        journal.outcome(record, "dropin", "done", path=item["path"])
        result["dropins"].append({"unit": item["unit"], "path": item["path"],
                                  "action": "created" if item["previous"] is None else "updated"})
    if the_plan["dropins"] and systemd_running:
        systemctl(run_command, "daemon-reload")
        result["daemon_reload"] = True
    for item in the_plan["runtime"]:
        record = journal.intent("runtime", pid=item["pid"], starttime=item["starttime"], name=item["name"],
                                unit=item["unit"], old=item["old"], new=item["new"])
        status = set_runtime(proc_path, item)
        journal.outcome(record, "runtime", status, pid=item["pid"])
        if status == "done":
            result["processes"].append(dict(item, status=status))
        else:
            result[status].append(dict(item, status=status))
    if restart and systemd_running:
        for item in the_plan["dropins"]:
            systemctl(run_command, "restart", item["unit"])
            result["restarted"].append(item["unit"])


def contract_changes(the_plan, result, persist):
    """``oomguard_changes.changes`` rows (docs/data-contract.md) for what was changed."""
    dropin_by_unit = dict((d["unit"], d["path"]) for d in result["dropins"])
    rows = []
    for item in result["processes"]:
        dropin = dropin_by_unit.get(item["unit"]) if persist == "systemd" else None
        rows.append({"pid": item["pid"], "name": item["name"], "unit": item["unit"], "old": item["old"],
                     "new": item["new"], "persist": "systemd" if dropin else "none", "dropin": dropin})
    listed = set(r["unit"] for r in rows if r["dropin"])
    for unit_name, path in dropin_by_unit.items():
        if unit_name not in listed:
            rows.append({"pid": None, "name": None, "unit": unit_name, "old": None, "new": the_plan["value"],
                         "persist": "systemd", "dropin": path})
    return rows
