# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oom_score_adj and oom_rollback modules end to end on fixture procfs trees."""

from __future__ import annotations

import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.modules import oom_rollback, oom_score_adj
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

PROCS = [{"pid": 4242, "comm": "java", "oom_score_adj": -1000, "unit": "app.service"},
         {"pid": 77, "comm": "adhoc", "oom_score_adj": -1000}]


@pytest.fixture
def host(tmp_path):
    return {"proc_path": build_proc_tree(tmp_path / "proc", processes=PROCS), "root": str(tmp_path / "root"),
            "journal": str(tmp_path / "state" / "journal.jsonl"), "run_id": "oomguard-20261129T020000Z-1"}


def adj(host, pid):
    with open(os.path.join(host["proc_path"], str(pid), "oom_score_adj"), encoding="utf-8") as handle:
        return int(handle.read())


def dropin(host):
    return os.path.join(host["root"], "etc/systemd/system/app.service.d/zz-oomguard.conf")


@pytest.mark.parametrize("value", [-1001, 1001, 100000])
def test_out_of_range_value_is_rejected(host, value):
    failed, result = run_module(oom_score_adj.main, dict(host, pid=4242, value=value))
    assert failed and "out of range" in result["msg"] and "-1000 (never OOM-kill) to 1000" in result["msg"]
    assert adj(host, 4242) == -1000


def test_a_selector_is_required(host):
    failed, result = run_module(oom_score_adj.main, dict(host, value=0))
    assert failed and "one of the following is required: pid, name, unit, cmdline" in result["msg"]


def test_listed_processes_under_one_lock(host):
    build_proc_tree(host["proc_path"], processes=[{"pid": 90, "comm": "other", "oom_score_adj": -1000}])
    targets = [{"pid": 4242, "name": "java"}, {"pid": 77, "name": "adhoc"}, {"pid": 4242, "name": "java"},
               {"pid": 90, "name": "java"}, {"pid": 31337, "name": "gone"}]
    failed, result = run_module(oom_score_adj.main, dict(host, processes=targets, value=0, persist="systemd"))
    assert not failed and [c["pid"] for c in result["changes"]] == [4242, 77]
    assert result["vanished"] == [{"pid": 90, "name": "java"}, {"pid": 31337, "name": "gone"}]
    assert adj(host, 4242) == 0 and adj(host, 77) == 0 and adj(host, 90) == -1000
    records = jr.read_records(host["journal"])[0]
    assert len({r["id"].split("/")[1] for r in records}) == 1  # one module process made every change


def test_processes_and_selectors_are_exclusive(host):
    failed, result = run_module(oom_score_adj.main, dict(host, processes=[{"pid": 77}], pid=77, value=0))
    assert failed and "parameters are mutually exclusive: processes|pid" in result["msg"]


def test_bad_regex_is_a_clear_error(host):
    failed, result = run_module(oom_score_adj.main, dict(host, cmdline="(", value=0))
    assert failed and result["msg"] == ("Failed to select processes: cmdline '(' is not a valid regular expression: "
                                        "missing ), unterminated subpattern at position 0")


def test_check_mode_shows_the_diff_and_writes_nothing(host):
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd", _ansible_diff=True),
                                check_mode=True)
    assert not failed and result["changed"] is True
    assert result["changes"] == [{"pid": 4242, "name": "java", "unit": "app.service", "old": -1000, "new": 0,
                                  "persist": "systemd", "dropin": dropin(host)}]
    assert [d["before_header"] for d in result["diff"]] == [dropin(host), "pid 4242 (java) oom_score_adj"]
    assert adj(host, 4242) == -1000 and not os.path.exists(dropin(host)) and not os.path.exists(host["journal"])


def test_change_then_nothing_to_change(host):
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    assert not failed and result["changed"] and result["dropins"][0]["action"] == "created"
    assert adj(host, 4242) == 0 and os.path.exists(dropin(host))
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    assert not failed and result["changed"] is False and result["changes"] == []


