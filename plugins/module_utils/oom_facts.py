# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather ``ansible_facts.oom`` (docs/data-contract.md) from a procfs tree.

One pass over <proc_path>/[0-9]*: every process costs two reads (stat, oom_score_adj;
kernel threads only stat). status, oom_score, cgroup and cmdline are read only for the
rows returned. A pid that vanished or denied a read is skipped and counted in
``errors``; a malformed file raises ProcParseError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import heapq
import os

from ansible_collections.oomguard.fleet.plugins.module_utils import proc_reader as reader
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import (
    OOM_SCORE_ADJ_MIN,
    PF_KTHREAD,
    ProcParseError,
    cgroup_unit,
    is_decimal,
    meminfo_facts,
    parse_cmdline,
    parse_int,
    parse_meminfo,
    parse_status,
)

SCHEMA = 1
VM_SYSCTLS = ("panic_on_oom", "overcommit_memory", "oom_kill_allocating_task")
MAX_ERROR_SAMPLES = 10


def read_optional_int(path):
    """An integer file that may be absent (older kernels, fixture trees): None then."""
    try:
        return parse_int(reader.read_text(path), path)
    except (IOError, OSError):
        return None


def read_meminfo(proc_path):
    path = os.path.join(proc_path, "meminfo")
    try:
        text = reader.read_text(path)
    except (IOError, OSError) as exc:
        raise ProcParseError(path, None, "cannot read (%s); is proc_path a procfs mount?" % (exc.strerror or exc))
    return parse_meminfo(text, path)


def read_kernel(proc_path):
    try:
        return reader.read_text(os.path.join(proc_path, "sys", "kernel", "osrelease")).strip() or None
    except (IOError, OSError):
        return None


def _reason(exc, base):
    code = getattr(exc, "errno", None)
    if reader.is_gone(exc, base):
        return "vanished"
    if code in (errno.EACCES, errno.EPERM):  # EPERM: procfs mounted with hidepid=1 (noaccess)
        return "permission denied"
    if code == errno.ENOENT:
        return "absent"
    return str(getattr(exc, "strerror", None) or exc)


class _Errors:
    """Processes skipped during the scan: ``vanished`` ones exited (harmless), ``unreadable``
    ones live on uncounted, which the rules must not take for a safe host."""

    def __init__(self):
        self.count = 0
        self.vanished = 0
        self.samples = []
        self.hidepid = None

    def add(self, pid, name, exc, base=None):
        reason = _reason(exc, base)
        self.count += 1
        if reason == "vanished":
            self.vanished += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append({"pid": pid, "file": name, "error": reason})

    def as_dict(self):
        return {"count": self.count, "vanished_count": self.vanished, "unreadable_count": self.count - self.vanished,
                "hidepid": self.hidepid, "samples": self.samples}


def _mount_options(proc_path):
    """The super options of the procfs mounted at ``proc_path`` ('' when not found)."""
    target = os.path.realpath(proc_path)
    try:
        text = reader.read_text(os.path.join(proc_path, "self", "mountinfo"))
    except (IOError, OSError):
        return ""
    options = ""
    for line in text.splitlines():
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        tail = line.split(" - ", 1)[1].split(" ")
        # The mount point is octal-escaped (\040 for a space); the last mount there wins.
        if fields[4].replace("\\040", " ") == target and tail[0] == "proc" and len(tail) >= 3:
            options = tail[2]
    return options


def hidden_pids(proc_path):
    """``hidepid`` value when this reader cannot even list other users' processes (procfs mounted
    with hidepid=2/invisible, not root, not in its gid= group), else None."""
    options = dict((opt.partition("=")[0], opt.partition("=")[2]) for opt in _mount_options(proc_path).split(","))
    hidepid = options.get("hidepid")
    if hidepid not in ("2", "invisible") or os.geteuid() == 0:
        return None
    gid = options.get("gid")
    if gid and gid.isdigit() and (int(gid) == os.getegid() or int(gid) in os.getgroups()):
        return None
    return hidepid


def list_pids(proc_path):
    try:
        names = os.listdir(proc_path)
    except (IOError, OSError) as exc:
        raise ProcParseError(proc_path, None, "cannot list (%s); is proc_path a procfs mount?" % (exc.strerror or exc))
    return [int(name) for name in names if is_decimal(name)]


