# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oom_rollback on a damaged journal: a torn tail never swallows the next run, an unreadable line that
may hold a change of the run fails the rollback naming the line, and the journal is read under the lock."""

from __future__ import annotations

import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.module_utils import rollback_plan as rb
from ansible_collections.oomguard.fleet.plugins.modules import oom_rollback, oom_score_adj
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

RUN = "oomguard-20261129T020000Z-1"
OTHER = "oomguard-20261129T030000Z-2"


@pytest.fixture
def host(tmp_path):
    proc = build_proc_tree(tmp_path / "proc", processes=[
        {"pid": 4242, "comm": "java", "oom_score_adj": -1000, "unit": "app.service"},
        {"pid": 77, "comm": "adhoc", "oom_score_adj": -1000}])
    return {"proc_path": proc, "root": str(tmp_path / "root"), "journal": str(tmp_path / "state" / "journal.jsonl")}


def adj(host, pid=4242):
    with open(os.path.join(host["proc_path"], str(pid), "oom_score_adj"), encoding="utf-8") as handle:
        return int(handle.read())


def dropin(host):
    return rem.dropin_path(rem.systemd_dir(host["root"]), "app.service")


def remediate(host, run_id=RUN, **kwargs):
    args = dict(host, run_id=run_id, name="java", value=0, persist="systemd")
    args.update(kwargs)
    failed, result = run_module(oom_score_adj.main, args)
    assert not failed and result["changed"], result
    return result


def lines(host):
    with open(host["journal"], "rb") as handle:
        return handle.read().split(b"\n")


def write_lines(host, raw):
    with open(host["journal"], "wb") as handle:
        handle.write(b"\n".join(raw))


def test_a_torn_tail_does_not_swallow_the_next_run(host):
    os.makedirs(os.path.dirname(host["journal"]), mode=0o700)
    with open(host["journal"], "wb") as handle:  # an earlier run died mid-write
        handle.write(b'{"run_id": "%s", "at": "2026-11-29T01:00:00Z", "con' % OTHER.encode())
    os.chmod(host["journal"], 0o600)
    remediate(host)
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert not failed and result["changed"] and result["journal_bad_lines"] == 1 and result["journal_damaged_lines"] == [], result
    assert adj(host) == -1000 and not os.path.exists(dropin(host))


def test_a_torn_line_of_an_earlier_version_fails_the_rollback_until_removed(host):
    """Written run id last, a torn line cannot tell whose it was: it fails the rollback, which says what to do."""
    os.makedirs(os.path.dirname(host["journal"]), mode=0o700)
    write_lines(host, [b'{"at": "2026-11-29T01:00:00Z", "content": "[Serv'])
    os.chmod(host["journal"], 0o600)
    remediate(host)
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert failed and result["journal_damaged_lines"] == [1] and "delete one that does not" in result["msg"]
    raw = lines(host)
    write_lines(host, raw[1:])
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert not failed and result["changed"] and adj(host) == -1000 and not os.path.exists(dropin(host))


def test_a_change_glued_to_a_torn_line_fails_the_rollback_naming_the_line(host):
    """The journal of an earlier version: the torn line and the run's first record (its drop-in) on one line."""
    remediate(host)
    raw = lines(host)
    write_lines(host, [b'{"at": "2026-11-29T01:00:00Z", "content": "[Serv' + raw[0]] + raw[1:])
    for check_mode in (True, False):
        failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN), check_mode=check_mode)
        assert failed and result["changed"] is False and result["journal_damaged_lines"] == [1]
        assert "line(s) 1 cannot be read and may hold a change of run %s" % RUN in result["msg"]
        assert "changed nothing" in result["msg"] and "sed -n '1p'" in result["msg"]
    assert adj(host) == 0 and os.path.exists(dropin(host))  # nothing half-undone
    assert not jr.rolled_back(jr.read_records(host["journal"])[0], RUN)


def test_a_torn_record_of_the_run_fails_the_rollback(host):
    remediate(host)
    raw = lines(host)
    raw[2] = raw[2][:len(raw[2]) // 2]  # the runtime intent, cut in the middle
    write_lines(host, raw)
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert failed and result["journal_damaged_lines"] == [3] and adj(host) == 0


def test_a_torn_line_of_another_run_blocks_only_an_unnamed_rollback(host):
    remediate(host)
    with open(host["journal"], "ab") as handle:
        handle.write(jr.encode_record({"run_id": OTHER, "op": "runtime", "state": "intent"}).encode()[:40] + b"\n")
    failed, result = run_module(oom_rollback.main, host)
    assert failed and "the newest run (%s, as far as the readable lines tell)" % RUN in result["msg"]
    assert "rollback_run_id" in result["msg"] and result["journal_damaged_lines"] == [5] and adj(host) == 0
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert not failed and result["changed"] and result["journal_bad_lines"] == 1 and adj(host) == -1000


def test_an_unreadable_journal_with_no_readable_change_fails(host):
    os.makedirs(os.path.dirname(host["journal"]), mode=0o700)
    write_lines(host, [b'{"run_id": "oomguard-2026', b""])
    failed, result = run_module(oom_rollback.main, host)
    assert failed and result["rollback_of"] is None and "a run (the readable lines record no change)" in result["msg"]


def test_changes_out_of_order_fail_the_rollback(host, monkeypatch):
    remediate(host)
    monkeypatch.setattr(jr, "format_time", lambda stamp=None: "2099-01-01T00:00:00Z")
    run_module(oom_score_adj.main, dict(host, run_id=RUN, pid=77, value=0))  # a later module run, same run id
    raw = lines(host)
    assert len(raw) == 7 and raw[-1] == b""
    raw[2], raw[4] = raw[4], raw[2]  # this run's last runtime intent moved before its first
    write_lines(host, raw)
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert failed and "out of order" in result["msg"] and result["journal_damaged_lines"] == [5]
    assert adj(host) == 0 and adj(host, 77) == 0


def test_the_journal_is_read_under_the_lock(host, monkeypatch):
    """Another rollback of the same run finished between this module's first look and its lock: what
    is restored is decided from the journal read under the lock, so nothing is done twice."""
    remediate(host)
    real_acquire = jr.RunLock.acquire

    def acquire_after_another_rollback(lock):
        monkeypatch.setattr(jr.RunLock, "acquire", real_acquire)
        records = jr.read_records(host["journal"])[0]
        rem.apply(rb.plan_rollback(records, RUN, host["proc_path"]), jr.Journal(host["journal"], OTHER),
                  host["proc_path"], False, None)
        return real_acquire(lock)

    monkeypatch.setattr(jr.RunLock, "acquire", acquire_after_another_rollback)
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN, _ansible_diff=True))
    assert not failed and result["changed"] is False and result["restored"] == [] and result["dropins"] == []
    assert result["already_rolled_back"] is True and result["diff"] == []
    records = jr.read_records(host["journal"])[0]
    assert [r["run_id"] for r in records if r["op"] == "rollback-complete"] == [OTHER]
    assert adj(host) == -1000


def test_damage_that_appears_before_the_lock_fails_the_rollback(host, monkeypatch):
    remediate(host)
    real_acquire = jr.RunLock.acquire

    def acquire_after_damage(lock):
        with open(host["journal"], "ab") as handle:
            handle.write(b'{"run_id": "%s", "op": "dro\n' % RUN.encode())
        return real_acquire(lock)

    monkeypatch.setattr(jr.RunLock, "acquire", acquire_after_damage)
    failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
    assert failed and "line(s) 5 cannot be read" in result["msg"] and result["changed"] is False and adj(host) == 0
