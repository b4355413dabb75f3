# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change oom_score_adj on the host: select processes, plan a change (runtime values and systemd
drop-ins), and apply a plan, forward or a rollback (``rollback_plan`` makes those of the same shape).

Private to the oomguard.fleet collection: the modules ``oom_score_adj`` and ``oom_rollback``
are thin faces over this file and ``change_module``. Planning is pure (reads only); applying
writes one journal intent record per change before making it (see ``journal.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import os
import re
import select
import signal

from ansible_collections.oomguard.fleet.plugins.module_utils import dropins
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils import proc_reader as reader
from ansible_collections.oomguard.fleet.plugins.module_utils import procfs
from ansible_collections.oomguard.fleet.plugins.module_utils import pycompat as pc
from ansible_collections.oomguard.fleet.plugins.module_utils import safefile as sf

# systemd applies drop-ins in file-name order across all its directories and the last OOMScoreAdjust= wins:
# "zz-" sorts after the numbered names and after "override.conf" (what systemctl edit writes).
DROPIN_NAME = "zz-oomguard.conf"
# Names earlier versions of the collection wrote; a run replaces such a drop-in of ours with DROPIN_NAME.
LEGACY_DROPIN_NAMES = ("50-oomguard.conf",)
DROPIN_HEADER = "# Managed by oomguard.fleet"
BECOME_HINT = "; run the task with become: true"
_USER_MANAGER = re.compile(r"^user@[0-9]+\.service$")
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


class RemediationError(OomguardError):
    """A failure the module reports with fail_json; ``partial`` holds what was done before it."""

    def __init__(self, message, partial=None):
        super(RemediationError, self).__init__(message)
        self.partial = partial or {}


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
    """A unit a system drop-in may be written for: a service, socket, mount or swap unit, never a
    user's service manager (user@UID.service: its drop-in would change the user's whole manager)."""
    return bool(unit) and unit.endswith(PERSISTABLE_SUFFIXES) and "/" not in unit and not _USER_MANAGER.match(unit)


def dropin_path(systemd_dir, unit):
    return os.path.join(systemd_dir, unit + ".d", DROPIN_NAME)


def dropin_content(value):
    return (DROPIN_HEADER + " (oom_score_adj module); playbooks/rollback.yml removes it.\n"
            "[Service]\nOOMScoreAdjust=%d\n" % value)


def read_text(path):
    """File text, or None when the file does not exist."""
    try:
        with pc.open_text(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if pc.is_missing(exc):
            return None
        raise


def has_cap_sys_resource(proc_path="/proc"):
    """True when this process's effective capabilities include CAP_SYS_RESOURCE."""
    text = read_text(os.path.join(proc_path, "self", "status")) or ""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", text, re.M)
    return bool(match) and bool(int(match.group(1), 16) & (1 << CAP_SYS_RESOURCE))


def _read_error(exc):
    """A failed read of a live process's file (a permission, hidepid, a missing file), as the error to report."""
    path = getattr(exc, "filename", None) or "a /proc file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return RemediationError("Failed to read %s: %s. Reading another user's processes needs root: run the task "
                                "with become: true." % (path, exc.strerror or exc))
    return RemediationError("Failed to read %s: %s" % (path, exc.strerror or exc))


@contextlib.contextmanager
def reading_process():
    """Around reads of /proc/<pid> files: reader.ProcessGone passes (the process exited); any other failed read or
    a file that does not parse is a RemediationError naming the file: a permission problem is not a vanished process."""
    try:
        yield
    except reader.ProcessGone:
        raise
    except (IOError, OSError) as exc:
        raise _read_error(exc)
    except procfs.ProcParseError as exc:
        raise RemediationError("Failed to parse %s" % exc)


def cmdline_text(data):
    return data.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def read_process(proc_path, pid):
    """One process as {pid, name, cmdline, unit, oom_score_adj, starttime, kthread, user_manager, user_unit};
    None when it is gone.

    ``starttime`` tells a pid apart from a later process that reuses it (procfs.parse_stat_row). A file
    that cannot be read or parsed for another reason than the process having exited raises RemediationError.
    """
    base = os.path.join(proc_path, str(pid))
    try:
        with reading_process():
            stat = reader.read_stat(base)
            comm, flags, starttime = stat[0], stat[2], stat[4]
            adj = reader.read_adj(base)[0]
            cgroup = reader.read_pid_file(base, "cgroup").decode("utf-8", "replace")
            cmdline = reader.read_pid_file(base, "cmdline")
            unit = procfs.cgroup_unit(cgroup, os.path.join(base, "cgroup"))
            manager = user_manager(cgroup)
    except reader.ProcessGone:
        return None
    return {
        "pid": int(pid),
        "name": comm,
        "cmdline": cmdline_text(cmdline),
        "unit": unit,
        "oom_score_adj": adj,
        "starttime": starttime,
        "kthread": procfs.is_kernel_thread(flags),
        "user_manager": manager[0] if manager else None,
        "user_unit": manager[1] if manager else None,
    }


class _MatchTimeout(OomguardError):
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
        deadline = pc.monotonic() + seconds
        while True:
            remaining = deadline - pc.monotonic()
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
            with reading_process():
                if name is not None and reader.read_stat(base)[0] != name:
                    continue
                if pattern is not None:
                    texts.append(cmdline_text(reader.read_pid_file(base, "cmdline")))
        except reader.ProcessGone:
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


def user_manager(cgroup_text):
    """(manager, user unit) when the process runs under a user's service manager
    (``.../user@1000.service/app.slice/evil.service``), else None."""
    try:
        rows = procfs.parse_cgroup(cgroup_text)
    except procfs.ProcParseError:
        return None
    for row in rows:
        if (row["id"] == 0 and row["controllers"] == "") or row["controllers"] == "name=systemd":
            parts = row["path"].split("/")
            for index, part in enumerate(parts):
                if _USER_MANAGER.match(part):
                    return part, procfs.unit_from_cgroup_path("/".join(parts[index + 1:]))
    return None


def unpersisted_reason(proc):
    """Why a process's value cannot be kept by a system drop-in; None when it can."""
    if proc.get("user_manager"):
        return ("it runs under the user manager %s (user unit %s): a system drop-in cannot reach a user unit and the "
                "user's whole service manager is never changed or restarted; set OOMScoreAdjust= in the user unit "
                "(systemctl --user edit, as that user)" % (proc["user_manager"], proc.get("user_unit") or "none"))
    if proc["unit"] is None:
        return "it runs in no systemd unit"
    return "%s is not a service, socket, mount or swap unit" % proc["unit"]


def is_ours(text):
    """A drop-in this collection wrote (any version) starts with its header."""
    return text is not None and text.startswith(DROPIN_HEADER)


def read_dropin(path):
    """(meta, text) of a drop-in path without following a symlink to write anything: meta from
    safefile.read_meta (None when absent); text of the file, or of a symlink's target (None if dangling)."""
    try:
        meta = sf.read_meta(path)
    except OSError as exc:
        raise RemediationError("Failed to read %s: %s" % (path, exc.strerror or exc))
    if meta is None or meta["type"] not in ("file", "symlink"):
        return meta, None
    try:
        with pc.open_text(path, errors="replace") as handle:
            return meta, handle.read()
    except (IOError, OSError) as exc:
        if pc.is_missing(exc):
            return meta, None  # a dangling symlink
        raise RemediationError("Failed to read %s: %s%s" % (path, exc.strerror or exc, BECOME_HINT if exc.errno in (errno.EACCES, errno.EPERM) else ""))


def _foreign_dropin(path, meta):
    what = "a symlink to %s" % meta["target"] if meta["type"] == "symlink" else "a file"
    return ("%s already exists as %s that oomguard.fleet did not write (it lacks the '%s' header); it is not "
            "overwritten. Move it away, merge it into another drop-in, or set force: true (role: "
            "oomguard_remediate_force: true) to take it over: its content, mode, owner and symlink target are "
            "journalled and playbooks/rollback.yml puts them back." % (path, what, DROPIN_HEADER))


def dropin_change(unit, path, previous, previous_meta, content, action, content_meta=None, remove_dir=False, legacy=False,
                  expected=None):
    """One drop-in change of a plan (forward or rollback): the file goes from ``previous`` (lstat ``previous_meta``)
    to ``content`` (with ``content_meta``'s mode, owner or symlink when journalled; None removes it, and with
    ``remove_dir`` our empty <unit>.d dir). ``legacy``: an older version's drop-in of ours that ours replaces;
    ``expected``: the OOMScoreAdjust= systemd reported before the run a rollback undoes."""
    return {"unit": unit, "path": path, "previous": previous, "previous_meta": previous_meta, "content": content,
            "content_meta": content_meta, "remove_dir": remove_dir, "action": action, "legacy": legacy, "expected": expected}


def _plan_unit_dropins(unit_name, root, content, force):
    """The drop-in changes for one unit: ours (written unless already in place), then the removal of an
    older version's drop-in of ours (50-oomguard.conf) that ours replaces."""
    sysdir = systemd_dir(root)
    path = dropin_path(sysdir, unit_name)
    meta, previous = read_dropin(path)
    changes = []
    if meta is not None and meta["type"] not in ("file", "symlink"):
        raise RemediationError("%s is a %s, not a drop-in file; move it away, then run again." % (path, meta["type"]))
    ours = meta is not None and meta["type"] == "file" and is_ours(previous)
    if meta is not None and not ours and not force:
        raise RemediationError(_foreign_dropin(path, meta))
    if not (ours and previous == content):
        action = "created" if meta is None else ("updated" if ours else "taken over")
        changes.append(dropin_change(unit_name, path, previous, meta, content, action))
    for name in LEGACY_DROPIN_NAMES:
        legacy = os.path.join(os.path.dirname(path), name)
        legacy_meta, legacy_text = read_dropin(legacy)
        if legacy_meta is not None and legacy_meta["type"] == "file" and is_ours(legacy_text):
            changes.append(dropin_change(unit_name, legacy, legacy_text, legacy_meta, None, "removed", legacy=True))
    return changes


def plan(processes, value, persist, root, unit=None, force=False):
    """What to change, from what was read (nothing is written).

    Returns {value, runtime, dropins, unpersisted, unchanged, units, overridden}: ``units`` are the
    units whose drop-in keeps the value; ``overridden`` lists those for which a drop-in read after
    ours would set another value (dropins.predict), each {unit, file, value}.
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
            if persistable(proc["unit"]) and not proc.get("user_manager"):
                if proc["unit"] not in units:
                    units.append(proc["unit"])
            else:
                unpersisted.append(dict(entry, reason=unpersisted_reason(proc)))
    content = dropin_content(value)
    changes, overridden = [], []
    for unit_name in units:
        changes.extend(_plan_unit_dropins(unit_name, root, content, force))
        winner = dropins.predict(root, unit_name, dropin_path(systemd_dir(root), unit_name), value)
        if winner:
            overridden.append(dict(winner, unit=unit_name))
    return new_plan(changes, runtime, value=value, units=units, unpersisted=unpersisted, unchanged=unchanged,
                    overridden=overridden)


def new_plan(dropins, runtime, rollback_of=None, value=None, units=(), **extra):
    """A plan ``apply`` makes: ``dropins`` (dropin_change) and ``runtime`` ({pid, name, unit, starttime, old, new})
    changes. A forward change has the ``value`` systemd must then give its ``units``; a rollback names the run it
    undoes (``rollback_of``). ``dropin_units``: the units whose drop-in the plan writes or restores (once each)."""
    dropin_units = []
    for item in dropins:
        if not item["legacy"] and item["unit"] and item["unit"] not in dropin_units:
            dropin_units.append(item["unit"])
    if rollback_of is not None:
        dropin_units.sort()  # a rollback's records come newest first; its restarts go in name order
    return dict(extra, rollback_of=rollback_of, value=value, units=list(units), dropins=dropins, runtime=runtime,
                dropin_units=dropin_units)


def override_message(the_plan, root):
    """Why the drop-ins of ``the_plan`` would not decide OOMScoreAdjust=, and what to do."""
    lines = []
    for item in the_plan["overridden"]:
        ours = dropin_path(systemd_dir(root), item["unit"])
        if item["value"] is None:
            lines.append("%s is hidden from systemd by %s, a file of the same name in a directory read first"
                         % (ours, item["file"]))
        else:
            lines.append("%s sets OOMScoreAdjust=%s for %s and systemd reads it after %s, so that value wins"
                         % (item["file"], dropins.describe_value(item["value"]), item["unit"], ours))
        lines[-1] += " (drop-ins apply in file-name order across /etc, /run and /usr/lib; the last OOMScoreAdjust= wins)"
    return ("Persisting oom_score_adj %d through systemd would not take effect: %s. Remove OOMScoreAdjust= from that "
            "file or set it to %d there (it is not this collection's to change), then run again. Nothing was changed."
            % (the_plan["value"], "; ".join(lines), the_plan["value"]))


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


def _unlink(path):
    try:
        os.unlink(path)  # unlink never follows a symlink
    except OSError as exc:
        if not pc.is_missing(exc):
            raise


def put_dropin(path, content, meta=None, remove_dir=False, selinux_module=None):
    """Make a drop-in path what a plan says, never writing through a symlink: ``content`` (0644 root, or
    ``meta``'s mode and owner when ``meta`` is a journalled file), or ``meta``'s symlink; None content and
    no symlink removes the file (and, with ``remove_dir``, our then empty <unit>.d dir). A symlink taken
    over is replaced by the file, its target untouched."""
    if meta is not None and meta.get("type") == "symlink":
        _unlink(path)
        sf.make_symlink(path, meta["target"])
        return
    if content is None:
        _unlink(path)
        if remove_dir:
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:
                pass  # not empty: someone else's drop-ins live there too
        return
    current = sf.read_meta(path)
    if current is not None and current["type"] == "symlink":
        _unlink(path)
    file_meta = meta if meta is not None and meta.get("type") == "file" else None
    sf.write_atomic(path, content, mode=0o644, dir_mode=0o755, keep_metadata=False, meta=file_meta, selinux_module=selinux_module)


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
        with open(os.path.join(proc_path, str(item["pid"]), "oom_score_adj"), "wb") as handle:
            handle.write(("%d\n" % item["new"]).encode("ascii"))
    except (IOError, OSError) as exc:  # the kernel's answer comes when the file is closed
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return "vanished"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "refused"
        raise
    return "done"


def systemctl(run_command, *args):
    rc, out, err = run_command(["systemctl"] + list(args))
    if rc != 0:
        raise RemediationError("Failed to run systemctl %s: %s" % (" ".join(args), (err or out).strip()))
    return out


def systemd_oom(run_command, unit):
    """What systemd itself has loaded for ``unit``: {OOMScoreAdjust, DropInPaths, FragmentPath, LoadState}."""
    return dropins.parse_show(systemctl(run_command, "show", "-p", "OOMScoreAdjust", "-p", "DropInPaths",
                                        "-p", "FragmentPath", "-p", "LoadState", "--", unit))


def effective_values(run_command, units):
    """{unit: OOMScoreAdjust systemd reports} for loaded units (journalled as each drop-in's
    ``effective_before``, so that a rollback can check it got back there)."""
    values = {}
    for unit in units:
        props = systemd_oom(run_command, unit)
        if props.get("LoadState") == "loaded":
            values[unit] = props.get("OOMScoreAdjust")
    return values


def verify_persisted(run_command, units, value):
    """After daemon-reload: systemd must report ``value`` for every loaded unit we persisted; otherwise
    raise naming the file that wins."""
    problems = []
    for unit in units:
        props = systemd_oom(run_command, unit)
        if props.get("LoadState") != "loaded":
            continue  # not installed (yet): the drop-in applies when it is
        shown = props.get("OOMScoreAdjust")
        if shown != str(value):
            source = dropins.setting_file(props, unit)
            problems.append("systemd still gives %s OOMScoreAdjust=%s after daemon-reload, set by %s, which it reads "
                            "after our drop-in (drop-ins apply in file-name order across /etc, /run and /usr/lib; the "
                            "last OOMScoreAdjust= wins)" % (unit, shown, source or "a file systemctl show does not name"))
    if problems:
        raise RemediationError(
            "Persisting oom_score_adj %d through systemd did not take effect: %s. Remove OOMScoreAdjust= from that file "
            "or set it to %d there, then run again. The processes were not changed at runtime; the drop-ins this run "
            "wrote are journalled." % (value, "; ".join(problems), value))


def new_outcome():
    return {"dropins": [], "processes": [], "vanished": [], "refused": [], "daemon_reload": False, "restarted": [],
            "warnings": []}


def keeping_partial(steps, *args):
    """Run ``steps(outcome, *args)``; an exception leaves with ``partial`` = what was done before it."""
    outcome = new_outcome()
    try:
        steps(outcome, *args)
    except Exception as exc:  # pylint: disable=broad-except
        exc.partial = outcome
        raise
    return outcome


def dropin_rows(items):
    """What the modules return for drop-in changes: {unit, path, action}."""
    return [{"unit": item["unit"], "path": item["path"], "action": item["action"]} for item in items]


def planned_change(the_plan):
    return bool(the_plan["runtime"] or the_plan["dropins"])


def apply(the_plan, journal, proc_path, systemd_running, run_command, restart=False, selinux_module=None):
    """Make a plan's changes (a forward change, or a rollback from rollback_plan), each journalled before it is
    made, in four steps: the drop-in files; daemon-reload; the runtime values; the restarts. Returns the outcome dict.

    With systemd running, a forward change's drop-ins are checked through ``systemctl show`` after the
    daemon-reload, before any runtime change: a unit for which another file still wins fails the run. A rollback
    is marked done in the journal unless the kernel refused a value, then checked the same way (verify_restored).
    """
    return keeping_partial(_apply_steps, the_plan, journal, proc_path, systemd_running, run_command, restart, selinux_module)


def _dropin_record(item, rollback_of, before):
    if rollback_of is not None:
        return "rollback-dropin", dict(rollback_of=rollback_of, unit=item["unit"], path=item["path"], previous=item["previous"],
                                       content=item["content"], restore_meta=item["content_meta"])
    dir_created = item["content"] is not None and not os.path.isdir(os.path.dirname(item["path"]))
    return "dropin", dict(unit=item["unit"], path=item["path"], previous=item["previous"], previous_meta=item["previous_meta"],
                          content=item["content"], dir_created=dir_created,
                          effective_before=None if item["legacy"] else before.get(item["unit"]))


def _runtime_record(item, rollback_of):
    fields = dict(pid=item["pid"], starttime=item["starttime"], name=item["name"], old=item["old"], new=item["new"])
    if rollback_of is not None:
        return "rollback-runtime", dict(fields, rollback_of=rollback_of)
    return "runtime", dict(fields, unit=item["unit"])


def _apply_steps(result, the_plan, journal, proc_path, systemd_running, run_command, restart, selinux_module):
    of = the_plan["rollback_of"]
    units = the_plan["dropin_units"]
    before = effective_values(run_command, units) if systemd_running and units and of is None else {}
    for item in the_plan["dropins"]:
        op, fields = _dropin_record(item, of, before)
        record = journal.intent(op, **fields)
        put_dropin(item["path"], item["content"], item["content_meta"], item["remove_dir"], selinux_module)
        journal.outcome(record, op, "done", path=item["path"])
        result["dropins"].extend(dropin_rows([item]))
    if the_plan["dropins"] and systemd_running:
        systemctl(run_command, "daemon-reload")
        result["daemon_reload"] = True
        verify_persisted(run_command, the_plan["units"], the_plan["value"])
    for item in the_plan["runtime"]:
        op, fields = _runtime_record(item, of)
        record = journal.intent(op, **fields)
        status = set_runtime(proc_path, item)
        journal.outcome(record, op, status, pid=item["pid"])
        result["processes" if status == "done" else status].append(dict(item, status=status))
    if restart and systemd_running:
        for unit in restartable(units):
            systemctl(run_command, "restart", unit)
            result["restarted"].append(unit)
    if of is not None:
        if not result["refused"]:
            journal.mark("rollback-complete", rollback_of=of)
        if the_plan["dropins"] and systemd_running:
            problems, result["warnings"] = verify_restored(run_command, expected_values(the_plan))
            if problems:
                raise RemediationError("The rollback restored the journalled files, but %s." % "; ".join(problems))


def expected_values(the_plan):
    """{unit: OOMScoreAdjust systemd reported before the run a rollback undoes} (the oldest record of the run
    wins; None when the journal predates that record)."""
    expected = {}
    for item in the_plan["dropins"]:  # newest first: the last one seen is the run's first change
        if item["unit"]:
            expected[item["unit"]] = item.get("expected")
    return expected


def verify_restored(run_command, expected, read=None):
    """(problems, warnings) once a rollback restored the drop-ins and systemd reloaded."""
    read = read or dropins.read_file
    problems, warnings = [], []
    for unit in sorted(expected):
        props = systemd_oom(run_command, unit)
        if props.get("LoadState") != "loaded":
            continue
        shown, before = props.get("OOMScoreAdjust"), expected[unit]
        if before is not None and shown == before:
            continue
        source = dropins.setting_file(props, unit, read)
        if source and is_ours(read(source)):
            problems.append("%s still gets OOMScoreAdjust=%s from %s, a drop-in of another oomguard run that was not rolled "
                            "back: roll that run back too (playbooks/rollback.yml undoes the newest run first)"
                            % (unit, shown, source))
        elif before is not None:
            warnings.append("%s now gets OOMScoreAdjust=%s from %s, not the %s systemd reported before the run: that file "
                            "changed since the run and was left as it is" % (unit, shown, source or "its unit file", before))
    return problems, warnings


def restartable(units):
    """Units that may be restarted, once each: never a user's service manager (user@UID.service)."""
    seen = []
    for unit in units:
        if unit and unit not in seen and not _USER_MANAGER.match(unit):
            seen.append(unit)
    return seen


def contract_changes(the_plan, result, persist):
    """``oomguard_changes.changes`` rows (docs/data-contract.md) for what was changed."""
    dropin_by_unit = dict((d["unit"], d["path"]) for d in result["dropins"] if d["action"] != "removed")
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
