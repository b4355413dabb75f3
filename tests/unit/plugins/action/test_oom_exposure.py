# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oom_exposure action with the remote round trip replaced by the facts of a fixture procfs tree.

The fake ``_execute_module`` returns what oomguard.fleet.oom_score_facts returns (it calls the
same gather functions on a fixture tree), a module failure, or raises a lost connection.
"""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
import yaml

from ansible import constants as ansible_constants
from ansible.errors import AnsibleConnectionFailure, AnsibleError

from ansible_collections.oomguard.fleet.plugins.action import oom_exposure as action
from ansible_collections.oomguard.fleet.plugins.module_utils import _contract as contract
from ansible_collections.oomguard.fleet.plugins.module_utils.evidence import gather_evidence
from ansible_collections.oomguard.fleet.plugins.module_utils.exposure import DEFAULTS, assess
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import FACTS_ARGUMENT_SPEC, gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts
from ansible_collections.oomguard.fleet.plugins.modules import oom_exposure as docs
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import slabinfo_text, vendor_tree

GIB = 1024 * 1024
JAVA = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": 6 * GIB, "oom_score_adj": -1000, "unit": "app.service"}


def facts_of(proc_root, evidence_root):
    """What oom_score_facts returns for gather_subset=[oom, slabinfo, evidence] on the tree."""
    return {
        "oom": gather_oom_facts(proc_path=str(proc_root), adj_threshold=-500, top_killable=10, cmdline_max=256, all_processes=False),
        "slabinfo": gather_slabinfo_facts(proc_path=str(proc_root), top=20, baseline=None, baseline_path="/nonexistent", check_mode=True),
        "oom_evidence": gather_evidence(root=str(evidence_root), since_days=30, max_bytes=4096,
                                        run_command=None, journalctl=None),
    }


class Harness:
    def __init__(self, tmp_path, monkeypatch):
        self.tmp = tmp_path
        self.calls = []
        self.shown = []
        self.outcome = None
        monkeypatch.setattr(action.display, "display", lambda msg, *a, **kw: self.shown.append(msg))

    def tree(self, extra=()):
        (self.tmp / "root").mkdir(exist_ok=True)
        proc = vendor_tree(self.tmp / ("proc%d" % len(self.calls)), extra=extra, slabinfo=slabinfo_text([{"name": "dentry"}]))
        self.outcome = {"changed": False, "ansible_facts": facts_of(proc, self.tmp / "root"), "invocation": {"module_args": {}}}
        return self

    def run(self, check_mode=False, task_vars=None, **args):
        task = mock.MagicMock()
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.diff = False
        plugin = action.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)

        def fake_execute_module(module_name=None, module_args=None, task_vars=None, **kwargs):
            self.calls.append((module_name, dict(module_args)))
            if isinstance(self.outcome, Exception):
                raise self.outcome
            return json.loads(json.dumps(self.outcome))

        plugin._execute_module = fake_execute_module
        variables = {"inventory_hostname": "web01"}
        variables.update(task_vars or {})
        return plugin.run(task_vars=variables)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    return Harness(tmp_path, monkeypatch)


def test_one_round_trip_with_the_facts_options_and_the_same_verdict_as_the_filter(harness):
    harness.tree()
    result = harness.run(gather_subset=["oom", "slabinfo", "evidence"], proc_path="/host/proc", slabinfo_baseline="store")
    assert len(harness.calls) == 1
    name, args = harness.calls[0]
    assert name == "oomguard.fleet.oom_score_facts"
    assert set(args) == set(FACTS_ARGUMENT_SPEC)
    assert args["proc_path"] == "/host/proc" and args["slabinfo_baseline"] == "store"
    assert args["gather_subset"] == ["oom", "slabinfo", "evidence"] and args["adj_threshold"] == -500
    assert not result.get("failed"), result
    facts = result["ansible_facts"]
    assert set(facts) == {"oom", "slabinfo", "oom_evidence", "oomguard_exposure"}
    exposure = facts["oomguard_exposure"]
    expected = assess(harness.outcome["ansible_facts"], host="web01")
    for key in ("level", "findings", "figures", "flagged", "skipped", "summary"):
        assert exposure[key] == expected[key], key
    assert exposure["level"] == "ok" and exposure["host"] == "web01"
    assert result["msg"] == [exposure["summary"]]
    assert result["gate_tripped"] is False and result["changed"] is False
    assert result["_ansible_verbose_override"] is True
    assert harness.shown == [exposure["summary"]]


def test_findings_are_shown_under_the_summary(harness):
    harness.tree(extra=[JAVA])
    result = harness.run(gather_subset=["all"])
    exposure = result["ansible_facts"]["oomguard_exposure"]
    assert exposure["level"] == "critical"
    assert result["msg"][0].startswith("web01: critical (")
    assert any(line.startswith("OOM002: java (pid 4242, 6.0 GiB RSS, unit app.service)") for line in result["msg"])
    shown = harness.shown[0].splitlines()
    assert shown[0] == result["msg"][0]
    assert shown[1:] == ["    " + line for line in result["msg"][1:]]


def test_rule_options_and_custom_rules_reach_the_rules(harness):
    harness.tree()
    rules = [{"id": "SITE1", "severity": "low", "query": "oom.processes[?name == 'sshd'].pid", "message": "sshd {result} on {host}"}]
    result = harness.run(allowlist=["systemd-udevd"], custom_rules=rules, host="renamed")
    exposure = result["ansible_facts"]["oomguard_exposure"]
    assert exposure["host"] == "renamed"
    assert [f["name"] for f in exposure["flagged"]] == ["sshd"]
    assert [f["message"] for f in exposure["findings"] if f["id"] == "SITE1"] == ["sshd 1799 on renamed"]


def test_thresholds_move_the_level(harness):
    harness.tree(extra=[dict(JAVA, rss_kb=4 * GIB, comm="sshd")])
    # sshd at -1000 with 4 GiB (17% of MemTotal): above its allowlist bound, OOM001 by share
    default = harness.run()["ansible_facts"]["oomguard_exposure"]
    relaxed = harness.run(unkillable_high_pct=50, unkillable_critical_pct=60, allowlist_max_rss_kb=8 * GIB,
                          unallowed_high_pct=50)["ansible_facts"]["oomguard_exposure"]
    assert "OOM001" in [f["id"] for f in default["findings"]]
    assert "OOM001" not in [f["id"] for f in relaxed["findings"]]
    assert relaxed["level"] == "ok"


def test_module_failure_is_unknown_with_the_reason_and_partial_facts(harness):
    harness.outcome = {"failed": True, "msg": "Failed to gather oom facts: /nope/meminfo: No such file",
                       "ansible_facts": {"slabinfo": {"schema": 1}, "stray": 1}}
    result = harness.run()
    exposure = result["oomguard_exposure"]
    assert exposure["level"] == "unknown"
    assert exposure["reason"] == "fact gathering failed: Failed to gather oom facts: /nope/meminfo: No such file"
    assert result["gather_error"] == "Failed to gather oom facts: /nope/meminfo: No such file"
    # Failed in Ansible's terms (recap failed=1, exit 2); a failed task sets no facts, so none are returned.
    assert result["failed"] is True and not result.get("unreachable")
    assert "ansible_facts" not in result
    assert result["msg"][0].startswith("web01: unknown (fact gathering failed")
    assert harness.shown == []                 # the failure output shows msg itself


def test_module_failure_with_only_an_exception_names_it():
    summary = mock.Mock()
    summary.event.msg = "name 'params' is not defined"
    facts, gathered = action.gather_outcome({"failed": True, "exception": summary})
    assert facts == {} and gathered["msg"] == "name 'params' is not defined"
    assert action.gather_outcome({"failed": True, "exception": "Traceback\n  x\nValueError: boom"})[1]["msg"] == "ValueError: boom"
    assert action.gather_outcome({"failed": True})[1]["msg"] == "no message"


def test_unreachable_host_is_unknown_and_not_a_crash(harness):
    harness.outcome = AnsibleConnectionFailure("Failed to connect to the host via ssh: Connection refused")
    result = harness.run()
    exposure = result["oomguard_exposure"]
    assert exposure["level"] == "unknown"
    assert exposure["reason"].startswith("host unreachable: Failed to connect to the host via ssh")
    # Unreachable in Ansible's terms (recap unreachable=1, exit 4), with the verdict in the result.
    assert result["unreachable"] is True and not result.get("failed")
    assert "ansible_facts" not in result
    assert result["msg"][0].startswith("web01: unknown (host unreachable")
    assert result["gather_error"] == "Failed to connect to the host via ssh: Connection refused"


def test_unreachable_result_dict_is_unknown_too(harness):
    harness.outcome = {"unreachable": True, "msg": "timed out"}
    result = harness.run()
    assert result["oomguard_exposure"]["reason"] == "host unreachable: timed out"
    assert result["unreachable"] is True


def test_other_errors_of_the_round_trip_are_a_failed_gather(harness):
    harness.outcome = AnsibleError("interpreter discovery failed")
    result = harness.run()
    assert result["oomguard_exposure"]["reason"] == "fact gathering failed: interpreter discovery failed"
    assert result["failed"] is True and not result.get("unreachable")


@pytest.mark.parametrize("fail_on, tripped", [("critical", True), ("high", True), ("never", False), ("none", False)])
def test_gate_on_a_critical_host(harness, fail_on, tripped):
    harness.tree(extra=[JAVA])
    result = harness.run(fail_on=fail_on, fail_on_name="oomguard_assess_fail_on")
    assert bool(result.get("failed")) is tripped
    assert result["gate_tripped"] is tripped
    assert result["oomguard_exposure"]["level"] == "critical"
    if tripped:
        assert result["msg"][-1] == "web01 is critical, at or above oomguard_assess_fail_on=%s (OOM001, OOM002)" % fail_on
        assert "ansible_facts" not in result       # a failed task sets no facts; the verdict is in the result
        assert harness.shown == []                 # the failure output shows msg itself
    else:
        assert result["ansible_facts"]["oomguard_exposure"]["level"] == "critical"


def test_gate_below_the_level_passes_and_unknown_fails_every_gate(harness):
    harness.tree()
    assert not harness.run(fail_on="low").get("failed")
    harness.outcome = AnsibleConnectionFailure("refused")
    result = harness.run(fail_on="critical")
    assert result["unreachable"] is True and result["gate_tripped"] is True   # unreachable is the stronger word
    assert result["msg"][-1] == "web01 is unknown, at or above fail_on=critical (host unreachable: refused)"
    harness.outcome = AnsibleError("no python")
    result = harness.run(fail_on="critical")
    assert result["failed"] is True and not result.get("unreachable")
    assert result["msg"][-1] == "web01 is unknown, at or above fail_on=critical (fact gathering failed: no python)"


def test_result_file_written_for_failed_and_unknown_hosts_and_in_check_mode(harness):
    harness.tree(extra=[JAVA])
    results = harness.tmp / "results" / "deeper"
    result = harness.run(check_mode=True, fail_on="critical", results_dir=str(results), run_id="oomguard-test-1")
    assert result["failed"] is True
    path = results / "web01.json"
    assert result["result_file"] == str(path)
    record = json.loads(path.read_text())
    assert set(record) == set(contract.RESULT_KEYS)
    assert record["schema"] == 1 and record["host"] == "web01" and record["run_id"] == "oomguard-test-1"
    assert record["exposure"]["level"] == "critical" and record["written_at"].endswith("Z")
    assert record["snapshots"] is None and record["changes"] is None
    # the content the report role's writer gives the same verdict: one payload, one writer
    verdict = result["oomguard_exposure"]
    same = rp.result_file_payload(rp.make_record("web01", verdict, run_id="oomguard-test-1", written_at=record["written_at"]))
    assert record == json.loads(json.dumps(same))
    assert path.read_text() == contract.result_file_text(same)
    assert oct(os.stat(str(path)).st_mode & 0o777) == "0o640"
    assert oct(os.stat(str(results)).st_mode & 0o777) == "0o750"

    harness.outcome = AnsibleConnectionFailure("refused")
    harness.run(results_dir=str(results), task_vars={"inventory_hostname": "lost/../01", "oomguard_run_id": "from-var"})
    lost = contract.safe_host_filename("lost/../01")
    assert lost.startswith("lost_.._01~")
    record = json.loads((results / lost).read_text())
    assert record["exposure"]["level"] == "unknown" and record["run_id"] == "from-var"
    assert sorted(os.listdir(str(results))) == [lost, "web01.json"]   # no temporary files left


def test_unwritable_results_dir_fails_with_what_to_do(harness):
    harness.tree()
    blocker = harness.tmp / "file"
    blocker.write_text("x")
    result = harness.run(results_dir=str(blocker / "sub"))
    assert result["failed"] is True
    assert "cannot write the result file for web01 in %s" % (blocker / "sub") in result["msg"][-1]
    assert "Not a directory; choose another path.); fix that or point results_dir at another directory" in result["msg"][-1]
    assert result["msg"][0].startswith("web01: ok")


def test_bad_custom_rule_fails_before_the_round_trip(harness):
    harness.tree()
    result = harness.run(custom_rules=[{"id": "SITE9", "severity": "high", "query": "oom.processes[?", "message": "m"}])
    assert result["failed"] is True
    assert result["msg"].startswith("oomguard.fleet.exposure: custom rule SITE9: invalid JMESPath query")
    assert harness.calls == []


def test_bad_rule_option_fails_before_the_round_trip(harness):
    harness.tree()
    result = harness.run(unkillable_high_pct=30, unkillable_critical_pct=20)
    assert result["failed"] is True and "unkillable_critical_pct (20.0) must not be below" in result["msg"]
    assert harness.calls == []


def test_custom_rule_failing_on_the_hosts_facts_fails_the_host(harness):
    harness.tree()
    rules = [{"id": "SITE2", "severity": "low", "query": "oom.summary.process_count", "message": "{nope}"}]
    result = harness.run(custom_rules=rules)
    assert result["failed"] is True
    assert result["msg"].startswith("oomguard.fleet.exposure: custom rule SITE2: message placeholder {nope} is unknown")


def test_facts_range_checks_fail_before_the_round_trip(harness):
    harness.tree()
    result = harness.run(top_killable=-1)
    assert result == dict(result, failed=True, msg="top_killable must be 0 or a positive number, not -1")
    assert harness.calls == []


def test_machine_readable_callback_gets_no_extra_lines(harness, monkeypatch):
    harness.tree()
    monkeypatch.setattr(ansible_constants, "DEFAULT_STDOUT_CALLBACK", "ansible.posix.json")
    result = harness.run()
    assert harness.shown == [] and "_ansible_verbose_override" not in result
    monkeypatch.setattr(ansible_constants, "DEFAULT_STDOUT_CALLBACK", "default")
    result = harness.run(display=False)
    assert harness.shown == [] and "_ansible_verbose_override" not in result


def test_argument_spec_matches_the_documentation():
    documented = yaml.safe_load(docs.DOCUMENTATION)["options"]
    # options from the doc fragments
    from ansible_collections.oomguard.fleet.plugins.doc_fragments import oom_facts, procfs
    for fragment in (oom_facts.ModuleDocFragment.DOCUMENTATION, oom_facts.ModuleDocFragment.RULES,
                     procfs.ModuleDocFragment.DOCUMENTATION):
        documented.update(yaml.safe_load(fragment)["options"])
    assert set(documented) == set(action.ARGUMENT_SPEC)
    assert set(action.RULE_SPEC) == set(DEFAULTS)
    for name, spec in action.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        if name not in action.RULE_SPEC:
            assert documented[name].get("default") == spec.get("default"), name
        else:
            # the rules' defaults live in module_utils/exposure.py; the docs must say the same
            assert documented[name]["default"] == DEFAULTS[name], name
        assert sorted(documented[name].get("choices") or []) == sorted(spec.get("choices") or []), name
