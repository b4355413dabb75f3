# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report role through ansible-playbook: hosts of several levels, one unreachable
(SSH to a loopback port that refuses), check mode, idempotence, merging result files,
fail_on failing the play, and the same role in a separate play on localhost."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_SAME_PLAY = """
- name: Assess (stand-in) and report in the same play
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Touch every host, so the unreachable one drops out of the play
      ansible.builtin.ping:
    - name: Report
      ansible.builtin.include_role:
        name: oomguard.fleet.report
    - name: Keep the report task's result for the test
      ansible.builtin.copy:
        content: "{{ __oomguard_report_result | to_nice_json }}"
        dest: "{{ result_dump }}"
        mode: "0644"
      run_once: true
      delegate_to: localhost
"""
PLAYBOOK_LOCALHOST = """
- name: Touch the fleet
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:

- name: Report on the fleet from localhost
  hosts: localhost
  gather_facts: false
  roles:
    - role: oomguard.fleet.report
      vars:
        oomguard_report_hosts: "{{ groups['fleet'] }}"
"""


def exposure(host, level, share, findings):
    return {
        "schema": 1, "host": host, "level": level, "reason": None, "checked_at": "2026-11-29T02:30:00Z",
        "findings": [{"id": fid, "severity": sev, "message": msg, "pids": []} for fid, sev, msg in findings],
        "figures": {"mem_total_kb": 4000000, "mem_available_kb": 2000000, "unkillable_rss_kb": int(40000 * share),
                    "unkillable_share_pct": share, "killable_rss_kb": 900000, "sunreclaim_kb": 50000, "sunreclaim_pct": 1.2,
                    "process_count": 100, "unkillable_count": 2},
        "flagged": [],
    }


def refused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def workdir(tmp_path):
    port = refused_port()
    hosts = {
        "db01": {"ansible_connection": "local", "oomguard_exposure": exposure(
            "db01", "critical", 81.0, [("OOM001", "critical", "unkillable processes hold 81.0% of MemTotal")])},
        "web01": {"ansible_connection": "local", "oomguard_exposure": exposure(
            "web01", "high", 40.0, [("OOM002", "high", "redis-server is unkillable; --requirepass=topsecret")])},
        "app01": {"ansible_connection": "local", "oomguard_exposure": exposure(
            "app01", "medium", 5.0, [("SLAB001", "medium", "SUnreclaim is 11% of MemTotal")])},
        "web02": {"ansible_connection": "local", "oomguard_exposure": exposure("web02", "ok", 0.1, [])},
        "lb01": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "nobody",
                 "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                 "oomguard_exposure": exposure("lb01", "ok", 0.0, [])},
    }
    for name in hosts:
        if hosts[name]["ansible_connection"] == "local":
            hosts[name]["ansible_python_interpreter"] = sys.executable
    inventory = {"all": {"children": {"fleet": {"hosts": hosts}},
                         "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "same_play.yml").write_text(PLAYBOOK_SAME_PLAY)
    (tmp_path / "localhost_play.yml").write_text(PLAYBOOK_LOCALHOST)
    yield tmp_path
    shutil.rmtree(str(tmp_path), ignore_errors=True)


def run_playbook(workdir, playbook, *extra):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".build", "collections"),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_HOST_KEY_CHECKING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        "ANSIBLE_HOME": str(workdir / "ansible_home"),
    })
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(workdir / "inventory.json"),
           str(workdir / playbook), "-e", "oomguard_report_dir=%s" % (workdir / "report"),
           "-e", "result_dump=%s" % (workdir / "result.json")] + list(extra)
    return subprocess.run(cmd, env=env, cwd=str(workdir), capture_output=True, text=True, timeout=300, check=False)


def load(workdir, name):
    with open(str(workdir / "report" / name), encoding="utf-8") as handle:
        return handle.read()


def levels_of(report):
    return dict((e["host"], (e["level"], e["reason"])) for e in report["hosts"])


def test_role_same_play_reports_levels_and_unreachable_as_unknown(workdir):
    proc = run_playbook(workdir, "same_play.yml")
    assert proc.returncode == 4, proc.stdout + proc.stderr   # 4: a host was unreachable; the report still ran
    assert "UNREACHABLE" in proc.stdout
    report = json.loads(load(workdir, "oomguard-report.json"))
    assert levels_of(report) == {
        "db01": ("critical", None), "web01": ("high", None), "app01": ("medium", None), "web02": ("ok", None),
        "lb01": ("unknown", "unreachable or failed in this play"),
    }
    assert [e["host"] for e in report["hosts"]] == ["db01", "web01", "app01", "lb01", "web02"]
    # console summary: counts per level and the worst hosts with their top finding
    assert "5 hosts: critical 1, high 1, medium 1, low 0, ok 1, unknown 1" in proc.stdout
    assert "db01 [critical] OOM001 unkillable processes hold 81.0% of MemTotal" in proc.stdout
    assert "lb01 [unknown] unreachable or failed in this play" in proc.stdout
    assert sorted(os.listdir(str(workdir / "report"))) == [
        "oomguard-report.csv", "oomguard-report.html", "oomguard-report.json", "oomguard-report.junit.xml", "oomguard-report.md"]
    junit = ET.fromstring(load(workdir, "oomguard-report.junit.xml").encode("utf-8"))
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("5", "2", "1")
    for name in os.listdir(str(workdir / "report")):
        assert "topsecret" not in load(workdir, name)
    first = json.loads((workdir / "result.json").read_text())
    assert first["changed"] is True

    # Idempotence: the same assessment again changes nothing.
    proc = run_playbook(workdir, "same_play.yml")
    assert proc.returncode == 4
    again = json.loads((workdir / "result.json").read_text())
    assert again["changed"] is False and again["changed_files"] == []


def test_role_check_mode_writes_nothing(workdir):
    proc = run_playbook(workdir, "same_play.yml", "--check")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert not (workdir / "report").exists()
    assert "5 hosts: critical 1" in proc.stdout


def test_role_fail_on_fails_the_play_after_writing(workdir):
    proc = run_playbook(workdir, "same_play.yml", "-e", "oomguard_report_fail_on=high", "--limit", "db01,web01,app01,web02")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "2 host(s) at or above exposure level 'high': db01 (critical), web01 (high)" in proc.stdout
    assert "4 hosts: critical 1, high 1, medium 1, low 0, ok 1, unknown 0" in proc.stdout   # the summary is still shown
    assert json.loads(load(workdir, "oomguard-report.json"))["totals"]["hosts"] == 4


def custom_stats(stdout):
    """The RUN line of the default callback's CUSTOM STATS (ANSIBLE_SHOW_CUSTOM_STATS=true)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith("RUN: ")]
    assert len(lines) == 1, stdout[-2000:]
    return json.loads(lines[0][len("RUN: "):])


