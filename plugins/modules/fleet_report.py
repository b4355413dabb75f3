# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the fleet OOM exposure report (JSON, CSV, Markdown, HTML, JUnit, Prometheus)
version_added: 0.1.0
description:
  - Builds one report of the fleet's exposure to the C(Out of memory and no killable processes) kernel panic
    from the hosts' C(oomguard_exposure), C(oomguard_snapshots) and C(oomguard_changes) variables and, optionally,
    from a directory of per-host result files written by earlier or parallel runs (AWX job slices, several controllers).
  - Runs on the controller (it is an action plugin); it reads the other hosts' variables through C(hostvars),
    so run it once, for example with C(run_once=true) on the task.
  - Merging keeps the newest result per host (by C(written_at)). A host in O(hosts) with no result at all
    is listed as C(unknown) with the reason C(no result). A host the current play lost (unreachable or failed,
    that is in C(ansible_play_hosts_all) but no longer in C(ansible_play_hosts)) is C(unknown), never counted as safe.
  - Only known fields are copied from each host, and free text is redacted of credentials, so nothing
    a host did not mean to publish reaches a report file.
  - Every file is written atomically (a temporary file in the same directory, then a rename), so
    node_exporter's textfile collector and CI never read half a file.
  - When the new report says the same as the JSON report already at O(dest), the files are left alone
    and the task reports no change. This needs C(json) in O(formats); without it every run rewrites the files.
