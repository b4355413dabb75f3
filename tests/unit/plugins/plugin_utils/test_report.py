# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report model: levels, normalisation, redaction, merging, result files."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import gate_tripped, safe_host_filename
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp

T0 = "2026-11-29T02:00:00Z"
T1 = "2026-11-29T03:00:00Z"


def exposure(level="high", host="h1", checked_at=T0, **extra):
    data = {
        "schema": 1, "host": host, "level": level, "reason": None, "checked_at": checked_at,
        "findings": [{"id": "OOM002", "severity": "high", "message": "java is unkillable", "pids": [1]},
                     {"id": "OOM001", "severity": "critical", "message": "80% unkillable", "pids": [1, 2]}],
        "figures": {"mem_total_kb": 1000, "unkillable_rss_kb": 800, "unkillable_share_pct": 80.0},
        "flagged": [{"pid": 1, "name": "java", "unit": "a.service", "oom_score_adj": -1000, "rss_kb": 800, "rule": "OOM002"}],
    }
    data.update(extra)
    return data


@pytest.mark.parametrize("level,threshold,unknown_fails,expected", [
    ("critical", "high", True, True),
    ("high", "high", True, True),
    ("medium", "high", True, False),
    ("ok", "low", True, False),
    ("low", "low", True, True),
    ("unknown", "critical", True, True),
    ("unknown", "low", False, False),
    ("critical", "none", True, False),
    ("critical", None, True, False),
    ("critical", "never", True, False),
])
def test_report_gate(level, threshold, unknown_fails, expected):
    assert gate_tripped(level, threshold, unknown_fails) is expected
    report = {"hosts": [{"host": "h1", "level": level}]}
    assert rp.gate(report, threshold, unknown_fails) == ([("h1", level)] if expected else [])


@pytest.mark.parametrize("text,expected", [
    ("2026-11-29T02:00:00Z", "2026-11-29T02:00:00Z"),
    ("2026-11-29T04:00:00+02:00", "2026-11-29T02:00:00Z"),
    ("2026-11-29T02:00:00", "2026-11-29T02:00:00Z"),
    ("2026-11-29T02:00:00.123456z", "2026-11-29T02:00:00Z"),
])
def test_parse_time(text, expected):
    assert rp.format_time(rp.parse_time(text)) == expected


@pytest.mark.parametrize("bad", [None, "", "yesterday", 1700000000, "2026-13-01T00:00:00Z"])
def test_parse_time_rejects(bad):
    assert rp.parse_time(bad) is None