def test_role_hands_the_summary_to_set_stats_also_when_the_gate_fails(workdir, monkeypatch):
    monkeypatch.setenv("ANSIBLE_SHOW_CUSTOM_STATS", "true")
    proc = run_playbook(workdir, "same_play.yml", "-e", "oomguard_report_fail_on=high")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    summary = custom_stats(proc.stdout)["oomguard_report_summary"]
    assert summary["hosts"] == 5 and summary["worst_level"] == "critical"
    assert summary["by_level"] == {"ok": 1, "low": 0, "medium": 1, "high": 1, "critical": 1, "unknown": 1}
    assert summary["unknown_hosts"] == ["lb01"] and summary["problems"] == 0
    assert summary["gate"] == {"fail_on": "high", "tripped": True, "hosts": ["db01", "web01", "lb01"]}
    assert summary["files"]["json"] == str(workdir / "report" / "oomguard-report.json")
    assert summary["generated_at"] == json.loads(load(workdir, "oomguard-report.json"))["generated_at"]
    proc = run_playbook(workdir, "same_play.yml", "--limit", "web02")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = custom_stats(proc.stdout)["oomguard_report_summary"]
    assert summary["worst_level"] == "ok" and summary["gate"] == {"fail_on": "none", "tripped": False, "hosts": []}


def test_role_fail_on_counts_unknown_hosts(workdir):
    proc = run_playbook(workdir, "same_play.yml", "-e", "oomguard_report_fail_on=critical", "--limit", "web02,lb01")
    assert proc.returncode == 4, proc.stdout + proc.stderr    # 4 (unreachable) outranks 2 (failed)
    assert "1 host(s) at or above exposure level 'critical': lb01 (unknown)" in proc.stdout
    assert re.search(r"web02 +: ok=\d+ +changed=\d+ +unreachable=0 +failed=1 ", proc.stdout)
    proc = run_playbook(workdir, "same_play.yml", "-e", "oomguard_report_fail_on=critical", "-e", "oomguard_report_unknown_fails=false",
                        "--limit", "web02,lb01")
    assert re.search(r"web02 +: ok=\d+ +changed=\d+ +unreachable=0 +failed=0 ", proc.stdout), proc.stdout


def test_role_fail_on_passes_when_below(workdir):
    proc = run_playbook(workdir, "same_play.yml", "-e", "oomguard_report_fail_on=low", "--limit", "web02")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 hosts: critical 0, high 0, medium 0, low 0, ok 1, unknown 0" in proc.stdout