def scan(proc_path, errors):
    """The one pass. Returns (rows, kernel_thread_count); a row is
    (pid, ppid, comm, oom_score_adj, legacy_oom_adj, rss_kb)."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    rows = []
    kthreads = 0
    prefix = proc_path.rstrip("/") + "/"
    for pid in list_pids(proc_path):
        base = prefix + str(pid)
        try:
            comm, ppid, flags, rss_pages = reader.read_stat(base)[:4]
        except (IOError, OSError) as exc:
            errors.add(pid, "stat", exc, base)
            continue
        if flags & PF_KTHREAD:
            kthreads += 1
            continue
        try:
            adj, legacy = reader.read_adj(base)
        except (IOError, OSError) as exc:
            errors.add(pid, "oom_score_adj", exc, base)
            continue
        rss_kb = rss_pages * page_kb
        rows.append((pid, ppid, comm, adj, legacy, rss_kb))
    return rows, kthreads


def describe(row, proc_path, cmdline_max, errors, return_cmdline=True):
    """The contract's process dict for a returned row; None if it vanished meanwhile."""
    pid, ppid, comm, adj, legacy, rss_kb = row
    base = os.path.join(proc_path, str(pid))
    name = "status"
    try:
        status = parse_status(reader.read_text(base + "/status"), base + "/status")
        name = "oom_score"
        oom_score = parse_int(reader.read_text(base + "/oom_score"), base + "/oom_score")
        name = "cgroup"
        try:
            unit = cgroup_unit(reader.read_text(base + "/cgroup"), base + "/cgroup")
        except (IOError, OSError) as exc:
            if exc.errno != errno.ENOENT or not os.path.exists(base):
                raise
            unit = None  # kernel without cgroups
        name = "cmdline"
        cmdline = parse_cmdline(reader.read_bytes(base + "/cmdline"), cmdline_max) if return_cmdline else None
    except (IOError, OSError) as exc:
        errors.add(pid, name, exc, base)
        return None
    return {
        "pid": pid,
        "ppid": ppid,
        "name": comm,
        "uid": status["uid"],
        "oom_score_adj": adj,
        "oom_adj_legacy": legacy,
        "oom_score": oom_score,
        "rss_kb": rss_kb,
        "unit": unit,
        "cmdline": cmdline,
    }


def _read_optional_text(path):
    try:
        return reader.read_text(path).strip()
    except (IOError, OSError):
        return None


def _mounted_types(proc_path):
    """File system types mounted in this reader's namespace, from <proc_path>/self/mountinfo (None: unreadable)."""
    try:
        text = reader.read_text(os.path.join(proc_path, "self", "mountinfo"))
    except (IOError, OSError):
        return None
    return set(line.split(" - ", 1)[1].split(" ")[0] for line in text.splitlines() if " - " in line)


JOURNALD_CONF_DIRS = ("usr/lib/systemd/journald.conf.d", "run/systemd/journald.conf.d", "etc/systemd/journald.conf.d")


def journald_storage(root):
    """journald's Storage= (journald.conf(5)): the main file, then drop-ins sorted by name, last one wins."""
    files = [os.path.join(root, "etc", "systemd", "journald.conf")]
    dropins = {}
    for directory in JOURNALD_CONF_DIRS:  # a name in /etc overrides the same name in /run and /usr/lib
        for path in glob.glob(os.path.join(root, directory, "*.conf")):
            dropins[os.path.basename(path)] = path
    files += [dropins[name] for name in sorted(dropins)]
    storage = None
    for path in files:
        section = None
        for line in (_read_optional_text(path) or "").splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Journal]" and line.partition("=")[0].strip() == "Storage":
                storage = line.partition("=")[2].strip().lower() or None
    return storage


def panic_facts(proc_path, sys_path, root=None):
    """What happens after a panic: does the host reboot (kernel.panic), and would a record survive
    (a pstore backend, a loaded crash kernel, a persistent journal). Missing files are normal:
    null, or false when the sysfs tree is there but the feature is not."""
    sysfs = os.path.isdir(os.path.join(sys_path, "kernel")) if sys_path else False
    kernel_dir = os.path.join(proc_path, "sys", "kernel")
    facts = {
        "timeout_s": read_optional_int(os.path.join(kernel_dir, "panic")),
        "on_oops": read_optional_int(os.path.join(kernel_dir, "panic_on_oops")),
        "sys_path": sys_path if sysfs else None,
        "pstore": {"backend": None, "mounted": None},
        "crash_kernel": {"loaded": None, "size_bytes": None},
        "journal": {"persistent": None, "storage": None, "path": None},
    }
    if sysfs:
        backend = _read_optional_text(os.path.join(sys_path, "module", "pstore", "parameters", "backend"))
        types = _mounted_types(proc_path)
        facts["pstore"] = {"backend": backend if backend and backend != "(null)" else None,
                           "mounted": None if types is None else "pstore" in types}
        loaded = read_optional_int(os.path.join(sys_path, "kernel", "kexec_crash_loaded"))
        facts["crash_kernel"] = {"loaded": loaded == 1,  # absent: a kernel without kexec, so none loaded
                                 "size_bytes": read_optional_int(os.path.join(sys_path, "kernel", "kexec_crash_size"))}
    if root and os.path.isdir(os.path.join(root, "var", "log")):
        path = os.path.join(root, "var", "log", "journal")
        storage = journald_storage(root)
        exists = os.path.isdir(path)
        facts["journal"] = {"persistent": storage == "persistent" or (storage in (None, "auto") and exists),
                            "storage": storage or "auto", "path": path}
    return facts


def default_sys_path(proc_path):
    """The sysfs beside a procfs: /proc -> /sys, /host/proc -> /host/sys (as container mounts go)."""
    return os.path.join(os.path.dirname(os.path.normpath(proc_path)), "sys")