def test_process_without_unit_is_changed_with_a_warning(host):
    failed, result = run_module(oom_score_adj.main, dict(host, pid=77, value=0, persist="systemd"))
    assert not failed and adj(host, 77) == 0 and result["changes"][0]["persist"] == "none"
    assert result["unpersisted"] == [{"pid": 77, "name": "adhoc", "unit": "session-1.scope",
                                      "reason": "session-1.scope is not a service, socket, mount or swap unit"}]


def test_no_match_is_a_warning_not_an_error(host):
    failed, result = run_module(oom_score_adj.main, dict(host, name="nosuch", value=0))
    assert not failed and result["changed"] is False and result["matched"] == [] and not os.path.exists(host["journal"])


def test_lock_held_fails_and_changes_nothing(host):
    with jr.RunLock(host["journal"], "other-run", "remediate"):
        failed, result = run_module(oom_score_adj.main, dict(host, pid=4242, value=0))
    assert failed and "holds the lock" in result["msg"] and "other-run" in result["msg"]
    assert adj(host, 4242) == -1000


def test_unwritable_journal_fails_before_any_change(host, tmp_path):
    (tmp_path / "blocker").write_text("")
    failed, result = run_module(oom_score_adj.main, dict(host, pid=4242, value=0, journal=str(tmp_path / "blocker" / "j.jsonl")))
    assert failed and "Failed to create the journal directory" in result["msg"] and "blocker is a file" in result["msg"] and adj(host, 4242) == -1000


def test_dropin_write_failure_is_reported_with_what_was_done(host):
    # The <unit>.d directory is writable by others: the write is refused after its intent was journalled.
    os.makedirs(os.path.dirname(dropin(host)))
    os.chmod(os.path.dirname(dropin(host)), 0o777)
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    assert failed and "is writable by group and others (mode 0777)" in result["msg"] and not os.path.exists(dropin(host))
    assert result["changes"] == [] and adj(host, 4242) == -1000
    records, _bad = jr.read_records(host["journal"])
    assert [(r["op"], r["state"]) for r in records] == [("dropin", "intent")]


def test_unreadable_dropin_fails_before_any_change(host):
    os.makedirs(dropin(host))
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    assert failed and result["msg"] == "%s is a directory, not a drop-in file; move it away, then run again." % dropin(host)
    assert adj(host, 4242) == -1000 and not os.path.exists(host["journal"])


def test_kernel_refusal_fails_with_the_capability(host, monkeypatch):
    from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change

    monkeypatch.setattr(oom_change, "set_runtime", lambda proc_path, item: "refused" if item["pid"] == 4242 else "done")
    failed, result = run_module(oom_score_adj.main, dict(host, cmdline="java|adhoc", value=0))
    assert failed and "CAP_SYS_RESOURCE" in result["msg"] and "pid 4242 (java)" in result["msg"]
    assert [c["pid"] for c in result["changes"]] == [77]  # the other process was still changed


def test_rollback_module_round_trip(host):
    run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    common = dict(host, run_id="oomguard-20261129T030000Z-2")
    failed, preview = run_module(oom_rollback.main, dict(common, _ansible_diff=True), check_mode=True)
    assert not failed and preview["changed"] and preview["rollback_of"] == host["run_id"] and len(preview["diff"]) == 2
    assert adj(host, 4242) == 0
    failed, result = run_module(oom_rollback.main, dict(common, rollback_run_id=host["run_id"]))
    assert not failed and result["changed"] and result["dropins"][0]["action"] == "removed"
    assert adj(host, 4242) == -1000 and not os.path.exists(dropin(host))
    failed, result = run_module(oom_rollback.main, common)
    assert not failed and result["changed"] is False and result["already_rolled_back"] is True


def test_rollback_with_an_empty_or_unknown_journal(host):
    failed, result = run_module(oom_rollback.main, host)
    assert not failed and result["rollback_of"] is None and result["changed"] is False
    run_module(oom_score_adj.main, dict(host, pid=77, value=0))
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id="oomguard-nosuch"))
    assert not failed and result["changed"] is False and result["rollback_of"] == "oomguard-nosuch"
    assert adj(host, 77) == 0


