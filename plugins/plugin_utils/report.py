# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report model: per-host records in, one normalised report out.

Controller-side and pure apart from the small file helpers at the end
(reading a results directory, atomic writes). Everything a host sent is
copied field by field from a known list, so keys nobody asked for (and the
credentials they might carry) never reach an output, and free text is run
through :func:`redact_text` on the way in.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import re
import stat

from ansible_collections.oomguard.fleet.plugins.module_utils import safefile
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import (
    LEVELS,
    RESULT_SCHEMA,
    SEVERITY_LEVELS,
    UNKNOWN,
    OomguardError,
    controller_text,
    format_time,
    gate_tripped,
    level_value,
    parse_time,
    result_payload,
    utc_now,
)
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import REDACTED, redact_args

REPORT_SCHEMA = 1

# Display order, worst first; unknown sits above ok because it is never safe.
_LEVEL_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, UNKNOWN: 4, "ok": 5}

SOURCE_PLAY = "play"
SOURCE_RESULTS = "results"
SOURCE_NONE = "none"

# Key of a record read from a file that holds its host entry, built and checked while reading.
_ENTRY = "_entry"

REASON_NO_RESULT = "no result"
REASON_FAILED = "unreachable or failed in this play"

_MAX_TEXT = 500
_MAX_LIST = 200

FIGURE_KEYS = (
    "mem_total_kb",
    "mem_available_kb",
    "unkillable_rss_kb",
    "unkillable_share_pct",
    "killable_rss_kb",
    "sunreclaim_kb",
    "sunreclaim_pct",
    "process_count",
    "unkillable_count",
)

# On top of the argv redaction the host side already applies (procfs.redact_args),
# free text may carry bearer tokens or cloud key ids.
_REDACTIONS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bLTAI[0-9A-Za-z]{12,30}\b"), REDACTED),
)


# Line breaks and other control characters would break a CSV row, a Markdown table or a console line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A lone surrogate (undecodable bytes a host sent, or a \ud800 escape in a file) cannot be
# written as UTF-8: every output would fail on it.
_SURROGATE = re.compile("[\ud800-\udfff]")


class ReportError(OomguardError):
    """A report could not be built or written; the message says what to do."""


# Text without any of these cannot hold what the redactions look for; skipping the
# word-by-word pass for it keeps a 10,000-host report fast.
_MAYBE_SECRET = re.compile(r"(?i)pass|pwd|secret|token|key|credential|auth|bearer|basic|://|AKIA|ASIA|LTAI|(?:^|\s)-[pu]|--(?:proxy-)?user")


def redact_text(value):
    """Mask anything that looks like a credential in free text."""
    text = str(value)
    if not _MAYBE_SECRET.search(text):
        return text
    text = " ".join(redact_args(text.split(" ")))
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


def _text(value, limit=_MAX_TEXT):
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return None
    text = _CONTROL.sub(" ", _SURROGATE.sub("\ufffd", redact_text(value)))
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return None
    return value


def _int(value):
    value = _number(value)
    if value is None:
        return None
    return int(value)


