# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-side modules on every target Python the supported ansible-cores admit.

One play per interpreter, through the real ``ansible-playbook`` of the newest ansible-core that
still manages it (``ansible_python_interpreter`` = pyenv's CPython): 2.7 and 3.6 under 2.16 (the
last core for CentOS 7's and RHEL 8's system Pythons), 3.7 under 2.17, 3.8 under the pinned core
(2.19, the last for 3.8), 3.9 and 3.10 under the newest core in tests/compat/versions.
Each play runs oom_score_facts (all subsets) and slabinfo_facts on the seed's CentOS 7 host
(``tests/unit/centos7_tree.py``) and on this host, the assess role on that tree, then
oom_score_adj (runtime and a systemd drop-in, journalled) and oom_rollback on that tree and on a
live process.

The other cores' venvs are scripts/compat.sh's (``.venv-compat/<version>``, built here with
COMPAT_BUILD_ONLY=1 when missing or stale).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils.evidence import gather_evidence
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts
from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import base_env
from ansible_collections.oomguard.fleet.tests.system.test_oom_score_adj_kernel import read_adj, sleeper  # noqa: F401 pylint: disable=unused-import
from ansible_collections.oomguard.fleet.tests.unit.centos7_tree import centos7_host

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = os.path.join(os.path.expanduser("~"), ".pyenv", "versions")

# (pyenv version, ansible-core minor that runs it; None: the pinned core of .venv; NEWEST: the last
# line of tests/compat/versions)
NEWEST = "newest"
MATRIX = [
    ("2.7.18", "2.16"),
    ("3.6.15", "2.16"),
    ("3.7.16", "2.17"),
    ("3.8.18", None),
    ("3.9.18", NEWEST),
    ("3.10.13", NEWEST),
]

PLAY = """
- name: Host-side modules on one target Python
  hosts: target
  gather_facts: false
  vars:
    tree: "{{ work }}/centos7"
    tree_journal: "{{ work }}/tree-state/journal.jsonl"
    live_journal: "{{ work }}/live-state/journal.jsonl"
  tasks:
    - name: All facts of the CentOS 7 tree
      oomguard.fleet.oom_score_facts:
        proc_path: "{{ tree }}/proc"
        sys_path: "{{ tree }}/sys"
        evidence_root: "{{ tree }}"
        evidence_days: 0
        gather_subset: [all]
        slabinfo_baseline: store
        slabinfo_baseline_path: "{{ work }}/tree-state/slab-baseline.json"
      register: tree_facts
      ignore_errors: true
    - name: Slab growth of the CentOS 7 tree against the baseline just stored
      oomguard.fleet.slabinfo_facts:
        proc_path: "{{ tree }}/proc"
        baseline: compare
        baseline_path: "{{ work }}/tree-state/slab-baseline.json"
      register: tree_slab
      ignore_errors: true
    - name: All facts of this host
      oomguard.fleet.oom_score_facts:
        gather_subset: [all]
        slabinfo_baseline: store
        slabinfo_baseline_path: "{{ work }}/live-state/slab-baseline.json"
      register: live_facts
      ignore_errors: true
    - name: Slab facts of this host
      oomguard.fleet.slabinfo_facts:
        baseline: compare
        baseline_path: "{{ work }}/live-state/slab-baseline.json"
      register: live_slab
      ignore_errors: true
    - name: The assess role on the CentOS 7 tree
      ansible.builtin.include_role:
        name: oomguard.fleet.assess
      vars:
        oomguard_assess_proc_path: "{{ tree }}/proc"
        oomguard_assess_sys_path: "{{ tree }}/sys"
        oomguard_assess_evidence_root: "{{ tree }}"
        oomguard_assess_evidence_days: 0
        oomguard_assess_slab_baseline_path: "{{ work }}/tree-state/role-slab-baseline.json"
        oomguard_assess_results_dir: "{{ work }}/assess-results"
    - name: sshd from -1000 to 0 on the tree, persisted through a drop-in
      oomguard.fleet.oom_score_adj:
        proc_path: "{{ tree }}/proc"
        root: "{{ tree }}"
        journal: "{{ tree_journal }}"
        run_id: oomguard-20261202T140000Z-27
        unit: sshd.service
        value: 0
        persist: systemd
      register: tree_adj
      ignore_errors: true
    - name: The value written on the tree
      ansible.builtin.slurp:
        src: "{{ tree }}/proc/1799/oom_score_adj"
      register: tree_adj_file
      ignore_errors: true
    - name: Roll the tree back
      oomguard.fleet.oom_rollback:
        proc_path: "{{ tree }}/proc"
        root: "{{ tree }}"
        journal: "{{ tree_journal }}"
      register: tree_rollback
      ignore_errors: true
    - name: sshd on the tree while another run holds the lock
      oomguard.fleet.oom_score_adj:
        proc_path: "{{ tree }}/proc"
        root: "{{ tree }}"
        journal: "{{ work }}/locked-state/journal.jsonl"
        unit: sshd.service
        value: 0
      register: locked_adj
      ignore_errors: true
    - name: Select the live process by command line, in check mode with a diff
      oomguard.fleet.oom_score_adj:
        cmdline: "^sleep 300$"
        value: 500
        root: "{{ work }}/live-root"
        journal: "{{ live_journal }}"
      check_mode: true
      diff: true
      register: live_check
      ignore_errors: true
    - name: Raise a live process
      oomguard.fleet.oom_score_adj:
        pid: "{{ sleeper }}"
        value: 500
        root: "{{ work }}/live-root"
        journal: "{{ live_journal }}"
      register: live_adj
      ignore_errors: true
    - name: The live value after the raise
      ansible.builtin.slurp:
        src: "/proc/{{ sleeper }}/oom_score_adj"
      register: live_adj_file
      ignore_errors: true
    - name: Roll the live process back
      oomguard.fleet.oom_rollback:
        root: "{{ work }}/live-root"
        journal: "{{ live_journal }}"
      register: live_rollback
      ignore_errors: true
    - name: Hand every result to the test
      ansible.builtin.copy:
        dest: "{{ work }}/results.json"
        mode: "0600"
        content: >-
          {{ {'tree_facts': tree_facts, 'tree_slab': tree_slab, 'live_facts': live_facts, 'live_slab': live_slab,
              'tree_adj': tree_adj, 'tree_adj_file': tree_adj_file, 'tree_rollback': tree_rollback, 'locked_adj': locked_adj,
              'live_adj': live_adj, 'live_adj_file': live_adj_file, 'live_rollback': live_rollback, 'live_check': live_check,
              'role_exposure': oomguard_exposure} | to_json }}
"""

