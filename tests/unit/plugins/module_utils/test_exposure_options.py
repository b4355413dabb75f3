# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that would silently switch a rule off are refused; a custom rule that fails at run
time names the rule and its query, never the facts it ran on."""

from __future__ import annotations

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

GIB = 1024 * 1024
SECRET = "SEKRET-hunter2"
PCT_OPTIONS = ("unkillable_high_pct", "unkillable_critical_pct", "unallowed_high_pct", "killable_min_pct",
               "available_low_pct", "sunreclaim_pct")


@pytest.fixture(name="facts")
def fixture_facts(tmp_path):
    java = {"pid": 4242, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000,
            "cmdline": ["java", "-Dpassword=x", SECRET]}
    oom = gather_oom_facts(vendor_tree(tmp_path, extra=[java]))
    # A value the redaction would not catch, to prove the error shows no fact at all.
    oom["processes"][0]["cmdline"] = "java " + SECRET
    return {"oom": oom}


@pytest.mark.parametrize("name", PCT_OPTIONS)
@pytest.mark.parametrize("value", [100.5, 1000, float("nan"), float("inf")])
def test_percent_above_100_or_not_a_number_is_refused(name, value):
    options = {name: value}
    if name == "unkillable_high_pct":
        options["unkillable_critical_pct"] = 100  # keep the critical >= high check out of the way
    with pytest.raises(ex.ExposureError) as info:
        ex.normalize_options(options)
    assert str(info.value).startswith("exposure option %s must be a percentage from 0 to 100, got " % name)


@pytest.mark.parametrize("name", ["allowlist_max_rss_kb", "slab_growth_kb_per_hour", "slab_growth_min_kb"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1])
def test_sizes_must_be_finite_numbers(name, value):
    with pytest.raises(ex.ExposureError) as info:
        ex.normalize_options({name: value})
    assert str(info.value).startswith("exposure option %s must be a finite number >= 0, got " % name)


def test_percent_edges_are_accepted():
    opts = ex.normalize_options(dict((name, 100) for name in PCT_OPTIONS))
    assert all(opts[name] == 100.0 for name in PCT_OPTIONS)
    assert ex.normalize_options(dict((name, 0) for name in PCT_OPTIONS))["sunreclaim_pct"] == 0.0


@pytest.mark.parametrize("query, detail", [
    ("sum(oom.processes)", "in function sum(), expected array-number, received dict"),
    ("length(oom.processes[0].pid)", "in function length(), expected string, array or object, received number"),
    ("abs(`1`, `2`)", "Expected 1 argument for function abs(), received 2"),
])
def test_runtime_error_names_the_rule_and_the_query_only(facts, query, detail):
    rules = [{"id": "SITE1", "severity": "high", "query": query, "message": "m"}]
    with pytest.raises(ex.ExposureError) as info:
        ex.assess(facts, custom_rules=rules)
    text = str(info.value)
    assert text == "custom rule SITE1: query %r failed on this host's facts: %s" % (query, detail)
    assert SECRET not in text and "java" not in text and "4242" not in text


def test_unexpected_exception_in_a_rule_names_its_type_only(facts, monkeypatch):
    rules = ex.validate_custom_rules([{"id": "SITE2", "severity": "low", "query": "oom", "message": "m"}])

    class Boom:
        def search(self, document):
            raise ValueError("leaked %r" % document)
    with pytest.raises(ex.ExposureError) as info:
        ex.run_custom_rules([(rules[0][0], Boom())], facts, {}, "h")
    assert str(info.value) == "custom rule SITE2: query 'oom' failed on this host's facts: ValueError"
