# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renderers: escaping per format, JUnit gating, Prometheus text, writing files."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import SEVERITY_LEVELS
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report as rp
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report_formats as rf
from ansible_collections.oomguard.fleet.plugins.plugin_utils import report_output as ro
from ansible_collections.oomguard.fleet.tests.unit.plugins.plugin_utils.html_digest import digest_html

T0 = "2026-11-29T02:00:00Z"
PROM_SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="(?:[^"\\\n]|\\.)*"\})? -?[0-9.]+(e[+-]?[0-9]+)?$')


def model_of(*hosts, **kwargs):
    records = []
    for host, level, message in hosts:
        exposure = {"level": level, "checked_at": T0, "reason": None,
                    "findings": [{"id": "R1", "severity": level if level in SEVERITY_LEVELS else "low", "message": message}],
                    "figures": {"unkillable_rss_kb": 10, "unkillable_share_pct": 12.5, "sunreclaim_kb": 3}}
        records.append(rp.make_record(host, exposure, written_at=T0))
    return rp.build_report(records, **kwargs)


@pytest.mark.parametrize("cell,expected", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("a\nb", "a b"), ("plain", "plain"), (-1000, -1000), (None, ""),
])
def test_csv_cell(cell, expected):
    assert rf._csv_cell(cell) == expected


def test_markdown_escapes_tables_and_html():
    assert rf.md_escape("a|b <script> `x` *y* _z_ [l](u)") == r"a\|b &lt;script&gt; \`x\` \*y\* \_z\_ \[l\](u)"
    assert rf.md_escape(None) == "-"
    text = rf.render_markdown(model_of(("h|1", "high", "<b>x</b>")))
    assert "| h\\|1 | high | 12.5% | 3 KiB | R1 (high): &lt;b&gt;x&lt;/b&gt; |" in text


def test_markdown_caps_rows_and_says_so():
    hosts = [("h%02d" % i, "low", "m") for i in range(5)]
    text = rf.render_markdown(model_of(*hosts, generated_at=rp.parse_time(T0)), max_rows=2)
    assert text.count("| low |") == 2 + 1  # two rows plus the totals line
    assert "... and 3 more; see the JSON, CSV or HTML report." in text


def test_markdown_all_ok():
    assert "No host needs a look." in rf.render_markdown(model_of(("h", "ok", "m")))


def test_junit_escapes_and_strips_invalid_xml():
    text = rf.render_junit(model_of(('a"<&>\x01', "critical", "bad \x07 <tag> & \"q\"\nline")))
    root = ET.fromstring(text.encode("utf-8"))
    case = root.find(".//testcase")
    assert case.get("name") == 'a"<&> '   # control characters were flattened by the model
    assert case.find("failure").get("message").endswith('R1 (critical): bad   <tag> & "q" line')
    assert rf._xml_text("a\x01b\ufffe<") == "a?b?&lt;"   # and never reach XML even from a hand-made model


def test_junit_unknown_skipped_when_told():
    model = model_of(("a", "ok", "m"), expected_hosts=["a", "b"])
    root = ET.fromstring(rf.render_junit(model, unknown_fails=False).encode("utf-8"))
    assert root.get("skipped") == "1" and root.get("errors") == "0"
    assert root.find(".//testcase[@name='b']/skipped").get("message") == "exposure unknown: no result"
    root = ET.fromstring(rf.render_junit(model).encode("utf-8"))
    assert root.get("errors") == "1" and root.find(".//testcase[@name='b']/error") is not None


@pytest.mark.parametrize("fail_on,failures", [("low", 3), ("medium", 2), ("high", 1), ("critical", 0)])
def test_junit_fail_on(fail_on, failures):
    model = model_of(("a", "low", "m"), ("b", "medium", "m"), ("c", "high", "m"), ("d", "ok", "m"))
    root = ET.fromstring(rf.render_junit(model, fail_on=fail_on).encode("utf-8"))
    assert root.get("failures") == str(failures)
    assert len(root.findall(".//failure")) == failures


def test_prometheus_label_escaping():
    assert rf.prom_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    text = rf.render_prometheus(model_of(('x"\\\n', "high", "m")))
    assert 'oomguard_host_exposure_level{host="x\\"\\\\ "} 3' in text


