# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side action behind oomguard.fleet.fleet_report (docs in plugins/modules/fleet_report.py)."""

from __future__ import annotations

import json
import os

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import (
    GATE_CHOICES_WITH_ALIASES,
    GATE_LEVELS,
    NO_GATE,
    ResultFileError,
    normalize_gate,
    result_file_path,
    write_result_file,
)
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report import (
    FACT_KEYS,
    ReportError,
    build_report,
    carry_over_times,
    ensure_dir,
    format_time,
    gate,
    read_results_dir,
    records_from_facts,
    result_file_payload,
    summary_lines,
    utc_now,
)
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_formats import FORMATS
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_output import output_paths, write_report

ARGUMENT_SPEC = {
    "hosts": {"type": "list", "elements": "str"},
    "dest": {"type": "path", "required": True},
    "formats": {"type": "list", "elements": "str", "choices": list(FORMATS), "default": ["json", "csv", "markdown", "html", "junit"]},
    "basename": {"type": "str", "default": "oomguard-report"},
    "title": {"type": "str", "default": "oomguard fleet report"},
    "results_dir": {"type": "path"},
    "write_results": {"type": "bool", "default": True},
    "prometheus_path": {"type": "path"},
    "junit_fail_on": {"type": "str", "choices": list(GATE_LEVELS), "default": "high"},
    "fail_on": {"type": "str", "choices": list(GATE_CHOICES_WITH_ALIASES), "default": NO_GATE},
    "unknown_fails": {"type": "bool", "default": True},
    "run_id": {"type": "str"},
    "worst": {"type": "int", "default": 5},
    "stale_after_hours": {"type": "int", "default": 24},
}


