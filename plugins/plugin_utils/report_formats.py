# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text renderers of the fleet report model: JSON, CSV, Markdown, JUnit XML, Prometheus.

Each takes the model from :func:`report.build_report` and returns text; each
escapes for its own format (CSV formula injection, Markdown/HTML, XML,
Prometheus label values).
"""

from __future__ import annotations

import csv
import io
import json
import re

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import LEVELS, UNKNOWN, format_time, gate_tripped, level_value
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report import (
    parse_time,
    result_time,
    top_finding,
)

FORMATS = ("json", "csv", "markdown", "html", "junit", "prometheus")
EXTENSIONS = {"json": "json", "csv": "csv", "markdown": "md", "html": "html", "junit": "junit.xml", "prometheus": "prom"}

CSV_COLUMNS = (
    "host", "level", "reason", "source", "run_id", "checked_at", "written_at",
    "mem_total_kb", "mem_available_kb", "unkillable_rss_kb", "unkillable_share_pct", "killable_rss_kb",
    "sunreclaim_kb", "sunreclaim_pct", "process_count", "unkillable_count",
    "finding_count", "finding_ids", "top_finding", "flagged_count",
    "snapshot_status", "snapshot_ids", "change_status", "change_count",
)

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render_json(report):
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def kib_text(kib):
    """KiB -> a short human size (``6.0 GiB``); ``-`` when unknown."""
    if kib is None:
        return "-"
    value = float(kib)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "KiB" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "-"  # pragma: no cover


def pct_text(pct):
    return "-" if pct is None else "%.1f%%" % pct


def age_text(seconds):
    """A duration in the largest unit that keeps it readable: ``5 min``, ``25 h``, ``21 days``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "under 1 min"
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds < 48 * 3600:
        return "%d h" % (seconds // 3600)
    return "%d days" % (seconds // 86400)


def taken(entry, report):
    """(when the host's result was taken as text, its age before the report as text), or ("-", None)."""
    stamp = result_time(entry)
    if stamp is None:
        return "-", None
    return format_time(stamp), age_text((parse_time(report["generated_at"]) - stamp).total_seconds())


def run_label(entry, report):
    """The run a host's result came from: ``this run`` for this play's hosts, else its run id."""
    if entry["source"] == "play" or (entry["run_id"] and entry["run_id"] == report["run_id"]):
        return "this run"
    return entry["run_id"] or "-"


def stale_note(report):
    """The sentence that counts the results older than the report's threshold ("" when none)."""
    count = report["totals"].get("stale_hosts") or 0
    if not count:
        return ""
    return "%d host%s with a result taken more than %d h before this report" % (
        count, "" if count == 1 else "s", report.get("stale_after_hours") or 0)


def finding_text(finding):
    return "%s (%s): %s" % (finding["id"], finding["severity"], finding["message"])


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str):
        value = value.replace("\r", " ").replace("\n", " ")
        # A spreadsheet runs a cell that starts like a formula; make it text.
        if value[:1] in ("=", "+", "-", "@", "\t"):
            return "'" + value
        return value
    return value


def render_csv(report):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in report["hosts"]:
        figures = entry["figures"]
        top = top_finding(entry)
        snaps = entry["snapshots"] or {}
        changes = entry["changes"] or {}
        row = [
            entry["host"], entry["level"], entry["reason"], entry["source"], entry["run_id"],
            entry["checked_at"], entry["written_at"],
            figures["mem_total_kb"], figures["mem_available_kb"], figures["unkillable_rss_kb"],
            figures["unkillable_share_pct"], figures["killable_rss_kb"], figures["sunreclaim_kb"],
            figures["sunreclaim_pct"], figures["process_count"], figures["unkillable_count"],
            len(entry["findings"]), ";".join(f["id"] or "" for f in entry["findings"]),
            finding_text(top) if top else None, len(entry["flagged"]),
            snaps.get("status"), ";".join(s["snapshot_id"] or "" for s in snaps.get("snapshots", [])),
            changes.get("status"), len(changes.get("changes", [])),
        ]
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


def md_escape(value):
    """Text safe in a Markdown table cell (also when the Markdown is shown as HTML)."""
    if value is None:
        return "-"
    text = str(value).replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#~])", r"\\\1", text)


def _md_taken(entry, report):
    when, age = taken(entry, report)
    if age is None:
        return when
    return "%s (%s before, **stale**)" % (when, age) if entry.get("stale") else "%s (%s before)" % (when, age)


def render_markdown(report, max_rows=50):
    totals = report["totals"]
    lines = ["# %s" % md_escape(report["title"]), ""]
    meta = "Generated %s" % report["generated_at"]
    if report["run_id"]:
        meta += ", run `%s`" % report["run_id"].replace("`", "'")
    lines += [meta + ", %d hosts." % totals["hosts"], ""]
    if stale_note(report):
        lines += ["**Not fresh:** %s (see \"Results taken before this run\")." % stale_note(report), ""]
    lines += ["| Level | Hosts |", "| --- | ---: |"]
    for level in ("critical", "high", "medium", "low", "ok", UNKNOWN):
        lines.append("| %s | %d |" % (level, totals["by_level"][level]))
    lines += [
        "",
        "Unkillable memory across the fleet: %s; flagged processes: %d; snapshots: %d; hosts changed: %d."
        % (kib_text(totals["unkillable_rss_kb"]), totals["flagged_processes"], totals["snapshots"], totals["changed_hosts"]),
        "",
    ]
    attention = [e for e in report["hosts"] if e["level"] != "ok"]
    if attention:
        lines += ["## Hosts that need a look", ""]
        lines += ["| Host | Level | Unkillable share | SUnreclaim | Top finding | Taken | Run |",
                  "| --- | --- | ---: | ---: | --- | --- | --- |"]
        for entry in attention[:max_rows]:
            top = top_finding(entry)
            detail = entry["reason"] if entry["level"] == UNKNOWN else (finding_text(top) if top else None)
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                md_escape(entry["host"]), entry["level"], pct_text(entry["figures"]["unkillable_share_pct"]),
                kib_text(entry["figures"]["sunreclaim_kb"]), md_escape(detail), _md_taken(entry, report),
                md_escape(run_label(entry, report))))
        if len(attention) > max_rows:
            lines.append("")
            lines.append("... and %d more; see the JSON, CSV or HTML report." % (len(attention) - max_rows))
        lines.append("")
    else:
        lines += ["No host needs a look.", ""]
    stale = [e for e in report["hosts"] if e.get("stale")]
    if stale:
        lines += ["## Results taken before this run", "",
                  "Taken more than %d h before this report (merged from result files of earlier runs): their level may "
                  "no longer be true. Audit these hosts again." % (report.get("stale_after_hours") or 0), "",
                  "| Host | Level | Taken | Run |", "| --- | --- | --- | --- |"]
        for entry in stale[:max_rows]:
            lines.append("| %s | %s | %s | %s |" % (md_escape(entry["host"]), entry["level"], _md_taken(entry, report),
                                                    md_escape(run_label(entry, report))))
        if len(stale) > max_rows:
            lines += ["", "... and %d more; see the JSON, CSV or HTML report." % (len(stale) - max_rows)]
        lines.append("")
    if report["problems"]:
        lines += ["## Result files skipped", ""]
        for problem in report["problems"]:
            lines.append("- %s: %s" % (md_escape(problem["file"]), md_escape(problem["error"])))
        lines.append("")
    return "\n".join(lines)


