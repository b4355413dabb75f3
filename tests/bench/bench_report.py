# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: merge and render the fleet report for 1,000, 10,000 and 100,000 generated hosts,
and the 10,000-host HTML page in headless Chromium.

For each size, a fresh process reads a results directory of generated per-host
result files (one in five hosts has an older second file, so the merge has work),
adds the same number of hosts' live facts, builds the report and writes every format
(JSON, CSV, Markdown, HTML, JUnit, Prometheus). Generating the files is not timed.
Printed: wall time, peak RSS of the process, and the growth per tenfold step (linear ~ 10x).
Goal at 100k: <= 15 s and <= 1 GiB, linear.

Then the 10k-host HTML page is opened in Debian's headless Chromium (tests/harness/chromium.py,
no network) a few times: load-to-interactive is the page's own navigation timing up to the end of
its load event (the inline script has bound the sort buttons by then) plus the first frame drawn
after it; the sort time runs from a header click to the next frame drawn with the rows reordered.
Goal: <= 1 s each. Skipped (said so) when chromium is not installed.

Environment: BENCH_SIZES ("1000,10000,100000"), BENCH_HTML_HOSTS ("10000").
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


LOAD_JS = """new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  resolve({load_end: nav.loadEventEnd, frame: performance.now(), ready: document.documentElement.dataset.ready,
           rows: document.querySelectorAll('#hosts tbody tr').length});
})))"""

SORT_JS = """new Promise(resolve => {
  const rows = () => Array.from(document.querySelectorAll('#hosts tbody tr'), r => r.dataset.host);
  const before = rows();
  const start = performance.now();
  document.querySelectorAll('#hosts thead th button')[%d].click();
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const after = rows();
    resolve({ms: performance.now() - start, reordered: after.join() !== before.join(), rows: after.length});
  }));
})"""


def html_page(hosts, rounds=3):
    """Open the rendered page of `hosts` hosts in headless Chromium; times in ms per round."""
    if not shutil.which("chromium"):
        return None
    sys.path.insert(0, os.path.join(TOP, ".build", "collections"))
    from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp
    from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_output import render
    from ansible_collections.oomguard.fleet.tests.harness.chromium import Chromium

    rng = random.Random(hosts)
    records = rp.records_from_facts(
        ["host%05d.example.net" % i for i in range(hosts)],
        dict(("host%05d.example.net" % i, {"oomguard_exposure": fake_exposure("host%05d.example.net" % i, rng, "2026-11-29T03:00:00Z")})
             for i in range(hosts)), set(), "2026-11-29T03:05:00Z", "oomguard-bench")
    report = rp.build_report(records, run_id="oomguard-bench")
    directory = tempfile.mkdtemp(prefix="oomguard-bench-html-")
    figures = {"load_ms": [], "sort_ms": [], "bytes": 0}
    try:
        path = os.path.join(directory, "oomguard-report.html")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(render(report, "html"))
        figures["bytes"] = os.path.getsize(path)
        with Chromium(timeout=120) as browser:
            for _round in range(rounds):
                page = browser.open_page("file://" + path)
                loaded = page.evaluate(LOAD_JS)
                if loaded["ready"] != "1" or loaded["rows"] != hosts:
                    raise RuntimeError("the %d-host page did not become ready: %r" % (hosts, loaded))
                figures["load_ms"].append(loaded["frame"])
                for column in (2, 0):   # unkillable share (numeric), then host name
                    sorted_ = page.evaluate(SORT_JS % column)
                    if not sorted_["reordered"] or sorted_["rows"] != hosts:
                        raise RuntimeError("sorting the %d-host page did nothing: %r" % (hosts, sorted_))
                    figures["sort_ms"].append(sorted_["ms"])
                page.send("Page.close")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return figures


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        measure(sys.argv[2])
        return 0
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(",")]
    print("bench_report: load average %s" % " ".join("%.2f" % v for v in os.getloadavg()))
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
        if fig["hosts"] != size:
            print("bench_report: the %d-host report holds %d hosts" % (size, fig["hosts"]), file=sys.stderr)
            return 1
        print("bench_report: %6d hosts: merge + render + write all formats %.2f s (CPU %.2f s), peak RSS %.1f MiB, html %.1f MiB, json %.1f MiB"
              % (fig["hosts"], fig["seconds"], fig["cpu_seconds"], fig["peak_rss_mib"], fig["bytes"]["html"] / 1048576.0,
                 fig["bytes"]["json"] / 1048576.0))
    for small, large in zip(sizes, sizes[1:]):
        print("bench_report: %d -> %d hosts (x%.0f): time x%.1f, CPU x%.1f, peak RSS x%.1f (linear: x%.0f)" % (
            small, large, large / float(small), figures[large]["seconds"] / figures[small]["seconds"],
            figures[large]["cpu_seconds"] / figures[small]["cpu_seconds"],
            figures[large]["peak_rss_mib"] / figures[small]["peak_rss_mib"], large / float(small)))
    largest = sizes[-1]
    print("bench_report: %d hosts: %.2f s, %.0f MiB peak (goal at 100,000 hosts: <= 15 s and <= 1024 MiB, linear)" % (
        largest, figures[largest]["seconds"], figures[largest]["peak_rss_mib"]))
    html_hosts = int(os.environ.get("BENCH_HTML_HOSTS", "10000"))
    page = html_page(html_hosts)
    if page is None:
        print("bench_report: the HTML page in Chromium: skipped, chromium is not installed")
    else:
        print("bench_report: %d-host HTML page (%.1f MiB) in headless Chromium: load-to-interactive median %.0f ms "
              "(rounds %s), sort median %.0f ms (clicks %s) (goal: <= 1000 ms each)" % (
                  html_hosts, page["bytes"] / 1048576.0, median(page["load_ms"]), " ".join("%.0f" % v for v in page["load_ms"]),
                  median(page["sort_ms"]), " ".join("%.0f" % v for v in page["sort_ms"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
