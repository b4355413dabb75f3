# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

from ansible_collections.oomguard.fleet.plugins.modules import slabinfo_facts
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree, slabinfo_text

CACHES = [{"name": "dentry", "num_slabs": 40}, {"name": "kmalloc-64", "num_slabs": 10}]


def tree(root, caches=None):
    return build_proc_tree(root, [{"pid": 1}], slabinfo=slabinfo_text(CACHES if caches is None else caches))


def test_facts(tmp_path):
    failed, result = run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p")), "top": 1})
    assert not failed and result["changed"] is False
    facts = result["ansible_facts"]["slabinfo"]
    assert facts["available"] and facts["cache_count"] == 2 and [c["name"] for c in facts["caches"]] == ["dentry"]
    assert "growth" not in facts


def test_baseline_store_then_compare(tmp_path):
    path = str(tmp_path / "var" / "b.json")
    failed, result = run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p")), "baseline": "compare",
                                                      "baseline_path": path})
    assert result["ansible_facts"]["slabinfo"]["growth"]["message"].endswith("run with baseline=store to create one")
    assert not os.path.exists(path)
    run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p")), "baseline": "store", "baseline_path": path},
               check_mode=True)
    assert not os.path.exists(path)
    result = run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p")), "baseline": "store",
                                              "baseline_path": path})[1]
    assert result["changed"] is False and os.path.exists(path)
    grown = [{"name": "dentry", "num_slabs": 400}, {"name": "kmalloc-64", "num_slabs": 10}]
    result = run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p2"), grown), "baseline": "compare",
                                              "baseline_path": path})[1]
    growth = result["ansible_facts"]["slabinfo"]["growth"]
    assert growth["baseline"] is True
    assert [(c["name"], c["growth_kb"]) for c in growth["caches"]] == [("dentry", 360 * os.sysconf("SC_PAGE_SIZE") // 1024)]


def test_absent_slabinfo_is_not_a_failure(tmp_path):
    failed, result = run_module(slabinfo_facts.main, {"proc_path": build_proc_tree(str(tmp_path / "p"), [{"pid": 1}])})
    assert not failed
    assert result["ansible_facts"]["slabinfo"]["available"] is False


def test_negative_top_refused(tmp_path):
    failed, result = run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p")), "top": -2})
    assert failed and result["msg"] == "top must be 0 (all caches) or a positive number, not -2"


def test_store_failure_message(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    failed, result = run_module(slabinfo_facts.main, {"proc_path": tree(str(tmp_path / "p")), "baseline": "store",
                                                      "baseline_path": str(blocker / "b.json")})
    assert failed and result["msg"].startswith("Failed to read slab facts: Failed to store the slab baseline at ")


def test_malformed_slabinfo(tmp_path):
    root = build_proc_tree(str(tmp_path / "p"), [{"pid": 1}], slabinfo="slabinfo - version: 2.1\n# h\nx 1 2 3 4 5\n")
    failed, result = run_module(slabinfo_facts.main, {"proc_path": root})
    assert failed and result["msg"] == ("Failed to read slab facts: %s line 3: missing ': slabdata <active_slabs> "
                                        "<num_slabs> <sharedavail>'" % os.path.join(root, "slabinfo"))