_VENVS = {}


def compat_version(minor):
    """The patch release of ``minor`` (or the NEWEST release) in tests/compat/versions."""
    with open(os.path.join(TOP, "tests", "compat", "versions"), encoding="utf-8") as handle:
        listed = [line.split()[0] for line in handle if line.strip() and not line.startswith("#")]  # "VERSION [PYTHON]"
    found = listed[-1:] if minor == NEWEST else [version for version in listed if version.startswith(minor + ".")]
    assert found, "tests/compat/versions lists no ansible-core %s; the target-Python matrix needs it" % minor
    return found[-1]


def core_venv(minor):
    """The venv whose ansible-core runs targets of ``minor`` (None: the pinned .venv)."""
    if minor is None:
        return os.path.dirname(os.path.dirname(sys.executable))
    if minor not in _VENVS:
        version = compat_version(minor)
        build = subprocess.run([os.path.join(TOP, "scripts", "compat.sh"), version], cwd=TOP, capture_output=True,
                               text=True, env=dict(os.environ, COMPAT_BUILD_ONLY="1"), timeout=1800, check=False)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        _VENVS[minor] = os.path.join(TOP, ".venv-compat", version)
    return _VENVS[minor]


def admitted_targets(venv):
    """The target Pythons this venv's ansible-core supports (its ansible-test constants)."""
    out = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                          "from ansible_test._util.target.common.constants import REMOTE_ONLY_PYTHON_VERSIONS as r, "
                          "CONTROLLER_PYTHON_VERSIONS as c; print(' '.join(r + c))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def core_version(venv):
    return subprocess.run([os.path.join(venv, "bin", "python"), "-c", "from ansible.release import __version__; print(__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def held_lock(tmp_path):
    """The run lock of <tmp>/locked-state held by this process, as a concurrent run would hold it."""
    state = tmp_path / "locked-state"
    state.mkdir(mode=0o700)
    fd = os.open(str(state / "oomguard.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": os.getpid(), "run_id": "oomguard-20261202T135900Z-1", "purpose": "remediate",
                             "since": "2026-12-02T13:59:00Z", "host": "controller"}).encode("utf-8"))
    try:
        yield
    finally:
        os.close(fd)


def slurped(result):
    import base64
    return base64.b64decode(result["content"]).decode("utf-8").strip()


def run_play(venv, python, work, sleeper):
    (work / "inventory.ini").write_text("[target]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n" % python)
    (work / "play.yml").write_text(PLAY)
    env = base_env({"PATH": os.path.join(venv, "bin") + os.pathsep + os.environ.get("PATH", ""),
                    "ANSIBLE_PYTHON_INTERPRETER": python, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"})
    proc = subprocess.run([os.path.join(venv, "bin", "ansible-playbook"), "-i", str(work / "inventory.ini"), str(work / "play.yml"),
                           "-e", json.dumps({"work": str(work), "sleeper": sleeper})],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert (work / "results.json").exists(), output[-6000:]
    with open(str(work / "results.json"), encoding="utf-8") as handle:
        return json.load(handle), output


def assert_ok(results, *names):
    failed = dict((name, (results[name].get("module_stderr") or "")[-1500:] or results[name].get("msg") or results[name])
                  for name in names if results[name].get("failed"))
    assert not failed, json.dumps(failed, indent=1)[:8000]


def without(facts, *keys):
    return dict((k, v) for k, v in facts.items() if k not in keys)


@pytest.mark.parametrize("pyenv_version, core_minor", MATRIX, ids=["python%s" % row[0].rsplit(".", 1)[0] for row in MATRIX])
def test_host_side_modules_on_target_python(pyenv_version, core_minor, tmp_path, sleeper, held_lock):
    python = os.path.join(PYENV, pyenv_version, "bin", "python")
    if not os.path.exists(python):
        pytest.fail("%s is missing: install CPython %s with pyenv (pyenv install %s)" % (python, pyenv_version, pyenv_version))
    venv = core_venv(core_minor)
    target = ".".join(pyenv_version.split(".")[:2])
    assert target in admitted_targets(venv), "ansible-core %s does not support target Python %s" % (core_version(venv), target)
    tree = centos7_host(tmp_path / "centos7")
    assert read_adj(sleeper) == 0

    results, output = run_play(venv, python, tmp_path, sleeper)
    assert_ok(results, "tree_facts", "tree_slab", "live_facts", "live_slab", "tree_adj", "tree_adj_file", "tree_rollback",
              "live_check", "live_adj", "live_adj_file", "live_rollback")
    assert "[DEPRECATION WARNING]" not in output and "discovered Python" not in output, output[-3000:]

    # The CentOS 7 tree: the same facts as read here, and the same verdict.
    facts = results["tree_facts"]["ansible_facts"]
    proc_path = os.path.join(tree, "proc")
    assert facts["oom"] == gather_oom_facts(proc_path, sys_path=os.path.join(tree, "sys"), root=tree)
    evidence = gather_evidence(tree, since_days=0)
    assert without(facts["oom_evidence"], "checked_at", "sources") == without(evidence, "checked_at", "sources")
    assert facts["oom_evidence"]["sources"][1:] == evidence["sources"][1:]  # [0]: the journal, through journalctl
    assert without(facts["slabinfo"], "growth") == without(gather_slabinfo_facts(proc_path), "growth")
    assert facts["slabinfo"]["growth"]["stored"] is True
    verdict = ex.assess(facts, host="centos7")
    assert verdict["level"] == "critical"
    assert sorted(f["id"] for f in verdict["findings"]) == ["HIST001", "OOM003", "PANIC002", "SLAB001"]
    role = results["role_exposure"]  # the assess role, its modules on this Python
    assert (role["level"], sorted(f["id"] for f in role["findings"])) == (verdict["level"], ["HIST001", "OOM003", "PANIC002", "SLAB001"])
    growth = results["tree_slab"]["ansible_facts"]["slabinfo"]["growth"]
    assert growth["baseline"] is True and growth["caches"] == []

    # This host, live.
    live = results["live_facts"]["ansible_facts"]
    assert live["oom"]["kernel"] == os.uname().release
    assert live["oom"]["summary"]["process_count"] > 0 and live["oom"]["processes"]
    assert live["slabinfo"]["available"] is os.path.exists("/proc/slabinfo")
    assert live["oom_evidence"]["sources"]
    assert results["live_slab"]["ansible_facts"]["slabinfo"]["growth"]["baseline"] is True

    # oom_score_adj and oom_rollback on the tree: runtime value and drop-in, then both undone.
    adj = results["tree_adj"]
    assert adj["changed"] is True
    assert [(c["pid"], c["old"], c["new"], c["persist"]) for c in adj["changes"]] == [(1799, -1000, 0, "systemd")]
    assert slurped(results["tree_adj_file"]) == "0"
    dropin = os.path.join(tree, "etc", "systemd", "system", "sshd.service.d", "zz-oomguard.conf")
    assert results["tree_rollback"]["changed"] is True
    assert [(p["pid"], p["new"]) for p in results["tree_rollback"]["restored"]] == [(1799, -1000)]
    with open(os.path.join(proc_path, "1799", "oom_score_adj"), encoding="utf-8") as handle:
        assert handle.read().strip() == "-1000"
    assert not os.path.exists(dropin)
    with open(str(tmp_path / "tree-state" / "journal.jsonl"), encoding="utf-8") as handle:
        ops = [json.loads(line)["op"] for line in handle]
    assert "dropin" in ops and "runtime" in ops and "rollback-complete" in ops

    # A run that finds the lock held fails, naming the holder, and changes nothing.
    locked = results["locked_adj"]
    assert locked.get("failed") is True and locked["changed"] is False, locked
    assert "Another oomguard run holds the lock" in locked["msg"] and "held by pid %d" % os.getpid() in locked["msg"]

    # The cmdline selector (a regular expression matched in a forked child) finds the live process; check mode
    # changes nothing and writes no journal.
    check = results["live_check"]
    assert check["changed"] is True and sleeper in [p["pid"] for p in check["matched"]]
    assert "pid %d (sleep) oom_score_adj" % sleeper in [d["before_header"] for d in check["diff"]]

    # The live process: raised to 500, then back to 0.
    assert results["live_adj"]["changed"] is True and slurped(results["live_adj_file"]) == "500"
    assert [(p["pid"], p["new"]) for p in results["live_rollback"]["restored"]] == [(sleeper, 0)]
    assert read_adj(sleeper) == 0
