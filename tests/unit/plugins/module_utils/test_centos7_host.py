# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed's own host (CentOS 7, kernel 3.10.0-1062.9.1.el7): its file layouts are read and judged right."""

from __future__ import annotations

import os

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils.evidence import gather_evidence
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import cgroup_unit
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts
from ansible_collections.oomguard.fleet.tests.unit.centos7_tree import KERNEL, MEM_TOTAL_KB, centos7_host, v1_cgroup


def facts_of(root):
    return {"oom": gather_oom_facts(os.path.join(root, "proc"), root=root),
            "slabinfo": gather_slabinfo_facts(os.path.join(root, "proc")),
            "oom_evidence": gather_evidence(root, since_days=0)}


def test_systemd_219_cgroup_v1_paths_give_the_unit():
    assert cgroup_unit(v1_cgroup("/system.slice/sshd.service")) == "sshd.service"
    assert cgroup_unit(v1_cgroup("/user.slice/user-0.slice/session-1.scope")) == "session-1.scope"
    assert cgroup_unit(v1_cgroup("/")) is None  # PID 1 and kernel threads: systemd 219 has no init.scope


def test_the_3_10_layout_is_read(tmp_path):
    facts = facts_of(centos7_host(tmp_path))
    oom = facts["oom"]
    assert oom["kernel"] == KERNEL
    assert [(p["pid"], p["name"], p["oom_score_adj"], p["unit"]) for p in sorted(oom["processes"], key=lambda p: p["pid"])] == [
        (1, "systemd", 0, None), (1799, "sshd", -1000, "sshd.service"), (29219, "systemd-udevd", -1000, "systemd-udevd.service")]
    assert oom["summary"]["kernel_thread_count"] == 2 and oom["summary"]["unkillable_rss_kb"] == 980 + 504
    assert oom["errors"]["count"] == 0
    assert oom["meminfo"]["mem_total_kb"] == MEM_TOTAL_KB and oom["meminfo"]["sunreclaim_kb"] == 6996148
    assert oom["meminfo"]["lru_kb"] == 45712 + 29928  # Active + Inactive; no KReclaimable on 3.10
    assert oom["panic"]["timeout_s"] == 0 and oom["panic"]["crash_kernel"]["loaded"] is True
    assert oom["panic"]["journal"]["persistent"] is False
    slab = facts["slabinfo"]
    assert slab["available"] and slab["version"] == "2.1" and not slab["statistics"]
    assert slab["caches"][0]["name"] == "kmalloc-64" and slab["caches"][0]["size_kb"] == 1748000 * 4
    assert facts["oom_evidence"]["panics"]["no_killable_count"] == 1


def test_the_seed_host_is_judged_a_slab_leak_that_already_panicked(tmp_path):
    result = ex.assess(facts_of(centos7_host(tmp_path)), host="centos7")
    found = dict((f["id"], f["severity"]) for f in result["findings"])
    assert result["level"] == "critical"
    # The kernel leaks into slab (SUnreclaim above every LRU page), nothing killable is left, the panic is on record,
    # and kernel.panic 0 leaves the host hung. The two -1000 daemons hold 1.4 MiB: not the cause (no OOM001).
    assert found == {"SLAB001": "critical", "OOM003": "critical", "HIST001": "critical", "PANIC002": "medium"}


def test_evidence_without_a_time_bound_is_worded_so(tmp_path):
    """evidence_days 0 means no time bound: the finding says so, not "in the last 0 days"."""
    result = ex.assess(facts_of(centos7_host(tmp_path)), host="centos7")
    message = [f["message"] for f in result["findings"] if f["id"] == "HIST001"][0]
    assert "1 time(s) in all the logs the host keeps (no time bound), newest 2026-11-28T03:04:05Z" in message
    assert "last 0 days" not in message
