# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of oomguard.fleet.oom_exposure (docs in plugins/modules/oom_exposure.py).

One task per host: run oomguard.fleet.oom_score_facts on the host (one round trip), judge
the facts with the exposure rules on the controller, optionally write the host's result
file, and fail the host at the gate. A host that cannot be reached comes back unreachable, one
whose facts could not be gathered failed, each with its ``unknown`` verdict in the result.
"""

from __future__ import annotations

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import (
    GATE_CHOICES_WITH_ALIASES,
    NO_GATE,
    ResultFileError,
    format_time,
    gate_message,
    gate_tripped,
    write_result_file as write_host_result,
)
from ansible_collections.oomguard.fleet.plugins.module_utils.exposure import (
    ExposureError,
    RULE_ARGUMENT_SPEC,
    assess,
    normalize_options,
    validate_custom_rules,
)
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import FACTS_ARGUMENT_SPEC, check_facts_params
from ansible_collections.oomguard.fleet.plugins.plugin_utils.stdout_callback import human_callback
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report

display = Display()

FACTS_MODULE = "oomguard.fleet.oom_score_facts"
FACT_NAMES = ("oom", "slabinfo", "oom_evidence")

RULE_SPEC = RULE_ARGUMENT_SPEC

OWN_SPEC = {
    "custom_rules": {"type": "list", "elements": "dict"},
    "host": {"type": "str"},
    "fail_on": {"type": "str", "choices": list(GATE_CHOICES_WITH_ALIASES), "default": NO_GATE},
    "fail_on_name": {"type": "str", "default": "fail_on"},
    "results_dir": {"type": "path"},
    "run_id": {"type": "str"},
    "display": {"type": "bool", "default": True},
}

ARGUMENT_SPEC = dict(FACTS_ARGUMENT_SPEC)
ARGUMENT_SPEC.update(RULE_SPEC)
ARGUMENT_SPEC.update(OWN_SPEC)


def verdict_lines(exposure):
    """The summary line, then one ``ID: message`` line per finding."""
    return [exposure["summary"]] + ["%s: %s" % (f["id"], f["message"]) for f in exposure["findings"]]


def _exception_text(exception):
    """The message of a module's exception (a summary object on ansible-core 2.19, a string before)."""
    if not exception:
        return None
    return to_native(getattr(getattr(exception, "event", None), "msg", None) or exception).strip().splitlines()[-1]


def gather_outcome(module_result):
    """(facts, gathered) from a module result: the facts to return and what the rules judge.

    ``gathered`` keeps ``unreachable``/``failed`` and ``msg`` so the rules say ``unknown``
    with the reason; a failed module's partial facts are still returned.
    """
    facts = module_result.get("ansible_facts")
    facts = dict((k, v) for k, v in facts.items() if k in FACT_NAMES) if isinstance(facts, dict) else {}
    if module_result.get("unreachable") or module_result.get("failed"):
        gathered = dict((k, module_result.get(k)) for k in ("unreachable", "failed"))
        gathered["msg"] = module_result.get("msg") or _exception_text(module_result.get("exception")) or "no message"
        return facts, gathered
    return facts, {"ansible_facts": facts}


def show_lines(lines):
    """The verdict as play output lines: the summary, then the findings indented."""
    return "\n".join([lines[0]] + ["    " + line for line in lines[1:]])


def write_result_file(results_dir, host, exposure, run_id, now=None):
    """Write the host's result file, with the exposure section only, as the report role writes it; returns its path."""
    record = report.make_record(host, exposure, run_id=run_id, written_at=format_time(now))
    try:
        return write_host_result(results_dir, host, report.result_file_payload(record))
    except ResultFileError as exc:
        raise AnsibleError("cannot write the result file for %s in %s (%s); fix that or point results_dir at another directory "
                           "on the controller" % (host, results_dir, exc))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def _gather(self, facts_args, task_vars):
        """Run the facts module once; a lost connection is a result, not an exception."""
        try:
            return self._execute_module(module_name=FACTS_MODULE, module_args=facts_args, task_vars=task_vars)
        except AnsibleConnectionFailure as exc:
            return {"unreachable": True, "msg": to_native(exc)}
        except AnsibleError as exc:
            return {"failed": True, "msg": to_native(exc)}

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = args["host"] or task_vars.get("inventory_hostname")
        options = dict((name, args[name]) for name in RULE_SPEC if args[name] is not None)
        problem = check_facts_params(args)
        if problem:
            result.update(failed=True, msg=problem)
            return result
        try:
            # Bad rules are the same mistake on every host: say so before any round trip.
            normalize_options(options)
            validate_custom_rules(args["custom_rules"])
        except ExposureError as exc:
            result.update(failed=True, msg="oomguard.fleet.exposure: %s" % to_native(exc))
            return result

        facts_args = dict((name, args[name]) for name in FACTS_ARGUMENT_SPEC)
        facts, gathered = gather_outcome(self._gather(facts_args, task_vars))
        try:
            exposure = assess(gathered, host=host, options=options, custom_rules=args["custom_rules"])
        except ExposureError as exc:  # a custom rule that fails on this host's facts
            result.update(failed=True, msg="oomguard.fleet.exposure: %s" % to_native(exc))
            return result

        lines = verdict_lines(exposure)
        tripped = gate_tripped(exposure["level"], args["fail_on"])
        if tripped:
            lines.append(gate_message(exposure, args["fail_on"], args["fail_on_name"]))
        result.update(changed=False, msg=lines, oomguard_exposure=exposure, gate_tripped=tripped)
        if gathered.get("unreachable") or gathered.get("failed"):
            result["gather_error"] = gathered.get("msg")
        if args["results_dir"]:
            try:
                result["result_file"] = write_result_file(args["results_dir"], host, exposure,
                                                          args["run_id"] or task_vars.get("oomguard_run_id"))
            except AnsibleError as exc:
                result.update(failed=True, msg=lines + [to_native(exc)])
                return result
        if gathered.get("unreachable"):
            # Ansible's own terms: the recap counts the host unreachable and ansible-playbook exits 4.
            # An unreachable task sets no facts; the verdict is in the (registered) result and the result file.
            result["unreachable"] = True
            return result
        if gathered.get("failed") or tripped:
            # A failed task sets no facts: the verdict stays in the (registered) result and the result file.
            result["failed"] = True
            return result
        facts["oomguard_exposure"] = exposure
        result["ansible_facts"] = facts
        if args["display"] and human_callback():
            # The verdict on the screen, without the raw facts (as the setup module keeps them off it).
            display.display(show_lines(lines))
            result["_ansible_verbose_override"] = True
        return result
