# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exposure rules on fixture procfs trees placed just above and just below each threshold."""

from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.evidence import gather_evidence
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import slabinfo_text, vendor_tree

MEM_TOTAL = 24000000          # procfs_tree's default MemTotal (KiB)
VENDOR_UNKILLABLE = 980 + 504  # sshd + systemd-udevd in the vendor's process table
GIB = 1024 * 1024
NOW = datetime.datetime(2026, 11, 29, 2, 0, 0, tzinfo=datetime.timezone.utc)


def proc(pid, comm, rss_kb, adj=0, ppid=1, **extra):
    row = {"pid": pid, "ppid": ppid, "comm": comm, "rss_kb": rss_kb, "oom_score_adj": adj, "unit": "%s.service" % comm}
    row.update(extra)
    return row


def oom_facts(tmp_path, extra=(), **tree):
    root = vendor_tree(tmp_path / "proc", extra=extra, **tree)
    return {"oom": gather_oom_facts(root)}


def judge(facts, **options):
    custom = options.pop("custom_rules", None)
    return ex.assess(facts, host="web01", options=options, custom_rules=custom, now=NOW)


def ids(result, rule=None):
    found = [(f["id"], f["severity"]) for f in result["findings"]]
    if rule is None:
        return found
    return [sev for rid, sev in found if rid == rule]


# ------------------------------------------------------------------ acceptance


def test_vendor_example_is_ok(tmp_path):
    result = judge(oom_facts(tmp_path))
    assert result["level"] in ("ok", "low")
    assert result["level"] == "ok"
    assert result["findings"] == []
    assert result["flagged"] == []
    assert result["figures"]["unkillable_rss_kb"] == VENDOR_UNKILLABLE
    assert result["figures"]["unkillable_count"] == 2
    assert result["reason"] is None
    assert result["checked_at"] == "2026-11-29T02:00:00Z"
    assert result["summary"].startswith("web01: ok (no findings)")


def test_vendor_host_with_6gib_unkillable_java_is_critical(tmp_path):
    java = proc(4242, "java", 6 * GIB, adj=-1000, unit="app.service")
    result = judge(oom_facts(tmp_path, extra=[java]))
    assert result["level"] == "critical"
    assert ids(result, "OOM001") == ["critical"]
    assert ids(result, "OOM002") == ["high"]
    assert result["flagged"] == [{"pid": 4242, "name": "java", "unit": "app.service", "oom_score_adj": -1000,
                                  "rss_kb": 6 * GIB, "ppid": 1, "rule": "OOM002"}]
    oom001 = [f for f in result["findings"] if f["id"] == "OOM001"][0]
    assert "6.0 GiB" in oom001["message"] and "26.2%" in oom001["message"]
    assert oom001["pids"] == [1799, 4242, 29219]
    assert result["figures"]["unkillable_share_pct"] == 26.2
    # worst first
    assert result["findings"][0]["severity"] == "critical"


# ------------------------------------------------------------------ OOM001


@pytest.mark.parametrize("pct, expected", [(10, ["high"]), (25, ["critical"])])
def test_oom001_fires_at_threshold_and_is_quiet_just_below(tmp_path, pct, expected):
    need = MEM_TOTAL * pct // 100 - VENDOR_UNKILLABLE  # exactly at the threshold (a multiple of 4 KiB)
    at = judge(oom_facts(tmp_path / "at", extra=[proc(500, "db", need, adj=-1000)]))
    below = judge(oom_facts(tmp_path / "below", extra=[proc(500, "db", need - 4, adj=-1000)]))
    assert ids(at, "OOM001") == expected
    assert ids(below, "OOM001") == ([] if pct == 10 else ["high"])


