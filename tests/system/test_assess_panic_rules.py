# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The assess role through real ansible-playbook: the PANIC rules on a fixture host tree, their
switches, return_cmdline and a refused threshold given as `-e key=value` strings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ansible_collections.oomguard.fleet.tests.system.test_assess_role import PLAY as ASSESS_PLAY
from ansible_collections.oomguard.fleet.tests.system.test_assess_role import PLAYBOOK_BIN, ansible_env
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

# The role's play from test_assess_role (it saves <host>.exposure.json), then the facts beside it.
PLAY = ASSESS_PLAY + """
- name: Keep the oom facts for the test
  hosts: all
  gather_facts: false
  tasks:
    - name: Save them beside the verdict
      ansible.builtin.copy: {dest: "{{ out_dir }}/oom.json", content: "{{ ansible_facts.oom | to_json }}", mode: "0600"}
      delegate_to: localhost
      check_mode: false
"""


def host_tree(tmp_path):
    """A host with no pstore backend, no crash kernel, no persistent journal and kernel.panic 0."""
    app = {"pid": 500, "comm": "app", "rss_kb": 1000, "oom_score_adj": 0, "cmdline": ["app", "--password=hunter2"]}
    proc = vendor_tree(tmp_path / "proc", extra=[app])
    with open(os.path.join(proc, "sys", "kernel", "panic"), "w") as handle:
        handle.write("0\n")
    os.makedirs(str(tmp_path / "sys" / "module" / "pstore" / "parameters"))
    (tmp_path / "sys" / "module" / "pstore" / "parameters" / "backend").write_text("(null)\n")
    (tmp_path / "sys" / "kernel").mkdir()
    (tmp_path / "sys" / "kernel" / "kexec_crash_loaded").write_text("0\n")
    (tmp_path / "root" / "var" / "log").mkdir(parents=True)
    return proc


def audit(tmp_path, *pairs):
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    web01:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n" % sys.executable)
    variables = {"out_dir": str(tmp_path / "out"), "oomguard_assess_proc_path": str(tmp_path / "proc"),
                 "oomguard_assess_evidence_root": str(tmp_path / "root"), "oomguard_assess_slab_baseline": "none"}
    argv = [PLAYBOOK_BIN, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"), "-e", json.dumps(variables)]
    for pair in pairs:  # as a user types them: every value a string
        argv += ["-e", pair]
    return subprocess.run(argv, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)


def saved(tmp_path):
    doc = {}
    for key, name in (("exposure", "web01.exposure.json"), ("oom", "oom.json")):
        with open(str(tmp_path / "out" / name)) as handle:
            doc[key] = json.load(handle)
    return doc


def test_panic_rules_fire_and_switch_off_from_the_command_line(tmp_path):
    host_tree(tmp_path)
    result = audit(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = saved(tmp_path)
    assert [(f["id"], f["severity"]) for f in doc["exposure"]["findings"]] == [("PANIC001", "medium"), ("PANIC002", "medium")]
    assert doc["oom"]["panic"]["sys_path"] == str(tmp_path / "sys") and doc["oom"]["panic"]["timeout_s"] == 0
    assert "PANIC001/medium" in result.stdout  # the summary line on the screen
    assert [p["cmdline"] for p in doc["oom"]["processes"] if p["pid"] == 500] == ["app --password=<redacted>"]

    result = audit(tmp_path, "oomguard_assess_require_panic_record=false", "oomguard_assess_require_panic_reboot=false",
                   "oomguard_assess_return_cmdline=false", "oomguard_assess_sys_path=%s" % (tmp_path / "nowhere"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = saved(tmp_path)
    assert doc["exposure"]["level"] == "ok" and doc["exposure"]["findings"] == []
    assert [s for s in doc["exposure"]["skipped"] if s["id"].startswith("PANIC")] == [
        {"id": "PANIC001", "reason": "switched off (require_panic_record: false)"},
        {"id": "PANIC002", "reason": "switched off (require_panic_reboot: false)"}]
    assert doc["oom"]["panic"]["sys_path"] is None
    assert all(p["cmdline"] is None for p in doc["oom"]["processes"])


def test_a_nan_threshold_from_the_command_line_stops_the_role(tmp_path):
    host_tree(tmp_path)
    result = audit(tmp_path, "oomguard_assess_unkillable_critical_pct=nan")
    assert result.returncode != 0
    assert "exposure option unkillable_critical_pct must be a percentage from 0 to 100, got nan" in result.stdout
    assert not (tmp_path / "out" / "web01.exposure.json").exists()
