# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oomguard.fleet.exposure filter: same verdict as the rules, errors as AnsibleFilterError.

Its use in Jinja through ansible-playbook is covered by tests/system/test_assess_role.py."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.filter.exposure import FilterModule, exposure, exposure_gate
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

GIB = 1024 * 1024


@pytest.fixture(name="java_facts")
def fixture_java_facts(tmp_path):
    java = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000}
    return {"oom": gather_oom_facts(vendor_tree(tmp_path, extra=[java]))}


def test_filter_is_registered():
    assert FilterModule().filters() == {"exposure": exposure, "exposure_gate": exposure_gate}


def test_filter_judges_and_passes_options(java_facts):
    assert exposure(java_facts, host="web01")["level"] == "critical"
    relaxed = exposure(java_facts, host="web01", unkillable_high_pct=90, unkillable_critical_pct=95,
                       allowlist=["sshd", "systemd-udevd", {"name": "java", "max_rss_kb": 8 * GIB}])
    assert relaxed["level"] == "ok" and relaxed["host"] == "web01"


@pytest.mark.parametrize("kwargs, text", [
    ({"bogus": 1}, "oomguard.fleet.exposure: unknown exposure option 'bogus'"),
    ({"custom_rules": [{"id": "R1", "severity": "low", "query": "[", "message": "m"}]},
     "oomguard.fleet.exposure: custom rule R1: invalid JMESPath query"),
])
def test_filter_errors_are_filter_errors(java_facts, kwargs, text):
    with pytest.raises(AnsibleFilterError) as info:
        exposure(java_facts, **kwargs)
    assert text in str(info.value)


@pytest.mark.parametrize("fail_on, message", [
    ("never", ""), ("none", ""), ("critical", ""),
    ("high", "web01 is high, at or above oomguard_assess_fail_on=high (OOM002)"),
    ("low", "web01 is high, at or above oomguard_assess_fail_on=low (OOM002)"),
])
def test_gate_at_or_above_the_level(fail_on, message):
    verdict = {"host": "web01", "level": "high", "findings": [{"id": "OOM002"}]}
    assert exposure_gate(verdict, fail_on, "oomguard_assess_fail_on") == message


def test_unknown_reaches_every_gate_that_is_set_with_its_reason():
    verdict = {"host": "db01", "level": "unknown", "reason": "host unreachable: refused", "findings": []}
    assert exposure_gate(verdict, "critical") == "db01 is unknown, at or above fail_on=critical (host unreachable: refused)"
    assert exposure_gate(verdict, "never") == ""
    assert exposure_gate(verdict, "none") == ""


@pytest.mark.parametrize("verdict, fail_on, error", [
    ({"host": "a", "level": "ok", "findings": []}, "severe", "fail_on must be one of none, low, medium, high, critical, never, got 'severe'"),
    ({"host": "a"}, "high", "the input must be an oomguard_exposure verdict"),
    ("critical", "high", "the input must be an oomguard_exposure verdict"),
])
def test_gate_rejects_bad_input(verdict, fail_on, error):
    with pytest.raises(AnsibleFilterError, match=error):
        exposure_gate(verdict, fail_on)
