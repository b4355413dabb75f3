# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' outputs are plain host variables, whatever INJECT_FACTS_AS_VARS says.

ansible-core 2.20 deprecates INJECT_FACTS_AS_VARS defaulting to true (off in 2.24): a top-level
variable that only exists because a fact was injected prints ``[DEPRECATION WARNING]`` when read,
and is undefined with the setting off. A user's play (assess with the CI gate, snapshot, remediate,
then the report, then a task of its own reading the outputs) runs under the ansible-core of these
tests with the setting at its default and off, and under the newest supported ansible-core
(the last line of tests/compat/versions, in scripts/compat.sh's venv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 1024 * 1024
JAVA = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000, "unit": "app.service"}

PLAY = """
- name: Assess, snapshot and flag, as a user's play does
  hosts: fleet
  gather_facts: false
  roles:
    - role: oomguard.fleet.assess
    - role: oomguard.fleet.snapshot
    - role: oomguard.fleet.remediate
  post_tasks:
    - name: Read the roles' outputs as variables
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        content: "{{ {'exposure': oomguard_exposure, 'snapshots': oomguard_snapshots, 'changes': oomguard_changes,
                      'pids': ansible_facts.oom.processes | map(attribute='pid') | list} | to_json }}"
        mode: "0600"
      delegate_to: localhost

- name: Report, and read every host's verdict, the gated one's too
  hosts: localhost
  gather_facts: false
  vars:
    oomguard_report_hosts: "{{ groups['fleet'] }}"
  roles:
    - role: oomguard.fleet.report
  tasks:
    - name: Read the verdicts through hostvars
      ansible.builtin.copy:
        dest: "{{ out_dir }}/hostvars.json"
        content: "{{ dict(groups['fleet'] | zip(groups['fleet'] | map('extract', hostvars, 'oomguard_exposure'))) | to_json }}"
        mode: "0600"
"""


def newest_core():
    """The newest ansible-core of the matrix: the last line of tests/compat/versions."""
    with open(os.path.join(TOP, "tests", "compat", "versions"), encoding="utf-8") as handle:
        lines = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    return lines[-1][0]


def newest_venv_bin():
    """bin/ of the newest core's venv, built by scripts/compat.sh when missing or stale."""
    version = newest_core()
    build = subprocess.run([os.path.join(TOP, "scripts", "compat.sh"), version], cwd=TOP, capture_output=True, text=True,
                           env=dict(os.environ, COMPAT_BUILD_ONLY="1"), timeout=1800, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return os.path.join(TOP, ".venv-compat", version, "bin")


def fleet(tmp_path):
    """Two local hosts: web01 critical (a 6 GiB java at -1000, stopped by the gate), calm01 ok."""
    hosts = {}
    for name, extra in (("web01", [JAVA]), ("calm01", [])):
        proc = vendor_tree(tmp_path / name / "proc", extra=extra)
        hosts[name] = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "oomguard_assess_proc_path": proc, "oomguard_remediate_proc_path": proc,
            "oomguard_assess_evidence_root": str(tmp_path / name / "root"),
            "oomguard_assess_slab_baseline_path": str(tmp_path / name / "state" / "slab-baseline.json"),
            "oomguard_remediate_root": str(tmp_path / name / "root"),
            "oomguard_remediate_journal": str(tmp_path / name / "state" / "journal.jsonl"),
        }
        (tmp_path / name / "root").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    inventory = {"all": {
        # A results dir makes the assess role set the run id once (see its first tasks).
        "vars": {"out_dir": str(out), "oomguard_snapshot_enabled": False, "oomguard_report_dir": str(tmp_path / "report"),
                 "oomguard_assess_results_dir": str(tmp_path / "results"),
                 "oomguard_report_formats": ["json"]},
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {"fleet": {"hosts": hosts}}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAY)
    return tmp_path


def run_play(tmp_path, venv_bin, inject):
    env = base_env({"ANSIBLE_DEPRECATION_WARNINGS": "true", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
                    "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")})
    # INJECT_FACTS_AS_VARS is set through ANSIBLE_INJECT_FACT_VARS (or inject_facts_as_vars in ansible.cfg).
    env.pop("ANSIBLE_INJECT_FACT_VARS", None)
    if inject is not None:
        env["ANSIBLE_INJECT_FACT_VARS"] = inject
    argv = [os.path.join(venv_bin, "ansible-playbook"), "-i", str(tmp_path / "inventory.json"), str(tmp_path / "play.yml"),
            "-e", "oomguard_assess_fail_on=critical"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)


def check_outputs(tmp_path, proc):
    output = proc.stdout + proc.stderr
    # The gate stops web01 (exit 2); every other step ran.
    assert proc.returncode == 2, output[-4000:]
    assert "web01 is critical, at or above oomguard_assess_fail_on=critical" in output, output[-4000:]
    assert "[DEPRECATION WARNING]" not in output, output[-6000:]
    calm = json.loads((tmp_path / "out" / "calm01.json").read_text())
    assert calm["exposure"]["host"] == "calm01" and calm["exposure"]["level"] == "ok"
    assert calm["snapshots"]["status"] == "skipped"
    # Its own facts, not web01's (ansible-core 2.21 shared one ansible_facts after a run_once set_fact).
    assert 4242 not in calm["pids"] and 1 in calm["pids"], calm["pids"]
    assert calm["changes"]["status"] in ("unchanged", "flagged"), calm["changes"]
    assert not (tmp_path / "out" / "web01.json").exists()
    verdicts = json.loads((tmp_path / "out" / "hostvars.json").read_text())
    assert verdicts["web01"]["level"] == "critical" and verdicts["calm01"]["level"] == "ok"
    report = json.loads((tmp_path / "report" / "oomguard-report.json").read_text())
    assert sorted((entry["host"], entry["level"]) for entry in report["hosts"]) == [("calm01", "ok"), ("web01", "critical")]


@pytest.mark.parametrize("inject", [None, "false"], ids=["inject-default", "inject-false"])
def test_outputs_are_host_variables_under_this_core(tmp_path, inject):
    check_outputs(tmp_path, run_play(fleet(tmp_path), VENV_BIN, inject))


@pytest.mark.skipif(os.path.join(TOP, ".venv-compat") in sys.prefix, reason="scripts/compat.sh runs the test above under each core")
@pytest.mark.parametrize("inject", [None, "false"], ids=["inject-default", "inject-false"])
def test_no_deprecation_warning_under_the_newest_core(tmp_path, inject):
    check_outputs(tmp_path, run_play(fleet(tmp_path), newest_venv_bin(), inject))
