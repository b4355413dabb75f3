# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oom_score_adj and oom_rollback report changed only for what they did: a run that fails before
its first change (the host lock is held, the journal cannot be written) says changed: false."""

from __future__ import annotations

import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.modules import oom_rollback, oom_score_adj
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

RUN_ID = "oomguard-20261129T020000Z-7"


@pytest.fixture
def host(tmp_path):
    proc = build_proc_tree(tmp_path / "proc", processes=[{"pid": 4242, "comm": "java", "oom_score_adj": -1000, "unit": "app.service"}])
    return {"proc_path": proc, "root": str(tmp_path / "root"), "journal": str(tmp_path / "state" / "journal.jsonl")}


def adj(host):
    with open(os.path.join(host["proc_path"], "4242", "oom_score_adj"), encoding="utf-8") as handle:
        return int(handle.read())


def dropin(host):
    return os.path.join(host["root"], "etc/systemd/system/app.service.d/zz-oomguard.conf")


def test_reset_with_the_lock_held_reports_no_change(host):
    with jr.RunLock(host["journal"], "other-run", "remediate"):
        failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd", run_id=RUN_ID))
    assert failed and "holds the lock" in result["msg"]
    assert result["changed"] is False and result["changes"] == [] and result["dropins"] == []
    assert adj(host) == -1000 and not os.path.exists(dropin(host))


def test_reset_with_an_unwritable_journal_reports_no_change(host, tmp_path):
    (tmp_path / "blocker").write_text("")
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd",
                                                         journal=str(tmp_path / "blocker" / "journal.jsonl")))
    assert failed and "Failed to create the journal directory" in result["msg"]
    assert result["changed"] is False and adj(host) == -1000 and not os.path.exists(dropin(host))


def test_rollback_with_the_lock_held_reports_no_change(host):
    failed, result = run_module(oom_score_adj.main, dict(host, name="java", value=0, persist="systemd", run_id=RUN_ID))
    assert not failed and result["changed"] is True and adj(host) == 0
    with jr.RunLock(host["journal"], "other-run", "remediate"):
        failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN_ID))
    assert failed and "holds the lock" in result["msg"]
    assert result["changed"] is False and result["restored"] == [] and result["dropins"] == []
    assert adj(host) == 0 and os.path.exists(dropin(host))
