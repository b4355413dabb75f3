# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as one self-contained HTML page.

No external asset of any kind: styles, the SVG chart and the sorting script
are inline, and a Content-Security-Policy forbids the page to fetch anything.
Every value from a host goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import UNKNOWN, format_time, level_value
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report import result_time
from ansible_collections.oomguard.fleet.plugins.plugin_utils.report_formats import kib_text, pct_text, run_label, stale_note, taken

LEVEL_COLOURS = {
    "critical": "#b42318",
    "high": "#e8590c",
    "medium": "#d49b00",
    "low": "#3b7dd8",
    "ok": "#2b8a3e",
    UNKNOWN: "#6b7280",
}
_CARD_ORDER = ("critical", "high", "medium", "low", "ok", UNKNOWN)

_CSS = """
:root{color-scheme:light;--ink:#1f2328;--mute:#59636e;--line:#d8dee4;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg)}
header{background:#24292f;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header p{margin:0;color:#c9d1d9}
header code{background:rgba(255,255,255,.14);color:#fff}
main{padding:20px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 18px}
h2{font-size:16px;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 120px;border-radius:8px;padding:10px 14px;color:#fff;min-width:120px}
.card b{display:block;font-size:28px;line-height:1.1}
.card span{text-transform:uppercase;letter-spacing:.05em;font-size:12px}
.totals{color:var(--mute);margin:12px 0 0}
svg text{font:12px system-ui,"DejaVu Sans",sans-serif;fill:var(--ink)}
svg .axis{fill:var(--mute)}
.note{color:var(--mute);font-size:12px;margin:6px 0 0}
.tools{display:flex;gap:12px;align-items:center;margin:0 0 10px}
.tools input{font:inherit;padding:5px 9px;border:1px solid var(--line);border-radius:6px;width:260px}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid var(--line)}
th{background:#eef1f4;position:sticky;top:0;white-space:nowrap}
th button{all:unset;cursor:pointer;font-weight:600}
th button::after{content:" \\2195";color:var(--mute)}
th[aria-sort=ascending] button::after{content:" \\2191"}
th[aria-sort=descending] button::after{content:" \\2193"}
td.findings{min-width:260px}
.pager{display:flex;gap:12px;align-items:center;margin:10px 0 0;color:var(--mute)}
.pager button{font:inherit;padding:4px 10px;border:1px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}
.pager button[hidden]{display:none}
td.wide{min-width:130px}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#f6f8fa}
.lvl{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;font-weight:600}
ul{margin:0;padding-left:18px}
li{margin:0 0 2px}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;background:#eef1f4;padding:0 4px;border-radius:4px}
.muted{color:var(--mute)}
.stale{display:inline-block;border-radius:10px;padding:0 7px;background:#fff4d6;color:#7a4b00;border:1px solid #d49b00;font-size:12px;font-weight:600}
header .stale{margin-left:6px}
tr.is-stale td{background:#fffbeb}
"""

