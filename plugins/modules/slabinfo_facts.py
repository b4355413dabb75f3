#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: slabinfo_facts
short_description: Kernel slab cache usage from /proc/slabinfo, with growth against a stored baseline
version_added: 0.1.0
description:
  - Reads C(/proc/slabinfo) (versions 2.0, 2.1 and C(2.1 (statistics)), SLAB and SLUB allocators) and the slab lines
    of C(/proc/meminfo), and returns them as C(ansible_facts.slabinfo).
  - A kernel that leaks memory into slab caches (C(SUnreclaim) growing) can reach an OOM that no process kill can fix;
    this module is the first step of the vendor runbook for the C(Out of memory and no killable processes) panic.
  - With O(baseline=store) it keeps the per-cache sizes on the host and reports, on the next run, which caches grew
    and how fast (KiB and KiB per hour).
  - The same facts are available from M(oomguard.fleet.oom_score_facts) with O(oomguard.fleet.oom_score_facts#module:gather_subset=slabinfo),
    in the same round trip as the process facts.
author:
  - oomguard.fleet maintainers (@oomguard)
extends_documentation_fragment:
  - oomguard.fleet.procfs
  - oomguard.fleet.procfs.SLABINFO_BASELINE
  - oomguard.fleet.procfs.FACTS
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: In check mode the baseline is read but never written.
options:
  top:
    description:
      - How many caches to return in RV(ansible_facts.slabinfo.caches), largest first, and the most growth rows.
      - V(0) returns every cache.
    type: int
    default: 20
  baseline:
    description:
      - V(none) returns no growth.
      - V(compare) reads the baseline at O(baseline_path) and returns RV(ansible_facts.slabinfo.growth).
      - V(store) does what V(compare) does, then replaces the baseline with this run's figures (not in check mode).
      - The first run says there is no baseline yet instead of guessing.
    type: str
    choices: [none, compare, store]
    default: none
  baseline_path:
    description:
      - The baseline file on the managed host, written mode 0600. Its directory is created with mode 0700 when missing.
      - An existing directory is never chmodded; a symlink, a directory owned by another user than root (or the user the
        module runs as), or one group or others may write without the sticky bit is refused. A symlink at the path is
        refused, not replaced.
    type: path
    default: /var/lib/oomguard/slabinfo-baseline.json
"""

EXAMPLES = r"""
- name: Read slab usage (needs root for /proc/slabinfo)
  oomguard.fleet.slabinfo_facts:
  become: true

- name: Show the five largest caches
  ansible.builtin.debug:
    msg: "{{ ansible_facts.slabinfo.caches[:5] | map(attribute='name') | list }}"
  when: ansible_facts.slabinfo.available

- name: Keep a baseline and report growth since the previous run
  oomguard.fleet.slabinfo_facts:
    baseline: store
    top: 10
  become: true

- name: Caches that grew more than 100 MiB per hour
  ansible.builtin.debug:
    msg: "{{ ansible_facts.slabinfo.growth.caches | selectattr('growth_kb_per_hour', 'gt', 102400) | list }}"
  when: ansible_facts.slabinfo.growth.baseline | default(false)
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to C(ansible_facts).
  returned: always
  type: complex
  contains:
    slabinfo:
      description: Slab usage. Sizes are KiB.
      returned: always
      type: dict
      contains:
        schema:
          description: Version of this layout; later versions only add keys.
          type: int
          returned: always
          sample: 1
        available:
          description: Whether C(/proc/slabinfo) could be read. When false, RV(ansible_facts.slabinfo.reason) says why.
          type: bool
          returned: always
          sample: true
        reason:
          description: Why the file could not be read and what to do (for example C(become) for root), else null.
          type: str
          returned: always
          sample: /proc/slabinfo is readable by root only; run the task with become true
        version:
          description: The slabinfo format version.
          type: str
          returned: always
          sample: "2.1"
        statistics:
          description: Whether the file is the C(2.1 (statistics)) variant of the SLAB allocator.
          type: bool
          returned: always
          sample: false
        total_kb:
          description: Memory held by all caches, from C(num_slabs * pagesperslab * page size).
          type: int
          returned: always
          sample: 248480
        active_kb:
          description: Memory of the objects in use in all caches (C(active_objs * objsize)).
          type: int
          returned: always
          sample: 232824
        cache_count:
          description: Number of caches in the file.
          type: int
          returned: always
          sample: 235
        caches:
          description:
            - The largest caches, largest first, at most O(top).
            - Each has the raw columns C(name), C(active_objs), C(num_objs), C(objsize), C(objperslab),
              C(pagesperslab), C(active_slabs), C(num_slabs), plus C(size_kb) and C(active_kb).
          type: list
          elements: dict
          returned: always
          sample: [{name: dentry, active_objs: 138287, num_objs: 138432, objsize: 192, objperslab: 21, pagesperslab: 1,
                    active_slabs: 6592, num_slabs: 6592, size_kb: 26368, active_kb: 25928}]
        meminfo:
          description: The slab lines of C(/proc/meminfo) and C(MemTotal), in KiB; also present when the file is unreadable.
          type: dict
          returned: always
          sample: {slab_kb: 255060, sreclaimable_kb: 222728, sunreclaim_kb: 32332, mem_total_kb: 24684084}
        growth:
          description: Growth since the stored baseline.
          type: dict
          returned: when O(baseline) is not V(none) and the file was readable
          contains:
            baseline:
              description: Whether a stored baseline existed and could be read.
              type: bool
              sample: true
            baseline_at:
              description: When the baseline was stored (ISO 8601, UTC), else null.
              type: str
              sample: "2026-11-28T02:00:00Z"
            hours:
              description: Hours since the baseline, else null.
              type: float
              sample: 24.0
            caches:
              description: Caches that grew, most growth first, at most O(top); a cache new since the baseline counts from 0.
              type: list
              elements: dict
              sample: [{name: kmalloc-64, size_kb: 900000, baseline_kb: 100000, growth_kb: 800000, growth_kb_per_hour: 33333.3}]
            baseline_path:
              description: The baseline file.
              type: str
              sample: /var/lib/oomguard/slabinfo-baseline.json
            stored:
              description: Whether this run wrote a new baseline.
              type: bool
              sample: true
            message:
              description: What happened, in a sentence, including "no baseline yet" on the first run.
              type: str
              sample: no baseline yet at /var/lib/oomguard/slabinfo-baseline.json; stored a new baseline
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts, slabinfo_arguments


def main():
    module = AnsibleModule(
        argument_spec=dict(
            proc_path=dict(type="path", default="/proc"),
            top=dict(type="int", default=20),
            baseline=dict(type="str", default="none", choices=["none", "compare", "store"]),
            baseline_path=dict(type="path", default="/var/lib/oomguard/slabinfo-baseline.json"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["top"] < 0:
        module.fail_json(msg="top must be 0 (all caches) or a positive number, not %d" % params["top"])
    try:
        facts = gather_slabinfo_facts(check_mode=module.check_mode, **slabinfo_arguments(params))
    except OomguardError as exc:
        module.fail_json(msg="Failed to read slab facts: %s" % exc)
    module.exit_json(changed=False, ansible_facts={"slabinfo": facts})


if __name__ == "__main__":
    main()
