# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role variables given on the command line (``-e name=value``, so as text) through real ansible-playbook.

tests/unit/test_role_variables.py checks every boolean and integer variable of the four roles
where the role uses it; these runs show the same end to end, starting with the snapshot waiver
that the refusal message tells users to set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.system.test_remediate_role import ADHOC, JAVA, PLAY, adj, changes, dropin, host, playbook
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

RUN_ID = "oomguard-20261129T020000Z-4711"


@pytest.fixture
def nosnap(tmp_path):
    """One host with two flagged unkillable processes and no snapshot."""
    name, hostvars = host(tmp_path, "nosnap", [JAVA, ADHOC])
    (tmp_path / "inventory.json").write_text(json.dumps(
        {"all": {"hosts": {name: hostvars}, "vars": {"oomguard_run_id": RUN_ID, "out_dir": str(tmp_path / "out")}}}))
    (tmp_path / "out").mkdir()
    (tmp_path / "play.yml").write_text(PLAY)
    return tmp_path


def test_snapshot_waiver_from_the_command_line_works(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset",
                    "-e", "oomguard_remediate_require_snapshot=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = changes(nosnap, "nosnap")
    assert result["status"] == "changed", result
    assert adj(nosnap, "nosnap") == 0 and adj(nosnap, "nosnap", 4343) == 0
    assert dropin(nosnap, "nosnap").exists()


def test_without_the_waiver_the_host_is_refused(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = changes(nosnap, "nosnap")
    assert result["status"] == "refused" and "oomguard_remediate_require_snapshot: false" in result["reason"]
    assert adj(nosnap, "nosnap") == -1000


def test_every_remediate_number_and_switch_as_text(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=no",
                    "-e", "oomguard_remediate_value=5", "-e", "oomguard_remediate_max_changes=2", "-e", "oomguard_remediate_persist=false",
                    "-e", "oomguard_remediate_restart=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert changes(nosnap, "nosnap")["status"] == "changed"
    assert adj(nosnap, "nosnap") == 5 and adj(nosnap, "nosnap", 4343) == 5
    assert not dropin(nosnap, "nosnap").exists()     # persist=false


def test_cap_from_the_command_line_refuses(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=false",
                    "-e", "oomguard_remediate_max_changes=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = changes(nosnap, "nosnap")
    assert result["status"] == "refused" and "more than oomguard_remediate_max_changes (1)" in result["reason"]
    assert adj(nosnap, "nosnap") == -1000


def test_text_that_is_no_boolean_stops_with_the_variable_named(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=maybe")
    assert proc.returncode != 0
    assert "oomguard_remediate_require_snapshot" in proc.stdout + proc.stderr
    assert adj(nosnap, "nosnap") == -1000


ASSESS_PLAY = """
- name: Assess with every number and switch from the command line
  hosts: all
  gather_facts: false
  roles:
    - role: oomguard.fleet.assess
  post_tasks:
    - name: Save what the role saw
      ansible.builtin.copy:
        dest: "{{ out_dir }}/seen.json"
        content: "{{ {'level': oomguard_exposure.level, 'slabinfo': ansible_facts.slabinfo is defined,
                      'evidence': ansible_facts.oom_evidence is defined,
                      'adjs': ansible_facts.oom.processes | map(attribute='oom_score_adj') | list} | to_json }}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
"""


def test_assess_numbers_and_switches_as_text(tmp_path):
    proc_root = vendor_tree(tmp_path / "proc")
    (tmp_path / "root").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "play.yml").write_text(ASSESS_PLAY)
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    web01:\n      ansible_connection: local\n"
                                            "      ansible_python_interpreter: %s\n" % sys.executable)
    paths = {"oomguard_assess_proc_path": str(proc_root), "oomguard_assess_evidence_root": str(tmp_path / "root"),
             "oomguard_assess_slab_baseline_path": str(tmp_path / "state" / "baseline.json"), "out_dir": str(tmp_path / "out")}
    texts = ["oomguard_assess_slabinfo=false", "oomguard_assess_evidence=no", "oomguard_assess_adj_threshold=-1000",
             "oomguard_assess_top_killable=0", "oomguard_assess_evidence_days=1", "oomguard_assess_evidence_max_bytes=1024",
             "oomguard_assess_allowlist_max_rss_kb=1", "oomguard_assess_unkillable_high_pct=10.5",
             "oomguard_assess_unkillable_critical_pct=30", "oomguard_assess_unallowed_high_pct=0.5",
             "oomguard_assess_killable_min_pct=1", "oomguard_assess_available_low_pct=1", "oomguard_assess_sunreclaim_pct=50",
             "oomguard_assess_slab_growth_kb_per_hour=100", "oomguard_assess_slab_growth_min_kb=100"]
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"), "-e", json.dumps(paths)]
    for text in texts:
        argv += ["-e", text]
    proc = subprocess.run(argv, env=base_env({"ANSIBLE_DEPRECATION_WARNINGS": "false"}), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = json.loads((tmp_path / "out" / "seen.json").read_text())
    assert seen["slabinfo"] is False and seen["evidence"] is False          # the switches, given as text, are off
    assert seen["adjs"] and set(seen["adjs"]) == {-1000}                    # threshold -1000 and no killable extras
    assert seen["level"] != "ok"           # allowlist bound 1 KiB: sshd and udevd at -1000 are findings now
