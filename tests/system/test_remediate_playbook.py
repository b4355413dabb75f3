# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/remediate.yml end to end (assess -> snapshot -> remediate -> report), then
playbooks/rollback.yml, on two local-connection hosts with fixture procfs trees and the ECS
double on loopback for the snapshots."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY_ID = "LTAI5tRemediateKey0001"
SECRET = "Remediate-SECRET-must-never-show-up"
REGION = "cn-hangzhou"
RUN_ID = "oomguard-20261129T020000Z-5151"
JAVA = {"pid": 4242, "ppid": 1, "comm": "java", "oom_score_adj": -1000, "rss_kb": 6000000, "unit": "app.service",
        "cmdline": ["java", "-jar", "app.jar"]}


@pytest.fixture
def ecs():
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=0.5) as double:
        double.add_instance("i-web01", REGION, data_disks=1)
        yield double


def host_vars(tmp_path, name):
    base = tmp_path / name
    vendor_tree(base / "proc", extra=[JAVA], meminfo={"MemTotal": 8000000, "MemAvailable": 400000})
    (base / "evidence").mkdir()
    return {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "oomguard_assess_proc_path": str(base / "proc"), "oomguard_assess_evidence_root": str(base / "evidence"),
        "oomguard_assess_slab_baseline_path": str(base / "state" / "slab.json"),
        "oomguard_remediate_proc_path": str(base / "proc"), "oomguard_remediate_root": str(base / "root"),
        "oomguard_remediate_journal": str(base / "state" / "journal.jsonl"),
    }


def run(tmp_path, playbook_name, inventory, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false",
               ALIBABA_CLOUD_ACCESS_KEY_ID=KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET)
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory),
           os.path.join(REPO, "playbooks", playbook_name), "-e", "oomguard_become=false"] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=600)


def adj(tmp_path, name):
    return int((tmp_path / name / "proc" / "4242" / "oom_score_adj").read_text())


def test_remediate_playbook_then_rollback(tmp_path, ecs):
    web01 = dict(host_vars(tmp_path, "web01"), instance_id="i-web01", region=REGION, oomguard_snapshot_provider="alicloud",
                 oomguard_snapshot_endpoint_url=ecs.endpoint, oomguard_snapshot_poll_interval=0.2,
                 oomguard_snapshot_progress_interval=1, oomguard_snapshot_retry_delay=0.05)
    web02 = dict(host_vars(tmp_path, "web02"), oomguard_snapshot_enabled=False)
    web03 = dict(host_vars(tmp_path, "web03"), instance_id="i-gone03", region=REGION, oomguard_snapshot_provider="alicloud",
                 oomguard_snapshot_endpoint_url=ecs.endpoint, oomguard_snapshot_retry_delay=0.05)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"fleet": {"hosts": {"web01": web01, "web02": web02, "web03": web03}}}},
                                     "_meta": {}}))
    report_dir = tmp_path / "report"
    args = ["-e", "oomguard_hosts=fleet", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_serial=1",
            "-e", "oomguard_report_dir=%s" % report_dir, "-e", "oomguard_run_id=%s" % RUN_ID]

    proc = run(tmp_path, "remediate.yml", inventory, *(args + ["--check", "--diff"]))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "+OOMScoreAdjust=0" in proc.stdout and ecs.snapshots == {}
    assert adj(tmp_path, "web01") == -1000 and not (tmp_path / "web01" / "root").exists()
    assert not (tmp_path / "web01" / "state" / "journal.jsonl").exists()

    proc = run(tmp_path, "remediate.yml", inventory, *args)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert SECRET not in proc.stdout + proc.stderr
    assert adj(tmp_path, "web01") == 0 and adj(tmp_path, "web02") == -1000 and adj(tmp_path, "web03") == -1000
    assert not (tmp_path / "web03" / "root").exists() and not (tmp_path / "web03" / "state" / "journal.jsonl").exists()
    assert "OOMScoreAdjust=0" in (tmp_path / "web01" / "root" / "etc/systemd/system/app.service.d/zz-oomguard.conf").read_text()
    assert not (tmp_path / "web02" / "root").exists() and not (tmp_path / "web02" / "state" / "journal.jsonl").exists()
    assert len(ecs.snapshots) == 2  # system + one data disk of i-web01, tagged with the run id

    report = json.loads((report_dir / "oomguard-report.json").read_text())
    text = json.dumps(report)
    assert RUN_ID in text and "4242" in text
    assert text.count("oomguard_remediate_require_snapshot: false") >= 2  # both refusals reach the report
    assert "oomguard_snapshots.status is 'failed'" in text and "oomguard_snapshots.status is 'skipped'" in text
    with open(tmp_path / "web01" / "state" / "journal.jsonl", encoding="utf-8") as handle:
        assert {json.loads(line)["run_id"] for line in handle} == {RUN_ID}

    proc = run(tmp_path, "rollback.yml", inventory, "-e", "oomguard_hosts=fleet", "-e", "oomguard_rollback_run_id=" + RUN_ID)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert adj(tmp_path, "web01") == -1000
    assert not (tmp_path / "web01" / "root" / "etc/systemd/system/app.service.d").exists()
    # ansible-core 2.16 to 2.18 wrap warnings at 80 columns: at a space or after a hyphen.
    warnings = re.sub(r"-\n", "-", proc.stderr).replace("\n", " ")
    assert "web02/state/journal.jsonl records no change for run " + RUN_ID in warnings


def test_an_unreachable_host_is_unreachable_and_unknown_and_the_others_go_on(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    web02 = dict(host_vars(tmp_path, "web02"), oomguard_snapshot_enabled=False)
    lost = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "nobody",
            "ansible_ssh_timeout": 5}
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"fleet": {"hosts": {"web02": web02, "lost01": lost}}}}}))
    report_dir = tmp_path / "report"
    proc = run(tmp_path, "remediate.yml", inventory, "-e", "oomguard_hosts=fleet", "-e", "oomguard_report_dir=%s" % report_dir)
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-2000:]   # docs/report.md, "Exit codes"
    assert re.search(r"lost01 +: ok=\d+ +changed=\d+ +unreachable=1 +failed=0 ", proc.stdout), proc.stdout[-2000:]
    assert re.search(r"web02 +: ok=\d+ +changed=\d+ +unreachable=0 +failed=0 ", proc.stdout), proc.stdout[-2000:]
    report = json.loads((report_dir / "oomguard-report.json").read_text())
    levels = dict((h["host"], (h["level"], h["reason"] or "")) for h in report["hosts"])
    assert levels["lost01"][0] == "unknown" and levels["lost01"][1].startswith("host unreachable: "), levels
    assert levels["web02"][0] == "critical"     # flagged (mode flag), judged as usual