@pytest.mark.parametrize("text,secret", [
    ("mysqld --password=hunter2 --port 3306", "hunter2"),
    ("app --api-key abcdef123", "abcdef123"),
    ("curl https://bob:pa55w0rd@example.test/x", "pa55w0rd"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30", "eyJhbGciOiJIUzI1NiJ9"),
    ("key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE"),
    ("key LTAI5tAbCdEfGhIjKlMnOp used", "LTAI5tAbCdEfGhIjKlMnOp"),
    ("PGPASSWORD=s3cret psql", "s3cret"),
])
def test_redact_text(text, secret):
    out = rp.redact_text(text)
    assert secret not in out
    assert rp.REDACTED in out


def test_redact_text_keeps_plain_messages():
    text = "java (pid 4242, 6.0 GiB RSS) is unkillable (oom_score_adj -1000) and not allowlisted"
    assert rp.redact_text(text) == text


def test_host_entry_copies_known_fields_only_and_sorts_findings():
    raw = exposure(password="hunter2")
    raw["figures"]["secret"] = 1
    raw["flagged"][0]["cmdline"] = "java --token=abc"
    entry = rp.host_entry("h1", rp.make_record("h1", raw, written_at=T0))
    text = json.dumps(entry)
    assert "hunter2" not in text and "abc" not in text and "secret" not in text
    assert [f["id"] for f in entry["findings"]] == ["OOM001", "OOM002"]
    assert entry["level"] == "high" and entry["reason"] is None
    assert entry["figures"]["unkillable_share_pct"] == 80.0
    assert entry["figures"]["sunreclaim_kb"] is None


@pytest.mark.parametrize("raw,reason_part", [
    ("not a dict", "no exposure in the result"),
    (None, "no exposure in the result"),
    ({"level": "fine"}, "exposure level 'fine' is not one of"),
    ({"level": None}, "exposure level None is not one of"),
])
def test_host_entry_bad_exposure_is_unknown(raw, reason_part):
    entry = rp.host_entry("h1", rp.make_record("h1", raw, written_at=T0))
    assert entry["level"] == "unknown"
    assert reason_part in entry["reason"]


def test_host_entry_failed_keeps_data_but_is_unknown():
    entry = rp.host_entry("h1", rp.make_record("h1", exposure("ok"), written_at=T0, failed="lost"))
    assert entry["level"] == "unknown" and entry["reason"] == "lost"
    assert len(entry["findings"]) == 2


def test_host_entry_without_record_is_no_result():
    entry = rp.host_entry("h9")
    assert (entry["level"], entry["reason"], entry["source"]) == ("unknown", "no result", "none")


@pytest.mark.parametrize("value,expected", [
    (True, None), (float("nan"), None), (float("inf"), None), ("12", None), (12, 12), (1.5, 1.5),
])
def test_numbers_are_strict(value, expected):
    raw = exposure()
    raw["figures"]["mem_total_kb"] = value
    assert rp.host_entry("h1", rp.make_record("h1", raw, written_at=T0))["figures"]["mem_total_kb"] == expected


def test_long_text_is_truncated_and_control_chars_flattened():
    raw = exposure()
    raw["findings"] = [{"id": "X", "severity": "low", "message": "a\nb\x00" + "x" * 1000}]
    message = rp.host_entry("h1", rp.make_record("h1", raw, written_at=T0))["findings"][0]["message"]
    assert message.startswith("a b ") and message.endswith("...") and len(message) == 500


def test_unknown_finding_severity_is_unknown():
    raw = exposure()
    raw["findings"] = [{"id": "X", "severity": "apocalyptic", "message": "m"}, "junk"]
    findings = rp.host_entry("h1", rp.make_record("h1", raw, written_at=T0))["findings"]
    assert [f["severity"] for f in findings] == ["unknown", "unknown"]


def test_merge_newest_wins_and_play_wins_ties():
    old = rp.make_record("h1", exposure("critical"), written_at=T0, source=rp.SOURCE_RESULTS)
    new = rp.make_record("h1", exposure("low"), written_at=T1, source=rp.SOURCE_RESULTS)
    assert rp.merge_records([new, old])["h1"] is new
    assert rp.merge_records([old, new])["h1"] is new
    play = rp.make_record("h1", exposure("ok"), written_at=T1)
    assert rp.merge_records([new, play])["h1"] is play
    assert rp.merge_records([play, new])["h1"] is play
    undated = rp.make_record("h1", exposure("ok"), written_at="garbage")
    assert rp.merge_records([old, undated])["h1"] is old


def test_build_report_totals_and_order():
    records = [
        rp.make_record("b", exposure("ok", host="b"), written_at=T0),
        rp.make_record("a", exposure("critical", host="a"), written_at=T0),
        rp.make_record("c", exposure("high", host="c"), written_at=T0, failed="down"),
    ]
    records[0]["changes"] = {"status": "changed", "changes": [{"pid": 1}]}
    records[1]["snapshots"] = {"status": "ok", "snapshots": [{"snapshot_id": "s-1"}, {"snapshot_id": "s-2"}]}
    model = rp.build_report(records, expected_hosts=["a", "b", "c", "d"], generated_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    assert [e["host"] for e in model["hosts"]] == ["a", "c", "d", "b"]
    assert model["totals"]["by_level"] == {"ok": 1, "low": 0, "medium": 0, "high": 0, "critical": 1, "unknown": 2}
    assert model["totals"]["snapshots"] == 2 and model["totals"]["changed_hosts"] == 1
    assert model["totals"]["unkillable_rss_kb"] == 2400
    assert model["sources"] == {"play": 3, "results": 0, "none": 1}
    assert model["generated_at"] == "2026-01-01T00:00:00Z"


def test_build_report_failed_hosts_without_record():
    model = rp.build_report([], expected_hosts=["x"], failed_hosts={"x": "unreachable"})
    assert model["hosts"][0]["reason"] == "unreachable"


def test_gate_and_summary():
    records = [rp.make_record(h, exposure(level, host=h), written_at=T0) for h, level in
               (("a", "critical"), ("b", "high"), ("c", "medium"), ("d", "ok"))]
    model = rp.build_report(records, expected_hosts=["a", "b", "c", "d", "e"])
    assert rp.gate(model, "high") == [("a", "critical"), ("b", "high"), ("e", "unknown")]
    assert rp.gate(model, "high", unknown_fails=False) == [("a", "critical"), ("b", "high")]
    assert rp.gate(model, "none") == []
    lines = rp.summary_lines(model, worst=2)
    assert lines[0] == "5 hosts: critical 1, high 1, medium 1, low 0, ok 1, unknown 1"
    assert lines[1] == "a [critical] OOM001 80% unkillable"
    assert lines[3] == "... and 2 more not ok; see the report files"
    assert rp.summary_lines(model, worst=5)[4] == "e [unknown] no result"


def test_summary_lists_problems_and_hosts_without_findings():
    raw = exposure("low")
    raw["findings"] = []
    model = rp.build_report([rp.make_record("a", raw, written_at=T0)], problems=[{"file": "x.json", "error": "bad"}])
    assert rp.summary_lines(model) == ["1 hosts: critical 0, high 0, medium 0, low 1, ok 0, unknown 0",
                                       "a [low] no findings", "skipped result file x.json: bad"]


def test_records_from_facts():
    facts = {
        "a": {"oomguard_exposure": exposure("high", host="a", checked_at="2026-11-29T01:00:00Z"),
              "oomguard_changes": {"run_id": "run-from-changes"}},
        "b": {"oomguard_exposure": None},
        "c": {},
    }
    records = rp.records_from_facts(["a", "b", "c"], facts, {"c"}, T1, run_id=None)
    assert [r["host"] for r in records] == ["a", "c"]
    assert records[0]["written_at"] == T1   # this play's time: newer than a file assess wrote in the same run
    assert records[0]["run_id"] == "run-from-changes"
    assert records[1]["failed"] == rp.REASON_FAILED and records[1]["written_at"] == T1


def test_a_lost_host_keeps_the_reason_its_assess_task_gave():
    facts = {"d": {"oomguard_exposure": dict(exposure("unknown", host="d"), reason="host unreachable: timed out")},
             "e": {"oomguard_exposure": exposure("ok", host="e")}}
    records = rp.records_from_facts(["d", "e"], facts, {"d", "e"}, T1)
    assert records[0]["failed"] == rp.REASON_FAILED + " (host unreachable: timed out)"
    assert records[1]["failed"] == rp.REASON_FAILED   # lost after it was read: the verdict no longer counts


def test_result_file_round_trip():
    record = rp.make_record("h1", exposure("high"), written_at=T0, run_id="r1")
    payload = rp.result_file_payload(json.loads(json.dumps(record)))
    assert set(payload) == {"schema", "host", "run_id", "written_at", "exposure", "snapshots", "changes"}
    back = rp.parse_result(json.loads(json.dumps(payload)), "h1.json")
    assert rp.host_entry("h1", back) == dict(rp.host_entry("h1", record), source="results")


def test_result_file_of_a_lost_host_says_unknown():
    payload = rp.result_file_payload(rp.make_record("h1", None, written_at=T0, failed="unreachable"))
    assert payload["exposure"]["level"] == "unknown" and payload["exposure"]["reason"] == "unreachable"


@pytest.mark.parametrize("data,message", [
    ([], "expected a JSON object, got list"),
    ({"schema": 2, "host": "a", "written_at": T0}, "unsupported schema 2"),
    ({"schema": 1, "written_at": T0}, "missing 'host'"),
    ({"schema": 1, "host": "a", "written_at": "soon"}, "'written_at' 'soon' is not an ISO 8601 time"),
])
def test_parse_result_errors(data, message):
    with pytest.raises(rp.ReportError, match=message):
        rp.parse_result(data, "f.json")


def test_read_results_dir(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps({"schema": 1, "host": "g", "written_at": T0, "exposure": exposure(host="g")}))
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "latin.json").write_bytes(b"\xff\xfe")
    (tmp_path / "wrong.json").write_text("[1]")
    (tmp_path / ".tmp.json").write_text("{")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "dir.json").mkdir()
    records, problems = rp.read_results_dir(str(tmp_path))
    assert [r["host"] for r in records] == ["g"]
    assert [p["file"] for p in problems] == ["bad.json", "dir.json", "latin.json", "wrong.json"]
    assert problems[3]["error"] == "expected a JSON object, got list"
    assert problems[0]["error"].startswith("unreadable: ")