def select_rows(rows, adj_threshold, top_killable, all_processes):
    if all_processes:
        return list(rows)
    chosen = dict((row[0], row) for row in rows if row[3] <= adj_threshold)
    killable = [row for row in rows if row[3] > OOM_SCORE_ADJ_MIN]
    for row in heapq.nlargest(max(top_killable, 0), killable, key=lambda r: r[5]):
        chosen[row[0]] = row
    return list(chosen.values())


def summarize(rows, kthreads):
    unkillable = [row for row in rows if row[3] == OOM_SCORE_ADJ_MIN]
    killable = [row for row in rows if row[3] != OOM_SCORE_ADJ_MIN]
    largest = max(killable, key=lambda r: r[5]) if killable else None
    return {
        "process_count": len(rows),
        "kernel_thread_count": kthreads,
        "unkillable_count": len(unkillable),
        "unkillable_rss_kb": sum(row[5] for row in unkillable),
        "killable_count": len(killable),
        "killable_rss_kb": sum(row[5] for row in killable),
        "largest_killable": (
            {"pid": largest[0], "name": largest[2], "rss_kb": largest[5], "oom_score_adj": largest[3]} if largest else None
        ),
    }


def gather_oom_facts(proc_path="/proc", adj_threshold=-500, top_killable=10, cmdline_max=256, all_processes=False,
                     return_cmdline=True, sys_path=None, root=None):
    """``ansible_facts.oom`` for the procfs tree at ``proc_path``. ``sys_path`` (default: the
    ``sys`` beside ``proc_path``) and ``root`` (the host's files, for the journal; None: not read)
    feed ``panic``."""
    errors = _Errors()
    meminfo = meminfo_facts(read_meminfo(proc_path))
    errors.hidepid = hidden_pids(proc_path)
    rows, kthreads = scan(proc_path, errors)
    summary = summarize(rows, kthreads)
    processes = []
    for row in select_rows(rows, adj_threshold, top_killable, all_processes):
        proc = describe(row, proc_path, cmdline_max, errors, return_cmdline)
        if proc is not None:
            processes.append(proc)
    processes.sort(key=lambda p: (-p["rss_kb"], p["pid"]))
    summary["returned_count"] = len(processes)
    vm_dir = os.path.join(proc_path, "sys", "vm")
    return {
        "schema": SCHEMA,
        "kernel": read_kernel(proc_path),
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "meminfo": meminfo,
        "vm": dict((name, read_optional_int(os.path.join(vm_dir, name))) for name in VM_SYSCTLS),
        "panic": panic_facts(proc_path, sys_path or default_sys_path(proc_path), root),
        "summary": summary,
        "processes": processes,
        "errors": errors.as_dict(),
    }


# Options of oomguard.fleet.oom_score_facts, shared with the oomguard.fleet.oom_exposure action,
# which passes them through to the module (docs: the oomguard.fleet.oom_facts doc fragment).
FACTS_ARGUMENT_SPEC = dict(
    proc_path=dict(type="path", default="/proc"),
    gather_subset=dict(type="list", elements="str", default=["oom"], choices=["all", "evidence", "oom", "slabinfo"]),
    adj_threshold=dict(type="int", default=-500),
    top_killable=dict(type="int", default=10),
    all_processes=dict(type="bool", default=False),
    cmdline_max=dict(type="int", default=256),
    return_cmdline=dict(type="bool", default=True),
    sys_path=dict(type="path"),
    slabinfo_top=dict(type="int", default=20),
    slabinfo_baseline=dict(type="str", default="none", choices=["none", "compare", "store"]),
    slabinfo_baseline_path=dict(type="path", default="/var/lib/oomguard/slabinfo-baseline.json"),
    evidence_root=dict(type="path", default="/"),
    evidence_days=dict(type="int", default=30),
    evidence_max_bytes=dict(type="int", default=4194304),
)


def oom_arguments(params):
    """gather_oom_facts' arguments from the options of oom_score_facts."""
    return dict(proc_path=params["proc_path"], adj_threshold=params["adj_threshold"], top_killable=params["top_killable"],
                cmdline_max=params["cmdline_max"], all_processes=params["all_processes"],
                return_cmdline=params["return_cmdline"], sys_path=params["sys_path"], root=params["evidence_root"])


def evidence_arguments(params):
    """evidence.gather_evidence's arguments from the options of oom_score_facts (the module adds how to run journalctl)."""
    return dict(root=params["evidence_root"], since_days=params["evidence_days"], max_bytes=params["evidence_max_bytes"])


def check_facts_params(params):
    """The range checks the argument spec cannot express; returns an error message or None."""
    for name in ("top_killable", "cmdline_max", "slabinfo_top", "evidence_days"):
        if params[name] < 0:
            return "%s must be 0 or a positive number, not %d" % (name, params[name])
    if params["evidence_max_bytes"] < 1:
        return "evidence_max_bytes must be at least 1, not %d" % params["evidence_max_bytes"]
    return None