def test_role_in_localhost_play_merges_result_files(workdir):
    results = workdir / "results"
    results.mkdir()
    # another AWX slice wrote this host; this controller never saw it
    (results / "far01.json").write_text(json.dumps({
        "schema": 1, "host": "far01", "run_id": "slice-2", "written_at": "2026-11-29T02:40:00Z",
        "exposure": exposure("far01", "high", 55.0, [("OOM002", "high", "java is unkillable")]),
        "snapshots": None, "changes": None}))
    (results / "torn.json").write_text('{"schema": 1, "host"')
    proc = run_playbook(workdir, "localhost_play.yml", "-e", "oomguard_report_results_dir=%s" % results,
                        "-e", '{"oomguard_report_formats": ["json", "prometheus"]}')
    assert proc.returncode == 4, proc.stdout + proc.stderr
    report = json.loads(load(workdir, "oomguard-report.json"))
    levels = levels_of(report)
    assert levels["far01"] == ("high", None)
    assert levels["db01"] == ("critical", None)
    # In a separate play, the lost host is not in this play: its inventory facts speak,
    # but the first play's failure is not visible here.
    assert set(levels) == {"db01", "web01", "app01", "web02", "lb01", "far01"}
    assert report["problems"] == [{"file": "torn.json", "error": "unreadable: Expecting ':' delimiter: line 1 column 21 (char 20)"}]
    assert "skipped result file torn.json" in proc.stdout
    assert sorted(os.listdir(str(results))) == ["app01.json", "db01.json", "far01.json", "lb01.json", "torn.json", "web01.json", "web02.json"]
    written = json.loads((results / "db01.json").read_text())
    assert written["exposure"]["level"] == "critical"
    stamp = datetime.datetime.strptime(written["written_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 600   # stamped when this play reported it
    first_written = written["written_at"]
    # A re-run that learns nothing new rewrites no result file.
    proc = run_playbook(workdir, "localhost_play.yml", "-e", "oomguard_report_results_dir=%s" % results,
                        "-e", '{"oomguard_report_formats": ["json", "prometheus"]}')
    assert json.loads((results / "db01.json").read_text())["written_at"] == first_written
    prom = load(workdir, "oomguard-report.prom")
    assert 'oomguard_host_exposure_level{host="far01"} 3' in prom


PLAYBOOK_FILES_ONLY = """
- name: Final report of all AWX slices, from the result files only
  hosts: localhost
  gather_facts: false
  roles:
    - role: oomguard.fleet.report
      vars:
        oomguard_report_hosts: []
        oomguard_report_write_results: false
"""


def test_role_report_from_result_files_only(workdir):
    results = workdir / "results"
    results.mkdir()
    for host, level, stamp in (("s1-a", "critical", "2026-11-29T02:40:00Z"), ("s2-b", "ok", "2026-11-29T02:41:00Z")):
        (results / ("%s.json" % host)).write_text(json.dumps({
            "schema": 1, "host": host, "run_id": "slice", "written_at": stamp,
            "exposure": exposure(host, level, 1.0, []), "snapshots": None, "changes": None}))
    (workdir / "files_only.yml").write_text(PLAYBOOK_FILES_ONLY)
    proc = run_playbook(workdir, "files_only.yml", "-e", "oomguard_report_results_dir=%s" % results)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert levels_of(json.loads(load(workdir, "oomguard-report.json"))) == {"s1-a": ("critical", None), "s2-b": ("ok", None)}
    assert sorted(os.listdir(str(results))) == ["s1-a.json", "s2-b.json"]   # nothing written back


def test_role_rejects_a_bad_level(workdir):
    proc = run_playbook(workdir, "same_play.yml", "-e", "oomguard_report_fail_on=severe", "--limit", "web02")
    assert proc.returncode == 2
    assert "oomguard_report_fail_on" in proc.stdout and "severe" in proc.stdout
    assert not (workdir / "report").exists()


@pytest.mark.parametrize("option,message", [
    ("oomguard_report_dir", "Failed to build the fleet report: cannot use directory"),
    ("oomguard_report_results_dir", "Failed to build the fleet report: Failed to read results directory"),
])
def test_role_says_what_to_do_when_it_cannot_write_or_read(workdir, option, message):
    blocker = workdir / "a-file"
    blocker.write_text("x")
    target = str(blocker / "sub") if option == "oomguard_report_dir" else str(blocker)
    proc = run_playbook(workdir, "same_play.yml", "--limit", "web02", "-e", "%s=%s" % (option, target))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout


def test_role_fail_on_ends_the_play_for_every_host(workdir):
    playbook = PLAYBOOK_SAME_PLAY + """    - name: Must not run after a tripped gate
      ansible.builtin.debug:
        msg: after-the-gate
"""
    (workdir / "same_play_more.yml").write_text(playbook)
    proc = run_playbook(workdir, "same_play_more.yml", "-e", "oomguard_report_fail_on=high", "--limit", "db01,web01,web02")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "5 hosts" not in proc.stdout and "3 hosts: critical 1, high 1" in proc.stdout
    assert "after-the-gate" not in proc.stdout
