# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.filter import remediate_role as filters
from ansible_collections.oomguard.fleet.plugins.plugin_utils import remediate_role as logic

RUN = "oomguard-20261129T020000Z-4711"
JAVA = {"pid": 4242, "name": "java", "unit": "app.service", "oom_score_adj": -1000, "rss_kb": 6000, "rule": "OOM002"}
SMALL = {"pid": 77, "name": "adhoc", "unit": None, "oom_score_adj": -1000, "rss_kb": 10, "rule": "OOM002"}
EXPOSURE = {"schema": 1, "level": "high", "flagged": [SMALL, JAVA]}
SNAP = {"schema": 1, "run_id": RUN, "status": "ok", "message": "1 snapshot accomplished"}


def plan(**kw):
    args = dict(snapshots=SNAP, run_id=RUN, mode="reset")
    args.update(kw)
    return logic.remediate_plan(kw.pop("exposure", EXPOSURE), **{k: v for k, v in args.items() if k != "exposure"})


def test_reset_with_a_good_snapshot_is_pending_largest_first():
    result = plan()
    assert result["status"] == "pending" and result["reason"] is None and result["run_id"] == RUN
    assert [(c["pid"], c["old"], c["new"]) for c in result["candidates"]] == [(4242, -1000, 0), (77, -1000, 0)]
    assert result["targets"] == [{"pid": 4242, "name": "java"}, {"pid": 77, "name": "adhoc"}]


def test_flag_mode_reports_and_says_how_to_reset():
    result = plan(mode="flag")
    assert result["status"] == "flagged" and "oomguard_remediate_mode: reset" in result["reason"]
    assert plan(mode="flag", exposure={"flagged": []})["status"] == "unchanged"


def test_nothing_flagged_is_unchanged_even_without_snapshot():
    assert plan(exposure={"level": "ok", "flagged": []}, snapshots=None)["status"] == "unchanged"


@pytest.mark.parametrize("snapshots,words", [
    (None, "oomguard_snapshots is not set"),
    ({}, "oomguard_snapshots is not set"),
    (dict(SNAP, status="failed", message="disk d-1: quota"), "status is 'failed': disk d-1: quota"),
    (dict(SNAP, status="skipped", message=None), "status is 'skipped': no message"),
    (dict(SNAP, run_id="oomguard-old"), "from run oomguard-old, not from this run"),
])
def test_snapshot_gate_refuses_and_names_the_waiver(snapshots, words):
    result = plan(snapshots=snapshots)
    assert result["status"] == "refused" and words in result["reason"]
    assert "oomguard_remediate_require_snapshot: false" in result["reason"] and result["changes"] == []
    assert plan(snapshots=snapshots, require_snapshot=False)["status"] == "pending"


def test_cap_refuses_the_host():
    result = plan(max_changes=1)
    assert result["status"] == "refused" and "2 processes are flagged, more than oomguard_remediate_max_changes (1)" in result["reason"]
    assert plan(max_changes=2)["status"] == "pending"


def test_missing_exposure_is_refused():
    assert "run the oomguard.fleet.assess role" in plan(exposure={})["reason"]
    assert plan(exposure=None)["status"] == "refused"


def test_include_adds_named_allowlisted_processes_once():
    processes = [{"pid": 1799, "name": "sshd", "oom_score_adj": -1000, "rss_kb": 900, "unit": "ssh.service"},
                 {"pid": 1800, "name": "sshd", "oom_score_adj": 0}, dict(JAVA), "junk", {"pid": "x", "name": "sshd", "oom_score_adj": -1000}]
    result = plan(include=["sshd", "java"], processes=processes)
    assert [c["pid"] for c in result["candidates"]] == [4242, 1799, 77]
    assert [c["pid"] for c in plan(processes=processes)["candidates"]] == [4242, 77]


BAD_INPUT = [({"mode": "fix"}, "oomguard_remediate_mode must be flag or reset"),
             ({"value": 5000}, "oomguard_remediate_value must be an integer from -1000 to 1000"),
             ({"value": True}, "oomguard_remediate_value"),
             ({"max_changes": -1}, "oomguard_remediate_max_changes must be an integer >= 0")]


