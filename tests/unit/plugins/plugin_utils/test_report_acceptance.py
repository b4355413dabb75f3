# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fixture fleet (mixed levels, an unreachable host, a host with no result, merged and
broken result files, a hostile host name) against hand-checked expectations in every format."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_output import render

from ansible_collections.oomguard.fleet.tests.unit.plugins.plugin_utils.html_digest import digest_html
from ansible_collections.oomguard.fleet.tests.unit.plugins.plugin_utils.report_fixture import FIXTURES, fixture_report

EXPECTED = os.path.join(FIXTURES, "expected")
SCHEMA = os.path.join(FIXTURES, "..", "..", "..", "..", "docs", "report-schema.json")
SECRETS = ("hunter2", "s3cr3t-Pa55", "must-never-appear", "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9", "abc123")
_STAMPS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ?|oomguard_report_generated_timestamp_seconds \d+")


def normalise(text):
    """Timestamps -> a placeholder, so the comparison is about content."""
    return _STAMPS.sub("<time>", text)


def expected(name):
    with open(os.path.join(EXPECTED, name), encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def report():
    return fixture_report()


@pytest.mark.parametrize("fmt,name", [
    ("json", "report.json"), ("csv", "report.csv"), ("markdown", "report.md"),
    ("junit", "report.junit.xml"), ("prometheus", "report.prom"),
])
def test_format_matches_hand_checked_expectation(report, fmt, name):
    assert normalise(render(report, fmt)) == normalise(expected(name))


def test_html_shows_what_was_hand_checked(report):
    parsed = digest_html(render(report, "html"))
    assert parsed.digest() == json.loads(expected("report.html.json"))
    assert parsed.external == []  # no src= or href= anywhere: nothing to fetch


def test_json_validates_against_the_published_schema(report):
    with open(SCHEMA, encoding="utf-8") as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(render(report, "json")))


def test_schema_rejects_a_report_that_breaks_it(report):
    with open(SCHEMA, encoding="utf-8") as handle:
        validator = jsonschema.Draft202012Validator(json.load(handle))
    broken = json.loads(render(report, "json"))
    broken["hosts"][0]["level"] = "fine"
    assert not validator.is_valid(broken)
    broken = json.loads(render(report, "json"))
    broken["hosts"][-1]["reason"] = None
    broken["hosts"][-1]["level"] = "unknown"
    assert not validator.is_valid(broken)  # unknown must say why


def test_unreachable_and_missing_hosts_are_unknown_never_safe(report):
    levels = dict((e["host"], (e["level"], e["reason"])) for e in report["hosts"])
    assert levels["lb01"] == ("unknown", "unreachable or failed in this play")
    assert levels["ghost01"] == ("unknown", "no result")
    assert report["totals"]["by_level"]["unknown"] == 2


def test_newest_result_wins(report):
    levels = dict((e["host"], (e["level"], e["source"])) for e in report["hosts"])
    assert levels["old01"] == ("low", "results")      # newer file beats the older critical one
    assert levels["web02"] == ("ok", "play")          # this play beats yesterday's file


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "html", "junit", "prometheus"])
def test_no_credential_reaches_any_format(report, fmt):
    text = render(report, fmt)
    for secret in SECRETS:
        assert secret not in text


def test_outputs_parse_with_their_own_readers(report):
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert rows[1]["host"] == "'" + report["hosts"][1]["host"]  # formula neutralised
    assert [r["host"] for r in rows[2:]] == [e["host"] for e in report["hosts"][2:]]
    suite = ET.fromstring(render(report, "junit").encode("utf-8"))
    cases = suite.findall(".//testcase")
    assert [c.get("name") for c in cases] == [e["host"] for e in report["hosts"]]
    assert suite.get("failures") == "3" and suite.get("errors") == "2"
