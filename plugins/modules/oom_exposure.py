# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: oom_exposure
short_description: Gather a host's OOM facts and judge its exposure to the no-killable-processes panic in one task
version_added: 0.1.0
description:
  - Runs M(oomguard.fleet.oom_score_facts) on the host (one round trip, the same options), judges the facts on the
    controller with the rules of the P(oomguard.fleet.exposure#filter) filter, and returns both as facts -
    C(ansible_facts.oom), C(ansible_facts.slabinfo), C(ansible_facts.oom_evidence) and C(oomguard_exposure).
  - Read the verdict as C(ansible_facts.oomguard_exposure) or from the registered result, not as the top-level
    C(oomguard_exposure) fact - that one exists only through C(inject_facts_as_vars), whose default is deprecated
    from ansible-core 2.20 (reading it warns) and off from 2.24. The role M(oomguard.fleet.assess) sets
    C(oomguard_exposure) as a plain host variable with C(set_fact).
  - Does in one task per host what M(oomguard.fleet.oom_score_facts), a C(set_fact) with the filter and a
    C(debug) of the verdict do in three; the C(oomguard.fleet.assess) role uses it.
  - Prints the host's summary line and one line per finding in the play output. The raw facts are kept off the
    screen, as the C(setup) module does; they are in the facts and in the registered result's C(ansible_facts).
    With the C(json) or C(jsonl) stdout callback nothing extra is printed; the verdict is in RV(msg).
  - A host that cannot be reached, or whose facts could not be gathered, is not dropped - it is judged
    C(unknown) with the reason, and counts in Ansible's own terms - the task is C(UNREACHABLE) for a host that
    could not be reached (the recap counts it C(unreachable), C(ansible-playbook) exits 4) and failed for a host
    whose facts module failed (exit 2). Such a task sets no facts; its verdict is in the registered result's
    RV(oomguard_exposure) (the role M(oomguard.fleet.assess) registers it as C(oomguard_assess_result), which
    the report reads) and in its result file.
  - Bad options or custom rules fail the task before anything runs on the host, with a message naming the option
    or rule.
  - With O(results_dir), writes the host's result file C(<host>.json) on the controller (format in the
    collection's C(docs/data-contract.md)), also for unknown hosts and hosts the gate fails, and in check mode,
    since it records what was read.
  - With O(fail_on), fails the host when its level is at or above that level, after writing its result file.
    A failed task sets no facts, so the verdict of such a host is in the registered result's
    RV(oomguard_exposure) and its result file. To keep the fact, leave O(fail_on=none) and stop the hosts in a
    later task with the P(oomguard.fleet.exposure_gate#filter) filter, as the role M(oomguard.fleet.assess) does.
author:
  - oomguard.fleet maintainers (@oomguard)
requirements:
  - C(jmespath) >= 1.1.0 on the controller, for O(custom_rules) only; the built-in rules need nothing beyond ansible-core.
extends_documentation_fragment:
  - oomguard.fleet.procfs
  - oomguard.fleet.procfs.SLABINFO_BASELINE
  - oomguard.fleet.procfs.FACTS
  - oomguard.fleet.oom_facts
  - oomguard.fleet.oom_facts.RULES
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - The facts module only reads, except that O(slabinfo_baseline=store) writes a baseline, which check mode skips.
      - The result file in O(results_dir) is written in check mode too (it records what was read, on the controller).
options:
  host:
    description:
      - Host name recorded in the verdict and used for the result file name. Defaults to C(inventory_hostname).
    type: str
  fail_on:
    description:
      - Fail the host when its level is at or above this one. V(none) never fails.
      - A host judged C(unknown) fails every gate that is set.
      - V(never) is a deprecated alias of V(none), accepted until release 0.2.0.
    type: str
    choices: [none, low, medium, high, critical, never]
    default: none
  fail_on_name:
    description:
      - Name of the setting shown in the gate's failure message, for roles that pass their own variable as O(fail_on).
    type: str
    default: fail_on
  results_dir:
    description:
      - Directory on the controller for the host's result file C(<host>.json) (mode C(0640), written atomically;
        the directory is created with mode C(0750)). Unset, no file is written.
      - A host name that is not already a safe lower-case file name gets C(~) and 16 hex digits of its SHA-256
        (C(web/1) writes C(web_1~<hash>.json)), so names that sanitise alike never share a file; the report role
        names the files the same way.
      - A symlinked result file or directory, or a directory owned by another user or writable by group or others
        (unless sticky), is refused with the path and what to change; a replaced file keeps its mode and owner.
    type: path
  run_id:
    description:
      - Run id recorded in the result file. Defaults to the C(oomguard_run_id) variable; null when neither is set.
    type: str
  display:
    description:
      - Print the summary line and the findings in the play output.
    type: bool
    default: true
notes:
  - Options passed through to M(oomguard.fleet.oom_score_facts) keep its defaults, so O(gather_subset) is only
    V(oom) unless set; the C(assess) role gathers all three subsets.
seealso:
  - module: oomguard.fleet.oom_score_facts
  - plugin: oomguard.fleet.exposure
    plugin_type: filter
  - name: Exposure assessment documentation
    description: The rules, the assess role that uses this action, custom rules and incident evidence.
    link: https://github.com/oomguard/fleet/blob/main/docs/assess.md
"""

EXAMPLES = r"""
- name: Gather and judge in one task
  oomguard.fleet.oom_exposure:
    gather_subset: [oom, slabinfo, evidence]
    slabinfo_baseline: store
  become: true

- name: CI gate - fail critical and unknown hosts, keep a result file per host
  oomguard.fleet.oom_exposure:
    gather_subset: all
    fail_on: critical
    results_dir: "{{ playbook_dir }}/oomguard-results"
    allowlist: [systemd-udevd, {name: sshd, max_rss_kb: 262144}]
    custom_rules:
      - id: SITE001
        severity: medium
        query: "oom.processes[?oom_score_adj < `-900` && uid != `0`].name"
        message: "non-root processes with a very low oom_score_adj: {result}"
  become: true

- name: Judge a captured procfs tree on the controller
  oomguard.fleet.oom_exposure:
    proc_path: /srv/captures/web01/proc
    host: web01
  delegate_to: localhost
"""

RETURN = r"""
msg:
  description:
    - "The host's summary line, one C(ID: message) line per finding, and the gate's message when it failed the host."
  returned: when the host was judged
  type: list
  elements: str
  sample:
    - "web01: critical (OOM001/critical, OOM002/high); unkillable 6.0 GiB = 78.6% of 7.6 GiB, SUnreclaim 0.5%, 1 flagged"
    - "OOM001: 2 unkillable process(es) (oom_score_adj -1000) hold 6.0 GiB RSS, 78.6% of MemTotal 7.6 GiB ..."
oomguard_exposure:
  description:
    - The verdict, C(oomguard_exposure) of the collection's data contract (see the P(oomguard.fleet.exposure#filter)
      filter's return value). Also set as a fact unless the gate failed the host or the facts could not be gathered.
  returned: when the host was judged
  type: dict
  sample: {schema: 1, host: web01, level: ok, reason: null, findings: [], flagged: [], skipped: [],
           summary: "web01: ok (no findings); unkillable 1.4 MiB = 0.0% of 7.6 GiB, SUnreclaim 0.5%, 0 flagged"}
gate_tripped:
  description: Whether the level reached O(fail_on).
  returned: when the host was judged
  type: bool
  sample: false
gather_error:
  description: Why the facts could not be gathered (the host was unreachable or the module failed); the level is C(unknown).
  returned: when the gathering failed
  type: str
  sample: "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.7 port 22: Connection refused"
result_file:
  description: Path of the result file written on the controller.
  returned: when O(results_dir) is set
  type: str
  sample: /srv/oomguard/results/web01.json
ansible_facts:
  description: The gathered facts and the verdict. Not returned when the gate fails the host or the gathering failed.
  returned: when the host was read and the gate did not fail it
  type: complex
  contains:
    oom:
      description: As returned by M(oomguard.fleet.oom_score_facts).
      returned: when O(gather_subset) includes V(oom)
      type: dict
    slabinfo:
      description: As returned by M(oomguard.fleet.oom_score_facts).
      returned: when O(gather_subset) includes V(slabinfo)
      type: dict
    oom_evidence:
      description: As returned by M(oomguard.fleet.oom_score_facts).
      returned: when O(gather_subset) includes V(evidence)
      type: dict
    oomguard_exposure:
      description: The verdict, as RV(oomguard_exposure).
      returned: always
      type: dict
"""