def test_prometheus_omits_unknown_figures_and_types_every_metric():
    text = rf.render_prometheus(model_of(("a", "ok", "m"), expected_hosts=["a", "z"]))
    assert 'oomguard_host_exposure_level{host="z"} -1' in text
    assert 'oomguard_host_unkillable_bytes{host="z"}' not in text
    assert 'oomguard_host_unkillable_bytes{host="a"} 10240' in text
    assert 'oomguard_host_unkillable_ratio{host="a"} 0.125' in text
    names = set(re.findall(r"^# TYPE (\S+) gauge$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    samples = set(re.findall(r"^([a-z_]+)[{ ]", text, re.M))
    assert samples == names == helps
    for line in text.splitlines():
        assert line.startswith("#") or PROM_SAMPLE.match(line), line


@pytest.mark.parametrize("kib,text", [(None, "-"), (0, "0 KiB"), (1023, "1023 KiB"), (1024, "1.0 MiB"),
                                      (6291456, "6.0 GiB"), (2 ** 40, "1024.0 TiB")])
def test_kib_text(kib, text):
    assert rf.kib_text(kib) == text


def test_html_escapes_everything_and_fetches_nothing():
    text = ro.render(model_of(('<script>alert(1)</script>', "high", '<img src=x onerror=alert(2)>')), "html")
    assert "<script>alert" not in text and "<img" not in text
    assert "&lt;img src=x onerror=alert(2)&gt;" in text
    parsed = digest_html(text)
    assert parsed.external == []
    assert len(parsed.scripts) == 1 and "fetch(" not in parsed.scripts[0] and "XMLHttpRequest" not in parsed.scripts[0]
    assert "default-src 'none'" in text


def test_html_chart_limit_and_empty():
    hosts = [("h%02d" % i, "low", "m") for i in range(6)]
    text = ro.render(model_of(*hosts), "html")
    assert len(digest_html(text).bars) == 6
    from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_html import render_html
    limited = render_html(model_of(*hosts), chart_limit=4)
    assert len(digest_html(limited).bars) == 4 and "The 4 hosts with the largest share of 6;" in limited
    empty = ro.render(rp.build_report([], expected_hosts=["a"]), "html")
    assert 'id="chart-empty"' in empty and digest_html(empty).rows[0]["level"] == "unknown"


def test_html_shows_the_first_page_of_rows_and_a_button_for_the_rest():
    from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_html import PAGE_ROWS, render_html
    hosts = [("h%02d" % i, "low", "m") for i in range(6)]
    paged = render_html(model_of(*hosts), page_rows=4)
    rows = digest_html(paged).rows
    assert len(rows) == 6                                  # every host is in the page
    assert [r["host"] for r in rows if r.get("hidden")] == [r["host"] for r in rows[4:]]
    assert 'data-page="4"' in paged and 'id="show-all"' in paged and "Showing 4 of 6 hosts" in paged
    for whole in (render_html(model_of(*hosts), page_rows=6), render_html(model_of(*hosts), page_rows=0)):
        assert not any(r.get("hidden") for r in digest_html(whole).rows)
        assert 'id="pager"' not in whole
    assert PAGE_ROWS >= 100 and 'data-page="%d"' % PAGE_ROWS in ro.render(model_of(*hosts), "html")


def test_render_unknown_format():
    with pytest.raises(rp.ReportError, match="unknown report format 'pdf'"):
        ro.render(model_of(), "pdf")


def test_output_paths():
    paths = ro.output_paths("/r", ["json", "junit", "prometheus", "markdown"], "fleet", "/var/lib/ne/oomguard.prom")
    assert paths == {"json": "/r/fleet.json", "junit": "/r/fleet.junit.xml", "prometheus": "/var/lib/ne/oomguard.prom",
                     "markdown": "/r/fleet.md"}
    assert ro.output_paths("/r", ["prometheus"])["prometheus"] == "/r/oomguard-report.prom"


def test_write_report_check_mode_unchanged_and_changed(tmp_path):
    model = model_of(("a", "high", "m"))
    paths = ro.output_paths(str(tmp_path / "out"), list(rf.FORMATS))
    assert set(ro.write_report(model, paths, check_mode=True)) == set(rf.FORMATS)
    assert not (tmp_path / "out").exists()
    assert set(ro.write_report(model, paths)) == set(rf.FORMATS)
    assert sorted(os.listdir(str(tmp_path / "out"))) == sorted(os.path.basename(p) for p in paths.values())
    assert ro.write_report(model, paths) == {}
    other = model_of(("a", "critical", "m"))
    assert set(ro.write_report(other, paths)) == set(rf.FORMATS)
    with open(paths["json"], encoding="utf-8") as handle:
        assert json.load(handle)["hosts"][0]["level"] == "critical"


def test_write_report_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    paths = ro.output_paths(str(blocker / "sub"), ["csv"])
    with pytest.raises(rp.ReportError, match="Failed to write the csv report to .*: Failed to create the directory .*sub: Not a "
                                             "directory; choose another path"):
        ro.write_report(model_of(("a", "ok", "m")), paths)


_levels = st.sampled_from(rp.LEVELS + ("bogus",))
_text = st.text(min_size=0, max_size=40)
_host = st.one_of(
    st.fixed_dictionaries({
        "level": _levels, "checked_at": st.just(T0), "reason": st.one_of(st.none(), _text),
        "findings": st.lists(st.fixed_dictionaries({"id": _text, "severity": _levels, "message": _text}), max_size=3),
        "figures": st.fixed_dictionaries({"unkillable_share_pct": st.one_of(st.none(), st.floats(0, 100)),
                                          "unkillable_rss_kb": st.one_of(st.none(), st.integers(0, 2 ** 40)),
                                          "sunreclaim_kb": st.one_of(st.none(), st.integers(0, 2 ** 40), _text)}),
    }),
    st.none(), _text, st.integers(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=20), _host, max_size=6))
def test_any_input_renders_parseable_outputs(hosts):
    records = [rp.make_record(h, e, written_at=T0) for h, e in hosts.items()]
    model = rp.build_report(records, expected_hosts=list(hosts) + ["missing"])
    count = len(model["hosts"])
    assert json.loads(ro.render(model, "json")) == model
    rows = list(csv.reader(io.StringIO(ro.render(model, "csv"))))
    assert len(rows) == count + 1 and all(len(r) == len(rf.CSV_COLUMNS) for r in rows)
    root = ET.fromstring(ro.render(model, "junit").encode("utf-8"))
    assert len(root.findall(".//testcase")) == count
    for line in ro.render(model, "prometheus").rstrip("\n").split("\n"):
        assert line.startswith("#") or PROM_SAMPLE.match(line), line
    assert len(digest_html(ro.render(model, "html")).rows) == count
    assert all(e["level"] in rp.LEVELS for e in model["hosts"])


# ---- when each host's result was taken, and from which run ----------------------------

NOW = "2026-11-29T03:00:00Z"


def merged_with_an_old_file(**kwargs):
    """This play's fresh host, and a host known only from a result file written three weeks earlier."""
    fresh = rp.make_record("fresh01", {"level": "ok", "checked_at": "2026-11-29T02:58:00Z", "findings": []},
                           written_at=NOW, run_id="run-now")
    old = rp.make_record("old01", {"level": "ok", "checked_at": "2026-11-08T01:00:00Z", "findings": []},
                         written_at="2026-11-08T01:00:05Z", run_id="run-3-weeks-ago", source=rp.SOURCE_RESULTS)
    return rp.build_report([fresh, old], generated_at=rp.parse_time(NOW), run_id="run-now", **kwargs)


def test_stale_is_older_than_the_threshold_before_the_report():
    report = merged_with_an_old_file()
    stale = dict((e["host"], e["stale"]) for e in report["hosts"])
    assert stale == {"fresh01": False, "old01": True}
    assert report["stale_after_hours"] == 24 and report["totals"]["stale_hosts"] == 1
    now = rp.parse_time(NOW)
    assert rp.is_stale({"checked_at": "2026-11-28T03:00:00Z"}, now, 24) is False           # exactly 24 h: not yet
    assert rp.is_stale({"checked_at": "2026-11-28T02:59:59Z"}, now, 24) is True
    assert rp.is_stale({"checked_at": None, "written_at": "2026-11-20T00:00:00Z"}, now, 24) is True   # written_at then
    assert rp.is_stale({"checked_at": None, "written_at": None}, now, 24) is False         # no time: no claim
    assert rp.is_stale({"checked_at": "2020-01-01T00:00:00Z"}, now, 0) is False             # 0: never
    assert merged_with_an_old_file(stale_after_hours=0)["totals"]["stale_hosts"] == 0


def test_markdown_shows_when_and_from_which_run_and_flags_the_old_result():
    text = rf.render_markdown(merged_with_an_old_file())
    assert "**Not fresh:** 1 host with a result taken more than 24 h before this report" in text
    section = text.split("## Results taken before this run", 1)[1]
    assert "| old01 | ok | 2026-11-08T01:00:00Z (21 days before, **stale**) | run-3-weeks-ago |" in section
    assert "fresh01" not in section
    fresh_only = rf.render_markdown(rp.build_report([rp.make_record(
        "h1", {"level": "high", "checked_at": "2026-11-29T02:58:00Z", "findings": []}, written_at=NOW)],
        generated_at=rp.parse_time(NOW), run_id="run-now"))
    assert "| h1 | high | - | - | - | 2026-11-29T02:58:00Z (2 min before) | this run |" in fresh_only
    assert "Not fresh" not in fresh_only and "Results taken before this run" not in fresh_only


def test_html_shows_when_and_from_which_run_and_flags_the_old_result():
    html = ro.render(merged_with_an_old_file(), "html")
    rows = dict((row["host"], row["cells"]) for row in digest_html(html).rows)
    assert rows["old01"][-2:] == ["2026-11-08T01:00:00Z stale 21 days before the report", "run-3-weeks-ago"]
    assert rows["fresh01"][-2:] == ["2026-11-29T02:58:00Z 2 min before the report", "this run"]
    assert '<tr data-host="old01" data-level="ok" class="is-stale" data-stale="1">' in html
    assert '<tr data-host="fresh01" data-level="ok">' in html
    assert 'id="stale-note">1 host with a result taken more than 24 h before this report</span>' in html
    assert "stale-note" not in ro.render(merged_with_an_old_file(stale_after_hours=0), "html")
