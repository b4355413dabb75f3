# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the fleet_report action (the action itself runs in tests/system/test_report_role.py)."""

from __future__ import annotations

import json

from ansible_collections.oomguard.fleet.plugins.action import fleet_report as action


class TaggedStr(str):
    pass


class TaggedDict(dict):
    pass


def test_plain_copies_into_plain_types():
    value = TaggedDict(a=[TaggedStr("x"), (1, 2.5, True, None)], b=TaggedDict(c=TaggedStr("y")))
    out = action._plain(value)
    assert out == {"a": ["x", [1, 2.5, True, None]], "b": {"c": "y"}}
    assert not isinstance(out["b"], TaggedDict) and not isinstance(out["a"][0], TaggedStr)


def test_same_but(tmp_path):
    path = tmp_path / "h.json"
    data = {"host": "h", "written_at": "2026-11-29T03:00:00Z", "exposure": {"level": "ok"}}
    assert action._same_but(str(path), data, "written_at") is False            # no file
    path.write_text(json.dumps(dict(data, written_at="2026-11-28T03:00:00Z")))
    assert action._same_but(str(path), data, "written_at") is True             # only the time moved
    path.write_text(json.dumps(dict(data, exposure={"level": "high"})))
    assert action._same_but(str(path), data, "written_at") is False            # content changed
    path.write_text("{torn")
    assert action._same_but(str(path), data, "written_at") is False            # unreadable: rewrite it
    path.write_text("[]")
    assert action._same_but(str(path), data, "written_at") is False


def test_argument_spec_matches_the_documentation():
    import yaml
    from ansible_collections.oomguard.fleet.plugins.modules import fleet_report as docs
    documented = yaml.safe_load(docs.DOCUMENTATION)["options"]
    assert set(documented) == set(action.ARGUMENT_SPEC)
    for name, spec in action.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name].get("choices") == spec.get("choices"), name


def test_host_value_falls_back_to_facts():
    exposure = {"level": "high"}
    assert action._host_value({"oomguard_exposure": exposure}, "oomguard_exposure") is exposure
    assert action._host_value({"ansible_facts": {"oomguard_exposure": exposure}}, "oomguard_exposure") is exposure
    assert action._host_value({"ansible_facts": {}}, "oomguard_exposure") is None
    assert action._host_value({}, "oomguard_changes") is None


def test_host_value_reads_the_verdict_of_a_host_the_assess_task_lost():
    old = {"level": "ok"}
    lost = {"level": "unknown", "reason": "host unreachable: timed out"}
    registered = {"unreachable": True, "oomguard_exposure": lost}
    # An unreachable or failed task sets no facts: the registered result holds the newest verdict.
    assert action._host_value({"oomguard_exposure": old, "oomguard_assess_result": registered}, "oomguard_exposure") is lost
    failed = {"failed": True, "oomguard_exposure": lost}
    assert action._host_value({"oomguard_assess_result": failed}, "oomguard_exposure") is lost
    # A task that read the host also set the fact, which wins; other keys never come from the result.
    ok = {"changed": False, "oomguard_exposure": lost}
    assert action._host_value({"oomguard_exposure": old, "oomguard_assess_result": ok}, "oomguard_exposure") is old
    assert action._host_value({"oomguard_assess_result": {"failed": True, "oomguard_changes": {}}}, "oomguard_changes") is None
    assert action._host_value({"oomguard_assess_result": {"failed": True}}, "oomguard_exposure") is None


def test_stats_summary_for_set_stats():
    from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp
    records = [rp.make_record("h%02d" % i, {"level": "unknown", "reason": "r"}, written_at="2026-11-29T03:00:00Z") for i in range(60)]
    records.append(rp.make_record("db", {"level": "high", "findings": []}, written_at="2026-11-29T03:00:00Z"))
    report = rp.build_report(records, run_id="run-1")
    tripped = rp.gate(report, "high")
    stats = action.stats_summary(report, "high", tripped, {"json": "/r/oomguard-report.json"})
    assert stats["hosts"] == 61 and stats["worst_level"] == "high" and stats["run_id"] == "run-1"
    assert len(stats["unknown_hosts"]) == 50 and len(stats["gate"]["hosts"]) == 50 and stats["gate"]["hosts"][0] == "db"
    assert stats["gate"]["tripped"] is True and stats["files"] == {"json": "/r/oomguard-report.json"}
    json.dumps(stats)
    empty = action.stats_summary(rp.build_report([], expected_hosts=["x"]), "none", [], {})
    assert empty["worst_level"] is None and empty["unknown_hosts"] == ["x"] and empty["gate"]["tripped"] is False
