# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oom_score_adj and oom_rollback against this machine's real kernel and real processes.

This VM lacks CAP_SYS_RESOURCE: raising a value works, and lowering works down to the
process's floor (oom_score_adj_min, inherited: 0 here); below it the kernel says EACCES.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MODULES = "ansible_collections.oomguard.fleet.plugins.modules."


def run_module(name, args, tmp_path):
    args_file = tmp_path / ("%s-args.json" % name)
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run([sys.executable, "-m", MODULES + name, str(args_file)], capture_output=True, text=True, check=False)
    return proc.returncode, json.loads(proc.stdout)


def read_adj(pid):
    with open("/proc/%d/oom_score_adj" % pid, encoding="utf-8") as handle:
        return int(handle.read())


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def common(tmp_path):
    return {"journal": str(tmp_path / "state" / "journal.jsonl"), "root": str(tmp_path / "root"),
            "run_id": "oomguard-20261129T020000Z-7"}


def test_raise_read_back_and_roll_back_on_the_real_kernel(sleeper, common, tmp_path):
    assert read_adj(sleeper) == 0
    rc, result = run_module("oom_score_adj", dict(common, pid=sleeper, value=500), tmp_path)
    assert rc == 0, result
    assert result["changed"] is True and read_adj(sleeper) == 500
    assert result["changes"] == [{"pid": sleeper, "name": "sleep", "unit": result["matched"][0]["unit"], "old": 0, "new": 500,
                                  "persist": "none", "dropin": None}]
    rc, again = run_module("oom_score_adj", dict(common, pid=sleeper, value=500), tmp_path)
    assert rc == 0 and again["changed"] is False

    rc, undo = run_module("oom_rollback", {"journal": common["journal"], "root": common["root"]}, tmp_path)
    assert rc == 0, undo
    assert read_adj(sleeper) == 0  # back to the floor: allowed without CAP_SYS_RESOURCE
    assert [(p["pid"], p["new"]) for p in undo["restored"]] == [(sleeper, 0)]


def test_lowering_below_the_floor_is_the_kernels_real_refusal(sleeper, common, tmp_path):
    if _has_cap_sys_resource():
        pytest.skip("this machine has CAP_SYS_RESOURCE, so the kernel does not refuse")
    rc, result = run_module("oom_score_adj", dict(common, pid=sleeper, value=-1), tmp_path)
    assert rc == 1
    assert "EACCES" in result["msg"] and "CAP_SYS_RESOURCE" in result["msg"] and "which this module lacks" in result["msg"]
    assert read_adj(sleeper) == 0
    with open(common["journal"], encoding="utf-8") as handle:
        states = [json.loads(line)["state"] for line in handle]
    assert states == ["intent", "refused"]


def test_rollback_to_a_value_below_the_floor_fails_with_the_reason(sleeper, common, tmp_path):
    if _has_cap_sys_resource():
        pytest.skip("this machine has CAP_SYS_RESOURCE, so the kernel does not refuse")
    rc, result = run_module("oom_score_adj", dict(common, pid=sleeper, value=300), tmp_path)
    assert rc == 0 and read_adj(sleeper) == 300
    # What a host with a real -1000 process would journal: the old value sits below this
    # process's floor, so restoring it is exactly the write the kernel refuses here.
    with open(common["journal"], encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    for record in lines:
        if record["state"] == "intent":
            record["old"] = -1000
    with open(common["journal"], "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in lines)
    rc, undo = run_module("oom_rollback", {"journal": common["journal"], "root": common["root"]}, tmp_path)
    assert rc == 1
    assert "from 300 to -1000" in undo["msg"] and "CAP_SYS_RESOURCE" in undo["msg"]
    assert read_adj(sleeper) == 300
    with open(common["journal"], encoding="utf-8") as handle:
        ops = [json.loads(line)["op"] for line in handle]
    assert "rollback-complete" not in ops  # a refused rollback can be run again later


def test_process_that_is_gone_is_reported_not_fatal(common, tmp_path):
    proc = subprocess.Popen(["sleep", "300"])
    pid = proc.pid
    proc.kill()
    proc.wait()
    rc, result = run_module("oom_score_adj", dict(common, pid=pid, value=100), tmp_path)
    assert rc == 0 and result["changed"] is False and result["matched"] == []
    assert "No process matched the selectors" in json.dumps(result["warnings"])


def test_second_run_fails_naming_the_lock_holder(sleeper, common, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from ansible_collections.oomguard.fleet.plugins.module_utils.journal import RunLock\n"
        "lock = RunLock(sys.argv[1], 'oomguard-holder-1', 'remediate').acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"), common["journal"]], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, result = run_module("oom_score_adj", dict(common, pid=sleeper, value=100), tmp_path)
        assert rc == 1
        assert "holds the lock" in result["msg"] and "pid %d" % holder.pid in result["msg"] and "oomguard-holder-1" in result["msg"]
        assert read_adj(sleeper) == 0
    finally:
        holder.kill()
        holder.wait()
    rc, result = run_module("oom_score_adj", dict(common, pid=sleeper, value=100), tmp_path)
    assert rc == 0 and read_adj(sleeper) == 100  # the kernel freed the lock when its holder died


def _has_cap_sys_resource():
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 24))
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="writing another process's oom_score_adj needs root or the same uid")
def test_cmdline_selector_finds_the_real_process(sleeper, common, tmp_path):
    rc, result = run_module("oom_score_adj", dict(common, cmdline=r"^sleep 300$", value=200), tmp_path)
    assert rc == 0, result
    assert sleeper in [m["pid"] for m in result["matched"]]
    assert read_adj(sleeper) == 200
