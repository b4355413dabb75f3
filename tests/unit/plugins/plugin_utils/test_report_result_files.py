# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Result files: a malformed file is skipped and named, never the end of the report; one file per
inventory name, whatever the names sanitise to; one writer for both actions."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.oomguard.fleet.plugins.module_utils import _contract as contract
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_formats import FORMATS
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_output import output_paths, render, write_report

T0 = "2026-11-29T02:00:00Z"
GOOD = {"schema": 1, "host": "good", "written_at": T0,
        "exposure": {"level": "high", "findings": [{"id": "OOM001", "severity": "high", "message": "m"}]}}


def result(**fields):
    data = dict(GOOD, host="bad")
    data.update(fields)
    return json.dumps(data)


DEEP = "[" * 100000 + "]" * 100000
GARBAGE = {
    "surrogate-host": (result(host="SURROGATE").replace("SURROGATE", "\\ud800"), "lone surrogate"),
    "surrogate-message": (result(exposure={"level": "high", "findings": [{"id": "X", "message": "a SURROGATE b"}]})
                          .replace("SURROGATE", "\\udc80"), "lone surrogate"),
    "deep-list": (DEEP, "nested too deeply"),
    "deep-in-exposure": (result().replace('"exposure": {', '"exposure": {"x": ' + "{\"a\": " * 100000 + "1" + "}" * 100000 + ", "),
                         "nested too deeply"),
    "not-json": ("{'schema': 1}", "unreadable: "),
    "empty": ("", "unreadable: "),
    "nan-host": (result(host=float("nan")), "missing 'host'"),
    "huge-int": ('{"schema": 1, "host": "x", "written_at": "%s", "run_id": %s}' % (T0, "9" * 5000), "unreadable: "),
    "list": ("[1, 2]", "expected a JSON object, got list"),
    "string": ('"web01"', "expected a JSON object, got str"),
    "null": ("null", "expected a JSON object, got NoneType"),
    "host-int": (result(host=7), "missing 'host'"),
    "schema-str": (result(schema="1"), "unsupported schema '1'"),
    "time-int": (result(written_at=1764381600), "is not an ISO 8601 time"),
    "time-overflow-late": (result(written_at="9999-12-31T23:59:59-12:00"), "is not an ISO 8601 time"),
    "time-overflow-early": (result(written_at="0001-01-01T00:00:00+14:00"), "is not an ISO 8601 time"),
}
# Wrong types inside a valid file: the file is read, each bad field dropped or made unknown.
ODD_BUT_READABLE = {
    "exposure-list": result(exposure=[1, 2]),
    "level-list": result(exposure={"level": ["high"]}),
    "findings-dict": result(exposure={"level": "low", "findings": {"id": "X"}}),
    "figures-str": result(exposure={"level": "low", "figures": "lots"}),
    "finding-fields": result(exposure={"level": "low", "findings": [{"id": {"a": 1}, "severity": ["x"], "pids": "12",
                                                                     "message": 1e308}, "nope", None]}),
    "snapshots-list": result(snapshots=[1], changes="changed"),
    "changes-rows": result(changes={"status": {"x": 1}, "changes": [{"pid": "1", "old": [], "new": True}, 5]}),
    "run-id-dict": result(run_id={"a": 1}),
}


def write_all(directory, files):
    for name, text in files.items():
        (directory / (name + ".json")).write_text(text, encoding="utf-8")


def render_everything(report, tmp_path):
    """Every format renders and writes: a bad file cannot end the report later either."""
    out = tmp_path / "out"
    out.mkdir()
    write_report(report, output_paths(str(out), FORMATS))
    return dict((fmt, render(report, fmt)) for fmt in FORMATS)


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_a_malformed_file_is_skipped_and_named(tmp_path, name):
    text, error = GARBAGE[name]
    results = tmp_path / "results"
    results.mkdir()
    write_all(results, {"good": json.dumps(GOOD), name: text})
    records, problems = rp.read_results_dir(str(results))
    assert [r["host"] for r in records] == ["good"]
    assert [p["file"] for p in problems] == [name + ".json"]
    assert error in problems[0]["error"]
    report = rp.build_report(records, problems=problems)
    assert [h["host"] for h in report["hosts"]] == ["good"]
    rendered = render_everything(report, tmp_path)
    assert name + ".json" in rendered["markdown"] and name + ".json" in rendered["html"]
    assert "skipped result file %s.json" % name in "\n".join(rp.summary_lines(report))