def test_rollback_with_an_unreadable_journal(host):
    os.makedirs(host["journal"])
    failed, result = run_module(oom_rollback.main, host)
    assert failed and "Failed to read the journal" in result["msg"]


def test_rollback_refused_by_the_kernel_fails(host, monkeypatch):
    run_module(oom_score_adj.main, dict(host, pid=77, value=0))
    from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change

    monkeypatch.setattr(oom_change, "set_runtime", lambda proc_path, item: "refused")
    failed, result = run_module(oom_rollback.main, host)
    assert failed and "from 0 to -1000" in result["msg"] and "CAP_SYS_RESOURCE" in result["msg"]


def test_rollback_lock_held(host):
    run_module(oom_score_adj.main, dict(host, pid=77, value=0))
    with jr.RunLock(host["journal"], "busy-run", "remediate"):
        failed, result = run_module(oom_rollback.main, host)
    assert failed and "busy-run" in result["msg"] and adj(host, 77) == 0


def test_a_run_id_reused_after_its_rollback_can_be_rolled_back_again(host):
    for _round in range(2):
        failed, result = run_module(oom_score_adj.main, dict(host, pid=77, value=0))
        assert not failed and result["changed"] and adj(host, 77) == 0
        failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=host["run_id"]))
        assert not failed and result["changed"] and adj(host, 77) == -1000


def test_a_rollback_with_things_not_restored_is_not_read_as_skipped(host):
    """A non-empty top-level ``skipped`` makes Ansible show the task as skipped (and changed=0)."""
    run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    import shutil

    shutil.rmtree(os.path.join(host["proc_path"], "4242"))  # exited since the run: its value cannot be restored
    failed, result = run_module(oom_rollback.main, host)
    assert not failed and result["changed"] is True and "skipped" not in result
    assert [item["pid"] for item in result["not_restored"]] == [4242]


@pytest.mark.parametrize("unit", ["../../x.service", "app", "a/b.service"])
def test_an_invalid_unit_name_is_an_error(host, unit):
    failed, result = run_module(oom_score_adj.main, dict(host, unit=unit, value=0, persist="systemd"))
    assert failed and "is not a valid systemd unit name" in result["msg"]
    assert not os.path.exists(host["root"]) and not os.path.exists(host["journal"])


def test_a_catastrophic_cmdline_regex_fails_before_any_change(host, monkeypatch):
    from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change

    monkeypatch.setattr(oom_change, "CMDLINE_MATCH_SECONDS", 0.5)
    build_proc_tree(host["proc_path"], processes=[{"pid": 500, "comm": "evil", "oom_score_adj": -1000,
                                                   "cmdline": ["a" * 40 + "!"]}])
    failed, result = run_module(oom_score_adj.main, dict(host, cmdline=r"(a+)+$", value=0))
    assert failed and "backtracks catastrophically" in result["msg"] and adj(host, 500) == -1000
    assert not os.path.exists(host["journal"])


def another_run_sets(monkeypatch, host, pid, value):
    """Make the host lock's acquisition look like another run that held it and set ``pid`` to ``value``."""
    real_acquire = jr.RunLock.acquire

    def acquire_after_another_run(lock):
        held = real_acquire(lock)
        with open(os.path.join(host["proc_path"], str(pid), "oom_score_adj"), "w", encoding="utf-8") as handle:
            handle.write("%d\n" % value)
        return held

    monkeypatch.setattr(jr.RunLock, "acquire", acquire_after_another_run)


def test_the_plan_is_read_under_the_lock(host, monkeypatch):
    """Another run changed the process between the module's first look and its lock: the change and
    its journal record use what was read under the lock (old 500), not the stale -1000."""
    another_run_sets(monkeypatch, host, 4242, 500)
    failed, result = run_module(oom_score_adj.main, dict(host, pid=4242, value=0))
    assert not failed and result["changed"] and adj(host, 4242) == 0
    assert [(c["old"], c["new"]) for c in result["changes"]] == [(500, 0)]
    intents = [r for r in jr.read_records(host["journal"])[0] if r["state"] == "intent"]
    assert [(r["old"], r["new"]) for r in intents] == [(500, 0)]


