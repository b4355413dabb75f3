# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a fake procfs tree from a description, in the kernel's own file layouts.

Test helper shared by the collection's unit tests. Use it through ``build_proc_tree``::

    from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree
    root = build_proc_tree(tmp_path, processes=[
        {"pid": 1799, "comm": "sshd", "oom_score_adj": -1000, "rss_kb": 980, "unit": "ssh.service"},
        {"pid": 2, "ppid": 0, "comm": "kthreadd", "kthread": True},
    ])
    # then call a module or gather function with proc_path=str(root)

Process keys (all optional but ``pid``):

``pid``, ``ppid`` (1), ``comm`` ("proc"; truncated to 15 bytes like TASK_COMM_LEN),
``state`` ("S"), ``uid`` (0; real, effective, saved, fs all equal unless ``uids`` is a
4-tuple), ``oom_score_adj`` (0; ``None`` leaves the file out), ``oom_adj`` (legacy value;
written when given, or derived from oom_score_adj when ``legacy_oom_adj`` is true),
``oom_score`` (0), ``rss_kb`` (0), ``vsize_kb`` (rss_kb * 4), ``flags`` (0x00400100),
``kthread`` (adds PF_KTHREAD 0x00200000 to flags and empties cmdline, rss, status Vm lines),
``cgroup`` (raw file text) or ``unit`` (a systemd unit placed under system.slice in a
cgroup v2 line), ``cmdline`` (list of argv strings or a raw string; default ``[comm]``),
``threads`` (1), ``missing`` (file names to leave out, e.g. ``["stat"]`` to simulate a
pid that vanished between listdir and open).

