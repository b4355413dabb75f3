#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: oom_score_facts
short_description: Which processes the OOM killer may not kill, how much memory they hold, and the OOM sysctls
version_added: 0.1.0
description:
  - Walks C(/proc/[0-9]*) once and returns C(ansible_facts.oom) - per process C(oom_score_adj), RSS and systemd unit,
    the C(/proc/meminfo) figures, the C(vm.panic_on_oom), C(vm.overcommit_memory) and C(vm.oom_kill_allocating_task)
    sysctls, and a summary of unkillable against killable memory.
  - The kernel panics with C(Out of memory and no killable processes) when every process it could kill is exempt;
    a process with C(oom_score_adj) C(-1000) (legacy C(oom_adj) C(-17)) is exempt, and its children inherit the value.
  - Kernel threads are recognised by the C(PF_KTHREAD) flag in C(/proc/<pid>/stat) and only counted.
    Only thread-group leaders are scanned, as the OOM killer scores processes, not threads.
  - By default only the rows worth a look are returned - every process at or below O(adj_threshold) and the
    O(top_killable) largest killable ones - so that a host with tens of thousands of processes ships a few KiB.
    The summary always covers every process.
  - Each process costs two reads (C(stat) and C(oom_score_adj)); C(status), C(oom_score), C(cgroup) and C(cmdline) are
    read only for returned rows. A process that exits or denies a read during the scan is skipped and counted under
    RV(ansible_facts.oom.errors); it never fails the host, but an unreadable one makes the exposure verdict C(unknown).
  - Command lines are redacted before they leave the host, inside each argument too (C(sh -c "mysql -pX")) -
    C(--password=...), C(--password value), C(token=...), C(-p secret), C(-k secret), C(-u user:pass),
    C(key=value) pairs, YAML-style pairs and JSON values under secret-looking keys, URL query keys (C(?api_key=...)),
    credentials in URLs, C(Authorization) headers and C(Bearer)/C(Basic) credentials, and tokens known by their
    shape (Vault C(hvs.), AWS C(AKIA...), GitHub C(ghp_), Slack C(xoxb-), GitLab C(glpat-), JWTs); then truncated to
    O(cmdline_max). With O(return_cmdline=false) the command line is not read at all and C(cmdline) is null.
  - With O(gather_subset=slabinfo) the module also returns C(ansible_facts.slabinfo) exactly as
    M(oomguard.fleet.slabinfo_facts) does, in the same round trip.
  - With O(gather_subset=evidence) it also returns C(ansible_facts.oom_evidence) - past OOM kills and the panic
    strings C(Out of memory and no killable processes) and C(System is deadlocked on memory) found in the journal's
    kernel messages across boots, C(/var/log/kern.log) or C(/var/log/messages), C(/sys/fs/pstore),
    C(/var/lib/systemd/pstore) (where systemd-pstore.service moves it at boot) and kdump's
    C(/var/crash/*/vmcore-dmesg.txt), within O(evidence_days) and O(evidence_max_bytes) per source.
author:
  - oomguard.fleet maintainers (@oomguard)
extends_documentation_fragment:
  - oomguard.fleet.procfs
  - oomguard.fleet.procfs.SLABINFO_BASELINE
  - oomguard.fleet.procfs.FACTS
  - oomguard.fleet.oom_facts
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads, except that O(slabinfo_baseline=store) writes a baseline, which check mode skips.
seealso:
  - module: oomguard.fleet.slabinfo_facts
"""

EXAMPLES = r"""
- name: Gather OOM facts
  oomguard.fleet.oom_score_facts:

- name: Fail when unkillable processes hold more than a quarter of memory
  ansible.builtin.assert:
    that:
      - ansible_facts.oom.summary.unkillable_rss_kb < ansible_facts.oom.meminfo.mem_total_kb * 0.25
    fail_msg: "{{ ansible_facts.oom.processes | selectattr('oom_score_adj', 'eq', -1000) | map(attribute='name') | list }}"

- name: Process and slab facts in one round trip, keeping a slab baseline
  oomguard.fleet.oom_score_facts:
    gather_subset: [oom, slabinfo]
    slabinfo_baseline: store
  become: true

- name: Everything the assess role uses, in one round trip
  oomguard.fleet.oom_score_facts:
    gather_subset: [oom, slabinfo, evidence]
    slabinfo_baseline: store
    evidence_days: 90
  become: true

- name: Every process, for a comparison with ps
  oomguard.fleet.oom_score_facts:
    all_processes: true
    cmdline_max: 80
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to C(ansible_facts).
  returned: always
  type: complex
  contains:
    oom:
      description: OOM exposure facts. Sizes are KiB.
      returned: when O(gather_subset) includes V(oom) (the default)
      type: dict
      contains:
        schema:
          description: Version of this layout; later versions only add keys.
          type: int
          returned: always
          sample: 1
        kernel:
          description: Kernel release from C(sys/kernel/osrelease), null when absent.
          type: str
          returned: always
          sample: 6.1.0-18-amd64
        page_size:
          description: Page size in bytes.
          type: int
          returned: always
          sample: 4096
        meminfo:
          description:
            - C(mem_total_kb), C(mem_available_kb), C(mem_free_kb), C(swap_total_kb), C(swap_free_kb), C(slab_kb),
              C(sreclaimable_kb), C(sunreclaim_kb) from C(/proc/meminfo) (null when the kernel has no such line),
              and C(lru_kb), the pages on the kernel's LRU lists (C(Active) + C(Inactive)).
          type: dict
          returned: always
          sample: {mem_total_kb: 24000000, mem_available_kb: 23000000, mem_free_kb: 22000000, swap_total_kb: 0,
                   swap_free_kb: 0, slab_kb: 120000, sreclaimable_kb: 80000, sunreclaim_kb: 40000, lru_kb: 500000}
        vm:
          description:
            - C(panic_on_oom) (0 never, 1 on a global OOM, 2 on any OOM), C(overcommit_memory) and
              C(oom_kill_allocating_task); null when the sysctl file is missing.
          type: dict
          returned: always
          sample: {panic_on_oom: 0, overcommit_memory: 0, oom_kill_allocating_task: 0}
        panic:
          description:
            - What happens after a panic. C(timeout_s) is C(kernel.panic) (seconds before the reboot; 0 - the host stays
              hung; negative - at once; null when the file is missing), C(on_oops) is C(kernel.panic_on_oops).
            - C(pstore.backend) is the pstore backend that would save the panic's log (C(ramoops), C(efi_pstore),
              C(erst); null when none), C(pstore.mounted) whether a pstore file system is mounted; C(crash_kernel.loaded)
              is C(/sys/kernel/kexec_crash_loaded) = 1 (kdump ready), C(crash_kernel.size_bytes) the reserved memory.
              All null, and C(sys_path) null, when no sysfs is found at O(sys_path).
            - C(journal.persistent) says whether journald keeps its journal across reboots (C(Storage=persistent), or
              C(auto) with C(var/log/journal) present, under O(evidence_root)), C(journal.storage) the C(Storage=)
              setting; null when O(evidence_root) has no C(var/log).
          type: dict
          returned: always
          sample: {timeout_s: 0, on_oops: 0, sys_path: /sys, pstore: {backend: null, mounted: true},
                   crash_kernel: {loaded: false, size_bytes: 0},
                   journal: {persistent: true, storage: auto, path: /var/log/journal}}
        summary:
          description:
            - Counts over every scanned process, returned or not. C(process_count) (user-space processes),
              C(kernel_thread_count), C(unkillable_count) and C(unkillable_rss_kb) (C(oom_score_adj) C(-1000)),
              C(killable_count), C(killable_rss_kb), C(largest_killable) (C(pid), C(name), C(rss_kb), C(oom_score_adj),
              or null) and C(returned_count), the number of rows in RV(ansible_facts.oom.processes).
          type: dict
          returned: always
          sample: {process_count: 212, kernel_thread_count: 90, unkillable_count: 2, unkillable_rss_kb: 1484,
                   killable_count: 210, killable_rss_kb: 800000, returned_count: 12,
                   largest_killable: {pid: 1234, name: java, rss_kb: 500000, oom_score_adj: 0}}
        processes:
          description:
            - The returned rows, largest RSS first. C(name) is the kernel's C(comm) (15 characters at most),
              C(uid) the real uid, C(oom_adj_legacy) the raw C(oom_adj) when the kernel had no C(oom_score_adj)
              (then C(oom_score_adj) is derived from it, C(-17) becoming C(-1000)), C(unit) the systemd unit from
              C(/proc/<pid>/cgroup) or null, C(cmdline) redacted and truncated (null with O(return_cmdline=false)).
          type: list
          elements: dict
          returned: always
          sample: [{pid: 1799, ppid: 1, name: sshd, uid: 0, oom_score_adj: -1000, oom_adj_legacy: null, oom_score: 0,
                    rss_kb: 980, unit: ssh.service, cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}]
        errors:
          description:
            - C(count) of processes skipped during the scan, split into C(vanished_count) (the process exited -
              C(ESRCH), or C(ENOENT) once C(/proc/<pid>) is gone) and C(unreadable_count) (the process lives but a read
              failed - permission, C(hidepid=1), a file absent), and up to ten C(samples) of C({pid, file, error}), the
              error being C(vanished), C(permission denied), C(absent) or the system's text.
            - C(hidepid) is C(2) or C(invisible) when procfs is mounted so that this unprivileged reader cannot even
              list other users' processes, else null.
            - The exposure rules judge a host with unreadable or hidden processes C(unknown); run with C(become).
          type: dict
          returned: always
          sample: {count: 1, vanished_count: 1, unreadable_count: 0, hidepid: null,
                   samples: [{pid: 4242, file: stat, error: vanished}]}
    slabinfo:
      description: Slab facts, as returned by M(oomguard.fleet.slabinfo_facts).
      returned: when O(gather_subset) includes V(slabinfo)
      type: dict
      sample: {schema: 1, available: false, reason: /proc/slabinfo is readable by root only; run the task with become true}
    oom_evidence:
      description:
        - Incident evidence. C(sources) says, per source (C(journal), C(kern.log), C(messages), C(pstore), C(systemd-pstore), C(kdump)),
          whether it was C(read), how many C(bytes) and C(files), whether it was C(truncated) to
          O(evidence_max_bytes), and the C(reason) it was not read (C(absent), journalctl missing, no persistent
          journal); the journal entry also says whether the journal is C(persistent).
        - C(oom_kills) counts C(Killed process N (name)) lines (C(count), C(memcg_count) for kills inside a memory
          cgroup, C(newest_at), C(victims) by name with counts, and the newest C(events)); C(panics) counts
          OOM panics (C(no_killable_count), C(deadlocked_count), C(panic_on_oom_count), C(newest_at), C(events)).
          One event seen in several sources is counted once. Times are ISO 8601 UTC.
      returned: when O(gather_subset) includes V(evidence)
      type: dict
      sample:
        schema: 1
        since_days: 30
        since: "2026-10-30T02:00:00Z"
        checked_at: "2026-11-29T02:00:00Z"
        bytes_read: 1487
        sources:
          - {name: kdump, path: /var/crash, read: true, bytes: 1487, files: 1, truncated: false, events: 1, reason: null}
        oom_kills: {count: 0, memcg_count: 0, newest_at: null, victims: [], events: []}
        panics:
          count: 1
          no_killable_count: 1
          deadlocked_count: 0
          panic_on_oom_count: 0
          newest_at: "2026-11-28T03:04:05Z"
          events:
            - {at: "2026-11-28T03:04:05Z", kinds: [no_killable], sources: [kdump],
               line: "[28663.625375] Kernel panic - not syncing: Out of memory and no killable processes..."}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.oomguard.fleet.plugins.module_utils.evidence import gather_evidence
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import (
    FACTS_ARGUMENT_SPEC,
    check_facts_params,
    evidence_arguments,
    gather_oom_facts,
    oom_arguments,
)
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts, slabinfo_arguments


# gather_subset name -> (fact name, function(module) -> facts)
SUBSETS = {
    "oom": ("oom", lambda module: gather_oom_facts(**oom_arguments(module.params))),
    "slabinfo": ("slabinfo", lambda module: gather_slabinfo_facts(check_mode=module.check_mode,
                                                                  **slabinfo_arguments(module.params, "slabinfo_"))),
    "evidence": ("oom_evidence", lambda module: gather_evidence(
        run_command=lambda argv: module.run_command(argv, environ_update={"LC_ALL": "C", "SYSTEMD_COLORS": "0"}),
        journalctl=module.get_bin_path("journalctl"), **evidence_arguments(module.params))),
}


def selected_subsets(requested):
    if "all" in requested:
        return sorted(SUBSETS)
    return sorted(set(requested))


def main():
    module = AnsibleModule(
        argument_spec=FACTS_ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    params = module.params
    problem = check_facts_params(params)
    if problem:
        module.fail_json(msg=problem)
    facts = {}
    for subset in selected_subsets(params["gather_subset"]):
        fact_name, gather = SUBSETS[subset]
        try:
            facts[fact_name] = gather(module)
        except OomguardError as exc:
            module.fail_json(msg="Failed to gather %s facts: %s" % (subset, exc), ansible_facts=facts)
    module.exit_json(changed=False, ansible_facts=facts)


if __name__ == "__main__":
    main()
