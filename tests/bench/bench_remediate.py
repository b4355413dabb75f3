# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: what the journal costs per change, and selection over a large process table.

1. Applies BENCH_CHANGES (default 200) runtime changes on a fixture procfs tree twice: with
   the fsynced journal (an intent and an outcome record per change, as the module does) and
   with bare writes. Prints the time per change and the ratio.
2. Selects by cmdline regex over a fixture tree of BENCH_PROCS (default 5,000) processes and
   compares with a bare loop that only reads each cmdline file.
All files live in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, ".build", "collections"))

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr  # noqa: E402
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem  # noqa: E402
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree  # noqa: E402

CHANGES = int(os.environ.get("BENCH_CHANGES", "200"))
PROCS = int(os.environ.get("BENCH_PROCS", "5000"))


def tree(root, count, adj=-1000):
    return build_proc_tree(root, processes=[
        {"pid": 1000 + i, "comm": "w%d" % i, "oom_score_adj": adj, "unit": "app%d.service" % (i % 50),
         "cmdline": ["/usr/bin/worker", "--id=%d" % i]} for i in range(count)])


def bench_journal(base):
    proc = tree(os.path.join(base, "p1"), CHANGES)
    items = [dict(p, old=p["oom_score_adj"], new=0) for p in rem.select_processes(proc)[0]]
    journal = jr.Journal(os.path.join(base, "state", "journal.jsonl"), "bench")
    start = time.perf_counter()
    for item in items:
        record = journal.intent("runtime", pid=item["pid"], starttime=item["starttime"], name=item["name"], old=item["old"], new=0)
        status = rem.set_runtime(proc, item)
        journal.outcome(record, "runtime", status, pid=item["pid"])
    journalled = time.perf_counter() - start
    for item in items:
        item["new"] = -1000
    start = time.perf_counter()
    for item in items:
        rem.set_runtime(proc, item)
    bare = time.perf_counter() - start
    print("journal: %d changes, %.2f ms/change journalled vs %.3f ms bare (x%.0f; the fsyncs are the cost)"
          % (CHANGES, journalled * 1000 / CHANGES, bare * 1000 / CHANGES, journalled / bare))


def bench_select(base):
    proc = tree(os.path.join(base, "p2"), PROCS)
    start = time.perf_counter()
    found = rem.select_processes(proc, cmdline=r"--id=4\d*$")[0]
    select = time.perf_counter() - start
    pattern = re.compile(r"--id=4\d*$")
    start = time.perf_counter()
    floor = 0
    for entry in os.listdir(proc):
        if entry.isdigit():
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                if pattern.search(handle.read().replace(b"\0", b" ").decode()):
                    floor += 1
    bare = time.perf_counter() - start
    print("select: %d processes, %d matched in %.0f ms vs %.0f ms for a cmdline-only loop (x%.1f; stat, cgroup, "
          "oom_score_adj are read too)" % (PROCS, len(found), select * 1000, bare * 1000, select / bare))


def main():
    base = tempfile.mkdtemp(prefix="bench-remediate-")
    try:
        bench_journal(base)
        bench_select(base)
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