Tree keys: ``meminfo`` (dict of meminfo field -> kB, merged over defaults; or raw text),
``vm`` (dict sysctl -> value; ``None`` leaves the file out), ``osrelease``,
``slabinfo`` (raw text, or ``None`` for no file; see ``slabinfo_text``), ``page_size``.
"""

from __future__ import annotations

import os

PF_KTHREAD = 0x00200000
TASK_COMM_LEN = 16

DEFAULT_MEMINFO = {
    "MemTotal": 24000000,
    "MemFree": 22000000,
    "MemAvailable": 23000000,
    "Buffers": 50000,
    "Cached": 700000,
    "SwapCached": 0,
    "Active": 300000,
    "Inactive": 200000,
    "Active(anon)": 150000,
    "Inactive(anon)": 10000,
    "Active(file)": 150000,
    "Inactive(file)": 190000,
    "Unevictable": 0,
    "Mlocked": 0,
    "SwapTotal": 0,
    "SwapFree": 0,
    "Dirty": 100,
    "Writeback": 0,
    "AnonPages": 160000,
    "Mapped": 90000,
    "Shmem": 8000,
    "KReclaimable": 80000,
    "Slab": 120000,
    "SReclaimable": 80000,
    "SUnreclaim": 40000,
    "KernelStack": 4000,
    "PageTables": 6000,
    "CommitLimit": 12000000,
    "Committed_AS": 900000,
    "VmallocTotal": 34359738367,
    "VmallocUsed": 30000,
    "HugePages_Total": 0,
    "HugePages_Free": 0,
    "Hugepagesize": 2048,
    "DirectMap4k": 200000,
}
_MEMINFO_NO_UNIT = ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")

DEFAULT_VM = {"panic_on_oom": 0, "overcommit_memory": 0, "oom_kill_allocating_task": 0}

# The vendor runbook's panic process table (uid, pid, rss pages, oom_score_adj, name).
VENDOR_PROCESSES = [
    {"pid": 1799, "ppid": 1, "comm": "sshd", "uid": 0, "oom_score_adj": -1000, "oom_score": 0,
     "rss_kb": 245 * 4, "vsize_kb": 26512 * 4, "unit": "sshd.service", "cmdline": ["/usr/sbin/sshd", "-D"]},
    {"pid": 29219, "ppid": 1, "comm": "systemd-udevd", "uid": 0, "oom_score_adj": -1000, "oom_score": 0,
     "rss_kb": 126 * 4, "vsize_kb": 10832 * 4, "unit": "systemd-udevd.service", "cmdline": ["/usr/lib/systemd/systemd-udevd"]},
]


def _write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(data)


def _comm(name):
    raw = name.encode("utf-8")[:TASK_COMM_LEN - 1]
    return raw.decode("utf-8", "ignore")


def stat_line(proc, page_size=4096):
    """One /proc/<pid>/stat line with all 52 fields (proc(5))."""
    flags = proc.get("flags", 0x00400100)
    kthread = proc.get("kthread", False)
    if kthread:
        flags |= PF_KTHREAD
    rss_pages = 0 if kthread else proc.get("rss_kb", 0) * 1024 // page_size
    vsize = 0 if kthread else proc.get("vsize_kb", proc.get("rss_kb", 0) * 4) * 1024
    pid = proc["pid"]
    fields = [
        proc.get("state", "S"), proc.get("ppid", 1), pid, pid, 0, -1, flags,
        120, 0, 0, 0, 3, 2, 0, 0, 20, 0, proc.get("threads", 1), 0, 1500,
        vsize, rss_pages, 18446744073709551615,
    ]
    fields += [0 if kthread else 1] * 2 + [0] * 3 + [0, 0, 0, 0, 0, 0, 0, 0, 17, 1, 0, 0, 0, 0, 0]
    fields += [0] * 7
    return "%d (%s) %s\n" % (pid, _comm(proc.get("comm", "proc")), " ".join(str(f) for f in fields))


def status_text(proc):
    """/proc/<pid>/status as the kernel writes it (tab separated, Name escaped)."""
    uid = proc.get("uid", 0)
    uids = proc.get("uids", (uid, uid, uid, uid))
    name = _comm(proc.get("comm", "proc")).replace("\\", "\\\\").replace("\n", "\\n")
    lines = [
        "Name:\t%s" % name,
        "Umask:\t0022",
        "State:\t%s (sleeping)" % proc.get("state", "S"),
        "Tgid:\t%d" % proc["pid"],
        "Ngid:\t0",
        "Pid:\t%d" % proc["pid"],
        "PPid:\t%d" % proc.get("ppid", 1),
        "TracerPid:\t0",
        "Uid:\t%s" % "\t".join(str(u) for u in uids),
        "Gid:\t%s" % "\t".join(str(u) for u in uids),
        "FDSize:\t64",
        "Groups:\t",
    ]
    if not proc.get("kthread", False):
        rss = proc.get("rss_kb", 0)
        lines += [
            "VmPeak:\t%8d kB" % proc.get("vsize_kb", rss * 4),
            "VmSize:\t%8d kB" % proc.get("vsize_kb", rss * 4),
            "VmHWM:\t%8d kB" % rss,
            "VmRSS:\t%8d kB" % rss,
            "RssAnon:\t%8d kB" % rss,
            "RssFile:\t%8d kB" % 0,
        ]
    lines += [
        "Threads:\t%d" % proc.get("threads", 1),
        "SigQ:\t0/94651",
        "CapBnd:\t000001fffeffffff",
        "voluntary_ctxt_switches:\t10",
        "nonvoluntary_ctxt_switches:\t1",
    ]
    return "\n".join(lines) + "\n"


def cgroup_text(proc):
    if "cgroup" in proc:
        return proc["cgroup"]
    if proc.get("kthread", False):
        return "0::/\n"
    unit = proc.get("unit")
    if unit:
        return "0::/system.slice/%s\n" % unit
    return "0::/user.slice/user-0.slice/session-1.scope\n"


def cmdline_bytes(proc):
    if proc.get("kthread", False):
        return b""
    cmd = proc.get("cmdline", [proc.get("comm", "proc")])
    if isinstance(cmd, (bytes, str)):
        return cmd.encode("utf-8") if isinstance(cmd, str) else cmd
    return b"".join(arg.encode("utf-8") + b"\0" for arg in cmd)


def legacy_oom_adj(score_adj):
    """The kernel's oom_score_adj -> oom_adj mapping (fs/proc/base.c)."""
    if score_adj == -1000:
        return -17
    return score_adj * 17 // 1000


def meminfo_text(values=None):
    merged = dict(DEFAULT_MEMINFO)
    merged.update(values or {})
    out = []
    for key, val in merged.items():
        if key in _MEMINFO_NO_UNIT:
            out.append("%-16s%8d" % (key + ":", val))
        else:
            out.append("%-16s%8d kB" % (key + ":", val))
    return "\n".join(out) + "\n"