_JS = """
(function(){
  var table=document.getElementById('hosts');
  var body=table.tBodies[0];
  var heads=table.tHead.rows[0].cells;
  var page=parseInt(table.getAttribute('data-page'),10)||0;
  var limit=page;
  var query='';
  var texts=null;
  var pager=document.getElementById('pager');
  var more=document.getElementById('show-all');
  function key(row,col,num){
    var v=row.cells[col].getAttribute('data-v');
    if(num){var n=parseFloat(v);return isNaN(n)?-Infinity:n;}
    return (v||'').toLowerCase();
  }
  function show(){
    var rows=body.rows,matched=0,shown=0;
    for(var i=0;i<rows.length;i++){
      var r=rows[i];
      var hit=query===''||texts.get(r).indexOf(query)>=0;
      var visible=hit&&(limit===0||shown<limit);
      if(hit){matched++;}
      if(visible){shown++;}
      if(r.hidden===visible){r.hidden=!visible;}
    }
    if(pager){
      pager.querySelector('span').textContent=shown<matched?
        'Showing '+shown+' of '+matched+' hosts, in the table\u2019s order.':'Showing all '+matched+' hosts.';
      more.hidden=shown>=matched;
    }
  }
  function sortBy(col){
    var th=heads[col];
    var num=th.getAttribute('data-type')==='num';
    var dir=th.getAttribute('aria-sort')==='descending'?'ascending':'descending';
    if(!num&&!th.getAttribute('aria-sort')){dir='ascending';}
    for(var i=0;i<heads.length;i++){heads[i].removeAttribute('aria-sort');}
    th.setAttribute('aria-sort',dir);
    var keyed=Array.prototype.map.call(body.rows,function(r,i){return [key(r,col,num),i,r];});
    var sign=dir==='ascending'?1:-1;
    keyed.sort(function(a,b){return a[0]<b[0]?-sign:(a[0]>b[0]?sign:a[1]-b[1]);});
    var frag=document.createDocumentFragment();
    keyed.forEach(function(k){frag.appendChild(k[2]);});
    body.appendChild(frag);
    show();
  }
  function cacheTexts(){
    if(texts===null){
      texts=new Map();
      Array.prototype.forEach.call(body.rows,function(r){texts.set(r,r.textContent.toLowerCase());});
    }
  }
  for(var i=0;i<heads.length;i++){
    (function(col){heads[col].querySelector('button').addEventListener('click',function(){sortBy(col);});})(i);
  }
  var filter=document.getElementById('filter');
  filter.addEventListener('input',function(){
    cacheTexts();
    query=filter.value.toLowerCase();
    show();
  });
  if(more){more.addEventListener('click',function(){limit=0;show();});}
  document.documentElement.setAttribute('data-ready','1');
})();
"""


def _e(value):
    return escape("" if value is None else str(value), quote=True)


def _badge(level):
    return '<span class="lvl" style="background:%s">%s</span>' % (LEVEL_COLOURS[level], _e(level))


def _chart(hosts, limit):
    rows = [e for e in hosts if e["figures"]["unkillable_share_pct"] is not None]
    rows.sort(key=lambda e: (-e["figures"]["unkillable_share_pct"], e["host"]))
    shown = rows[:limit]
    if not shown:
        return '<p class="muted" id="chart-empty">No host reported its unkillable memory.</p>'
    label_w, bar_w, value_w, row_h, top = 220, 640, 70, 22, 26
    width = label_w + bar_w + value_w
    height = top + row_h * len(shown) + 8
    parts = ['<svg id="chart" role="img" aria-label="Unkillable share of memory per host" width="%d" height="%d" viewBox="0 0 %d %d" '
             'xmlns="http://www.w3.org/2000/svg">' % (width, height, width, height)]
    for tick in (0, 25, 50, 75, 100):
        x = label_w + bar_w * tick / 100.0
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#d8dee4"/>' % (x, top - 6, x, height - 4))
        parts.append('<text class="axis" x="%.1f" y="%d" text-anchor="middle">%d%%</text>' % (x, top - 10, tick))
    for index, entry in enumerate(shown):
        y = top + index * row_h
        share = max(0.0, min(100.0, float(entry["figures"]["unkillable_share_pct"])))
        host = entry["host"]
        label = host if len(host) <= 30 else host[:29] + "\u2026"
        parts.append('<g class="bar" data-host="%s"><title>%s: %s of memory unkillable (%s)</title>' % (
            _e(host), _e(host), pct_text(entry["figures"]["unkillable_share_pct"]), _e(entry["level"])))
        parts.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (label_w - 8, y + 15, _e(label)))
        parts.append('<rect x="%d" y="%d" width="%.1f" height="%d" rx="3" fill="%s"/>' % (
            label_w, y + 3, max(bar_w * share / 100.0, 1.5), row_h - 6, LEVEL_COLOURS[entry["level"]]))
        parts.append('<text x="%.1f" y="%d">%s</text></g>' % (label_w + bar_w * share / 100.0 + 6, y + 15, pct_text(share)))
    parts.append("</svg>")
    note = "Share of MemTotal held by processes at oom_score_adj -1000; a bar's colour is its host's level."
    if len(rows) > limit:
        note += " The %d hosts with the largest share of %d; the table lists every host." % (limit, len(rows))
    return "".join(parts) + '<p class="note">%s</p>' % note