def _xml_text(value):
    text = _XML_INVALID.sub("?", "" if value is None else str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_attr(value):
    return '"%s"' % _xml_text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")


def render_junit(report, fail_on="high", unknown_fails=True):
    """One testcase per host; failure at or above ``fail_on``; unknown is an error."""
    cases, failures, errors, skipped = [], 0, 0, 0
    for entry in report["hosts"]:
        head = '    <testcase classname="oomguard.fleet.exposure" name=%s time="0">' % _xml_attr(entry["host"])
        body = "\n".join(finding_text(f) for f in entry["findings"])
        if entry["level"] == UNKNOWN:
            if unknown_fails:
                errors += 1
                cases.append("%s\n      <error type=\"unknown\" message=%s>%s</error>\n    </testcase>" % (
                    head, _xml_attr("exposure unknown: %s" % entry["reason"]), _xml_text(body)))
            else:
                skipped += 1
                cases.append("%s\n      <skipped message=%s/>\n    </testcase>" % (head, _xml_attr("exposure unknown: %s" % entry["reason"])))
        elif gate_tripped(entry["level"], fail_on):
            failures += 1
            top = top_finding(entry)
            message = "exposure %s (fails at %s)%s" % (entry["level"], fail_on, ": " + finding_text(top) if top else "")
            cases.append("%s\n      <failure type=%s message=%s>%s</failure>\n    </testcase>" % (
                head, _xml_attr(entry["level"]), _xml_attr(message), _xml_text(body)))
        else:
            cases.append(head[:-1] + "/>")
    count = len(report["hosts"])
    stamp = parse_time(report["generated_at"]).strftime("%Y-%m-%dT%H:%M:%S")
    suite_attrs = 'tests="%d" failures="%d" errors="%d" skipped="%d" time="0"' % (count, failures, errors, skipped)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name="oomguard.fleet" tests="%d" failures="%d" errors="%d" skipped="%d" time="0">' % (count, failures, errors, skipped),
        '  <testsuite name="oomguard.fleet exposure" %s timestamp="%s">' % (suite_attrs, stamp),
        "    <properties>",
        '      <property name="fail_on" value=%s/>' % _xml_attr(fail_on),
        '      <property name="run_id" value=%s/>' % _xml_attr(report["run_id"] or ""),
        "    </properties>",
    ]
    lines += cases
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def prom_label(value):
    """A Prometheus text-format label value: backslash, quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_number(value):
    if isinstance(value, float) and value.is_integer():
        return "%d" % value
    return repr(value) if isinstance(value, float) else "%d" % value


def render_prometheus(report):
    """node_exporter textfile-collector format (write it atomically)."""
    metrics = (
        ("oomguard_host_exposure_level", "Exposure level of the host: 0 ok, 1 low, 2 medium, 3 high, 4 critical, -1 unknown.",
         lambda e: level_value(e["level"])),
        ("oomguard_host_unkillable_bytes", "Resident memory of processes the OOM killer may not kill (oom_score_adj -1000).",
         lambda e: None if e["figures"]["unkillable_rss_kb"] is None else e["figures"]["unkillable_rss_kb"] * 1024),
        ("oomguard_host_unkillable_ratio", "Unkillable resident memory as a share of MemTotal (0..1).",
         lambda e: None if e["figures"]["unkillable_share_pct"] is None else round(e["figures"]["unkillable_share_pct"] / 100.0, 6)),
        ("oomguard_host_sunreclaim_bytes", "Unreclaimable slab memory (SUnreclaim in /proc/meminfo).",
         lambda e: None if e["figures"]["sunreclaim_kb"] is None else e["figures"]["sunreclaim_kb"] * 1024),
        ("oomguard_host_findings", "Number of exposure findings on the host.",
         lambda e: None if e["level"] == UNKNOWN else len(e["findings"])),
    )
    lines = []
    for name, help_text, getter in metrics:
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s gauge" % name)
        for entry in report["hosts"]:
            value = getter(entry)
            if value is not None:
                lines.append('%s{host="%s"} %s' % (name, prom_label(entry["host"]), _prom_number(value)))
    lines.append("# HELP oomguard_fleet_hosts Hosts in the report by exposure level.")
    lines.append("# TYPE oomguard_fleet_hosts gauge")
    for level in LEVELS:
        lines.append('oomguard_fleet_hosts{level="%s"} %d' % (level, report["totals"]["by_level"][level]))
    lines.append("# HELP oomguard_report_generated_timestamp_seconds When the report was generated (Unix time).")
    lines.append("# TYPE oomguard_report_generated_timestamp_seconds gauge")
    lines.append("oomguard_report_generated_timestamp_seconds %d" % parse_time(report["generated_at"]).timestamp())
    return "\n".join(lines) + "\n"