def slabinfo_text(caches, version="2.1", statistics=False):
    """A /proc/slabinfo text. ``caches``: list of dicts name, active_objs, num_objs, objsize,
    objperslab, pagesperslab, active_slabs, num_slabs (missing ones default sensibly)."""
    header = "slabinfo - version: %s%s\n" % (version, " (statistics)" if statistics else "")
    if version == "2.0":
        header += ("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
                   " : tunables <batchcount> <limit> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n")
    else:
        header += ("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
                   " : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>")
        if statistics:
            header += (" : globalstat <listallocs> <maxobjs> <grown> <reaped> <error> <maxfreeable> <nodeallocs>"
                       " <remotefrees> <alienoverflow> : cpustat <allochit> <allocmiss> <freehit> <freemiss>")
        header += "\n"
    lines = [header]
    for cache in caches:
        objperslab = cache.get("objperslab", 10)
        num_slabs = cache.get("num_slabs", 1)
        num_objs = cache.get("num_objs", num_slabs * objperslab)
        line = "%-17s %6d %6d %6d %4d %4d : tunables %4d %4d %4d : slabdata %6d %6d %6d" % (
            cache["name"], cache.get("active_objs", num_objs), num_objs, cache.get("objsize", 64),
            objperslab, cache.get("pagesperslab", 1), cache.get("limit", 0), cache.get("batchcount", 0),
            cache.get("sharedfactor", 0), cache.get("active_slabs", num_slabs), num_slabs, 0)
        if statistics:
            line += " : globalstat %7d %6d %5d %4d %4d %4d %4d %4d %4d : cpustat %6d %6d %6d %6d" % (
                (num_objs, num_objs, num_slabs, 0, 0, 1, 0, 0, 0, num_objs, 5, num_objs, 2))
        lines.append(line + "\n")
    return "".join(lines)


def write_process(root, proc, page_size=4096):
    """Write /proc/<pid>/ for one process description into ``root``."""
    base = os.path.join(str(root), str(proc["pid"]))
    os.makedirs(base, exist_ok=True)
    missing = set(proc.get("missing", ()))
    score_adj = proc.get("oom_score_adj", 0)
    rss_kb = 0 if proc.get("kthread", False) else proc.get("rss_kb", 0)
    pages = rss_kb * 1024 // page_size
    files = {
        "stat": stat_line(proc, page_size),
        "status": status_text(proc),
        "statm": "%d %d %d 1 0 %d 0\n" % (pages * 4, pages, pages // 2, pages) if rss_kb else "0 0 0 0 0 0 0\n",
        "cgroup": cgroup_text(proc),
        "comm": _comm(proc.get("comm", "proc")) + "\n",
        "oom_score": "%d\n" % proc.get("oom_score", 0),
    }
    if score_adj is not None:
        files["oom_score_adj"] = "%d\n" % score_adj
    if "oom_adj" in proc:
        files["oom_adj"] = "%d\n" % proc["oom_adj"]
    elif proc.get("legacy_oom_adj") and score_adj is not None:
        files["oom_adj"] = "%d\n" % legacy_oom_adj(score_adj)
    for name, text in files.items():
        if name not in missing:
            _write(os.path.join(base, name), text)
    if "cmdline" not in missing:
        _write(os.path.join(base, "cmdline"), cmdline_bytes(proc), "wb")
    return base


def build_proc_tree(root, processes=(), meminfo=None, vm=None, osrelease="6.1.0-18-amd64",
                    slabinfo=None, page_size=None, with_self=True):
    """Create a fake procfs at ``root`` (created if needed) and return its path as str.

    ``vm=None`` writes the defaults (all 0); pass ``{"panic_on_oom": None}`` to leave one out.
    ``slabinfo=None`` means no /proc/slabinfo (as on kernels without CONFIG_SLUB_DEBUG).
    """
    root = str(root)
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")
    os.makedirs(root, exist_ok=True)
    for proc in processes:
        write_process(root, proc, page_size)
    if isinstance(meminfo, str):
        _write(os.path.join(root, "meminfo"), meminfo)
    else:
        _write(os.path.join(root, "meminfo"), meminfo_text(meminfo))
    sysctls = dict(DEFAULT_VM)
    sysctls.update(vm or {})
    for name, value in sysctls.items():
        if value is not None:
            _write(os.path.join(root, "sys", "vm", name), "%s\n" % value)
    if osrelease is not None:
        _write(os.path.join(root, "sys", "kernel", "osrelease"), osrelease + "\n")
    if slabinfo is not None:
        _write(os.path.join(root, "slabinfo"), slabinfo)
    if with_self and processes:
        # Non-numeric entries exist in a real /proc and must be ignored by scanners.
        link = os.path.join(root, "self")
        if not os.path.lexists(link):
            os.symlink(str(processes[0]["pid"]), link)
    return root


def kernel_thread(pid, comm="kworker/0:1", ppid=2):
    return {"pid": pid, "ppid": ppid, "comm": comm, "kthread": True, "oom_score_adj": 0}


def vendor_tree(root, extra=(), **kwargs):
    """The vendor runbook's host: sshd and systemd-udevd at -1000, plus init and kthreadd."""
    base = [
        {"pid": 1, "ppid": 0, "comm": "systemd", "rss_kb": 12000, "unit": None, "cgroup": "0::/init.scope\n",
         "cmdline": ["/sbin/init"]},
        kernel_thread(2, "kthreadd", ppid=0),
        kernel_thread(3578, "kworker/u176:4"),
    ]
    return build_proc_tree(root, processes=base + [dict(p) for p in VENDOR_PROCESSES] + list(extra), **kwargs)