def test_many_malformed_files_at_once_and_the_good_one_still_counts(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write_all(results, dict((name, text) for name, (text, dummy) in GARBAGE.items()))
    write_all(results, {"good": json.dumps(GOOD)})
    records, problems = rp.read_results_dir(str(results))
    assert [r["host"] for r in records] == ["good"]
    assert sorted(p["file"] for p in problems) == sorted(name + ".json" for name in GARBAGE)
    render_everything(rp.build_report(records, problems=problems), tmp_path)


@pytest.mark.parametrize("name", sorted(ODD_BUT_READABLE))
def test_wrong_types_inside_a_file_never_end_the_report(tmp_path, name):
    results = tmp_path / "results"
    results.mkdir()
    write_all(results, {name: ODD_BUT_READABLE[name]})
    records, problems = rp.read_results_dir(str(results))
    assert problems == [] and [r["host"] for r in records] == ["bad"]
    report = rp.build_report(records, problems=problems)
    assert report["hosts"][0]["level"] in rp.LEVELS
    render_everything(report, tmp_path)


def test_invalid_utf8_a_directory_a_fifo_and_an_oversized_file_are_skipped(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "latin.json").write_bytes(b'{"host": "caf\xe9"}')
    (results / "dir.json").mkdir()
    os.mkfifo(str(results / "fifo.json"))   # reading it would block the report for ever
    (results / "big.json").write_text(" " * (rp.MAX_RESULT_BYTES + 1))
    (results / b"name\xff.json".decode("utf-8", "surrogateescape")).write_text(json.dumps(GOOD))
    (tmp_path / "elsewhere.json").write_text(json.dumps(dict(GOOD, host="elsewhere")))
    (results / "link.json").symlink_to(tmp_path / "elsewhere.json")
    records, problems = rp.read_results_dir(str(results))
    assert [r["host"] for r in records] == ["good"]
    errors = dict((p["file"], p["error"]) for p in problems)
    assert set(errors) == {"big.json", "dir.json", "fifo.json", "latin.json", "link.json"}
    assert errors["link.json"] == "a symlink; result files are written as regular files, so this is not one"
    assert errors["dir.json"] == errors["fifo.json"] == "not a regular file"
    assert errors["big.json"].startswith("larger than %d bytes" % rp.MAX_RESULT_BYTES)
    assert errors["latin.json"].startswith("unreadable: ")
    report = rp.build_report(records, problems=problems)
    render_everything(report, tmp_path)


def test_text_never_carries_a_lone_surrogate_into_a_report(tmp_path):
    """A live host's facts (the play, not a file) with undecodable bytes still give a writable report."""
    record = rp.make_record("web\udcff01", {"level": "high", "findings": [{"id": "X", "severity": "high", "message": "bad \ud800"}]},
                            written_at=T0)
    report = rp.build_report([record])
    assert report["hosts"][0]["host"] == "web\ufffd01"
    assert report["hosts"][0]["findings"][0]["message"] == "bad \ufffd"
    render_everything(report, tmp_path)


# ---- file names ------------------------------------------------------------

@pytest.mark.parametrize("hosts", [
    ("web/1", "web_1"),
    ("web 1", "web_1", "web/1", "web\\1", "web?1"),
    (".web", "web", "..web"),
    ("Web01", "web01", "WEB01"),          # case-insensitive file systems (macOS, SMB shares)
    ("a" * 300, "a" * 301),               # past the file system's name limit
    ("db01~x", "db01_x"),
])
def test_hosts_whose_names_sanitise_alike_get_their_own_files(hosts):
    names = [contract.safe_host_filename(h) for h in hosts]
    assert len(set(n.lower() for n in names)) == len(hosts), names
    for name in names:
        assert name.endswith(".json") and "/" not in name and not name.startswith(".")
        assert len(name.encode("utf-8")) <= 255


@pytest.mark.parametrize("host,expected", [
    ("web01", "web01.json"), ("db01.example.com", "db01.example.com.json"), ("10.0.0.1", "10.0.0.1.json"),
    ("web_1", "web_1.json"), ("[fe80::1]", None), ("web/1", None),
])
def test_names_stay_readable(host, expected):
    name = contract.safe_host_filename(host)
    if expected:
        assert name == expected
    else:
        stem, digest = name[:-len(".json")].rsplit("~", 1)
        assert stem.replace("_", "") == host.translate({ord(c): None for c in "/[]"}).replace("_", "")
        assert len(digest) == 16 and int(digest, 16) >= 0
        assert contract.safe_host_filename(host) == name   # stable across runs


def test_both_writers_put_web_1_and_web_slash_1_in_two_files(tmp_path):
    from ansible_collections.oomguard.fleet.plugins.action import oom_exposure
    from ansible_collections.oomguard.fleet.plugins.action.fleet_report import ActionModule

    results = tmp_path / "results"
    oom_exposure.write_result_file(str(results), "web/1", {"level": "high"}, "run-1")
    oom_exposure.write_result_file(str(results), "web_1", {"level": "ok"}, "run-1")
    assert len(os.listdir(str(results))) == 2
    records = [rp.make_record(h, {"level": lvl}, written_at="2030-01-01T00:00:00Z") for h, lvl in (("web/1", "low"), ("web_1", "medium"))]
    written = ActionModule._write_results(None, str(results), records)
    # the report role's writer replaces exactly the files the assess writer wrote
    assert sorted(written) == sorted(os.path.join(str(results), n) for n in os.listdir(str(results)))
    assert len(os.listdir(str(results))) == 2
    stored, problems = rp.read_results_dir(str(results))
    assert problems == []
    assert dict((r["host"], r["exposure"]["level"]) for r in stored) == {"web/1": "low", "web_1": "medium"}
    for name in os.listdir(str(results)):
        assert oct(os.stat(str(results / name)).st_mode & 0o777) == "0o640"
    assert oct(os.stat(str(results)).st_mode & 0o777) == "0o750"


def test_result_path_is_the_one_name_function(tmp_path):
    assert contract.result_file_path(str(tmp_path), "web/1") == os.path.join(str(tmp_path), contract.safe_host_filename("web/1"))


def test_a_writer_never_writes_a_file_the_reader_would_skip(tmp_path):
    payload = {"schema": 1, "host": "web\udcff01", "written_at": T0, "exposure": {"level": "low", "summary": "x \ud800"}}
    path = contract.write_result_file(str(tmp_path), "web\udcff01", payload)
    records, problems = rp.read_results_dir(str(tmp_path))
    assert problems == [] and records[0]["host"] == "web\ufffd01"
    assert os.path.basename(path) == contract.safe_host_filename("web\udcff01")


# ---- check mode ------------------------------------------------------------

def run_fleet_report(tmp_path, check_mode, **args):
    from unittest import mock

    from ansible_collections.oomguard.fleet.plugins.action import fleet_report

    task = mock.MagicMock()
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    plugin = fleet_report.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    hostvars = {"web/1": {"oomguard_exposure": {"level": "high", "findings": []},
                          "oomguard_changes": {"status": "changed", "mode": "reset", "check_mode": check_mode, "changes": []}}}
    return plugin.run(task_vars={"hostvars": hostvars, "ansible_play_hosts_all": ["web/1"], "ansible_play_hosts": ["web/1"]})


def test_check_mode_report_writes_no_result_file_and_no_report(tmp_path):
    """In check mode the report role's result files would record changes that were not made: none is written.

    (The assess task's result file records only what was read and is written in check mode too:
    tests/unit/plugins/action/test_oom_exposure.py.)
    """
    results, dest = tmp_path / "results", tmp_path / "report"
    result = run_fleet_report(tmp_path, True, dest=str(dest), results_dir=str(results), formats=["json"])
    assert not result.get("failed"), result
    assert result["result_files"] == [] and result["changed"] is True
    assert result["changed_files"] == [str(dest / "oomguard-report.json")]
    assert not results.exists() and not dest.exists()
    result = run_fleet_report(tmp_path, False, dest=str(dest), results_dir=str(results), formats=["json"])
    assert result["result_files"] == [str(results / contract.safe_host_filename("web/1"))]
    assert json.loads((results / contract.safe_host_filename("web/1")).read_text())["changes"]["status"] == "changed"


def test_unwritable_results_dir_fails_the_report_with_what_to_do(tmp_path):
    results = tmp_path / "results"
    (results / contract.safe_host_filename("web/1")).mkdir(parents=True)   # a directory where the file goes
    result = run_fleet_report(tmp_path, False, dest=str(tmp_path / "report"), results_dir=str(results), formats=["json"])
    assert result["failed"] is True
    assert "cannot write the result files in %s (%s is a directory, not a regular file" % (
        results, results / contract.safe_host_filename("web/1")) in result["msg"]
    assert "fix that or point results_dir (role: oomguard_report_results_dir) at another directory" in result["msg"]


# ---- safe writes (module_utils/safefile.py) ---------------------------------

def test_a_symlinked_result_file_is_refused_and_its_target_untouched(tmp_path):
    results = tmp_path / "results"
    results.mkdir(mode=0o750)
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (results / "web01.json").symlink_to(target)
    with pytest.raises(contract.ResultFileError, match="web01.json is a symlink"):
        contract.write_result_file(str(results), "web01", {"host": "web01"})
    assert target.read_text() == "keep me" and (results / "web01.json").is_symlink()
    assert os.listdir(str(results)) == ["web01.json"]      # no temporary file left


def test_a_symlinked_results_directory_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o750)
    (tmp_path / "results").symlink_to(real)
    with pytest.raises(contract.ResultFileError, match="is a symlink"):
        contract.write_result_file(str(tmp_path / "results"), "web01", {"host": "web01"})
    assert os.listdir(str(real)) == []