def _dict(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    if not isinstance(value, (list, tuple)):
        return []
    return list(value)[:_MAX_LIST]


def _finding(raw):
    raw = _dict(raw)
    severity = raw.get("severity")
    return {
        "id": _text(raw.get("id"), 40),
        "severity": severity if severity in SEVERITY_LEVELS else UNKNOWN,
        "message": _text(raw.get("message")),
        "pids": [p for p in (_int(x) for x in _list(raw.get("pids"))) if p is not None],
    }


def _str(limit=_MAX_TEXT):
    return lambda value: _text(value, limit)


# Field -> converter, per kind of row; only these fields ever leave a host's data.
_FLAGGED_FIELDS = (("pid", _int), ("name", _str(64)), ("unit", _str(200)), ("oom_score_adj", _int),
                   ("rss_kb", _int), ("rule", _str(40)))
_SNAPSHOT_FIELDS = (("snapshot_id", _str(100)), ("disk_id", _str(100)), ("status", _str(40)), ("progress", _number))
_SNAPSHOTS_FIELDS = (("status", _str(40)), ("message", _str()), ("provider", _str(40)), ("instance_id", _str(100)),
                     ("region", _str(60)), ("run_id", _str(100)))
_CHANGE_FIELDS = (("pid", _int), ("name", _str(64)), ("unit", _str(200)), ("old", _int), ("new", _int),
                  ("persist", _str(40)), ("dropin", _str(300)))
_CHANGES_FIELDS = (("mode", _str(20)), ("status", _str(40)), ("reason", _str()), ("run_id", _str(100)))


def _pick(raw, fields):
    raw = _dict(raw)
    return dict((key, convert(raw.get(key))) for key, convert in fields)


def _flagged(raw):
    return _pick(raw, _FLAGGED_FIELDS)


def _section(raw, fields, rows_key, row_fields):
    """A snapshots or changes section: its fields plus its list of rows; None when absent."""
    if not isinstance(raw, dict):
        return None
    out = _pick(raw, fields)
    out[rows_key] = [_pick(row, row_fields) for row in _list(raw.get(rows_key))]
    return out


def _finding_order(finding):
    return -level_value(finding["severity"])


def host_entry(host, record=None, failed_reason=None):
    """One host of the report from a record (see :func:`make_record`), or a stub.

    ``failed_reason`` forces the level to ``unknown`` (the play lost the host)
    while keeping whatever the host reported before it was lost.
    """
    record = record or {}
    raw = record.get("exposure")
    exposure = _dict(raw)
    level = exposure.get("level")
    reason = _text(exposure.get("reason"))
    if record.get("failed"):
        failed_reason = record["failed"]
    if failed_reason:
        level, reason = UNKNOWN, _text(failed_reason)
    elif not record:
        level, reason = UNKNOWN, REASON_NO_RESULT
    elif not isinstance(raw, dict):
        level, reason = UNKNOWN, "no exposure in the result; run the assess role on this host"
    elif level not in LEVELS:
        level, reason = UNKNOWN, _text("exposure level %r is not one of %s" % (level, ", ".join(LEVELS)))
    figures_raw = _dict(exposure.get("figures"))
    findings = sorted((_finding(f) for f in _list(exposure.get("findings"))), key=_finding_order)
    return {
        "host": _text(host, 255),
        "level": level,
        "reason": reason if level == UNKNOWN else None,
        "source": record.get("source", SOURCE_NONE),
        "run_id": _text(record.get("run_id"), 100),
        "checked_at": _text(exposure.get("checked_at"), 40),
        "written_at": _text(record.get("written_at"), 40),
        "figures": dict((key, _number(figures_raw.get(key))) for key in FIGURE_KEYS),
        "findings": findings,
        "flagged": [_flagged(f) for f in _list(exposure.get("flagged"))],
        "snapshots": _section(record.get("snapshots"), _SNAPSHOTS_FIELDS, "snapshots", _SNAPSHOT_FIELDS),
        "changes": _section(record.get("changes"), _CHANGES_FIELDS, "changes", _CHANGE_FIELDS),
    }


def make_record(host, exposure=None, snapshots=None, changes=None, run_id=None,
                written_at=None, failed=None, source=SOURCE_PLAY):
    """A per-host result in the data-contract shape (plus report-only keys)."""
    record = {
        "schema": RESULT_SCHEMA,
        "host": host,
        "run_id": run_id,
        "written_at": written_at,
        "exposure": exposure,
        "snapshots": snapshots,
        "changes": changes,
    }
    if failed:
        record["failed"] = failed
    record["source"] = source
    return record


FACT_KEYS = ("oomguard_exposure", "oomguard_snapshots", "oomguard_changes")


def records_from_facts(hosts, facts, lost, written_at, run_id=None):
    """Records for the hosts this play saw: ``facts`` maps host -> {FACT_KEYS...}.

    A host in ``lost`` (unreachable or failed) gets a record that makes it
    ``unknown``; a host with no exposure that the play did not lose gets no
    record at all, so an older result file or "no result" speaks for it.
    Every record is stamped ``written_at`` (now): what this play saw is the
    newest word on the host, and beats a file ``assess`` wrote in the same run
    (which lacks the snapshots and changes).
    """
    records = []
    for host in hosts:
        host_facts = facts.get(host) or {}
        exposure = host_facts.get("oomguard_exposure")
        failed = REASON_FAILED if host in lost else None
        if failed and isinstance(exposure, dict) and exposure.get("level") == UNKNOWN and exposure.get("reason"):
            # The assess task lost it and said why (unreachable, facts not read): keep the why.
            failed = "%s (%s)" % (REASON_FAILED, exposure["reason"])
        if exposure is None and not failed:
            continue
        host_run_id = run_id
        for key in ("oomguard_changes", "oomguard_snapshots"):
            value = host_facts.get(key)
            if not host_run_id and isinstance(value, dict) and value.get("run_id"):
                host_run_id = value["run_id"]
        records.append(make_record(host, exposure, host_facts.get("oomguard_snapshots"), host_facts.get("oomguard_changes"),
                                   run_id=host_run_id, written_at=written_at, failed=failed))
    return records


def result_file_payload(record):
    """What goes into ``<results_dir>/<host>.json``: contract keys, normalised."""
    entry = host_entry(record["host"], record)
    exposure = None
    if isinstance(record.get("exposure"), dict) or entry["level"] == UNKNOWN:
        exposure = {
            "schema": 1,
            "host": entry["host"],
            "level": entry["level"],
            "reason": entry["reason"],
            "checked_at": entry["checked_at"],
            "findings": entry["findings"],
            "figures": entry["figures"],
            "flagged": entry["flagged"],
        }
    return result_payload(entry["host"], entry["run_id"], record.get("written_at"), exposure,
                          entry["snapshots"], entry["changes"])


def parse_result(data, origin):
    """Validate one decoded result file; return a record or raise ReportError."""
    if not isinstance(data, dict):
        raise ReportError("%s: expected a JSON object, got %s" % (origin, type(data).__name__))
    if data.get("schema") != RESULT_SCHEMA:
        raise ReportError("%s: unsupported schema %r (this report reads schema %d)" % (origin, data.get("schema"), RESULT_SCHEMA))
    host = data.get("host")
    if not isinstance(host, str) or not host:
        raise ReportError("%s: missing 'host'" % origin)
    if parse_time(data.get("written_at")) is None:
        raise ReportError("%s: 'written_at' %r is not an ISO 8601 time" % (origin, data.get("written_at")))
    return make_record(host, data.get("exposure"), data.get("snapshots"), data.get("changes"),
                       run_id=data.get("run_id"), written_at=data.get("written_at"), source=SOURCE_RESULTS)


def merge_records(records):
    """Newest ``written_at`` per host wins; on a tie the play beats a file.

    Returns ``{host: record}``. Records without a parseable time lose to any
    record that has one.
    """
    best = {}
    epoch = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    for record in records:
        stamp = parse_time(record.get("written_at")) or epoch
        key = (stamp, 1 if record.get("source") == SOURCE_PLAY else 0)
        current = best.get(record["host"])
        if current is None or key > current[0]:
            best[record["host"]] = (key, record)
    return dict((host, item[1]) for host, item in best.items())


def _host_order(entry):
    share = entry["figures"]["unkillable_share_pct"]
    return (_LEVEL_ORDER[entry["level"]], -(share if share is not None else -1), entry["host"])


DEFAULT_STALE_AFTER_HOURS = 24


def result_time(entry):
    """When a host's result was taken: its ``checked_at``, else its ``written_at`` (None when neither parses)."""
    return parse_time(entry.get("checked_at")) or parse_time(entry.get("written_at"))


def is_stale(entry, generated_at, stale_after_hours):
    """True when the host's result was taken more than ``stale_after_hours`` before ``generated_at`` (0: never)."""
    taken = result_time(entry)
    if not stale_after_hours or taken is None:
        return False
    return (generated_at - taken).total_seconds() > stale_after_hours * 3600


def build_report(records, expected_hosts=(), failed_hosts=None, generated_at=None, run_id=None,
                 problems=(), title=None, stale_after_hours=DEFAULT_STALE_AFTER_HOURS):
    """Merge records and build the report model (a dict shaped by docs/report-schema.json).

    ``expected_hosts`` appear even without a record (``unknown``, "no result");
    ``failed_hosts`` maps host -> reason for hosts the play lost. A host whose result was
    taken more than ``stale_after_hours`` before the report is marked ``stale`` (0: never).
    """
    failed_hosts = failed_hosts or {}
    generated_at = generated_at or utc_now()
    merged = merge_records(records)
    for host in expected_hosts:
        merged.setdefault(host, None)
    hosts = []
    for host, record in merged.items():
        reason = failed_hosts.get(host) if record is None or record.get("source") == SOURCE_PLAY else None
        cached = record.get(_ENTRY) if record is not None and not reason else None
        entry = dict(cached) if cached is not None else host_entry(host, record, failed_reason=reason)
        entry["stale"] = is_stale(entry, generated_at, stale_after_hours)
        hosts.append(entry)
    hosts.sort(key=_host_order)

    by_level = dict((level, 0) for level in LEVELS)
    sources = {SOURCE_PLAY: 0, SOURCE_RESULTS: 0, SOURCE_NONE: 0}
    unkillable_kb = 0
    flagged = snapshots = changed = 0
    for entry in hosts:
        by_level[entry["level"]] += 1
        sources[entry["source"]] += 1
        unkillable_kb += entry["figures"]["unkillable_rss_kb"] or 0
        flagged += len(entry["flagged"])
        if entry["snapshots"]:
            snapshots += len(entry["snapshots"]["snapshots"])
        if entry["changes"] and entry["changes"]["status"] == "changed":
            changed += 1
    return {
        "schema": REPORT_SCHEMA,
        "title": _text(title or "oomguard fleet report", 200),
        "generated_at": format_time(generated_at),
        "run_id": _text(run_id, 100),
        "stale_after_hours": stale_after_hours or 0,
        "totals": {
            "hosts": len(hosts),
            "by_level": by_level,
            "unkillable_rss_kb": unkillable_kb,
            "flagged_processes": flagged,
            "snapshots": snapshots,
            "changed_hosts": changed,
            "stale_hosts": sum(1 for entry in hosts if entry["stale"]),
        },
        "sources": sources,
        "problems": [{"file": _text(p.get("file"), 300), "error": _text(p.get("error"))} for p in problems],
        "hosts": hosts,
    }


def _volatile_times(report):
    """The times a re-run moves although nothing was learnt: the report's own, and this play's hosts'."""
    times = {"generated_at": report.get("generated_at")}
    for index, entry in enumerate(report.get("hosts") or ()):
        if isinstance(entry, dict) and entry.get("source") == SOURCE_PLAY:
            times[index] = entry.get("written_at")
    return times


def _with_times(report, times):
    out = dict(report, generated_at=times.get("generated_at"))
    out["hosts"] = [dict(entry, written_at=times[index]) if index in times else entry
                    for index, entry in enumerate(report.get("hosts") or ())]
    return out


def carry_over_times(previous, report):
    """Give ``report`` the times of ``previous`` when the two differ in those times only.

    So re-reporting an unchanged fleet rewrites no file and reports no change.
    Returns True when the times were carried over.
    """
    if not isinstance(previous, dict) or not isinstance(previous.get("hosts"), list):
        return False
    old_times = _volatile_times(previous)
    if set(old_times) != set(_volatile_times(report)) or parse_time(old_times["generated_at"]) is None:
        return False
    if json.loads(json.dumps(_with_times(report, old_times))) != previous:
        return False
    report["generated_at"] = old_times["generated_at"]
    for index, entry in enumerate(report["hosts"]):
        if index in old_times:
            entry["written_at"] = old_times[index]
    return True


def top_finding(entry):
    return entry["findings"][0] if entry["findings"] else None


def gate(report, threshold, unknown_fails=True):
    """Hosts at or above ``threshold`` as ``[(host, level)]``, worst first."""
    return [(e["host"], e["level"]) for e in report["hosts"] if gate_tripped(e["level"], threshold, unknown_fails)]


def summary_lines(report, worst=5):
    """The short console summary: counts per level and the worst hosts."""
    totals = report["totals"]
    counts = ", ".join("%s %d" % (level, totals["by_level"][level]) for level in reversed(LEVELS[:-1]))
    lines = ["%d hosts: %s, unknown %d" % (totals["hosts"], counts, totals["by_level"][UNKNOWN])]
    shown = [e for e in report["hosts"] if e["level"] != "ok"][:max(worst, 0)]
    for entry in shown:
        finding = top_finding(entry)
        if entry["level"] == UNKNOWN:
            detail = entry["reason"] or "unknown"
        elif finding:
            detail = "%s %s" % (finding["id"], finding["message"])
        else:
            detail = "no findings"
        lines.append("%s [%s] %s" % (entry["host"], entry["level"], detail))
    rest = totals["hosts"] - totals["by_level"]["ok"] - len(shown)
    if rest > 0:
        lines.append("... and %d more not ok; see the report files" % rest)
    for problem in report["problems"]:
        lines.append("skipped result file %s: %s" % (problem["file"], problem["error"]))
    return lines


# ---- files ---------------------------------------------------------------

# Result files are small (lists are cut at 200 rows); anything far larger is not one.
MAX_RESULT_BYTES = 16 * 1024 * 1024
# Only a \uD800-\uDFFF escape can decode to a lone surrogate (raw ones are invalid UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _read_result_file(full):
    """The decoded JSON of one result file; ReportError says why it is not one."""
    try:
        # O_NONBLOCK: a FIFO must not block the report; O_NOFOLLOW: the writers never make a symlink
        fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ReportError("a symlink; result files are written as regular files, so this is not one")
        raise ReportError("unreadable: %s" % (exc.strerror or exc))
    try:
        is_file = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        is_file = False
    if not is_file:
        os.close(fd)
        raise ReportError("not a regular file")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_RESULT_BYTES + 1)
    if len(raw) > MAX_RESULT_BYTES:
        raise ReportError("larger than %d bytes; a result file is far smaller, so this is not one" % MAX_RESULT_BYTES)
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except RecursionError:
        raise ReportError("nested too deeply to be a result file")
    except ValueError as exc:  # also UnicodeDecodeError and integers too long to convert
        raise ReportError("unreadable: %s" % exc)
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ReportError("contains a lone surrogate (%r), which is not text; write the file again" % exc.object[exc.start:exc.end])
    return data


