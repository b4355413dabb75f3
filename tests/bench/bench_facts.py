# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: oom_score_facts' scan against `ps` and against a bare /proc loop.

Spawns BENCH_PROCS (default 10,000) sleeping processes, then times side by side, in
rounds, the module's scan in-process (gather_oom_facts, no Ansible start-up), `ps -e -o
pid,ppid,oomadj,oom,rss,comm`, the floor (a loop that only opens and reads
/proc/<pid>/stat and /proc/<pid>/oom_score_adj with open()) and, for reference, the same
floor through raw os.read() (how the module reads) and a loop that reads six files per
process. Prints the ratios, the scan's peak memory and the facts payload size.
The spawned processes are killed by PID in every case (and die with this process).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import tracemalloc

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, ".build", "collections"))

from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts  # noqa: E402

PROCS = int(os.environ.get("BENCH_PROCS", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
GOALS = {"module/ps": 0.8, "module/floor": 1.3, "peak_rss_mib": 60, "payload_kb": 20}


PR_SET_CHILD_SUBREAPER = 36
# A small interpreter forks much faster than this one: each helper forks its share of
# sleepers, prints their pids, then reaps them once they are killed. Every process dies
# with its parent (PR_SET_PDEATHSIG).
HELPER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[2]):
    os._exit(1)
me = os.getpid()
pids = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, signal.SIGKILL)
        if os.getppid() == me:
            signal.pause()
        os._exit(0)
    pids.append(pid)
sys.stdout.write(" ".join(map(str, pids)) + "\n")
sys.stdout.flush()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def spawn(count, helpers=None):
    """Start ``count`` sleeping processes; returns (sleeper pids, helper Popen objects)."""
    libc = ctypes.CDLL(None, use_errno=True)
    # Orphans (if a helper dies first) come back to this process, which reaps them.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    helpers = helpers or max(os.cpu_count() or 1, 1)
    shares = [count // helpers + (1 if i < count % helpers else 0) for i in range(helpers)]
    procs, pids = [], []
    try:
        for share in shares:
            procs.append(subprocess.Popen([sys.executable, "-S", "-c", HELPER, str(share), str(os.getpid())],
                                          stdout=subprocess.PIPE, text=True))
        for proc in procs:
            line = proc.stdout.readline()
            pids.extend(int(pid) for pid in line.split())
        if len(pids) != count:
            raise RuntimeError("spawned %d of %d processes (pid_max or ulimit -u too low?)" % (len(pids), count))
    except BaseException:
        reap(pids, procs)
        raise
    return pids, procs


def reap(pids, procs):
    """Kill the sleepers by pid; their helpers reap them and exit; reap any orphan too."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


def run_module_scan():
    return gather_oom_facts("/proc")


def run_ps():
    return subprocess.run(["ps", "-e", "-o", "pid,ppid,oomadj,oom,rss,comm"], stdout=subprocess.PIPE, check=True).stdout


def run_floor():
    rows = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat") as handle:
                handle.read()
            with open("/proc/" + name + "/oom_score_adj") as handle:
                handle.read()
        except OSError:
            continue
        rows += 1
    return rows


def run_floor_raw():
    """The floor with raw os.open/os.read instead of open(): the module's own way of reading."""
    rows = 0
    flags = os.O_RDONLY | os.O_CLOEXEC
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            for leaf in ("/stat", "/oom_score_adj"):
                fd = os.open("/proc/" + name + leaf, flags)
                try:
                    os.read(fd, 4096)
                finally:
                    os.close(fd)
        except OSError:
            continue
        rows += 1
    return rows


SIX = ("stat", "oom_score_adj", "status", "oom_score", "cgroup", "cmdline")


def run_six_files():
    rows = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            for leaf in SIX:
                with open("/proc/" + name + "/" + leaf, "rb") as handle:
                    handle.read()
        except OSError:
            continue
        rows += 1
    return rows


def timed(func):
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def peak_rss_of_scan_in_child():
    """Peak RSS (VmHWM, KiB) of a fresh interpreter that imports the module_utils and scans
    once, and of one that only imports them. VmHWM belongs to the new address space, unlike
    ru_maxrss, which Linux carries over from the forking parent across exec."""
    base = ("import sys; sys.path.insert(0, %r);"
            "from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts;"
            % os.path.join(TOP, ".build", "collections"))
    hwm = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
    out = {}
    for label, code in (("import_only", base + hwm), ("scan", base + "gather_oom_facts('/proc');" + hwm)):
        res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, check=True, text=True)
        out[label] = int(res.stdout.strip())
    return out


def main():
    print("bench_facts: spawning %d processes ..." % PROCS, flush=True)
    started = time.perf_counter()
    pids, helpers = spawn(PROCS)
    try:
        print("bench_facts: spawned in %.1f s; /proc has %d pids" % (
            time.perf_counter() - started, sum(1 for n in os.listdir("/proc") if n.isdigit())), flush=True)
        contenders = [("module", run_module_scan), ("ps", run_ps), ("floor", run_floor), ("floor_raw", run_floor_raw),
                      ("six_files", run_six_files)]
        for contender in contenders:  # warm the dentry cache once
            contender[1]()
        samples = dict((contender[0], []) for contender in contenders)
        for dummy in range(ROUNDS):  # interleaved so drift hits every contender alike
            for name, func in contenders:
                samples[name].append(timed(func))
        med = dict((name, statistics.median(vals)) for name, vals in samples.items())

        facts = run_module_scan()
        payload = len(json.dumps(facts, separators=(",", ":")).encode())
        tracemalloc.start()
        run_module_scan()
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = peak_rss_of_scan_in_child()

        ratios = {
            "module/ps": med["module"] / med["ps"],
            "floor/ps": med["floor"] / med["ps"],
            "module/floor": med["module"] / med["floor"],
            "module/floor_raw": med["module"] / med["floor_raw"],
            "six_files/ps": med["six_files"] / med["ps"],
        }
        print("bench_facts: %d processes scanned (%d kernel threads), %d rows returned, %d rounds, median seconds:" % (
            facts["summary"]["process_count"], facts["summary"]["kernel_thread_count"],
            facts["summary"]["returned_count"], ROUNDS))
        for name in med:
            print("  %-10s %.4f s" % (name, med[name]))
        for name, value in ratios.items():
            goal = GOALS.get(name)
            verdict = "   (goal <= %.1fx: %s)" % (goal, "met" if value <= goal else "NOT met") if goal else ""
            print("  %-16s %.2fx%s" % (name, value, verdict))
        peak_mib = rss["scan"] / 1024.0
        verdict = "met" if peak_mib < GOALS["peak_rss_mib"] else "NOT met"
        print("  peak RSS of a scanning interpreter: %.1f MiB (%.1f MiB of it is the interpreter and imports)"
              "   (goal < %d MiB: %s)" % (peak_mib, rss["import_only"] / 1024.0, GOALS["peak_rss_mib"], verdict))
        print("  scan's traced Python allocations, peak: %.1f MiB" % (traced_peak / 1048576.0))
        print("  facts payload: %d bytes (%.1f KB)   (goal < %d KB: %s)" % (
            payload, payload / 1000.0, GOALS["payload_kb"], "met" if payload < GOALS["payload_kb"] * 1000 else "NOT met"))
    finally:
        reap(pids, helpers)
        alive = sum(1 for pid in pids if os.path.exists("/proc/%d" % pid))
        print("bench_facts: killed and reaped %d processes (%d left)" % (len(pids), alive))


if __name__ == "__main__":
    main()