@pytest.mark.parametrize("mode,refused", [(0o777, True), (0o775, True), (0o1777, False), (0o750, False)])
def test_a_results_directory_others_may_write_is_refused_unless_sticky(tmp_path, mode, refused):
    results = tmp_path / "results"
    results.mkdir()
    os.chmod(str(results), mode)
    if refused:
        with pytest.raises(contract.ResultFileError, match="chmod go-w"):
            contract.write_result_file(str(results), "web01", {"host": "web01"})
        assert os.listdir(str(results)) == []
    else:
        contract.write_result_file(str(results), "web01", {"host": "web01"})
    assert stat_mode(results) == mode                         # never chmodded


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the directory to another user")
def test_a_results_directory_of_another_user_is_refused(tmp_path):
    results = tmp_path / "results"
    results.mkdir(mode=0o755)
    os.chown(str(results), 4321, 4321)
    with pytest.raises(contract.ResultFileError, match="owned by uid 4321"):
        contract.write_result_file(str(results), "web01", {"host": "web01"})


def stat_mode(path):
    return os.stat(str(path)).st_mode & 0o7777


def test_a_replaced_report_file_keeps_its_mode(tmp_path):
    path = tmp_path / "oomguard-report.json"
    path.write_text("old")
    os.chmod(str(path), 0o600)
    rp.atomic_write(str(path), "new\n")
    assert path.read_text() == "new\n" and stat_mode(path) == 0o600
    fresh = tmp_path / "sub" / "new.prom"
    rp.atomic_write(str(fresh), "x\n")
    assert stat_mode(fresh) == 0o644 and stat_mode(fresh.parent) == 0o755