def _plain(value):
    """Copy template-engine containers into plain JSON-able Python values."""
    if isinstance(value, dict):
        return dict((to_native(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(to_native(value))  # str() of a str subclass (tagged template results) is a plain str


def _load_json(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _same_but(path, data, moving_key):
    """True when the JSON file at path equals data apart from ``moving_key``."""
    old = _load_json(path)
    if not isinstance(old, dict) or moving_key not in old:
        return False
    old[moving_key] = data.get(moving_key)
    return old == data


def _make_dir(path, option):
    try:
        ensure_dir(path, 0o755)
    except ReportError as exc:
        raise ReportError("cannot use directory %s (%s); fix that or point %s at another directory" % (path, exc, option)) from None


# What the assess role registers its task's result as: the only place the verdict of a host it
# found unreachable (or could not read) is kept, since such a task sets no facts.
ASSESS_RESULT = "oomguard_assess_result"


def _host_value(host_vars, key):
    """A host's value by name, else from its facts: the assess action returns its verdict as a
    fact, which is a plain variable only while inject_facts_as_vars is on. A host the assess task
    left unreachable or failed has its newest verdict only in the registered result."""
    registered = host_vars.get(ASSESS_RESULT)
    if key == "oomguard_exposure" and isinstance(registered, dict) and (registered.get("unreachable") or registered.get("failed")):
        if isinstance(registered.get(key), dict):
            return registered[key]
    value = host_vars.get(key)
    if value is None:
        value = (host_vars.get("ansible_facts") or {}).get(key)
    return value


STATS_MAX_HOSTS = 50


def stats_summary(report, fail_on, tripped, paths):
    """The small summary the role hands to ``set_stats``, for AWX workflows and wrappers to branch on."""
    by_level = dict(report["totals"]["by_level"])
    present = [level for level in ("critical", "high", "medium", "low", "ok") if by_level.get(level)]
    return {
        "generated_at": report["generated_at"],
        "run_id": report["run_id"],
        "hosts": report["totals"]["hosts"],
        "by_level": by_level,
        "worst_level": present[0] if present else None,
        "unknown_hosts": [e["host"] for e in report["hosts"] if e["level"] == "unknown"][:STATS_MAX_HOSTS],
        "gate": {"fail_on": fail_on, "tripped": bool(tripped), "hosts": [host for host, _level in tripped][:STATS_MAX_HOSTS]},
        "problems": len(report["problems"]),
        "files": dict(paths),
    }


def dest_problem(dest):
    """Why ``dest`` cannot hold the report, or None: it must be an absolute path, so the report
    never lands wherever the shell that started the play happened to be."""
    if not dest:
        return ("No report directory: dest (role: oomguard_report_dir) is empty. Set oomguard_report_dir to an absolute "
                "directory on the controller, e.g. -e oomguard_report_dir=/var/lib/oomguard/report (the collection's "
                "playbooks put the report beside the inventory file, and this run's first inventory source is not a "
                "file or directory on the controller).")
    if not os.path.isabs(dest):
        return ("The report directory %r (dest, role: oomguard_report_dir) is relative, so it would depend on the current "
                "directory of whoever starts the play; set oomguard_report_dir to an absolute path, e.g. "
                "\"{{ playbook_dir }}/%s\"." % (dest, dest))
    return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def _live_records(self, hosts, task_vars, written_at, run_id):
        hostvars = task_vars.get("hostvars", {})
        facts = {}
        for host in hosts:
            host_vars = hostvars[host] if host in hostvars else {}
            facts[host] = dict((key, _plain(_host_value(host_vars, key))) for key in FACT_KEYS)
        lost = set(task_vars.get("ansible_play_hosts_all") or ()) - set(task_vars.get("ansible_play_hosts") or ())
        return records_from_facts(hosts, facts, lost, written_at, run_id)

    def _write_results(self, results_dir, records):
        written = []
        try:
            for record in records:
                payload = result_file_payload(record)
                if _same_but(result_file_path(results_dir, record["host"]), payload, "written_at"):
                    continue
                written.append(write_result_file(results_dir, record["host"], payload))
        except ResultFileError as exc:
            raise ReportError("cannot write the result files in %s (%s); fix that or point results_dir "
                              "(role: oomguard_report_results_dir) at another directory" % (results_dir, exc)) from None
        return written

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        del validation
        problem = dest_problem(args["dest"])
        if args["stale_after_hours"] < 0:
            problem = ("stale_after_hours (role: oomguard_report_stale_after_hours) is %d; give 0 (mark no host stale) or "
                       "a number of hours" % args["stale_after_hours"])
        if problem:
            result.update(failed=True, msg=problem)
            return result
        args["fail_on"] = normalize_gate(args["fail_on"])
        check_mode = bool(self._task.check_mode)
        now = utc_now()
        written_at = format_time(now)
        run_id = args["run_id"] or task_vars.get("oomguard_run_id")
        hosts = args["hosts"]
        if hosts is None:
            hosts = list(task_vars.get("ansible_play_hosts_all") or ())
        hosts = list(dict.fromkeys(to_native(h) for h in hosts))
        try:
            live = self._live_records(hosts, task_vars, written_at, run_id)
            stored, problems = [], []
            if args["results_dir"]:
                stored, problems = read_results_dir(args["results_dir"])
            report = build_report(live + stored, expected_hosts=hosts, generated_at=now, run_id=run_id,
                                  problems=problems, title=args["title"], stale_after_hours=args["stale_after_hours"])
            paths = output_paths(args["dest"], args["formats"], args["basename"], args["prometheus_path"])
            if "json" in paths:
                # Same findings as the last report: keep its times so a re-run changes nothing.
                carry_over_times(_load_json(paths["json"]), report)
            result_files = []
            if args["results_dir"] and args["write_results"] and not check_mode:
                result_files = self._write_results(args["results_dir"], live)
            if not check_mode:
                _make_dir(args["dest"], "dest (role: oomguard_report_dir)")
            changed_files = write_report(report, paths, junit_fail_on=args["junit_fail_on"],
                                         unknown_fails=args["unknown_fails"], check_mode=check_mode)
        except (ReportError, OSError) as exc:
            result.update(failed=True, msg="Failed to build the fleet report: %s" % to_native(exc))
            return result

        tripped = gate(report, args["fail_on"], args["unknown_fails"])
        result["stats"] = stats_summary(report, args["fail_on"], tripped, paths)
        result.update(
            changed=bool(changed_files or result_files),
            report_files=paths,
            changed_files=sorted(changed_files.values()),
            result_files=result_files,
            totals=report["totals"],
            problems=report["problems"],
            summary=summary_lines(report, args["worst"]),
            gate={"fail_on": args["fail_on"], "hosts": [{"host": h, "level": lvl} for h, lvl in tripped]},
        )
        if tripped:
            names = ", ".join("%s (%s)" % item for item in tripped[:10])
            more = " and %d more" % (len(tripped) - 10) if len(tripped) > 10 else ""
            result.update(failed=True, msg="%d host(s) at or above exposure level '%s': %s%s. The report is in %s." % (
                len(tripped), args["fail_on"], names, more, args["dest"]))
        else:
            result["msg"] = "Fleet report of %d hosts written to %s" % (report["totals"]["hosts"], args["dest"])
        return result