def test_nothing_left_to_change_under_the_lock(host, monkeypatch):
    another_run_sets(monkeypatch, host, 4242, 0)
    failed, result = run_module(oom_score_adj.main, dict(host, pid=4242, value=0))
    assert not failed and result["changed"] is False and result["changes"] == []
    assert jr.read_records(host["journal"])[0] == []


def hide_process(monkeypatch, pid):
    """Reading /proc/<pid>/* answers EACCES, as with hidepid=1 for another user's process."""
    from ansible_collections.oomguard.fleet.plugins.module_utils import proc_reader

    for name in ("read_small", "read_bytes"):
        real_read = getattr(proc_reader, name)

        def hidepid(path, _real=real_read):
            if "/%d/" % pid in path:
                raise PermissionError(13, "Permission denied", path)
            return _real(path)
        monkeypatch.setattr(proc_reader, name, hidepid)


def test_an_unreadable_process_fails_and_says_become(host, monkeypatch):
    hide_process(monkeypatch, 4242)
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0))
    assert failed and "become: true" in result["msg"] and "4242" in result["msg"]
    assert result["changed"] is False and result["vanished"] == []


def test_rollback_of_an_unreadable_process_fails_and_says_become(host, monkeypatch):
    run_module(oom_score_adj.main, dict(host, pid=4242, value=0))
    hide_process(monkeypatch, 4242)
    failed, result = run_module(oom_rollback.main, host)
    assert failed and "become: true" in result["msg"] and result["changed"] is False
    assert result["not_restored"] == []  # not "exited": it may still run


def test_a_drop_in_read_after_ours_fails_before_any_change_also_in_check_mode(host):
    late = os.path.join(host["root"], "run/systemd/system/app.service.d/zzz-local.conf")
    os.makedirs(os.path.dirname(late))
    with open(late, "w", encoding="utf-8") as handle:
        handle.write("[Service]\nOOMScoreAdjust=-1000\n")
    for check_mode in (True, False):
        failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"), check_mode=check_mode)
        assert failed and result["changed"] is False
        assert "%s sets OOMScoreAdjust=-1000 for app.service and systemd reads it after %s" % (late, dropin(host)) in result["msg"]
    assert adj(host, 4242) == -1000 and not os.path.exists(dropin(host)) and not os.path.exists(host["journal"])
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0))  # persist none: no drop-in, no check
    assert not failed and adj(host, 4242) == 0


def test_a_drop_in_we_did_not_write_needs_force(host):
    os.makedirs(os.path.dirname(dropin(host)))
    with open(dropin(host), "w", encoding="utf-8") as handle:
        handle.write("[Service]\nEnvironment=SECRET=1\n")
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd"))
    assert failed and "did not write" in result["msg"] and "force: true" in result["msg"] and result["changed"] is False
    assert adj(host, 4242) == -1000 and not os.path.exists(host["journal"])
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd", force=True))
    assert not failed and result["dropins"][0]["action"] == "taken over" and adj(host, 4242) == 0
    failed, result = run_module(oom_rollback.main, host)
    assert not failed and result["changed"]
    with open(dropin(host), encoding="utf-8") as handle:
        assert handle.read() == "[Service]\nEnvironment=SECRET=1\n"


def test_a_process_under_a_user_manager_is_reset_at_runtime_only(host):
    build_proc_tree(host["proc_path"], processes=[{"pid": 5000, "comm": "evil", "oom_score_adj": -1000,
                                                   "cgroup": "0::/user.slice/user-1000.slice/user@1000.service/app.slice/evil.service\n"}])
    failed, result = run_module(oom_score_adj.main, dict(host, pid=5000, value=0, persist="systemd", restart=True))
    assert not failed and adj(host, 5000) == 0 and result["dropins"] == [] and result["restarted"] == []
    assert "user manager user@1000.service" in result["unpersisted"][0]["reason"]
    assert not os.path.exists(os.path.join(host["root"], "etc"))