@pytest.mark.parametrize("kw,words", BAD_INPUT)
def test_bad_role_input_names_the_variable(kw, words):
    with pytest.raises(logic.RemediatePlanError, match=words):
        plan(**kw)
    with pytest.raises(AnsibleFilterError, match="oomguard.fleet.remediate_plan: " + words):
        filters.remediate_plan(EXPOSURE, snapshots=SNAP, run_id=RUN, **kw)


def test_changes_fold_results():
    pending = plan()
    rows = [{"pid": 4242, "name": "java", "unit": "app.service", "old": -1000, "new": 0, "persist": "systemd", "dropin": "/d"}]
    results = [{"changed": True, "changes": rows, "vanished": [], "item": JAVA},
               {"changed": False, "changes": [], "vanished": [{"pid": 77, "name": "adhoc", "old": -1000}], "item": SMALL},
               "junk"]
    out = filters.remediate_changes(pending, results, False)
    assert out["status"] == "changed" and out["changes"] == rows and out["vanished"] == [{"pid": 77, "name": "adhoc"}]
    assert out["check_mode"] is False and out["schema"] == 1 and out["mode"] == "reset"
    assert logic.remediate_changes(pending, [], True)["status"] == "unchanged"
    failed = logic.remediate_changes(pending, [{"failed": True, "msg": "kernel refused", "item": JAVA}], False)
    assert failed["status"] == "failed" and failed["reason"] == "pid 4242 (java): kernel refused"
    single = logic.remediate_changes(pending, [{"failed": True, "msg": "Failed to change x: Is a directory", "changes": []}])
    assert single["reason"] == "Failed to change x: Is a directory" and "targets" not in single


def test_final_plans_pass_through():
    refused = plan(snapshots=None)
    assert logic.remediate_changes(refused, [{"failed": True}]) == refused


# -e key=value gives every variable as text: the plan converts it once, as Ansible's own boolean() and int do.
@pytest.mark.parametrize("text", ["false", "False", "no", "off", "0", "n"])
def test_snapshot_waiver_given_as_text_works(text):
    assert plan(snapshots=None, require_snapshot=text)["status"] == "pending"


@pytest.mark.parametrize("text", ["true", "yes", "on", "1"])
def test_snapshot_requirement_given_as_text_still_refuses(text):
    assert plan(snapshots=None, require_snapshot=text)["status"] == "refused"


def test_integers_given_as_text():
    assert plan(max_changes="1")["status"] == "refused"
    assert plan(max_changes=" 2 ")["status"] == "pending"
    assert [c["new"] for c in plan(value="-5")["candidates"]] == [-5, -5]


BAD_TEXT = [({"require_snapshot": "maybe"}, "oomguard_remediate_require_snapshot must be true or false, got 'maybe'"),
            ({"require_snapshot": None}, "oomguard_remediate_require_snapshot must be true or false, got None"),
            ({"max_changes": "ten"}, "oomguard_remediate_max_changes must be an integer >= 0, got 'ten'"),
            ({"max_changes": "1.5"}, "oomguard_remediate_max_changes must be an integer >= 0, got '1.5'"),
            ({"max_changes": 2.0}, "oomguard_remediate_max_changes must be an integer >= 0, got 2.0"),
            ({"value": "1001"}, "oomguard_remediate_value must be an integer from -1000 to 1000, got '1001'"),
            ({"value": ""}, "oomguard_remediate_value must be an integer from -1000 to 1000, got ''")]


@pytest.mark.parametrize("kw,words", BAD_TEXT)
def test_bad_text_names_the_variable(kw, words):
    with pytest.raises(AnsibleFilterError) as raised:
        filters.remediate_plan(EXPOSURE, snapshots=SNAP, run_id=RUN, mode="reset", **kw)
    assert str(raised.value) == "oomguard.fleet.remediate_plan: " + words


def test_bad_role_input_is_the_collections_error():
    from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError

    with pytest.raises(OomguardError, match="oomguard_remediate_mode"):
        logic.remediate_plan({"flagged": []}, mode="fix")
