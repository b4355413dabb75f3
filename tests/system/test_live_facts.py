# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oom_score_facts and slabinfo_facts through real Ansible against the live host's /proc."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE = os.path.join(VENV_BIN, "ansible")
PF_KTHREAD = 0x00200000


def ansible_env():
    return base_env({"ANSIBLE_DEPRECATION_WARNINGS": "false", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal"})


def run_adhoc(module, args):
    out = subprocess.run([ANSIBLE, "localhost", "-c", "local", "-m", module, "-a", args], env=ansible_env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    # minimal callback: "localhost | SUCCESS => {...}"
    head, sep, body = out.stdout.partition(" => ")
    assert head.strip() == "localhost | SUCCESS" and sep, out.stdout[:500]
    return json.loads(body)


def snapshot_proc():
    """{pid: (starttime, ppid, comm, oom_score_adj, kernel_thread)} read straight from /proc."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                stat = handle.read()
            with open("/proc/%s/oom_score_adj" % entry) as handle:
                adj = int(handle.read())
        except OSError:
            continue
        rparen = stat.rfind(")")
        fields = stat[rparen + 2:].split()
        seen[int(entry)] = (int(fields[19]), int(fields[1]), stat[stat.index("(") + 1:rparen], adj,
                            bool(int(fields[6]) & PF_KTHREAD))
    return seen


@pytest.fixture
def raised_process():
    proc = subprocess.Popen(["sleep", "600"])
    try:
        with open("/proc/%d/oom_score_adj" % proc.pid, "w") as handle:
            handle.write("700")
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_oom_score_facts_agrees_with_proc(raised_process):
    before = snapshot_proc()
    result = run_adhoc("oomguard.fleet.oom_score_facts", "all_processes=true cmdline_max=64")
    after = snapshot_proc()
    assert result["changed"] is False
    oom = result["ansible_facts"]["oom"]
    rows = dict((p["pid"], p) for p in oom["processes"])
    # Stable: alive before and after, same start time (no pid reuse), so alive during the scan.
    stable = dict((pid, v) for pid, v in before.items() if after.get(pid, (None,))[0] == v[0])
    stable_user = dict((pid, v) for pid, v in stable.items() if not v[4])
    stable_kthreads = [pid for pid, v in stable.items() if v[4]]
    assert set(stable_user) <= set(rows)
    for pid in set(rows) - set(stable_user):
        assert pid not in before or pid not in after or before[pid][0] != after[pid][0], "pid %d is not transient" % pid
    # Every counted process is a returned row, except rows that vanished between the scan and their details.
    summary = oom["summary"]
    assert summary["returned_count"] == len(rows)
    assert 0 <= summary["process_count"] - len(rows) <= oom["errors"]["count"]
    new_kthreads = [pid for pid, v in after.items() if v[4] and pid not in stable]
    assert len(stable_kthreads) <= summary["kernel_thread_count"] <= len(stable_kthreads) + len(new_kthreads) + 2
    for pid, (_start, ppid, comm, adj, _kt) in stable_user.items():
        assert (rows[pid]["ppid"], rows[pid]["name"], rows[pid]["oom_score_adj"]) == (ppid, comm, adj), pid
    mine = rows[raised_process]
    assert mine["oom_score_adj"] == 700 and mine["name"] == "sleep"
    assert mine["cmdline"] == "sleep 600" and mine["uid"] == os.getuid()
    with open("/proc/%d/oom_score" % raised_process) as handle:
        assert abs(mine["oom_score"] - int(handle.read())) <= 5
    with open("/proc/sys/kernel/osrelease") as handle:
        assert oom["kernel"] == handle.read().strip()


def test_default_selection_returns_the_raised_process_only_when_asked(raised_process):
    result = run_adhoc("oomguard.fleet.oom_score_facts", "adj_threshold=700 top_killable=0")
    rows = dict((p["pid"], p) for p in result["ansible_facts"]["oom"]["processes"])
    assert raised_process in rows
    assert all(p["oom_score_adj"] <= 700 for p in rows.values())
    result = run_adhoc("oomguard.fleet.oom_score_facts", "adj_threshold=-1000 top_killable=0")
    assert raised_process not in [p["pid"] for p in result["ansible_facts"]["oom"]["processes"]]


def test_slabinfo_facts_live(tmp_path):
    path = str(tmp_path / "state" / "baseline.json")
    result = run_adhoc("oomguard.fleet.slabinfo_facts", "baseline=store top=5 baseline_path=%s" % path)
    facts = result["ansible_facts"]["slabinfo"]
    assert result["changed"] is False
    with open("/proc/slabinfo") as handle:
        lines = [line for line in handle.read().splitlines()[1:] if not line.startswith("#")]
    assert facts["available"] is True and facts["cache_count"] == len(lines)
    assert len(facts["caches"]) == 5
    assert facts["growth"]["baseline"] is False and facts["growth"]["stored"] is True
    assert os.stat(path).st_mode & 0o777 == 0o600
    result = run_adhoc("oomguard.fleet.slabinfo_facts", "baseline=compare baseline_path=%s" % path)
    assert result["ansible_facts"]["slabinfo"]["growth"]["baseline"] is True