options:
  hosts:
    description:
      - Inventory names of the hosts to report on. Every one appears in the report.
      - Defaults to the play's hosts, C(ansible_play_hosts_all).
      - In a separate play on C(localhost), pass the audited group, for example C("{{ groups['fleet'] }}").
    type: list
    elements: str
  dest:
    description:
      - Directory for the report files on the controller; created when missing.
      - An absolute path. An empty or relative one is refused with what to set, since it would follow the current
        directory of whoever starts the play.
    type: path
    required: true
  formats:
    description:
      - Which files to write. C(json) is C(<basename>.json) (schema in C(docs/report-schema.json)),
        C(csv) one row per host, C(markdown) a summary for a CI job page or a ticket,
        C(html) one self-contained page, C(junit) C(<basename>.junit.xml), C(prometheus) a
        node_exporter textfile (see O(prometheus_path)).
    type: list
    elements: str
    choices: [json, csv, markdown, html, junit, prometheus]
    default: [json, csv, markdown, html, junit]
  basename:
    description:
      - File name without extension for the report files in O(dest).
    type: str
    default: oomguard-report
  title:
    description:
      - Title of the Markdown and HTML reports.
    type: str
    default: oomguard fleet report
  results_dir:
    description:
      - Directory of per-host result files C(<host>.json) (format in the collection's C(docs/data-contract.md)).
      - The files in it are merged into the report; files that cannot be read or do not follow the format are
        skipped and listed in RV(problems) and in every report format.
      - With O(write_results), the hosts of this run are written to it too, so other runs can merge them.
      - A file that is not JSON, not valid UTF-8, holds a lone surrogate, is nested too deeply, is larger than
        16 MiB or is not a regular file is skipped and listed too; it never stops the report.
    type: path
  write_results:
    description:
      - Write a result file into O(results_dir) for every host this play assessed or lost.
      - Hosts with no result in this play get no file, so they do not hide a result another run wrote.
      - Names as M(oomguard.fleet.oom_exposure) does (C(web/1) writes C(web_1~<hash>.json)); mode C(0640).
      - Not in check mode (the changes such a file records were not made).
    type: bool
    default: true
  prometheus_path:
    description:
      - Where to write the Prometheus textfile, for example C(/var/lib/node_exporter/textfile_collector/oomguard.prom).
      - Defaults to C(<dest>/<basename>.prom). The name must end in C(.prom) for node_exporter to read it.
    type: path
  junit_fail_on:
    description:
      - In the JUnit file, a host's test case fails when its level is at or above this one.
    type: str
    choices: [low, medium, high, critical]
    default: high
  fail_on:
    description:
      - Fail the task, after writing every file, when any host is at or above this level.
      - V(none) never fails for the level of a host.
      - V(never) is a deprecated alias of V(none) (the word the C(assess) role used), accepted until release 0.2.0.
    type: str
    choices: [none, low, medium, high, critical, never]
    default: none
  unknown_fails:
    description:
      - Whether a host at C(unknown) trips O(fail_on) (whatever its level) and is a JUnit C(error).
      - With V(false), unknown hosts are JUnit C(skipped) and never fail the task.
    type: bool
    default: true
  run_id:
    description:
      - The run's id, shown in the reports. Defaults to C(oomguard_run_id) when set.
    type: str
  worst:
    description:
      - How many of the worst hosts the RV(summary) lists with their top finding.
    type: int
    default: 5
  stale_after_hours:
    description:
      - A host whose result was taken (its C(checked_at), else its C(written_at)) more than this many hours before
        the report is marked stale - in the JSON (C(stale)), with a C(stale) badge in the HTML table and in its own
        section of the Markdown summary - so that a result merged from an old result file is never read as fresh.
      - Every host's time and run id are shown in the HTML and Markdown reports whatever this is. C(0) marks no host.
    type: int
    default: 24
attributes:
  check_mode:
    support: full
    details: Builds the report and says which files would change, writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: all
    details: Runs on the controller only.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
notes:
  - Level order is C(ok) < C(low) < C(medium) < C(high) < C(critical); C(unknown) is listed apart and never counted as safe.
seealso:
  - name: Fleet report documentation
    description: Every format, the JSON schema, CI gating, node_exporter and merging AWX job slices.
    link: https://github.com/oomguard/fleet/blob/main/docs/report.md
author:
  - oomguard.fleet contributors (@oomguard)
"""

EXAMPLES = r"""
- name: Report on the play's hosts, fail when any is high or worse
  oomguard.fleet.fleet_report:
    dest: /var/tmp/oomguard
    fail_on: high
  run_once: true

- name: In a final play on localhost, report on the audited group and merge AWX slices
  oomguard.fleet.fleet_report:
    hosts: "{{ groups['fleet'] }}"
    dest: "{{ playbook_dir }}/report"
    results_dir: /srv/oomguard/results
    formats: [json, html, junit, prometheus]
    prometheus_path: /var/lib/node_exporter/textfile_collector/oomguard.prom
"""

RETURN = r"""
report_files:
  description: The report file of each asked format.
  returned: success
  type: dict
  sample: {"json": "/var/tmp/oomguard/oomguard-report.json", "html": "/var/tmp/oomguard/oomguard-report.html"}
changed_files:
  description: Report files whose content changed (or would change in check mode).
  returned: success
  type: list
  elements: str
  sample: ["/var/tmp/oomguard/oomguard-report.json"]
result_files:
  description: Per-host result files written into O(results_dir).
  returned: success
  type: list
  elements: str
  sample: ["/srv/oomguard/results/web01.json"]
totals:
  description: Fleet totals, as in the JSON report.
  returned: success
  type: dict
  contains:
    hosts:
      description: Hosts in the report.
      type: int
      returned: success
      sample: 42
    by_level:
      description: Hosts per level, every level present.
      type: dict
      returned: success
      sample: {"ok": 30, "low": 4, "medium": 3, "high": 2, "critical": 1, "unknown": 2}
    unkillable_rss_kb:
      description: Resident memory of unkillable processes over all hosts, KiB.
      type: int
      returned: success
      sample: 6291456
    flagged_processes:
      description: Unkillable processes outside the allowlist over all hosts.
      type: int
      returned: success
      sample: 3
    snapshots:
      description: Disk snapshots recorded for the hosts.
      type: int
      returned: success
      sample: 6
    changed_hosts:
      description: Hosts whose oom_score_adj settings were changed.
      type: int
      returned: success
      sample: 1
problems:
  description: Result files that were skipped, each with the reason.
  returned: success
  type: list
  elements: dict
  sample: [{"file": "/srv/oomguard/results/web09.json", "error": "unreadable: Expecting value: line 1 column 1 (char 0)"}]
summary:
  description: The short console summary, one line each (counts per level, then the worst hosts with their top finding).
  returned: success
  type: list
  elements: str
  sample: ["12 hosts: critical 1, high 1, medium 0, low 0, ok 9, unknown 1", "db01 [critical] OOM001 unkillable processes hold 81.0% of memory"]
gate:
  description: The O(fail_on) level and the hosts at or above it.
  returned: success
  type: dict
  sample: {"fail_on": "high", "hosts": [{"host": "db01", "level": "critical"}]}
stats:
  description:
    - A small summary for C(ansible.builtin.set_stats), so that AWX (a workflow's next node) or a wrapper can branch
      on the result - the role M(oomguard.fleet.report) hands it over as C(oomguard_report_summary).
    - C(worst_level) is the worst measured level (C(null) when no host was measured); C(unknown_hosts) and
      C(gate.hosts) list at most 50 names; C(files) maps each format to its file.
  returned: when the report was built
  type: dict
  sample: {"generated_at": "2026-11-29T03:00:00Z", "run_id": "oomguard-20261129T030000Z-4242", "hosts": 5,
           "by_level": {"ok": 1, "low": 0, "medium": 1, "high": 1, "critical": 1, "unknown": 1},
           "worst_level": "critical", "unknown_hosts": ["lb01"],
           "gate": {"fail_on": "high", "tripped": true, "hosts": ["db01", "web01", "lb01"]}, "problems": 0,
           "files": {"json": "/srv/oomguard/report/oomguard-report.json"}}
"""