def test_read_results_dir_missing_is_empty(tmp_path):
    assert rp.read_results_dir(str(tmp_path / "nope")) == ([], [])


def test_read_results_dir_not_a_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(rp.ReportError, match="Failed to read results directory .*check the path"):
        rp.read_results_dir(str(target))


@pytest.mark.parametrize("host,expected", [
    ("web01", "web01.json"), ("../etc/passwd", "_etc_passwd~7fef78f53440346c.json"), ("..", "_~5ec1f7e700f37c3d.json"),
    ("a b/c", "a_b_c~539138d518391ec4.json"), ("db01.example.com", "db01.example.com.json"),
])
def test_safe_host_filename(host, expected):
    assert safe_host_filename(host) == expected


def test_atomic_write(tmp_path):
    path = tmp_path / "out.prom"
    path.write_text("old")
    rp.atomic_write(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(str(tmp_path)) == ["out.prom"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_atomic_write_cleans_up_on_failure(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(UnicodeEncodeError):
        rp.atomic_write(str(path), "\ud800")  # lone surrogate: cannot be encoded
    assert os.listdir(str(tmp_path)) == []


def _lost_and_found(now):
    records = [rp.make_record("a", exposure("high", host="a"), written_at=T0),
               rp.make_record("b", None, written_at=now, failed="unreachable")]
    return rp.build_report(records, generated_at=rp.parse_time(now))


def test_carry_over_times_when_only_times_moved():
    first = json.loads(json.dumps(_lost_and_found(T0)))
    second = _lost_and_found(T1)
    assert rp.carry_over_times(first, second) is True
    assert second == first


def test_carry_over_times_refuses_real_changes():
    first = json.loads(json.dumps(_lost_and_found(T0)))
    second = _lost_and_found(T1)
    second["hosts"][0]["level"] = "critical"
    assert rp.carry_over_times(first, second) is False
    assert second["generated_at"] == T1
    assert rp.carry_over_times(None, second) is False
    assert rp.carry_over_times({"hosts": "x"}, second) is False
    broken = dict(first, generated_at="never")
    assert rp.carry_over_times(broken, _lost_and_found(T1)) is False


@pytest.mark.parametrize("text", [
    "mysql -pS3cr3tpw", "mysql -p hunter2", "curl -u bob:pw1234", "curl --user bob:pw1234", "x --proxy-user bob:pw1234",
    "x --db-pwd=zz", "x --client-credential=zz", "x https://a:b@c", "PASSPHRASE=zz",
])
def test_redact_text_fast_path_never_skips_a_secret(text):
    assert rp._MAYBE_SECRET.search(text)
    assert rp.redact_text(text) == " ".join(rp.redact_args(text.split(" ")))
    assert rp.redact_text(text) != text