def _findings_cell(entry):
    if entry["level"] == UNKNOWN and not entry["findings"]:
        return '<span class="muted">%s</span>' % _e(entry["reason"])
    if not entry["findings"]:
        return '<span class="muted">none</span>'
    items = "".join('<li><code>%s</code> %s</li>' % (_e(f["id"]), _e(f["message"])) for f in entry["findings"])
    extra = ""
    if entry["level"] == UNKNOWN:
        extra = '<div class="muted">%s</div>' % _e(entry["reason"])
    return "<ul>%s</ul>%s" % (items, extra)


def _snapshots_cell(entry):
    snaps = entry["snapshots"]
    if not snaps:
        return '<span class="muted">-</span>'
    ids = ", ".join(_e(s["snapshot_id"]) for s in snaps["snapshots"])
    return "%s %s<div class=\"muted\">%s</div>" % (_e(snaps["status"]), _e(snaps["provider"] or ""), ids or _e(snaps["message"]))


def _changes_cell(entry):
    changes = entry["changes"]
    if not changes:
        return '<span class="muted">-</span>'
    items = "".join("<li>%s (pid %s) %s &rarr; %s</li>" % (_e(c["name"]), _e(c["pid"]), _e(c["old"]), _e(c["new"])) for c in changes["changes"])
    reason = '<div class="muted">%s</div>' % _e(changes["reason"]) if changes["reason"] else ""
    return "%s (%s)%s%s" % (_e(changes["status"]), _e(changes["mode"]), "<ul>%s</ul>" % items if items else "", reason)


def result_time_text(entry):
    """The sort key of the Taken column: the ISO time, empty when unknown."""
    stamp = result_time(entry)
    return format_time(stamp) if stamp else ""


def _taken_cell(entry, report):
    when, age = taken(entry, report)
    if age is None:
        return '<span class="muted">-</span>'
    flag = ' <span class="stale" title="taken more than %d h before this report">stale</span>' % (
        report.get("stale_after_hours") or 0) if entry.get("stale") else ""
    return '%s%s<div class="muted">%s before the report</div>' % (_e(when), flag, _e(age))


def _run_cell(entry, report):
    label = run_label(entry, report)
    if label == "this run":
        return '<span class="muted">this run</span>'
    return "<code>%s</code>" % _e(label)


def _pager(count, page_rows):
    """The line under a table that shows only its first ``page_rows`` rows."""
    if not page_rows or count <= page_rows:
        return ""
    return ('<p class="pager" id="pager"><span>Showing %d of %d hosts, in the table\u2019s order.</span>'
            '<button type="button" id="show-all">Show all %d hosts</button></p>' % (page_rows, count, count))


def _num_attr(value):
    return "" if value is None else str(value)


# Rows drawn at first: a browser lays out every shown row of the table again after each sort,
# so a page of tens of thousands of hosts shows the first PAGE_ROWS (worst first) and a button
# shows the rest; sorting and filtering run over every host. The JSON and CSV hold them all.
PAGE_ROWS = 500


