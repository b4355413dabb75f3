# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo` (scripts/demo.sh) end to end on the recorded fleet of tests/fixtures/hosts.

The demo runs once into a temporary directory. Asserted: every level from ok to critical and
unknown is in its report; its console names the worst hosts with their levels and top findings,
what flag mode flagged, what the --check --diff reset would change and where the HTML report is;
the HTML report in headless Chromium lists a critical host first with its findings (screenshot
in tests/output/demo-report.png); the recorded trees are unchanged afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, base_env
from ansible_collections.oomguard.fleet.tests.harness.chromium import Chromium

sys.path.insert(0, os.path.join(TOP, "scripts"))
import demo_summary  # noqa: E402  pylint: disable=wrong-import-position

FIXTURES = os.path.join(TOP, "tests", "fixtures", "hosts")
OUTPUT = os.path.join(TOP, "tests", "output")
LEVELS = ("critical", "high", "medium", "low", "ok", "unknown")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "artifacts"
    before = demo_summary.digest(FIXTURES)
    started = time.monotonic()
    proc = subprocess.run([os.path.join(TOP, "scripts", "demo.sh")], env=base_env({"OOMGUARD_DEMO_OUT": str(out)}),
                          capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    print("demo.sh took %.1f s (load average %s)" % (seconds, os.getloadavg()[0]))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    with open(str(out / "oomguard-report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    return {"out": out, "stdout": proc.stdout, "report": report, "fixtures_before": before}


def summary_part(stdout):
    assert "What the demo found:" in stdout
    return stdout[stdout.index("What the demo found:"):]


def test_every_level_is_in_the_report(demo):
    report = demo["report"]
    levels = dict((host["host"], host["level"]) for host in report["hosts"])
    assert set(levels.values()) == set(LEVELS), levels
    assert levels["unreachable"] == "unknown" and "Connection refused" in next(
        h["reason"] for h in report["hosts"] if h["host"] == "unreachable")
    assert report["totals"]["hosts"] == 8


def test_the_console_names_the_worst_hosts_and_why(demo):
    text = summary_part(demo["stdout"])
    by_level = demo["report"]["totals"]["by_level"]
    assert "8 hosts (%s)" % ", ".join("%s %d" % (level, by_level[level]) for level in LEVELS if by_level.get(level)) in text
    worst = [h for h in demo["report"]["hosts"] if h["level"] in ("critical", "high", "medium")]
    assert len(worst) >= 3
    for host in worst:
        line = next((line for line in text.splitlines() if line.split()[:2] == [host["host"], host["level"]]), None)
        assert line is not None, "%s (%s) is not named in the summary:\n%s" % (host["host"], host["level"], text)
        top = sorted(host["findings"], key=lambda f: LEVELS.index(f["severity"]))[0]
        assert "%s/%s" % (top["id"], top["severity"]) in line
        assert "      %s: %s" % (top["id"], top["message"][:60]) in text
    # the worst come first: the first named host is a critical one
    named = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and not line.startswith("      ")]
    assert named[0] in [h["host"] for h in worst if h["level"] == "critical"]
    assert "HTML report (open it in a browser): %s" % (demo["out"] / "oomguard-report.html") in text


def test_flag_mode_and_the_check_mode_reset_are_shown(demo):
    text = summary_part(demo["stdout"])
    with open(str(demo["out"] / "flag" / "oomguard-report.json"), encoding="utf-8") as handle:
        flag = json.load(handle)
    flagged = [(h["host"], p["name"], p["pid"]) for h in flag["hosts"] for p in h.get("flagged") or []]
    assert ("vendor-java", "java", 4242) in flagged
    assert all(h["changes"]["status"] == "flagged" for h in flag["hosts"] if h.get("flagged"))
    assert "%d process(es) flagged" % len(flagged) in text
    # the reset in check mode: the snapshot waiver is named, every flagged process would change
    assert "oomguard_snapshot_enabled=false" in demo["stdout"] and "oomguard_remediate_require_snapshot=false" in demo["stdout"]
    for host, name, pid in flagged:
        assert "%s pid %d (%s) oom_score_adj" % (host.ljust(15), pid, name) in text
    assert "/vendor-java/etc/systemd/system/app.service.d/zz-oomguard.conf" in text
    assert "Check mode wrote nothing" in demo["stdout"]
    assert not os.path.exists(str(demo["out"] / "hosts" / "vendor-java" / "etc" / "systemd" / "system" / "app.service.d"))
    assert not os.path.exists(str(demo["out"] / "hosts" / "vendor-java" / "var" / "lib" / "oomguard"))
    with open(str(demo["out"] / "hosts" / "vendor-java" / "proc" / "4242" / "oom_score_adj"), encoding="utf-8") as handle:
        assert handle.read() == "-1000\n"


def test_the_recorded_trees_are_unchanged(demo):
    assert demo_summary.digest(FIXTURES) == demo["fixtures_before"]
    changed = subprocess.run(["git", "status", "--porcelain", "--", FIXTURES], cwd=TOP, capture_output=True, text=True,
                             check=True).stdout
    assert changed == ""


def test_a_changed_tree_changes_the_digest(tmp_path):
    shutil.copytree(os.path.join(FIXTURES, "healthy"), str(tmp_path / "healthy"), symlinks=True)
    before = demo_summary.digest(str(tmp_path))
    with open(str(tmp_path / "healthy" / "proc" / "611" / "oom_score_adj"), "w", encoding="utf-8") as handle:
        handle.write("0\n")
    assert demo_summary.digest(str(tmp_path)) != before


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium package is not installed")
def test_the_html_report_shows_the_critical_host_first(demo):
    html = demo["out"] / "oomguard-report.html"
    with Chromium() as browser:
        page = browser.open_page(html.as_uri())
        assert page.evaluate("document.documentElement.dataset.ready") == "1"
        rows = page.evaluate("Array.from(document.querySelectorAll('#hosts tbody tr')).map(r => "
                             "[r.dataset.host, r.dataset.level, r.querySelector('td.findings').textContent])")
        os.makedirs(OUTPUT, exist_ok=True)
        page.screenshot(os.path.join(OUTPUT, "demo-report.png"))
        assert browser.proxy_connections == []
    first = rows[0]
    expected = demo["report"]["hosts"][0]
    assert first[:2] == [expected["host"], "critical"]
    for finding in expected["findings"]:
        assert finding["id"] in first[2]
    assert "java" in first[2] and "OOM001" in first[2]
    assert sorted(r[0] for r in rows) == sorted(h["host"] for h in demo["report"]["hosts"])


def test_a_venv_made_for_the_tests_serves_the_demo(tmp_path):
    """bootstrap.sh's choice: the demo accepts the venv ensure_venv made from requirements.txt,
    and one made from other arguments (or with no stamp) is not current for them."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    reqs = os.path.join(TOP, "requirements.txt")

    def bash(script):
        return subprocess.run(["bash", "-c", '. "%s"; %s' % (os.path.join(TOP, "scripts", "venv.sh"), script)],
                              capture_output=True, text=True, check=False)

    assert bash('venv_current "%s" -r "%s"' % (venv, reqs)).returncode == 1
    stamp = bash('venv_want -r "%s"' % reqs).stdout.strip()
    assert len(stamp) == 64
    (venv / ".requirements.sha256").write_text(stamp + "\n")
    assert bash('venv_current "%s" -r "%s"' % (venv, reqs)).returncode == 0
    assert bash('venv_current "%s" -c "%s" ansible-core jmespath' % (venv, reqs)).returncode == 1