def test_oom001_thresholds_are_options(tmp_path):
    facts = oom_facts(tmp_path, extra=[proc(500, "db", MEM_TOTAL // 20, adj=-1000)])  # 5%
    assert ids(judge(facts), "OOM001") == []
    assert ids(judge(facts, unkillable_high_pct=5), "OOM001") == ["high"]
    assert ids(judge(facts, unkillable_high_pct=1, unkillable_critical_pct=5), "OOM001") == ["critical"]


# ------------------------------------------------------------------ OOM002


def test_oom002_flags_small_unallowlisted_process_as_medium(tmp_path):
    result = judge(oom_facts(tmp_path, extra=[proc(600, "myagent", 4096, adj=-1000)]))
    assert ids(result, "OOM002") == ["medium"]
    assert [f["pid"] for f in result["flagged"]] == [600]
    assert "not allowlisted" in result["findings"][0]["message"]
    assert result["level"] == "medium"


def test_oom002_high_at_share_bound_medium_just_below(tmp_path):
    bound = MEM_TOTAL * 5 // 100
    at = judge(oom_facts(tmp_path / "at", extra=[proc(600, "myagent", bound, adj=-1000)]))
    below = judge(oom_facts(tmp_path / "below", extra=[proc(600, "myagent", bound - 4, adj=-1000)]))
    assert ids(at, "OOM002") == ["high"]
    assert ids(below, "OOM002") == ["medium"]


def test_oom002_allowlist_size_bound(tmp_path):
    sshd = dict(proc(1799, "sshd", 102400, adj=-1000))
    quiet = judge(oom_facts(tmp_path / "q", extra=[]), allowlist=["systemd-udevd", {"name": "sshd", "max_rss_kb": 102400}])
    assert ids(quiet, "OOM002") == []
    big = {"pid": 1800, "ppid": 1, "comm": "sshd", "rss_kb": 102404, "oom_score_adj": -1000}
    at_bound = judge(oom_facts(tmp_path / "a", extra=[dict(sshd, pid=1800)]))
    over = judge(oom_facts(tmp_path / "o", extra=[big]))
    assert ids(at_bound, "OOM002") == []
    assert ids(over, "OOM002") == ["medium"]
    message = over["findings"][0]["message"]
    assert "allowlisted only up to 100.0 MiB" in message and "never reset" in message
    assert over["flagged"] == []  # allowlisted processes are reported, not offered to remediate


def test_oom002_child_of_allowlisted_daemon_is_flagged_with_inheritance(tmp_path):
    child = proc(2001, "bash", 8192, adj=-1000, ppid=1799)
    result = judge(oom_facts(tmp_path, extra=[child]))
    assert ids(result, "OOM002") == ["medium"]
    message = result["findings"][0]["message"]
    assert "inherited -1000 from its parent sshd (pid 1799), which is allowlisted" in message
    assert result["flagged"][0]["pid"] == 2001 and result["flagged"][0]["ppid"] == 1799


def test_oom002_child_of_killable_parent_has_no_inheritance_note(tmp_path):
    result = judge(oom_facts(tmp_path, extra=[proc(2001, "bash", 8192, adj=-1000, ppid=1)]))
    assert "inherited" not in result["findings"][0]["message"]


def test_oom002_legacy_oom_adj(tmp_path):
    old = proc(700, "legacyd", 8192, adj=None, oom_adj=-17)
    result = judge(oom_facts(tmp_path, extra=[old]))
    assert ids(result, "OOM002") == ["medium"]
    assert "legacy oom_adj -17" in result["findings"][0]["message"]


def test_oom002_empty_allowlist_flags_vendor_daemons(tmp_path):
    result = judge(oom_facts(tmp_path), allowlist=[])
    assert sorted(f["name"] for f in result["flagged"]) == ["sshd", "systemd-udevd"]


# ------------------------------------------------------------------ OOM003


def _oom003_tree(tmp_path, killable_kb, available_kb):
    return oom_facts(tmp_path, extra=[proc(800, "app", killable_kb)], meminfo={"MemAvailable": available_kb})


def test_oom003_fires_below_both_bounds_and_is_quiet_at_either(tmp_path):
    bound = MEM_TOTAL // 10
    fires = judge(_oom003_tree(tmp_path / "f", bound - 4, bound - 1))
    killable_ok = judge(_oom003_tree(tmp_path / "k", bound, bound - 1))
    available_ok = judge(_oom003_tree(tmp_path / "a", bound - 4, bound))
    assert ids(fires, "OOM003") == ["high"]
    assert "app (pid 800" in fires["findings"][0]["message"]
    assert ids(killable_ok, "OOM003") == []
    assert ids(available_ok, "OOM003") == []


def test_oom003_init_is_not_killable_memory(tmp_path):
    # Only init (12 MB) is killable: the kernel never picks global init.
    result = judge(oom_facts(tmp_path, meminfo={"MemAvailable": 1000}))
    assert result["figures"]["killable_rss_kb"] == 0
    assert ids(result, "OOM003") == ["critical"]
    assert "nothing but init is killable" in result["findings"][0]["message"]


# ------------------------------------------------------------------ SLAB001


def test_slab001_share_threshold(tmp_path):
    bound = MEM_TOTAL // 10
    lru = {"Active": 2000000, "Inactive": 2000000}
    above = judge(oom_facts(tmp_path / "a", meminfo=dict(lru, SUnreclaim=bound + 1)))
    at = judge(oom_facts(tmp_path / "b", meminfo=dict(lru, SUnreclaim=bound)))
    assert ids(above, "SLAB001") == ["high"]
    assert "10%" in above["findings"][0]["message"] and "Alibaba" in above["findings"][0]["message"]
    assert ids(at, "SLAB001") == []


def test_slab001_kernel_test_unreclaimable_over_lru(tmp_path):
    over = judge(oom_facts(tmp_path / "o", meminfo={"SUnreclaim": 600000, "Active": 300000, "Inactive": 299999}))
    equal = judge(oom_facts(tmp_path / "e", meminfo={"SUnreclaim": 600000, "Active": 300000, "Inactive": 300000}))
    assert ids(over, "SLAB001") == ["critical"]
    assert "exceeds all LRU pages" in over["findings"][0]["message"]
    assert ids(equal, "SLAB001") == []


def test_slab001_skipped_without_sunreclaim(tmp_path):
    text = "MemTotal:       24000000 kB\nMemFree:        1000 kB\nMemAvailable:   23000000 kB\n"
    result = judge(oom_facts(tmp_path, meminfo=text))
    assert ids(result, "SLAB001") == []
    assert {"id": "SLAB001", "reason": "SUnreclaim is not in this host's meminfo"} in result["skipped"]


# ------------------------------------------------------------------ SLAB002


def _slab_run(tmp_path, num_slabs, mode, now):
    root = vendor_tree(tmp_path / ("proc-%d" % num_slabs), slabinfo=slabinfo_text(
        [{"name": "kmalloc-64", "num_slabs": num_slabs}, {"name": "dentry", "num_slabs": 10}]))
    facts = {"oom": gather_oom_facts(root)}
    facts["slabinfo"] = gather_slabinfo_facts(root, baseline=mode, baseline_path=str(tmp_path / "baseline.json"), now=now)
    return facts


@pytest.mark.parametrize("grown_pages, expected", [(2560, ["medium"]), (2559, [])])
def test_slab002_no_baseline_then_growth(tmp_path, grown_pages, expected):
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    pages = 10240 // page_kb  # 10 MiB at one page per slab
    grown = pages if grown_pages == 2560 else pages - 1
    first = judge(_slab_run(tmp_path, 100, "store", NOW))
    assert ids(first, "SLAB002") == []
    assert [s for s in first["skipped"] if s["id"] == "SLAB002"][0]["reason"].startswith("no slab baseline yet")
    later = NOW + datetime.timedelta(hours=1)
    second = judge(_slab_run(tmp_path, 100 + grown, "compare", later))
    assert ids(second, "SLAB002") == expected
    assert not [s for s in second["skipped"] if s["id"] == "SLAB002"]
    if expected:
        assert "kmalloc-64 grew by 10.0 MiB" in second["findings"][0]["message"]


def test_slab002_thresholds_are_options(tmp_path):
    _slab_run(tmp_path, 100, "store", NOW)
    facts = _slab_run(tmp_path, 110, "compare", NOW + datetime.timedelta(hours=2))
    assert ids(judge(facts), "SLAB002") == []
    assert ids(judge(facts, slab_growth_kb_per_hour=1, slab_growth_min_kb=1), "SLAB002") == ["medium"]


def test_slab002_ignores_reclaimable_caches(tmp_path):
    def run(name, slabs, mode, now):
        root = vendor_tree(tmp_path / ("proc-%s-%d" % (name, slabs)), slabinfo=slabinfo_text([{"name": name, "num_slabs": slabs}]))
        return {"oom": gather_oom_facts(root), "slabinfo": gather_slabinfo_facts(
            root, baseline=mode, baseline_path=str(tmp_path / ("%s.json" % name)), now=now)}

    # extent_status: the ext4 extent cache as kernels 6.x name it (seen growing on a build machine).
    for name in ("ext4_inode_cache", "dentry", "extent_status"):
        run(name, 10, "store", NOW)
        grown = run(name, 10 + 50000, "compare", NOW + datetime.timedelta(hours=1))
        assert ids(judge(grown), "SLAB002") == []
        assert ids(judge(grown, slab_growth_ignore=[]), "SLAB002") == ["medium"]


def test_slab002_skipped_reasons(tmp_path):
    no_file = {"oom": gather_oom_facts(vendor_tree(tmp_path / "p"))}
    no_file["slabinfo"] = gather_slabinfo_facts(str(tmp_path / "p"), baseline="compare",
                                                baseline_path=str(tmp_path / "b.json"))
    reason = [s for s in judge(no_file)["skipped"] if s["id"] == "SLAB002"][0]["reason"]
    assert reason.startswith("slabinfo unavailable:") and "CONFIG_SLUB_DEBUG" in reason
    root = vendor_tree(tmp_path / "q", slabinfo=slabinfo_text([{"name": "dentry"}]))
    no_growth = {"oom": gather_oom_facts(root), "slabinfo": gather_slabinfo_facts(root)}
    assert [s for s in judge(no_growth)["skipped"] if s["id"] == "SLAB002"][0]["reason"].startswith("no slab growth")


# ------------------------------------------------------------------ VM001


@pytest.mark.parametrize("value, expected", [(0, []), (1, ["high"]), (2, ["critical"]), (None, [])])
def test_vm001_panic_on_oom(tmp_path, value, expected):
    result = judge(oom_facts(tmp_path, vm={"panic_on_oom": value}))
    assert ids(result, "VM001") == expected
    assert result["figures"]["panic_on_oom"] == value


# ------------------------------------------------------------------ HIST001 / HIST002

SEED = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "evidence", "vendor-vmcore-dmesg.txt")


def _evidence(tmp_path, kern_log=None, crash=False):
    root = tmp_path / "root"
    if kern_log is not None:
        (root / "var" / "log").mkdir(parents=True, exist_ok=True)
        (root / "var" / "log" / "kern.log").write_text(kern_log)
    if crash:
        crash_dir = root / "var" / "crash" / "127.0.0.1-2026-11-28-03:04:05"
        crash_dir.mkdir(parents=True)
        with open(SEED) as handle:
            (crash_dir / "vmcore-dmesg.txt").write_text(handle.read())
    root.mkdir(exist_ok=True)
    return gather_evidence(str(root), now=NOW)


def test_hist001_seed_panic_is_critical(tmp_path):
    facts = oom_facts(tmp_path)
    facts["oom_evidence"] = _evidence(tmp_path, crash=True)
    result = judge(facts)
    assert ids(result, "HIST001") == ["critical"]
    assert result["level"] == "critical"
    assert "'Out of memory and no killable processes' x1" in result["findings"][0]["message"]
    assert "read: kdump" in result["findings"][0]["message"]
    assert result["figures"]["panic_count"] == 1


def test_hist002_global_kill_medium_memcg_only_low(tmp_path):
    kill = "2026-11-28T10:00:00+00:00 web01 kernel: Out of memory: Killed process 4242 (java) total-vm:1kB\n"
    memcg = "2026-11-28T10:00:00+00:00 web01 kernel: Memory cgroup out of memory: Killed process 77 (node) total-vm:1kB\n"
    facts = oom_facts(tmp_path)
    facts["oom_evidence"] = _evidence(tmp_path / "g", kern_log=kill)
    result = judge(facts)
    assert ids(result, "HIST002") == ["medium"] and ids(result, "HIST001") == []
    assert "victims: java x1" in result["findings"][0]["message"]
    facts["oom_evidence"] = _evidence(tmp_path / "m", kern_log=memcg)
    assert ids(judge(facts), "HIST002") == ["low"]
    assert judge(facts)["level"] == "low"


def test_hist_quiet_without_evidence_and_skipped_when_not_gathered(tmp_path):
    facts = oom_facts(tmp_path)
    assert {"id": "HIST001", "reason": "incident evidence was not gathered"} in judge(facts)["skipped"]
    facts["oom_evidence"] = _evidence(tmp_path)
    result = judge(facts)
    assert ids(result, "HIST001") == [] and ids(result, "HIST002") == []
    assert not [s for s in result["skipped"] if s["id"] == "HIST001"]


# ------------------------------------------------------------------ unknown, never ok


@pytest.mark.parametrize("facts, reason", [
    (None, "no facts were gathered"),
    ({}, "ansible_facts.oom is missing"),
    ({"oom": {"meminfo": {"mem_total_kb": 0}, "summary": {}, "processes": []}}, "MemTotal could not be read"),
    ({"oom": {"meminfo": {}, "summary": {}, "processes": []}}, "MemTotal could not be read"),
    ({"oom": {"meminfo": {"mem_total_kb": 100}}}, "has no summary or processes"),
    ({"unreachable": True, "msg": "Failed to connect to the host via ssh"}, "host unreachable: Failed to connect"),
    ({"failed": True, "msg": "Failed to read /proc"}, "fact gathering failed: Failed to read /proc"),
    ({"skipped": True, "skip_reason": "Conditional result was False"}, "fact gathering was skipped"),
])
def test_unusable_facts_are_unknown(facts, reason):
    result = judge(facts)
    assert result["level"] == "unknown"
    assert reason in result["reason"]
    assert result["findings"] == [] and result["flagged"] == []
    assert result["summary"].startswith("web01: unknown (")


def test_registered_module_result_is_unwrapped(tmp_path):
    facts = oom_facts(tmp_path, extra=[proc(600, "myagent", 4096, adj=-1000)])
    result = judge({"changed": False, "ansible_facts": facts})
    assert result["level"] == "medium"


def test_unknown_ranks_above_critical():
    assert ex.worst(["ok", "critical", "unknown", "low"]) == "unknown"
    assert ex.worst([]) == "ok"
    assert ex.level_rank("unknown") > ex.level_rank("critical")


# ------------------------------------------------------------------ custom rules


def test_custom_rule_fires_with_formatted_message(tmp_path):
    rule = {"id": "SITE001", "severity": "low", "query": "oom.processes[?oom_score_adj == `-1000`].name",
            "message": "{host}: unkillable {result} of {process_count} processes"}
    result = judge(oom_facts(tmp_path), custom_rules=[rule])
    assert ids(result) == [("SITE001", "low")]
    assert result["findings"][0]["message"] == "web01: unkillable sshd, systemd-udevd of 3 processes"
    assert result["level"] == "low"


def test_custom_rule_collects_pids_and_renders_objects(tmp_path):
    rule = {"id": "SITE002", "severity": "high", "query": "oom.processes[?oom_score_adj == `-1000`].{pid: pid, n: name}",
            "message": "{result}"}
    finding = judge(oom_facts(tmp_path), custom_rules=[rule])["findings"][0]
    assert finding["pids"] == [1799, 29219]
    assert '"n": "sshd"' in finding["message"]


@pytest.mark.parametrize("query", ["oom.processes[?oom_score_adj == `5`]", "oom.summary.unkillable_count == `7`",
                                   "oom.nothing", "length(oom.processes[?rss_kb > `99999999`])"])
def test_custom_rule_quiet_on_falsy_results(tmp_path, query):
    rule = {"id": "SITE003", "severity": "critical", "query": query, "message": "x"}
    assert judge(oom_facts(tmp_path), custom_rules=[rule])["level"] == "ok"


@pytest.mark.parametrize("rules, text", [
    ("nope", "custom rules must be a list"),
    (["x"], "custom rule #1 must be a dict"),
    ([{"severity": "low", "query": "a", "message": "m"}], "custom rule #1: id must be"),
    ([{"id": "OOM001", "severity": "low", "query": "a", "message": "m"}], "custom rule OOM001: the id is already used by a built-in"),
    ([{"id": "A", "severity": "low", "query": "a", "message": "m"}] * 2, "custom rule A: the id is already used by another"),
    ([{"id": "A", "severity": "ok", "query": "a", "message": "m"}], "custom rule A: severity must be one of low, medium"),
    ([{"id": "A", "severity": "low", "query": "", "message": "m"}], "custom rule A: query must be a non-empty"),
    ([{"id": "A", "severity": "low", "query": "a", "message": ""}], "custom rule A: message must be a non-empty"),
    ([{"id": "A", "severity": "low", "query": "a", "message": "m", "when": 1}], "custom rule A: unknown keys when"),
    ([{"id": "BAD1", "severity": "low", "query": "oom.processes[?", "message": "m"}], "custom rule BAD1: invalid JMESPath query"),
    ([{"id": "BAD2", "severity": "low", "query": "abs(oom.kernel)", "message": "m"}], "custom rule BAD2: query 'abs(oom.kernel)' failed"),
    ([{"id": "BAD3", "severity": "low", "query": "oom.kernel", "message": "{nope}"}], "custom rule BAD3: message placeholder {nope}"),
])
def test_bad_custom_rules_raise_one_error_type_naming_the_rule(tmp_path, rules, text):
    with pytest.raises(ex.ExposureError) as info:
        judge(oom_facts(tmp_path), custom_rules=rules)
    assert text in str(info.value)
    assert isinstance(info.value, OomguardError)


def test_bad_custom_rule_raises_even_for_unknown_hosts():
    with pytest.raises(ex.ExposureError, match="custom rule X"):
        judge(None, custom_rules=[{"id": "X", "severity": "low", "query": "[", "message": "m"}])


# ------------------------------------------------------------------ options and helpers


@pytest.mark.parametrize("options, text", [
    ({"no_such": 1}, "unknown exposure option 'no_such'"),
    ({"unkillable_high_pct": -1}, "unkillable_high_pct must be a percentage from 0 to 100"),
    ({"sunreclaim_pct": "ten"}, "sunreclaim_pct must be a percentage from 0 to 100"),
    ({"unkillable_high_pct": 30}, "must not be below unkillable_high_pct"),
    ({"allowlist": "sshd"}, "allowlist must be a list"),
    ({"allowlist": [5]}, "allowlist entry 5 must be a process name"),
    ({"allowlist": [{"name": "sshd", "max": 1}]}, "unknown keys: max"),
    ({"allowlist": [{"name": "sshd", "max_rss_kb": -5}]}, "max_rss_kb must be a finite number >= 0"),
    ({"allowlist": [{"name": "sshd", "max_rss_kb": float("nan")}]}, "max_rss_kb must be a finite number >= 0"),
    ({"allowlist": [""]}, "must not be empty"),
    ({"slab_growth_ignore": "dentry"}, "slab_growth_ignore must be a list of cache name patterns"),
    ({"slab_growth_ignore": [""]}, "slab_growth_ignore must be a list of cache name patterns"),
])
def test_bad_options(options, text):
    with pytest.raises(ex.ExposureError) as info:
        ex.normalize_options(options)
    assert text in str(info.value)


def test_none_option_keeps_default():
    assert ex.normalize_options({"sunreclaim_pct": None})["sunreclaim_pct"] == 10.0


@pytest.mark.parametrize("kb, text", [(980, "980 KiB"), (102400, "100.0 MiB"), (6 * GIB, "6.0 GiB"), (None, "0 KiB"),
                                      (5 * GIB * 1024, "5.0 TiB")])
def test_human_kb(kb, text):
    assert ex.human_kb(kb) == text
