# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML report in a real browser: Debian's headless Chromium, driven over DevTools.

Asserts the host rows and the chart render, the table sorts when a header is
clicked, the filter works, the page made no network request (DevTools events and
a counting proxy on loopback), and keeps a screenshot in tests/output/.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_output import render
from ansible_collections.oomguard.fleet.tests.harness.chromium import Chromium
from ansible_collections.oomguard.fleet.tests.unit.plugins.plugin_utils.report_fixture import fixture_report

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUTPUT = os.path.join(TOP, "tests", "output")

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium package is not installed")


def rows(page):
    return page.evaluate("Array.from(document.querySelectorAll('#hosts tbody tr')).filter(r => !r.hidden).map(r => r.dataset.host)")


def click_header(page, index):
    box = page.evaluate("(() => { const r = document.querySelectorAll('#hosts thead th button')[%d].getBoundingClientRect();"
                        " return [r.x + r.width / 2, r.y + r.height / 2]; })()" % index)
    page.click(*box)


@pytest.fixture(scope="module")
def report():
    return fixture_report()


@pytest.fixture(scope="module")
def loaded(report, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "oomguard-report.html"
    path.write_text(render(report, "html"), encoding="utf-8")
    with Chromium() as browser:
        page = browser.open_page(path.as_uri())
        yield browser, page, path.as_uri()


def test_rows_cards_and_chart_render(loaded, report):
    page = loaded[1]
    assert page.evaluate("document.documentElement.dataset.ready") == "1"   # the inline script ran (CSP allowed it)
    assert rows(page) == [e["host"] for e in report["hosts"]]
    cards = page.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('.card')).map("
                          "c => [c.dataset.level, Number(c.querySelector('b').textContent)]))")
    assert cards == report["totals"]["by_level"]
    bars = page.evaluate("Array.from(document.querySelectorAll('#chart g.bar')).map(g => "
                         "[g.dataset.host, Math.round(g.querySelector('rect').getBBox().width)])")
    assert [b[0] for b in bars] == ["db01", report["hosts"][1]["host"], "web01", "old01", "app01", "web02", "cache01"]
    assert bars[0][1] == 520 and bars[2][1] == 256      # 81.2% and 40% of the 640 px scale
    chart = page.evaluate("(() => { const r = document.getElementById('chart').getBoundingClientRect(); return [r.width, r.height]; })()")
    assert chart[0] > 800 and chart[1] > 150
    # hostile text is shown as text, not run or parsed as markup
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed, link').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    assert "<img src=x onerror=alert(1)>" in page.evaluate("document.querySelector('#hosts tbody tr:nth-child(2) td.findings').textContent")


def test_sorting_by_clicking_headers(loaded, report):
    page = loaded[1]
    hosts = [e["host"] for e in report["hosts"]]
    click_header(page, 0)
    assert rows(page) == sorted(hosts, key=str.lower)
    assert page.evaluate("document.querySelectorAll('#hosts thead th')[0].getAttribute('aria-sort')") == "ascending"
    click_header(page, 0)
    assert rows(page) == sorted(hosts, key=str.lower, reverse=True)
    click_header(page, 2)   # unkillable share: numeric, largest first, unknowns last
    order = rows(page)
    assert order[:3] == ["db01", report["hosts"][1]["host"], "web01"]
    assert set(order[-2:]) == {"ghost01", "lb01"}
    click_header(page, 1)   # level: worst first
    levels = page.evaluate("Array.from(document.querySelectorAll('#hosts tbody tr')).map(r => r.dataset.level)")
    assert levels == ["critical", "high", "high", "medium", "low", "low", "ok", "unknown", "unknown"]