def test_report_writes_refuse_a_symlink_and_say_which_format(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "oomguard-report.md").symlink_to(target)
    report = rp.build_report([rp.make_record("web01", {"level": "ok"}, written_at=T0)])
    with pytest.raises(rp.ReportError, match="Failed to write the markdown report to .*oomguard-report.md: .*is a symlink"):
        write_report(report, output_paths(str(out), ["markdown"]))
    assert target.read_text() == "keep me"


def test_both_actions_report_an_unsafe_results_directory(tmp_path):
    from ansible.errors import AnsibleError
    from ansible_collections.oomguard.fleet.plugins.action import oom_exposure

    results = tmp_path / "results"
    results.mkdir()
    os.chmod(str(results), 0o777)
    with pytest.raises(AnsibleError, match="cannot write the result file for web01 in .*writable by group and others"):
        oom_exposure.write_result_file(str(results), "web01", {"level": "ok"}, "run-1")
    result = run_fleet_report(tmp_path, False, dest=str(tmp_path / "report"), results_dir=str(results), formats=["json"])
    assert result["failed"] is True and "writable by group and others" in result["msg"]
    assert os.listdir(str(results)) == []


def test_an_unsafe_report_directory_is_refused_naming_the_variable(tmp_path):
    dest = tmp_path / "report"
    dest.mkdir()
    os.chmod(str(dest), 0o777)
    result = run_fleet_report(tmp_path, False, dest=str(dest), formats=["json"])
    assert result["failed"] is True
    assert "cannot use directory %s (The directory %s is writable by group and others (mode 0777)" % (dest, dest) in result["msg"]
    assert "chmod go-w" in result["msg"] and "point dest (role: oomguard_report_dir) at another directory" in result["msg"]
    assert "become" not in result["msg"] and os.listdir(str(dest)) == []
    result = run_fleet_report(tmp_path, False, dest=str(tmp_path / "new" / "report"), formats=["json"])
    assert not result.get("failed") and stat_mode(tmp_path / "new" / "report") == 0o755


