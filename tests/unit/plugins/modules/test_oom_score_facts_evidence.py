# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oom_score_facts' evidence subset through the module's main()."""

from __future__ import annotations

import os

import pytest

from ansible_collections.oomguard.fleet.plugins.modules import oom_score_facts
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

SEED = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "evidence", "vendor-vmcore-dmesg.txt")


def test_evidence_subset_finds_the_vendor_panic_in_one_call(tmp_path):
    crash = tmp_path / "host" / "var" / "crash" / "127.0.0.1-2026-11-28-03:04:05"
    crash.mkdir(parents=True)
    with open(SEED) as handle:
        (crash / "vmcore-dmesg.txt").write_text(handle.read())
    args = {"proc_path": vendor_tree(tmp_path / "proc"), "gather_subset": ["oom", "evidence"],
            "evidence_root": str(tmp_path / "host"), "evidence_days": 0}
    failed, result = run_module(oom_score_facts.main, args, check_mode=True)
    assert not failed and result["changed"] is False
    assert set(result["ansible_facts"]) == {"oom", "oom_evidence"}
    evidence = result["ansible_facts"]["oom_evidence"]
    assert evidence["panics"]["no_killable_count"] == 1
    assert [s["name"] for s in evidence["sources"] if s["read"]] == ["kdump"]
    journal = [s for s in evidence["sources"] if s["name"] == "journal"][0]
    assert journal["read"] is False  # a fixture root without a persistent journal
    assert journal["reason"] in ("journalctl not found", "no persistent journal under %s/var/log/journal" % (tmp_path / "host"))


@pytest.mark.parametrize("args, text", [
    ({"evidence_days": -1}, "evidence_days must be 0 or a positive number, not -1"),
    ({"evidence_max_bytes": 0}, "evidence_max_bytes must be at least 1, not 0"),
])
def test_evidence_bounds_are_checked(tmp_path, args, text):
    args = dict(args, proc_path=vendor_tree(tmp_path), gather_subset=["evidence"])
    failed, result = run_module(oom_score_facts.main, args)
    assert failed and result["msg"] == text
