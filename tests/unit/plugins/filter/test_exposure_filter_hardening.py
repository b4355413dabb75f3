# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exposure filter end to end (facts module in, verdict out): no false ``ok`` for a host
with a process it could not read, refused thresholds, and the PANIC rules in both states.

The rules themselves are tested in tests/unit/plugins/module_utils (test_unreadable_processes,
test_exposure_options, test_panic_rules); this file holds what needs the controller's Ansible."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.filter.exposure import exposure
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import gate_tripped
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.modules import oom_score_facts
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.plugins.module_utils.test_panic_rules import facts_of
from ansible_collections.oomguard.fleet.tests.unit.plugins.module_utils.test_unreadable_processes import JAVA, deny
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree


def test_module_then_filter_is_not_ok_without_become(tmp_path, monkeypatch):
    tree = vendor_tree(tmp_path, extra=[JAVA])
    failed, readable = run_module(oom_score_facts.main, {"proc_path": tree})
    assert not failed and exposure(readable["ansible_facts"], host="h1")["level"] == "critical"
    deny(monkeypatch, 4242)
    failed, result = run_module(oom_score_facts.main, {"proc_path": tree})
    assert not failed and result["ansible_facts"]["oom"]["errors"]["unreadable_count"] == 1
    verdict = exposure(result["ansible_facts"], host="h1")
    assert verdict["level"] == "unknown" and "become: true" in verdict["reason"]
    assert gate_tripped(verdict["level"], "critical")


def test_nan_threshold_no_longer_hides_a_critical_host(tmp_path):
    facts = {"oom": gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))}
    assert exposure(facts)["level"] == "critical"
    with pytest.raises(AnsibleFilterError) as info:
        exposure(facts, unkillable_critical_pct=float("nan"))
    assert "unkillable_critical_pct must be a percentage from 0 to 100, got nan" in str(info.value)
    with pytest.raises(AnsibleFilterError) as info:
        exposure(facts, unkillable_high_pct=150, unkillable_critical_pct=150)
    assert "unkillable_high_pct must be a percentage from 0 to 100, got 150" in str(info.value)


def test_panic_rules_in_both_states(tmp_path):
    hung = exposure(facts_of(tmp_path / "a", panic=0, crash=0), host="lab")
    assert [f["id"] for f in hung["findings"]] == ["PANIC001", "PANIC002"] and hung["level"] == "medium"
    safe = exposure(facts_of(tmp_path / "b", panic=10, backend="ramoops", pstore_mounted=True), host="lab")
    assert safe["findings"] == [] and safe["level"] == "ok"
    with pytest.raises(AnsibleFilterError) as info:
        exposure(facts_of(tmp_path / "c"), require_panic_record="perhaps")
    assert "require_panic_record must be true or false, got 'perhaps'" in str(info.value)