# ---- any file at all --------------------------------------------------------

_KEYS = st.sampled_from(["schema", "host", "written_at", "run_id", "exposure", "level", "findings", "figures", "flagged",
                         "snapshots", "changes", "status", "id", "severity", "message", "pids", "pid", "name",
                         "unkillable_share_pct", "unkillable_rss_kb", "old", "new", "reason", "x"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                     st.sampled_from([1, "high", "unknown", T0, "9999-12-31T23:59:59-12:00", "\ud800", "web/1"]))
_JSONISH = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=6)),
                        max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.one_of(_JSONISH, st.dictionaries(_KEYS, _JSONISH, max_size=8).map(lambda d: dict(GOOD, **d))),
       raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_whatever_a_results_directory_holds_the_report_is_built(tmp_path_factory, data, raw):
    results = tmp_path_factory.mktemp("results")
    text = raw if raw is not None else json.dumps(data, ensure_ascii=True, allow_nan=True).encode("ascii")
    (results / "any.json").write_bytes(text)
    (results / "good.json").write_text(json.dumps(GOOD))
    records, problems = rp.read_results_dir(str(results))
    assert "good" in [r["host"] for r in records]
    assert len(records) + len(problems) == 2
    report = rp.build_report(records, problems=problems)
    for fmt in FORMATS:
        render(report, fmt).encode("utf-8")


@pytest.mark.parametrize("dest, says", [
    ("", "No report directory: dest (role: oomguard_report_dir) is empty. Set oomguard_report_dir to an absolute"),
    ("oomguard-report", "'oomguard-report' (dest, role: oomguard_report_dir) is relative, so it would depend on the current"),
    ("./r", "set oomguard_report_dir to an absolute path, e.g. \"{{ playbook_dir }}/./r\""),
])
def test_a_report_directory_that_would_follow_the_shell_is_refused(tmp_path, monkeypatch, dest, says):
    monkeypatch.chdir(str(tmp_path))
    result = run_fleet_report(tmp_path, False, dest=dest, formats=["json"])
    assert result["failed"] is True and says in result["msg"]
    assert os.listdir(str(tmp_path)) == []   # nothing written where the shell happened to be


def test_a_negative_stale_threshold_is_refused(tmp_path):
    result = run_fleet_report(tmp_path, False, dest=str(tmp_path / "report"), formats=["json"], stale_after_hours=-1)
    assert result["failed"] is True
    assert "stale_after_hours (role: oomguard_report_stale_after_hours) is -1; give 0 (mark no host stale)" in result["msg"]
    assert not (tmp_path / "report").exists()