def render_html(report, chart_limit=40, page_rows=PAGE_ROWS):
    """The report as one HTML page; ``page_rows`` rows shown at first (0: all)."""
    totals = report["totals"]
    cards = "".join(
        '<div class="card" data-level="%s" style="background:%s"><b>%d</b><span>%s</span></div>' % (
            level, LEVEL_COLOURS[level], totals["by_level"][level], level)
        for level in _CARD_ORDER)
    rows = []
    for index, entry in enumerate(report["hosts"]):
        fig = entry["figures"]
        rows.append(
            '<tr data-host="%s" data-level="%s"%s%s>'
            '<td data-v="%s">%s</td>'
            '<td data-v="%d">%s</td>'
            '<td class="num" data-v="%s">%s</td>'
            '<td class="num" data-v="%s">%s</td>'
            '<td class="num" data-v="%s">%s</td>'
            '<td class="findings" data-v="%d">%s</td>'
            '<td class="wide" data-v="%s">%s</td>'
            '<td class="wide" data-v="%s">%s</td>'
            '<td class="wide" data-v="%s">%s</td>'
            '<td class="wide" data-v="%s">%s</td>'
            "</tr>" % (
                _e(entry["host"]), entry["level"], ' class="is-stale" data-stale="1"' if entry.get("stale") else "",
                " hidden" if page_rows and index >= page_rows else "",
                _e(entry["host"]), _e(entry["host"]),
                level_value(entry["level"]), _badge(entry["level"]),
                _num_attr(fig["unkillable_share_pct"]), pct_text(fig["unkillable_share_pct"]),
                _num_attr(fig["unkillable_rss_kb"]), kib_text(fig["unkillable_rss_kb"]),
                _num_attr(fig["sunreclaim_kb"]), kib_text(fig["sunreclaim_kb"]),
                len(entry["findings"]), _findings_cell(entry),
                _e((entry["snapshots"] or {}).get("status") or ""), _snapshots_cell(entry),
                _e((entry["changes"] or {}).get("status") or ""), _changes_cell(entry),
                _e(result_time_text(entry)), _taken_cell(entry, report),
                _e(run_label(entry, report)), _run_cell(entry, report),
            ))
    problems = ""
    if report["problems"]:
        problems = '<section id="problems"><h2>Result files skipped</h2><ul>%s</ul></section>' % "".join(
            "<li><code>%s</code>: %s</li>" % (_e(p["file"]), _e(p["error"])) for p in report["problems"])
    run = " &middot; run <code>%s</code>" % _e(report["run_id"]) if report["run_id"] else ""
    heads = (("Host", "text"), ("Level", "num"), ("Unkillable share", "num"), ("Unkillable RSS", "num"),
             ("SUnreclaim", "num"), ("Findings", "num"), ("Snapshots", "text"), ("Changes", "text"),
             ("Taken", "text"), ("Run", "text"))
    stale = ' <span class="stale" id="stale-note">%s</span>' % _e(stale_note(report)) if stale_note(report) else ""
    head_html = "".join('<th scope="col" data-type="%s"><button type="button">%s</button></th>' % (kind, name) for name, kind in heads)
    return "".join((
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title><style>%s</style></head><body>" % (_e(report["title"]), _CSS),
        "<header><h1>%s</h1><p>Generated %s%s &middot; %d hosts%s</p></header><main>" % (
            _e(report["title"]), _e(report["generated_at"]), run, totals["hosts"], stale),
        '<section id="totals"><h2>Fleet by exposure level</h2><div class="cards">%s</div>' % cards,
        '<p class="totals">Unkillable memory across the fleet: <b>%s</b> &middot; flagged processes: <b>%d</b> '
        "&middot; snapshots: <b>%d</b> &middot; hosts changed: <b>%d</b></p></section>" % (
            kib_text(totals["unkillable_rss_kb"]), totals["flagged_processes"], totals["snapshots"], totals["changed_hosts"]),
        '<section id="share"><h2>Unkillable share of memory per host</h2>%s</section>' % _chart(report["hosts"], chart_limit),
        '<section><h2>Hosts</h2><div class="tools"><input id="filter" type="search" placeholder="Filter hosts, findings&hellip;" '
        'aria-label="Filter hosts"><span class="muted">Click a column header to sort.</span></div>',
        '<div class="table-wrap"><table id="hosts" data-page="%d"><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>%s</section>' % (
            page_rows or 0, head_html, "".join(rows), _pager(len(rows), page_rows)),
        problems,
        "</main><script>%s</script></body></html>\n" % _JS,
    ))