def read_results_dir(path):
    """Read every ``*.json`` under ``path``; bad files become problems, never a crash."""
    records, problems = [], []
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return records, problems
    except OSError as exc:
        raise ReportError("Failed to read results directory %s: %s; check the path and its permissions" % (path, exc.strerror or exc))
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            record = parse_result(_read_result_file(os.path.join(path, name)), name)
            # Built here, where a failure can name the file; build_report uses it as it is.
            record[_ENTRY] = host_entry(record["host"], record)
            records.append(record)
        except ReportError as exc:
            problems.append({"file": name, "error": str(exc)[len(name) + 2:] if str(exc).startswith(name + ": ") else str(exc)})
        except Exception as exc:  # pylint: disable=broad-except  # one bad file never ends the report
            problems.append({"file": name, "error": "unreadable: %s: %s" % (type(exc).__name__, exc)})
    return records, problems


def atomic_write(path, text, mode=0o644, dir_mode=0o755):
    """Write text to path so readers see the old or the new file, never half of one.

    Through the collection's one safe-write primitive (module_utils/safefile.py): a
    temporary file in the same directory (its name starts with a dot, which
    node_exporter's textfile collector and :func:`read_results_dir` ignore), fsync,
    rename, fsync of the directory. A symlink (file or directory), a directory owned by
    another user or writable by group or others (unless sticky) is refused; a replaced
    file keeps its mode and owner, a new one gets ``mode``; a missing directory is made
    with ``dir_mode``. Raises ReportError saying what to fix.
    """
    try:
        safefile.write_atomic(path, text, mode=mode, dir_mode=dir_mode)
    except safefile.SafeFileError as exc:
        raise ReportError(controller_text(exc)) from None


def ensure_dir(path, mode=0o755):
    """Create ``path`` with ``mode``, or check an existing one, as :func:`atomic_write` does; ReportError when unsafe."""
    try:
        safefile.ensure_dir(path, mode)
    except safefile.SafeFileError as exc:
        raise ReportError(controller_text(exc)) from None
