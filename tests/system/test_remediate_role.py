# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remediate role and playbooks/rollback.yml through real ansible-playbook.

Every inventory host is this machine over the local connection with its own fixture procfs
(a real -1000 process cannot exist here), drop-in root and journal, so hosts with a good,
failed, missing or stale snapshot can be told apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_ID = "oomguard-20261129T020000Z-4711"
JAVA = {"pid": 4242, "name": "java", "unit": "app.service", "oom_score_adj": -1000, "rss_kb": 6291456, "rule": "OOM002"}
ADHOC = {"pid": 4343, "name": "adhoc", "unit": None, "oom_score_adj": -1000, "rss_kb": 1000, "rule": "OOM002"}
SNAP_OK = {"schema": 1, "run_id": RUN_ID, "status": "ok", "message": "2 snapshots accomplished", "snapshots": []}

PLAY = """
- name: Remediate under serial
  hosts: all
  gather_facts: false
  serial: 2
  roles:
    - role: oomguard.fleet.remediate
  post_tasks:
    - name: Save oomguard_changes
      ansible.builtin.copy:
        content: "{{ oomguard_changes | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false
"""


def host(tmp_path, name, processes, **hostvars):
    base = tmp_path / name
    build_proc_tree(base / "proc", processes=[
        {"pid": 4242, "comm": "java", "oom_score_adj": -1000, "rss_kb": 6291456, "unit": "app.service"},
        {"pid": 4343, "comm": "adhoc", "oom_score_adj": -1000, "rss_kb": 1000},
        {"pid": 1799, "comm": "sshd", "oom_score_adj": -1000, "rss_kb": 980, "unit": "ssh.service"},
    ])
    hostvars.update(
        ansible_connection="local", ansible_python_interpreter=sys.executable,
        oomguard_remediate_proc_path=str(base / "proc"), oomguard_remediate_root=str(base / "root"),
        oomguard_remediate_journal=str(base / "state" / "journal.jsonl"),
        oomguard_exposure={"schema": 1, "host": name, "level": "high", "flagged": processes},
    )
    return name, hostvars


@pytest.fixture
def fleet(tmp_path):
    hosts = dict([
        host(tmp_path, "good", [JAVA, ADHOC], oomguard_snapshots=SNAP_OK),
        host(tmp_path, "snapfailed", [JAVA], oomguard_snapshots=dict(SNAP_OK, status="failed", message="disk d-1 failed")),
        host(tmp_path, "nosnap", [JAVA]),
        host(tmp_path, "stale", [JAVA], oomguard_snapshots=dict(SNAP_OK, run_id="oomguard-20261128T000000Z-1")),
        host(tmp_path, "capped", [JAVA, ADHOC], oomguard_snapshots=SNAP_OK, oomguard_remediate_max_changes=1),
    ])
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": {"oomguard_run_id": RUN_ID, "out_dir": str(tmp_path / "out")}}}))
    (tmp_path / "out").mkdir()
    (tmp_path / "play.yml").write_text(PLAY)
    return tmp_path


def playbook(fleet, playbook_path, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(fleet / "inventory.json"), str(playbook_path)] + list(extra),
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    return proc


def changes(fleet, name):
    return json.loads((fleet / "out" / ("%s.json" % name)).read_text())


def adj(fleet, name, pid=4242):
    return int((fleet / name / "proc" / str(pid) / "oom_score_adj").read_text())


def dropin(fleet, name, unit="app.service"):
    return fleet / name / "root" / "etc" / "systemd" / "system" / (unit + ".d") / "zz-oomguard.conf"


