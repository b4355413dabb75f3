# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vendor runbook's host as a fixture tree in the layout of its own kernel.

The seed's panic log names kernel ``3.10.0-1062.9.1.el7.x86_64``: CentOS 7.7 (Alibaba Cloud
Linux 2 is alike), systemd 219, Python 2.7. What differs from the 6.x trees the other tests use:

- ``/proc/<pid>/cgroup`` is cgroup v1 only: eleven hierarchies, ``name=systemd`` last, no
  ``0::`` line, controllers in 3.10's order (``cpuacct,cpu``, ``net_prio,net_cls``); PID 1
  sits at ``/`` (systemd 219 has no ``init.scope``), kernel threads everywhere at ``/``.
- ``/proc/meminfo`` has 3.10's fields: no ``KReclaimable`` (4.20), but ``NFS_Unstable``,
  ``Bounce``, ``VmallocChunk``, ``CmaTotal``; ``MemAvailable`` is there (RHEL backport).
- ``/proc/slabinfo`` is version 2.1 from SLUB (tunables all 0), readable by root only.
- ``oom_adj`` still sits beside ``oom_score_adj``.
- ``/proc/<pid>/status`` has no ``Umask:`` line (4.7).

The state is the one the runbook's log shows: an unreclaimable slab leak (kmalloc-64) holds
most of the memory, only sshd and systemd-udevd (-1000) remain in the process table, kdump
saved the panic (``/var/crash/<ip>-<date>/vmcore-dmesg.txt``), kernel.panic is 0 and journald
keeps no persistent journal (CentOS 7's default ``Storage=auto`` without ``/var/log/journal``).

``centos7_host(root)`` writes ``root/proc``, ``root/sys`` and the host files under ``root``
and returns ``root`` as str.
"""

from __future__ import annotations

import os

from ansible_collections.oomguard.fleet.tests.unit import procfs_tree as pt

KERNEL = "3.10.0-1062.9.1.el7.x86_64"
MEM_TOTAL_KB = 8009180
PAGE_KB = 4

# /proc/meminfo of a 8 GiB CentOS 7.7 guest whose kmalloc-64 leaked ~6.6 GiB (field order as 3.10 prints it).
MEMINFO = """\
MemTotal:        8009180 kB
MemFree:          139612 kB
MemAvailable:      61040 kB
Buffers:               0 kB
Cached:            52036 kB
SwapCached:            0 kB
Active:            45712 kB
Inactive:          29928 kB
Active(anon):      21572 kB
Inactive(anon):     8556 kB
Active(file):      24140 kB
Inactive(file):    21372 kB
Unevictable:           0 kB
Mlocked:               0 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Dirty:                 0 kB
Writeback:             0 kB
AnonPages:         23604 kB
Mapped:            10580 kB
Shmem:              8600 kB
Slab:            7046288 kB
SReclaimable:      50140 kB
SUnreclaim:      6996148 kB
KernelStack:        2880 kB
PageTables:         2712 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:     4004588 kB
Committed_AS:     262144 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       20464 kB
VmallocChunk:   34359705340 kB
HardwareCorrupted:     0 kB
AnonHugePages:      6144 kB
CmaTotal:              0 kB
CmaFree:               0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
DirectMap4k:      110464 kB
DirectMap2M:     5132288 kB
DirectMap1G:     5242880 kB
"""

# SLUB caches (name, objsize, objperslab, pagesperslab, num_slabs): kmalloc-64 leaks.
SLAB_CACHES = [
    ("kmalloc-64", 64, 64, 1, 1748000),
    ("dentry", 192, 21, 1, 4400),
    ("xfs_inode", 960, 17, 4, 1030),
    ("radix_tree_node", 584, 14, 2, 1600),
    ("kmalloc-512", 512, 16, 2, 700),
    ("inode_cache", 592, 13, 2, 560),
    ("task_struct", 4160, 7, 8, 22),
    ("nf_conntrack_ffffffff819a3a40", 320, 12, 1, 40),
]


def v1_cgroup(unit_path):
    """The cgroup file of a process under systemd 219 on 3.10: ``unit_path`` in the hierarchies
    systemd manages per unit (name=systemd, cpu, memory, blkio, devices, pids), ``/`` elsewhere."""
    managed = ("blkio", "pids", "memory", "devices", "cpuacct,cpu", "name=systemd")
    order = ["cpuset", "blkio", "pids", "memory", "perf_event", "devices", "hugetlb", "freezer", "net_prio,net_cls",
             "cpuacct,cpu", "name=systemd"]
    return "".join("%d:%s:%s\n" % (11 - index, name, unit_path if name in managed else "/")
                   for index, name in enumerate(order))


def _status_without_umask(proc):
    return "".join(line + "\n" for line in pt.status_text(proc).splitlines() if not line.startswith("Umask:"))


PROCESSES = [
    {"pid": 1, "ppid": 0, "comm": "systemd", "rss_kb": 3960, "cgroup": v1_cgroup("/"),
     "cmdline": ["/usr/lib/systemd/systemd", "--switched-root", "--system", "--deserialize", "22"]},
    {"pid": 2, "ppid": 0, "comm": "kthreadd", "kthread": True, "cgroup": v1_cgroup("/")},
    {"pid": 3578, "ppid": 2, "comm": "kworker/u176:4", "kthread": True, "cgroup": v1_cgroup("/")},
    {"pid": 1799, "ppid": 1, "comm": "sshd", "oom_score_adj": -1000, "rss_kb": 245 * PAGE_KB, "vsize_kb": 26512 * PAGE_KB,
     "cgroup": v1_cgroup("/system.slice/sshd.service"), "cmdline": ["/usr/sbin/sshd", "-D"]},
    {"pid": 29219, "ppid": 1, "comm": "systemd-udevd", "oom_score_adj": -1000, "rss_kb": 126 * PAGE_KB,
     "vsize_kb": 10832 * PAGE_KB, "cgroup": v1_cgroup("/system.slice/systemd-udevd.service"),
     "cmdline": ["/usr/lib/systemd/systemd-udevd"]},
]

VENDOR_DMESG = os.path.join(os.path.dirname(__file__), "fixtures", "evidence", "vendor-vmcore-dmesg.txt")
CRASH_DIR = "127.0.0.1-2026-11-28-03:04:05"


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def centos7_host(root):
    root = str(root)
    proc = os.path.join(root, "proc")
    slabinfo = pt.slabinfo_text([{"name": name, "objsize": size, "objperslab": per, "pagesperslab": pages,
                                  "num_slabs": slabs} for name, size, per, pages, slabs in SLAB_CACHES])
    processes = [dict(p, legacy_oom_adj=True) for p in PROCESSES]
    pt.build_proc_tree(proc, processes=processes, meminfo=MEMINFO, osrelease=KERNEL, slabinfo=slabinfo, page_size=4096)
    for item in processes:
        if not item.get("kthread"):
            _write(os.path.join(proc, str(item["pid"]), "status"), _status_without_umask(item))
    os.chmod(os.path.join(proc, "slabinfo"), 0o400)
    for name, value in (("panic", 0), ("panic_on_oops", 1)):
        _write(os.path.join(proc, "sys", "kernel", name), "%d\n" % value)
    sys_kernel = os.path.join(root, "sys", "kernel")
    _write(os.path.join(sys_kernel, "kexec_crash_loaded"), "1\n")
    _write(os.path.join(sys_kernel, "kexec_crash_size"), "167772160\n")
    with open(VENDOR_DMESG, encoding="utf-8") as handle:
        _write(os.path.join(root, "var", "crash", CRASH_DIR, "vmcore-dmesg.txt"), handle.read())
    _write(os.path.join(root, "var", "log", "messages"), "")
    _write(os.path.join(root, "etc", "systemd", "journald.conf"), "[Journal]\n#Storage=auto\n")
    return root