def test_taken_and_run_columns_sort_by_time(loaded, report):
    page = loaded[1]
    heads = page.evaluate("Array.from(document.querySelectorAll('#hosts thead th')).map(th => th.textContent)")
    assert heads[-2:] == ["Taken", "Run"]
    click_header(page, len(heads) - 2)   # text sort on the ISO time: oldest first, hosts without a time on top
    order = rows(page)
    assert order[:3] == ["ghost01", "old01", report["hosts"][1]["host"]], order   # no time, 01:00 and 02:00 (result files)
    cells = page.evaluate("Array.from(document.querySelectorAll('#hosts tbody tr')).map(r => "
                          "[r.dataset.host, r.cells[r.cells.length - 1].textContent])")
    runs = dict(cells)
    assert runs["db01"] == "this run" and runs["old01"] == "oomguard-20261129T010000Z-2002"


def test_filter_box(loaded):
    page = loaded[1]
    box = page.evaluate("(() => { const r = document.getElementById('filter').getBoundingClientRect(); return [r.x + 10, r.y + 5]; })()")
    page.click(*box)
    page.send("Input.insertText", text="web")
    assert sorted(rows(page)) == ["web01", "web02"]
    page.evaluate("(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()")
    assert len(rows(page)) == 9


def test_no_network_request_and_no_errors(loaded):
    browser, page, url = loaded
    time.sleep(2)  # give late requests (fonts, images, beacons) time to show
    requests = [r["request"]["url"] for r in page.events("Network.requestWillBeSent")]
    assert requests == [url]
    assert browser.proxy_connections == []
    errors = [e["entry"] for e in page.events("Log.entryAdded") if e["entry"]["level"] == "error"]
    assert errors == []
    assert page.events("Runtime.exceptionThrown") == []


def test_screenshot_kept_as_artifact(loaded):
    page = loaded[1]
    page.evaluate("window.scrollTo(0, 0)")
    os.makedirs(OUTPUT, exist_ok=True)
    path = page.screenshot(os.path.join(OUTPUT, "report-html.png"))
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000


def test_a_long_table_shows_a_page_sorts_filters_and_shows_all(report, tmp_path):
    """More hosts than a page: the first rows show, sorting and filtering run over every host."""
    from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_html import render_html
    hosts = [e["host"] for e in report["hosts"]]
    path = tmp_path / "paged.html"
    path.write_text(render_html(report, page_rows=3), encoding="utf-8")
    with Chromium() as browser:
        page = browser.open_page(path.as_uri())
        pager = "document.querySelector('#pager span').textContent"
        button = "document.getElementById('show-all')"
        assert rows(page) == hosts[:3]                                   # worst first, as the report orders them
        assert page.evaluate(pager) == "Showing 3 of %d hosts, in the table\u2019s order." % len(hosts)
        click_header(page, 0)                                            # host name: the page is the first 3 of all
        assert rows(page) == sorted(hosts, key=str.lower)[:3]
        page.evaluate("(() => { const f = document.getElementById('filter'); f.value = 'web'; f.dispatchEvent(new Event('input')); })()")
        assert rows(page) == ["web01", "web02"] and page.evaluate(pager) == "Showing all 2 hosts."
        assert page.evaluate(button + ".hidden") is True
        page.evaluate("(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()")
        assert len(rows(page)) == 3 and page.evaluate(button + ".hidden") is False
        box = page.evaluate("(() => { const b = %s; b.scrollIntoView({block: 'center'}); const r = b.getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()" % button)
        page.click(*box)
        assert rows(page) == sorted(hosts, key=str.lower)
        assert page.evaluate(pager) == "Showing all %d hosts." % len(hosts) and page.evaluate(button + ".hidden") is True
        assert page.events("Runtime.exceptionThrown") == []


def test_the_network_check_can_fail(tmp_path):
    """Control: a page that does fetch something is caught by both checks."""
    page_path = tmp_path / "leaky.html"
    page_path.write_text('<!DOCTYPE html><html><body><img src="http://oomguard-test.invalid/pixel.png"></body></html>')
    with Chromium() as browser:
        page = browser.open_page(page_path.as_uri())
        requests = [r["request"]["url"] for r in page.events("Network.requestWillBeSent")]
        assert "http://oomguard-test.invalid/pixel.png" in requests
        assert any("oomguard-test.invalid" in line for line in browser.proxy_connections)