def recap(output, name):
    line = [ln for ln in output.splitlines() if ln.startswith(name + " ") and "ok=" in ln][-1]
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def test_flag_mode_is_the_default_and_changes_nothing(fleet):
    proc = playbook(fleet, fleet / "play.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    good = changes(fleet, "good")
    assert good["status"] == "flagged" and "oomguard_remediate_mode: reset" in good["reason"]
    assert [c["pid"] for c in good["candidates"]] == [4242, 4343]
    assert adj(fleet, "good") == -1000 and not dropin(fleet, "good").exists()


def test_check_diff_then_reset_then_idempotent_rerun_then_rollback(fleet):
    proc = playbook(fleet, fleet / "play.yml", "-e", "oomguard_remediate_mode=reset", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "-1000" in proc.stdout and "+0" in proc.stdout and "+OOMScoreAdjust=0" in proc.stdout
    assert adj(fleet, "good") == -1000 and adj(fleet, "good", 4343) == -1000
    assert not dropin(fleet, "good").exists() and not (fleet / "good" / "state").exists()
    assert changes(fleet, "good")["check_mode"] is True

    proc = playbook(fleet, fleet / "play.yml", "-e", "oomguard_remediate_mode=reset")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    good = changes(fleet, "good")
    assert good["status"] == "changed" and good["run_id"] == RUN_ID and good["mode"] == "reset"
    assert {"pid": 4242, "name": "java", "unit": "app.service", "old": -1000, "new": 0, "persist": "systemd",
            "dropin": str(dropin(fleet, "good"))} in good["changes"]
    assert {"pid": 4343, "name": "adhoc", "unit": "session-1.scope", "old": -1000, "new": 0, "persist": "none", "dropin": None} in good["changes"]
    assert adj(fleet, "good") == 0 and adj(fleet, "good", 4343) == 0 and adj(fleet, "good", 1799) == -1000
    assert "OOMScoreAdjust=0" in dropin(fleet, "good").read_text()
    assert "will not survive a restart" in proc.stderr  # adhoc has no service unit
    assert recap(proc.stdout, "good")["changed"] == "1"  # one loop task

    for name, words in (("snapfailed", "'failed'"), ("nosnap", "oomguard_snapshots is not set"), ("stale", "not from this run")):
        refused = changes(fleet, name)
        assert refused["status"] == "refused" and words in refused["reason"], refused
        assert "oomguard_remediate_require_snapshot: false" in refused["reason"]
        assert adj(fleet, name) == -1000 and not dropin(fleet, name).exists() and not (fleet / name / "state").exists()
    capped = changes(fleet, "capped")
    assert capped["status"] == "refused" and "oomguard_remediate_max_changes (1)" in capped["reason"]
    assert adj(fleet, "capped") == -1000

    proc = playbook(fleet, fleet / "play.yml", "-e", "oomguard_remediate_mode=reset")
    assert proc.returncode == 0
    assert changes(fleet, "good")["status"] == "unchanged"
    assert all(recap(proc.stdout, name)["changed"] == "0" for name in ("good", "snapfailed", "nosnap", "stale", "capped"))

    rollback = os.path.join(REPO, "playbooks", "rollback.yml")
    proc = playbook(fleet, rollback, "-e", "oomguard_become=false", "-e", "oomguard_rollback_run_id=" + RUN_ID)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert adj(fleet, "good") == -1000 and adj(fleet, "good", 4343) == -1000
    assert not dropin(fleet, "good").exists() and not dropin(fleet, "good").parent.exists()
    assert "2 value(s) restored, 1 drop-in(s) restored or removed" in proc.stdout
    proc = playbook(fleet, rollback, "-e", "oomguard_become=false")
    assert proc.returncode == 0 and "already rolled back" in proc.stdout
    assert recap(proc.stdout, "good")["changed"] == "0"


def test_waiver_lets_a_host_without_snapshot_change(fleet):
    proc = playbook(fleet, fleet / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e",
                    '{"oomguard_remediate_require_snapshot": false}', "--limit", "nosnap")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert changes(fleet, "nosnap")["status"] == "changed" and adj(fleet, "nosnap") == 0


def test_include_resets_a_named_allowlisted_process(fleet):
    extra = {"oomguard_remediate_mode": "reset", "oomguard_remediate_include": ["sshd"], "oomguard_remediate_persist": False,
             "ansible_facts": {"oom": {"processes": [{"pid": 1799, "name": "sshd", "unit": "ssh.service", "oom_score_adj": -1000,
                                                      "rss_kb": 980}]}}}
    proc = playbook(fleet, fleet / "play.yml", "-e", json.dumps(extra), "--limit", "good")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert adj(fleet, "good", 1799) == 0
    assert not dropin(fleet, "good", "ssh.service").exists()  # persist off: runtime only


def test_a_failed_change_fails_the_host_and_says_nothing_changed(fleet):
    # The drop-in's directory is writable by others: writing the drop-in is refused after its
    # intent was journalled, before anything on the host changed.
    dropin(fleet, "good").parent.mkdir(parents=True)
    dropin(fleet, "good").parent.chmod(0o777)
    proc = playbook(fleet, fleet / "play.yml", "-e", "oomguard_remediate_mode=reset", "--limit", "good")
    assert proc.returncode == 2
    assert "Nothing was changed on this host (no rollback needed)." in proc.stdout
    assert "oomguard_rollback_run_id=" not in proc.stdout
    assert "Failed to reset oom_score_adj on good: The directory " in proc.stdout and "(mode 0777)" in proc.stdout
    # Drop-ins come first and the module stops at the first fault: no runtime write happened.
    assert adj(fleet, "good") == -1000 and adj(fleet, "good", 4343) == -1000
    rollback = os.path.join(REPO, "playbooks", "rollback.yml")
    proc = playbook(fleet, rollback, "-e", "oomguard_become=false", "--limit", "good")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert adj(fleet, "good") == -1000 and adj(fleet, "good", 4343) == -1000


def test_one_run_id_across_serial_batches_when_none_is_set(fleet):
    inventory = json.loads((fleet / "inventory.json").read_text())
    del inventory["all"]["vars"]["oomguard_run_id"]
    (fleet / "inventory.json").write_text(json.dumps(inventory))
    proc = playbook(fleet, fleet / "play.yml", "-e", "oomguard_remediate_mode=reset")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_ids = set(changes(fleet, name)["run_id"] for name in ("good", "snapfailed", "nosnap", "stale", "capped"))
    assert len(run_ids) == 1 and run_ids.pop().startswith("oomguard-20")  # three batches of serial: 2, one id
    assert "not from this run" in changes(fleet, "good")["reason"]  # the inventory's snapshot is from another run
    assert adj(fleet, "good") == -1000
