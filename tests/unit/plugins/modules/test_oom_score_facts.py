# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.oomguard.fleet.plugins.modules import oom_score_facts
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree, slabinfo_text, vendor_tree


def test_vendor_tree_default_subset(tmp_path):
    failed, result = run_module(oom_score_facts.main, {"proc_path": vendor_tree(tmp_path)})
    assert not failed and result["changed"] is False
    assert set(result["ansible_facts"]) == {"oom"}
    oom = result["ansible_facts"]["oom"]
    assert oom["summary"]["unkillable_count"] == 2
    assert sorted(p["name"] for p in oom["processes"] if p["oom_score_adj"] == -1000) == ["sshd", "systemd-udevd"]


def test_check_mode_gives_the_same_facts(tmp_path):
    tree = vendor_tree(tmp_path)
    normal = run_module(oom_score_facts.main, {"proc_path": tree})[1]
    check = run_module(oom_score_facts.main, {"proc_path": tree}, check_mode=True)[1]
    assert check["ansible_facts"] == normal["ansible_facts"] and check["changed"] is False


def test_slabinfo_subset_in_the_same_call(tmp_path):
    tree = vendor_tree(tmp_path, slabinfo=slabinfo_text([{"name": "dentry", "num_slabs": 4}]))
    path = str(tmp_path / "state" / "b.json")
    args = {"proc_path": tree, "gather_subset": ["oom", "slabinfo"], "slabinfo_top": 1, "slabinfo_baseline": "store",
            "slabinfo_baseline_path": path}
    failed, result = run_module(oom_score_facts.main, args, check_mode=True)
    assert not failed and set(result["ansible_facts"]) == {"oom", "slabinfo"}
    assert result["ansible_facts"]["slabinfo"]["caches"][0]["name"] == "dentry"
    assert result["ansible_facts"]["slabinfo"]["growth"]["stored"] is False
    assert not os.path.exists(path)
    failed, result = run_module(oom_score_facts.main, args)
    assert result["ansible_facts"]["slabinfo"]["growth"]["stored"] is True and result["changed"] is False
    assert os.path.exists(path)


def test_all_subset(tmp_path):
    (tmp_path / "host").mkdir()
    result = run_module(oom_score_facts.main, {"proc_path": vendor_tree(tmp_path / "proc"), "gather_subset": ["all"],
                                               "evidence_root": str(tmp_path / "host")})[1]
    assert set(result["ansible_facts"]) == set(subset[0] for subset in oom_score_facts.SUBSETS.values())
    assert oom_score_facts.selected_subsets(["all"]) == sorted(oom_score_facts.SUBSETS)
    assert result["ansible_facts"]["slabinfo"]["available"] is False


def test_unknown_subset_is_refused(tmp_path):
    failed, result = run_module(oom_score_facts.main, {"proc_path": vendor_tree(tmp_path), "gather_subset": ["bogus"]})
    assert failed and "gather_subset" in result["msg"]


@pytest.mark.parametrize("option", ["top_killable", "cmdline_max", "slabinfo_top"])
def test_negative_sizes_are_refused(tmp_path, option):
    failed, result = run_module(oom_score_facts.main, {"proc_path": vendor_tree(tmp_path), option: -1})
    assert failed and result["msg"] == "%s must be 0 or a positive number, not -1" % option


def test_malformed_file_fails_with_file_and_line(tmp_path):
    tree = vendor_tree(tmp_path)
    with open(os.path.join(tree, "1799", "stat"), "w") as handle:
        handle.write("1799 sshd S\n")
    failed, result = run_module(oom_score_facts.main, {"proc_path": tree})
    assert failed
    assert result["msg"] == "Failed to gather oom facts: %s line 1: no '(comm)' field" % os.path.join(tree, "1799", "stat")
    assert "exception" not in result


def test_slabinfo_failure_keeps_the_facts_gathered_so_far(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1}], slabinfo="slabinfo - version: 9.9\n")
    failed, result = run_module(oom_score_facts.main, {"proc_path": tree, "gather_subset": ["oom", "slabinfo"]})
    assert failed and "unsupported slabinfo version 9.9" in result["msg"]
    assert result["msg"].startswith("Failed to gather slabinfo facts: ")
    assert result["ansible_facts"]["oom"]["summary"]["process_count"] == 1


def test_not_a_procfs(tmp_path):
    failed, result = run_module(oom_score_facts.main, {"proc_path": str(tmp_path / "none")})
    assert failed and "is proc_path a procfs mount?" in result["msg"]
