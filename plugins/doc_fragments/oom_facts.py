# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # What oomguard.fleet.oom_score_facts gathers, shared with the oomguard.fleet.oom_exposure action.
    DOCUMENTATION = r"""
options:
  gather_subset:
    description:
      - Which facts to gather. V(oom) is C(ansible_facts.oom); V(slabinfo) adds C(ansible_facts.slabinfo) (see
        M(oomguard.fleet.slabinfo_facts)); V(all) gathers every subset.
    type: list
    elements: str
    choices: [all, oom, slabinfo, evidence]
    default: [oom]
  adj_threshold:
    description:
      - Return every process whose C(oom_score_adj) is at or below this value (C(-1000) is unkillable).
    type: int
    default: -500
  top_killable:
    description:
      - Also return this many killable processes, largest RSS first. V(0) returns none.
    type: int
    default: 10
  all_processes:
    description:
      - Return every user-space process instead of the selection made by O(adj_threshold) and O(top_killable).
      - Costs about four more reads per process and a larger result; meant for debugging and for comparisons with C(ps).
    type: bool
    default: false
  cmdline_max:
    description:
      - Truncate each redacted command line to this many characters. V(0) keeps it whole.
    type: int
    default: 256
  return_cmdline:
    description:
      - Return each row's command line, redacted of secrets and truncated to O(cmdline_max).
      - V(false) never reads C(/proc/<pid>/cmdline) and returns C(cmdline) as null, for fleets whose fact caches,
        job logs or JSON callbacks must hold no command line at all. Nothing in the collection's roles needs it.
    type: bool
    default: true
  sys_path:
    description:
      - Where sysfs is mounted, for C(ansible_facts.oom.panic) (the pstore backend, C(kernel/kexec_crash_loaded)).
      - Default - the C(sys) beside O(proc_path) (C(/proc) gives C(/sys), C(/host/proc) gives C(/host/sys)). When that
        directory has no C(kernel/), the pstore and crash kernel facts are null (unknown), not false.
    type: path
  slabinfo_top:
    description:
      - With O(gather_subset=slabinfo), the number of caches returned; see O(oomguard.fleet.slabinfo_facts#module:top).
    type: int
    default: 20
  slabinfo_baseline:
    description:
      - With O(gather_subset=slabinfo), V(compare) or V(store) a slab baseline; see
        O(oomguard.fleet.slabinfo_facts#module:baseline).
    type: str
    choices: [none, compare, store]
    default: none
  slabinfo_baseline_path:
    description:
      - With O(gather_subset=slabinfo), the baseline file on the managed host.
    type: path
    default: /var/lib/oomguard/slabinfo-baseline.json
  evidence_root:
    description:
      - With O(gather_subset=evidence), the directory that holds C(var/log), C(var/crash) and C(sys/fs/pstore).
      - Also where C(ansible_facts.oom.panic.journal) looks for C(var/log/journal) and journald's C(Storage=) in
        C(etc/systemd/journald.conf) and its drop-ins (whatever O(gather_subset)).
      - Point it at a copy of a host's files (a fixture tree, a mounted disk) to search those instead. When it is
        not C(/), C(journalctl) reads only the persistent journal under it (C(--directory)).
    type: path
    default: /
  evidence_days:
    description:
      - With O(gather_subset=evidence), only entries from the last this many days count. V(0) means no time bound.
    type: int
    default: 30
  evidence_max_bytes:
    description:
      - With O(gather_subset=evidence), read at most this many bytes from the end (newest part) of each source.
    type: int
    default: 4194304
"""

    # The exposure rules' options, shared by the oomguard.fleet.exposure filter and the
    # oomguard.fleet.oom_exposure action.
    RULES = r"""
options:
  custom_rules:
    description:
      - Extra rules, each a dict with C(id), C(severity) (C(low), C(medium), C(high) or C(critical)), C(query) and
        C(message).
      - C(query) is a JMESPath expression over a document with the keys C(oom), C(slabinfo), C(oom_evidence) and
        C(figures). The rule fires when the result is not null, false, 0 or empty.
      - C(message) may hold C({result}) (the query's result), C({host}) and any key of C(figures) in braces.
      - When the result is a list of dicts with C(pid), those pids are attached to the finding.
    type: list
    elements: dict
  unkillable_high_pct:
    description: C(OOM001) is C(high) when unkillable RSS is at least this share of MemTotal (percent).
    type: float
    default: 10
  unkillable_critical_pct:
    description: C(OOM001) is C(critical) at or above this share (percent).
    type: float
    default: 25
  allowlist:
    description:
      - Process names (C(comm)) that may run at C(-1000) while small, or dicts C({name, max_rss_kb}) with their own
        size bound. An allowlisted process above its bound is reported by C(OOM002) but not put in C(flagged).
    type: list
    elements: raw
    default: [sshd, systemd-udevd, udevd, auditd, dbus-daemon, multipathd, iscsid]
  allowlist_max_rss_kb:
    description: Size bound (KiB of RSS) for allowlist entries given as plain names.
    type: int
    default: 102400
  unallowed_high_pct:
    description: An C(OOM002) finding is C(high) when the process holds at least this share of MemTotal, else C(medium).
    type: float
    default: 5
  killable_min_pct:
    description: C(OOM003) needs killable RSS below this share of MemTotal (percent) ...
    type: float
    default: 10
  available_low_pct:
    description: ... and MemAvailable below this share of MemTotal (percent).
    type: float
    default: 10
  sunreclaim_pct:
    description: C(SLAB001) is C(high) when SUnreclaim is above this share of MemTotal (percent).
    type: float
    default: 10
  slab_growth_kb_per_hour:
    description: C(SLAB002) fires for a cache growing at least this fast (KiB per hour) ...
    type: float
    default: 10240
  slab_growth_min_kb:
    description: ... that also grew by at least this much (KiB) since the baseline.
    type: float
    default: 10240
  slab_growth_ignore:
    description:
      - Caches C(SLAB002) ignores, as fnmatch patterns; by default the ones the kernel reclaims under pressure.
    type: list
    elements: str
    default: [dentry, "*inode_cache", xfs_inode, buffer_head, radix_tree_node, ext4_extent_status, extent_status, mbcache]
  require_panic_record:
    description:
      - C(PANIC001) flags a host where a panic would leave no record (no pstore backend, no crash kernel loaded) -
        C(medium), or C(low) when a persistent journal keeps at least the lead-up. V(false) switches it off.
    type: bool
    default: true
  require_panic_reboot:
    description:
      - C(PANIC002) flags a host that stays hung after a panic (C(kernel.panic) 0) - C(medium), C(high) when
        C(vm.panic_on_oom) is 1 or 2. V(false) switches it off.
    type: bool
    default: true
  panic_reboot_max_s:
    description: C(PANIC002) is C(low) when C(kernel.panic) waits longer than this many seconds; V(0) for no bound.
    type: float
    default: 300
"""
