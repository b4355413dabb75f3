# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: merge and render the fleet report for 1,000 and 10,000 generated hosts.

For each size, a fresh process reads a results directory of generated per-host
result files (one in five hosts has an older second file, so the merge has work),
adds the same number of hosts' live facts, builds the report and writes every format
(JSON, CSV, Markdown, HTML, JUnit, Prometheus). Generating the files is not timed.
Printed: wall time, peak RSS of the process, and the 1k -> 10k growth (linear ~ 10x).
Goal at 10k: <= 10 s and <= 300 MiB. Environment: BENCH_SIZES ("1000,10000").
Exit status is 0 unless a run fails: the figures are printed, not enforced.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEVELS = ("ok", "ok", "ok", "low", "medium", "high", "critical")
RULES = (("OOM001", "critical"), ("OOM002", "high"), ("OOM003", "medium"), ("SLAB001", "medium"), ("VM001", "low"))


def fake_exposure(host, rng, checked_at):
    level = rng.choice(LEVELS)
    findings = [] if level == "ok" else [
        {"id": rid, "severity": sev, "message": "%s on %s: unkillable java (pid %d) holds %d MiB" % (rid, host, rng.randint(100, 99999), rng.randint(1, 9000)),
         "pids": [rng.randint(100, 99999)]}
        for rid, sev in rng.sample(RULES, rng.randint(1, 3))]
    total = rng.randint(1000000, 64000000)
    unkillable = rng.randint(0, total // 2)
    return {
        "schema": 1, "host": host, "level": level, "reason": None, "checked_at": checked_at, "findings": findings,
        "figures": {"mem_total_kb": total, "mem_available_kb": total // 2, "unkillable_rss_kb": unkillable,
                    "unkillable_share_pct": round(100.0 * unkillable / total, 1), "killable_rss_kb": total // 3,
                    "sunreclaim_kb": rng.randint(10000, 900000), "sunreclaim_pct": round(rng.random() * 5, 1),
                    "process_count": rng.randint(50, 900), "unkillable_count": rng.randint(0, 6)},
        "flagged": [{"pid": 4242, "name": "java", "unit": "app.service", "oom_score_adj": -1000, "rss_kb": unkillable, "rule": "OOM002"}]
        if level in ("high", "critical") else [],
    }


def generate(directory, count):
    rng = random.Random(count)
    results = os.path.join(directory, "results")
    os.makedirs(results)
    for index in range(count):
        host = "host%05d.example.net" % index
        record = {"schema": 1, "host": host, "run_id": "oomguard-bench", "written_at": "2026-11-29T02:00:00Z",
                  "exposure": fake_exposure(host, rng, "2026-11-29T02:00:00Z"), "snapshots": None, "changes": None}
        with open(os.path.join(results, host + ".json"), "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        if index % 5 == 0:
            record["written_at"] = "2026-11-28T02:00:00Z"
            with open(os.path.join(results, host + ".older.json"), "w", encoding="utf-8") as handle:
                json.dump(record, handle)
    facts = {}
    for index in range(count):
        host = "live%05d.example.net" % index
        facts[host] = {"oomguard_exposure": fake_exposure(host, rng, "2026-11-29T03:00:00Z"),
                       "oomguard_snapshots": {"status": "ok", "provider": "aws", "snapshots": [{"snapshot_id": "snap-%d" % index}]},
                       "oomguard_changes": None}
    with open(os.path.join(directory, "facts.json"), "w", encoding="utf-8") as handle:
        json.dump(facts, handle)
    return results


def measure(directory):
    """Child process: merge + render + write; print the figures as JSON."""
    sys.path.insert(0, os.path.join(TOP, ".build", "collections"))
    from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp
    from ansible_collections.oomguard.fleet.plugins.plugin_utils import report_output as ro

    with open(os.path.join(directory, "facts.json"), encoding="utf-8") as handle:
        facts = json.load(handle)
    start = time.perf_counter()
    cpu_start = time.process_time()
    hosts = list(facts)
    live = rp.records_from_facts(hosts, facts, set(hosts[:3]), "2026-11-29T03:05:00Z", "oomguard-bench")
    stored, problems = rp.read_results_dir(os.path.join(directory, "results"))
    report = rp.build_report(live + stored, expected_hosts=hosts, run_id="oomguard-bench", problems=problems)
    paths = ro.output_paths(os.path.join(directory, "out"), ("json", "csv", "markdown", "html", "junit", "prometheus"))
    os.makedirs(os.path.join(directory, "out"))
    ro.write_report(report, paths)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    sizes = dict((fmt, os.path.getsize(path)) for fmt, path in paths.items())
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "hosts": report["totals"]["hosts"], "bytes": sizes}))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        measure(sys.argv[2])
        return 0
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000").split(",")]
    figures = {}
    for size in sizes:
        directory = tempfile.mkdtemp(prefix="oomguard-bench-report-")
        try:
            generate(directory, size // 2)   # half from result files, half live from the play
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", directory],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print("bench_report: the %d-host run failed:\n%s" % (size, proc.stderr), file=sys.stderr)
                return 1
            figures[size] = json.loads(proc.stdout)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        fig = figures[size]
        print("bench_report: %6d hosts: merge + render + write all formats %.2f s (CPU %.2f s), peak RSS %.1f MiB, html %.1f MiB, json %.1f MiB"
              % (fig["hosts"], fig["seconds"], fig["cpu_seconds"], fig["peak_rss_mib"], fig["bytes"]["html"] / 1048576.0,
                 fig["bytes"]["json"] / 1048576.0))
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        print("bench_report: %d -> %d hosts (x%.0f): time x%.1f, CPU x%.1f, peak RSS x%.1f (goal at 10k: <= 10 s, <= 300 MiB)" % (
            small, large, large / float(small), figures[large]["seconds"] / figures[small]["seconds"],
            figures[large]["cpu_seconds"] / figures[small]["cpu_seconds"],
            figures[large]["peak_rss_mib"] / figures[small]["peak_rss_mib"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
