# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exposure rules: host facts in, a verdict out (``oomguard_exposure`` of docs/data-contract.md).

Pure functions, run on the controller by the ``oomguard.fleet.exposure`` filter, the
``assess`` role, the report and the tests. Nothing here reads a host.

Inputs are the facts of ``oomguard.fleet.oom_score_facts``: ``oom`` (required),
``slabinfo`` and ``oom_evidence`` (optional; the rules that need them are listed under
``skipped`` when they are absent).
"""

from __future__ import annotations

import fnmatch
import json
import re

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import (
    SEVERITY_LEVELS,
    UNKNOWN,
    OomguardError,
    format_time,
    level_rank,
    worst_level as worst,
)
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import OOM_SCORE_ADJ_MIN as UNKILLABLE_ADJ

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - jmespath is a requirement of the collection
    jmespath = None
    JMESPathError = Exception
    HAS_JMESPATH = False

SCHEMA = 1

SEVERITIES = SEVERITY_LEVELS[1:]

DEFAULT_ALLOWLIST = ("sshd", "systemd-udevd", "udevd", "auditd", "dbus-daemon", "multipathd", "iscsid")

DEFAULTS = {
    # OOM001: unkillable RSS as a share of MemTotal.
    "unkillable_high_pct": 10.0,
    "unkillable_critical_pct": 25.0,
    # OOM002: which -1000 processes are expected, and up to what size.
    "allowlist": list(DEFAULT_ALLOWLIST),
    "allowlist_max_rss_kb": 102400,
    "unallowed_high_pct": 5.0,
    # OOM003: killable RSS small while MemAvailable is low.
    "killable_min_pct": 10.0,
    "available_low_pct": 10.0,
    # SLAB001: SUnreclaim share of MemTotal (Alibaba Cloud's published threshold).
    "sunreclaim_pct": 10.0,
    # SLAB002: a cache growing between runs.
    "slab_growth_kb_per_hour": 10240.0,
    "slab_growth_min_kb": 10240.0,
    # Caches the kernel reclaims under pressure (SLAB_RECLAIM_ACCOUNT): their growth is a cache
    # filling up, not a leak. fnmatch patterns. ext4's extent status cache is "ext4_extent_status"
    # on older kernels and "extent_status" (KMEM_CACHE of the struct) on newer ones.
    "slab_growth_ignore": ["dentry", "*inode_cache", "xfs_inode", "buffer_head", "radix_tree_node",
                           "ext4_extent_status", "extent_status", "mbcache"],
    # PANIC001: a panic would leave no record (no pstore backend, no crash kernel loaded).
    "require_panic_record": True,
    # PANIC002: kernel.panic 0 leaves a panicked host hung; a longer wait than this (seconds, 0: any) is low.
    "require_panic_reboot": True,
    "panic_reboot_max_s": 300.0,
}
BOOLEAN_OPTIONS = ("require_panic_record", "require_panic_reboot")

BUILTIN_RULES = ("OOM001", "OOM002", "OOM003", "SLAB001", "SLAB002", "VM001", "HIST001", "HIST002", "PANIC001", "PANIC002")

# The options above as an Ansible argument spec (the oomguard.fleet.oom_exposure action takes them).
RULE_ARGUMENT_SPEC = {
    "unkillable_high_pct": {"type": "float"},
    "unkillable_critical_pct": {"type": "float"},
    "allowlist": {"type": "list", "elements": "raw"},
    "allowlist_max_rss_kb": {"type": "int"},
    "unallowed_high_pct": {"type": "float"},
    "killable_min_pct": {"type": "float"},
    "available_low_pct": {"type": "float"},
    "sunreclaim_pct": {"type": "float"},
    "slab_growth_kb_per_hour": {"type": "float"},
    "slab_growth_min_kb": {"type": "float"},
    "slab_growth_ignore": {"type": "list", "elements": "str"},
    "require_panic_record": {"type": "bool"},
    "require_panic_reboot": {"type": "bool"},
    "panic_reboot_max_s": {"type": "float"},
}

_RULE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ExposureError(OomguardError):
    """Bad input to the rules: an option, an allowlist entry or a custom rule."""


def human_kb(kb):
    """1.5 GiB, 980 KiB: sizes as an SRE reads them."""
    value = float(kb or 0)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "KiB":
                return "%d KiB" % value
            return "%.1f %s" % (value, unit)
        value /= 1024.0
    return "%d KiB" % kb  # pragma: no cover - loop always returns


def _pct(part, whole, digits=1):
    """Percentage for display (rounded); rules compare with digits=None so 9.96% stays below 10%."""
    if not whole or part is None:
        return None
    value = 100.0 * float(part) / float(whole)
    return value if digits is None else round(value, digits)


def _num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt_pct(value):
    return ("%.1f" % value).rstrip("0").rstrip(".")


# ---------------------------------------------------------------- options


def normalize_options(options=None):
    """Merge user options over DEFAULTS and check them; raise ExposureError naming the bad one."""
    merged = dict(DEFAULTS)
    for key, value in (options or {}).items():
        if key not in DEFAULTS:
            raise ExposureError("unknown exposure option %r; known options: %s" % (key, ", ".join(sorted(DEFAULTS))))
        if value is None:
            continue
        merged[key] = value
    for key, value in merged.items():
        if key == "allowlist":
            continue
        if key in BOOLEAN_OPTIONS:
            merged[key] = _boolean(key, value)
            continue
        if key == "slab_growth_ignore":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
                raise ExposureError("exposure option slab_growth_ignore must be a list of cache name patterns, got %r" % (value,))
            merged[key] = list(value)
            continue
        # nan compares false with everything, so it (or a share above 100%) would switch a rule off unseen.
        if key.endswith("_pct"):
            if not _num(value) or not 0 <= value <= 100:
                raise ExposureError("exposure option %s must be a percentage from 0 to 100, got %r" % (key, value))
        elif not _num(value) or not 0 <= value < float("inf"):
            raise ExposureError("exposure option %s must be a finite number >= 0, got %r" % (key, value))
        merged[key] = float(value)
    if merged["unkillable_critical_pct"] < merged["unkillable_high_pct"]:
        raise ExposureError("unkillable_critical_pct (%s) must not be below unkillable_high_pct (%s)"
                            % (merged["unkillable_critical_pct"], merged["unkillable_high_pct"]))
    merged["allowlist"] = _normalize_allowlist(merged["allowlist"], merged["allowlist_max_rss_kb"])
    return merged


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _boolean(key, value):
    """A boolean option; the strings ``-e key=false`` gives are read as Ansible reads them."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ExposureError("exposure option %s must be true or false, got %r" % (key, value))


def _normalize_allowlist(entries, default_max):
    """Entries are names (bounded by allowlist_max_rss_kb) or {name, max_rss_kb}."""
    if not isinstance(entries, (list, tuple)):
        raise ExposureError("allowlist must be a list of process names or {name, max_rss_kb} entries, got %r" % (entries,))
    result = {}
    for entry in entries:
        if isinstance(entry, str):
            name, bound = entry, default_max
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            extra = set(entry) - {"name", "max_rss_kb"}
            if extra:
                raise ExposureError("allowlist entry %r has unknown keys: %s" % (entry, ", ".join(sorted(extra))))
            bound = entry.get("max_rss_kb", default_max)
            if not _num(bound) or not 0 <= bound < float("inf"):
                raise ExposureError("allowlist entry %r: max_rss_kb must be a finite number >= 0" % (entry,))
            name = entry["name"]
        else:
            raise ExposureError("allowlist entry %r must be a process name or {name, max_rss_kb}" % (entry,))
        if not name:
            raise ExposureError("allowlist entry names must not be empty")
        result[name] = float(bound)
    return result


# ---------------------------------------------------------------- facts


def _unwrap(facts):
    """Accept ansible_facts, or a registered module result (with ansible_facts), or hostvars.

    Returns (facts_dict, reason) where reason explains why nothing usable came back.
    """
    if not isinstance(facts, dict):
        return None, "no facts were gathered (got %s)" % type(facts).__name__
    if facts.get("unreachable"):
        return None, "host unreachable: %s" % (facts.get("msg") or "no message")
    if facts.get("failed") or facts.get("skipped"):
        verb = "failed" if facts.get("failed") else "was skipped"
        return None, "fact gathering %s: %s" % (verb, facts.get("msg") or facts.get("skip_reason") or "no message")
    if "oom" not in facts and isinstance(facts.get("ansible_facts"), dict):
        facts = facts["ansible_facts"]
    return facts, None


def _check_oom(oom):
    if not isinstance(oom, dict):
        return "ansible_facts.oom is missing: run oomguard.fleet.oom_score_facts on the host first"
    meminfo = oom.get("meminfo")
    if not isinstance(meminfo, dict) or not _num(meminfo.get("mem_total_kb")) or meminfo.get("mem_total_kb") <= 0:
        return "MemTotal could not be read from the host's meminfo (oom.meminfo.mem_total_kb missing or 0)"
    if not isinstance(oom.get("summary"), dict) or not isinstance(oom.get("processes"), list):
        return "ansible_facts.oom has no summary or processes: the fact module's output is incomplete"
    return None


_NAMED_UNREADABLE = 3


def unreadable_reason(oom):
    """Why the facts cannot clear the host: processes alive but unreadable (permission, hidepid,
    a file absent), whose memory no rule saw; None when every process was read or had exited."""
    errors = oom.get("errors") if isinstance(oom.get("errors"), dict) else {}
    become = "run the task with become: true"
    if errors.get("hidepid"):
        return ("procfs is mounted with hidepid=%s and the facts were gathered unprivileged: other users' processes are "
                "invisible, so the verdict could be too low: %s" % (errors["hidepid"], become))
    samples = [s for s in errors.get("samples") or [] if isinstance(s, dict) and s.get("error") != "vanished"]
    count = errors.get("unreadable_count")
    if not _num(count):  # facts from before the breakdown: the samples are all there is
        count = len(samples)
    if count <= 0:
        return None
    named = ", ".join("pid %s %s: %s" % (s.get("pid"), s.get("file"), s.get("error")) for s in samples[:_NAMED_UNREADABLE])
    if count > _NAMED_UNREADABLE:
        named += ", ..."
    return ("%d process(es) could not be read (%s); the memory they hold is not counted, so the verdict could be too low: %s"
            % (count, named, become))


def figures_of(oom, slabinfo=None, evidence=None):
    """The key figures shown next to the level (contract keys plus a few more)."""
    meminfo = oom.get("meminfo") or {}
    summary = oom.get("summary") or {}
    total = meminfo.get("mem_total_kb")
    sunreclaim = meminfo.get("sunreclaim_kb")
    if sunreclaim is None and isinstance(slabinfo, dict):
        sunreclaim = (slabinfo.get("meminfo") or {}).get("sunreclaim_kb")
    # Global init is never chosen by the OOM killer (mm/oom_kill.c), so its RSS is not killable memory.
    init = [p for p in oom.get("processes") or [] if isinstance(p, dict) and p.get("pid") == 1
            and p.get("oom_score_adj") != UNKILLABLE_ADJ]
    killable = max(0, (summary.get("killable_rss_kb") or 0) - sum(p.get("rss_kb") or 0 for p in init))
    figures = {
        "mem_total_kb": total,
        "mem_available_kb": meminfo.get("mem_available_kb"),
        "available_pct": _pct(meminfo.get("mem_available_kb"), total),
        "unkillable_rss_kb": summary.get("unkillable_rss_kb", 0),
        "unkillable_share_pct": _pct(summary.get("unkillable_rss_kb", 0), total),
        "killable_rss_kb": killable,
        "killable_share_pct": _pct(killable, total),
        "sunreclaim_kb": sunreclaim,
        "sunreclaim_pct": _pct(sunreclaim, total),
        "lru_kb": meminfo.get("lru_kb"),
        "process_count": summary.get("process_count"),
        "unkillable_count": summary.get("unkillable_count"),
        "panic_on_oom": (oom.get("vm") or {}).get("panic_on_oom"),
        "panic_timeout_s": (oom.get("panic") or {}).get("timeout_s") if isinstance(oom.get("panic"), dict) else None,
    }
    if isinstance(evidence, dict):
        figures["oom_kill_count"] = (evidence.get("oom_kills") or {}).get("count")
        figures["panic_count"] = (evidence.get("panics") or {}).get("count")
    return figures


def _finding(rule_id, severity, message, pids=()):
    return {"id": rule_id, "severity": severity, "message": message, "pids": sorted(set(pids))}


# ---------------------------------------------------------------- built-in rules


def rule_oom001(oom, figures, opts):
    share = _pct(figures["unkillable_rss_kb"], figures["mem_total_kb"], None) or 0.0
    if share >= opts["unkillable_critical_pct"]:
        severity = "critical"
    elif share >= opts["unkillable_high_pct"]:
        severity = "high"
    else:
        return []
    pids = [p["pid"] for p in oom["processes"] if p.get("oom_score_adj") == UNKILLABLE_ADJ]
    message = ("%d unkillable process(es) (oom_score_adj -1000) hold %s RSS, %s%% of MemTotal %s "
               "(high at %s%%, critical at %s%%): the OOM killer cannot free that memory"
               % (figures["unkillable_count"] or len(pids), human_kb(figures["unkillable_rss_kb"]), _fmt_pct(share),
                  human_kb(figures["mem_total_kb"]), _fmt_pct(opts["unkillable_high_pct"]),
                  _fmt_pct(opts["unkillable_critical_pct"])))
    return [_finding("OOM001", severity, message, pids)]


def rule_panic001(panic, opts):
    """No record of a panic would survive the reboot. Returns (findings, skipped reason or None)."""
    if not opts["require_panic_record"]:
        return [], "switched off (require_panic_record: false)"
    pstore, crash, journal = panic.get("pstore") or {}, panic.get("crash_kernel") or {}, panic.get("journal") or {}
    if not panic.get("sys_path") or crash.get("loaded") is None:
        return [], "sysfs was not found beside the procfs (sys_path): pstore and the crash kernel are unknown"
    if pstore.get("backend") or crash.get("loaded"):
        return [], None
    if journal.get("persistent"):
        journal_text, severity = "; the persistent journal keeps only the lead-up (OOM kills, the warning)", "low"
    elif journal.get("persistent") is False:
        journal_text, severity = ("; nor does journald keep a persistent journal (Storage=%s%s), so not even the lead-up "
                                  "survives the reboot" % (journal.get("storage"),
                                                           ", no %s" % journal["path"] if journal.get("path") else "")), "medium"
    else:
        journal_text, severity = "", "medium"
    message = ("A panic here would leave no record of itself: no pstore backend registered (%s/module/pstore/parameters/"
               "backend) and no crash kernel loaded (kexec_crash_loaded is not 1), and the panic's own lines never reach "
               "the journal or a log file%s. After an 'Out of memory and no killable processes' panic and the reboot "
               "nothing on the host says why (HIST001 can never fire); load a pstore backend (ramoops, efi_pstore, erst) "
               "or set up kdump" % (panic["sys_path"], journal_text))
    return [_finding("PANIC001", severity, message)], None


def rule_panic002(panic, vm, opts):
    """The host does not reboot after a panic (kernel.panic 0), or waits long. Returns (findings, skipped reason)."""
    if not opts["require_panic_reboot"]:
        return [], "switched off (require_panic_reboot: false)"
    timeout = panic.get("timeout_s")
    if not _num(timeout):
        return [], "kernel.panic is not in this host's procfs (sys/kernel/panic)"
    panic_on_oom = (vm or {}).get("panic_on_oom")
    if timeout == 0:
        every_oom = panic_on_oom in (1, 2)
        return [_finding("PANIC002", "high" if every_oom else "medium", (
            "kernel.panic is 0: after a panic the host stays hung until someone restarts it%s; set kernel.panic to the "
            "seconds to wait before the reboot (for example 10)" % (
                " - and with vm.panic_on_oom %s every OOM is a panic" % panic_on_oom if every_oom else "")))], None
    limit = opts["panic_reboot_max_s"]
    if timeout > 0 and limit and timeout > limit:
        return [_finding("PANIC002", "low", (
            "kernel.panic is %d: after a panic the host waits %d s before it reboots (flagged above %d s)"
            % (timeout, timeout, limit)))], None
    return [], None


def _describe(proc):
    return "%s (pid %s, %s RSS%s)" % (proc.get("name"), proc.get("pid"), human_kb(proc.get("rss_kb")),
                                      ", unit %s" % proc["unit"] if proc.get("unit") else "")


def _legacy(proc):
    return " (legacy oom_adj -17)" if proc.get("oom_adj_legacy") is not None else ""


def rule_oom002(oom, figures, opts):
    """Unkillable processes outside the allowlist; returns (findings, flagged)."""
    procs = [p for p in oom["processes"] if isinstance(p, dict)]
    by_pid = dict((p.get("pid"), p) for p in procs)
    allow = opts["allowlist"]
    findings, flagged = [], []
    total = figures["mem_total_kb"]
    for proc in procs:
        if proc.get("oom_score_adj") != UNKILLABLE_ADJ:
            continue
        name, rss = proc.get("name"), proc.get("rss_kb") or 0
        parent = by_pid.get(proc.get("ppid"))
        share = _pct(rss, total, None) or 0.0
        severity = "high" if share >= opts["unallowed_high_pct"] else "medium"
        if name in allow:
            if rss <= allow[name]:
                continue
            findings.append(_finding("OOM002", severity, (
                "%s is allowlisted only up to %s but is unkillable (oom_score_adj -1000%s) at %s RSS, %s%% of MemTotal; "
                "allowlisted processes are reported, never reset, unless named" % (
                    _describe(proc), human_kb(allow[name]), _legacy(proc), human_kb(rss), _fmt_pct(share))), [proc["pid"]]))
            continue
        why = "is unkillable (oom_score_adj -1000%s) and not allowlisted" % _legacy(proc)
        if parent is not None and parent.get("oom_score_adj") == UNKILLABLE_ADJ:
            why += ("; it likely inherited -1000 from its parent %s (pid %s)%s: children copy oom_score_adj on fork, so "
                    "whatever an unkillable daemon launches is unkillable too" % (
                        parent.get("name"), parent.get("pid"), ", which is allowlisted" if parent.get("name") in allow else ""))
        findings.append(_finding("OOM002", severity, "%s %s; it holds %s%% of MemTotal" % (_describe(proc), why, _fmt_pct(share)),
                                 [proc["pid"]]))
        flagged.append({"pid": proc.get("pid"), "name": name, "unit": proc.get("unit"), "oom_score_adj": UNKILLABLE_ADJ,
                        "rss_kb": rss, "ppid": proc.get("ppid"), "rule": "OOM002"})
    return findings, flagged


def rule_oom003(oom, figures, opts):
    total = figures["mem_total_kb"]
    killable, available = _pct(figures["killable_rss_kb"], total, None), _pct(figures["mem_available_kb"], total, None)
    if killable is None or available is None:
        return []
    if killable >= opts["killable_min_pct"] or available >= opts["available_low_pct"]:
        return []
    largest = oom["summary"].get("largest_killable") or {}
    largest_text = ""
    if not figures["killable_rss_kb"]:
        largest_text = "; nothing but init is killable"
    elif largest.get("pid") not in (None, 1):
        largest_text = "; the largest killable process is %s" % _describe(largest)
    message = ("Only %s of killable RSS (%s%% of MemTotal %s, below %s%%) is left for the OOM killer to free while "
               "MemAvailable is %s (%s%%, below %s%%): the precondition of 'Out of memory and no killable processes'%s"
               % (human_kb(figures["killable_rss_kb"]), _fmt_pct(killable), human_kb(figures["mem_total_kb"]),
                  _fmt_pct(opts["killable_min_pct"]), human_kb(figures["mem_available_kb"]), _fmt_pct(available),
                  _fmt_pct(opts["available_low_pct"]), largest_text))
    return [_finding("OOM003", "high" if figures["killable_rss_kb"] else "critical", message)]


def rule_slab001(oom, figures, opts):
    sunreclaim, lru = figures["sunreclaim_kb"], figures["lru_kb"]
    pct = _pct(sunreclaim, figures["mem_total_kb"], None)
    if sunreclaim is None:
        return []
    findings = []
    if lru is not None and sunreclaim > lru:
        findings.append(_finding("SLAB001", "critical", (
            "Unreclaimable slab (SUnreclaim %s) exceeds all LRU pages (%s): the kernel's own test for a slab-driven "
            "OOM (it dumps slab on OOM when this holds); no process kill can free kernel memory: check for a kernel leak"
            % (human_kb(sunreclaim), human_kb(lru)))))
    elif pct is not None and pct > opts["sunreclaim_pct"]:
        findings.append(_finding("SLAB001", "high", (
            "SUnreclaim is %s, %s%% of MemTotal %s (above %s%%, Alibaba Cloud's slab-leak threshold): "
            "suspect a kernel memory leak; see the largest slab caches" % (
                human_kb(sunreclaim), _fmt_pct(pct), human_kb(figures["mem_total_kb"]), _fmt_pct(opts["sunreclaim_pct"])))))
    return findings


def rule_slab002(slabinfo, opts):
    growth = slabinfo.get("growth") or {}
    findings = []
    for cache in growth.get("caches") or []:
        if any(fnmatch.fnmatchcase(str(cache.get("name")), pattern) for pattern in opts["slab_growth_ignore"]):
            continue
        rate, grown = cache.get("growth_kb_per_hour"), cache.get("growth_kb")
        if not _num(rate) or not _num(grown):
            continue
        if rate >= opts["slab_growth_kb_per_hour"] and grown >= opts["slab_growth_min_kb"]:
            findings.append(_finding("SLAB002", "medium", (
                "Slab cache %s grew by %s to %s since the baseline of %s (%s/hour over %s h; flagged at %s/hour and %s): "
                "a kernel leak trend" % (
                    cache.get("name"), human_kb(grown), human_kb(cache.get("size_kb")), growth.get("baseline_at") or "the last run",
                    human_kb(rate), growth.get("hours") if growth.get("hours") is not None else "?",
                    human_kb(opts["slab_growth_kb_per_hour"]), human_kb(opts["slab_growth_min_kb"])))))
    return findings


def rule_vm001(oom):
    value = (oom.get("vm") or {}).get("panic_on_oom")
    if value == 1:
        return [_finding("VM001", "high", "vm.panic_on_oom is 1: any system-wide OOM panics the host instead of killing a "
                                          "process; set it to 0 unless a panic is wanted for failover")]
    if value == 2:
        return [_finding("VM001", "critical", "vm.panic_on_oom is 2: every OOM panics the host, even one confined to a memory "
                                              "cgroup (a container hitting its limit); set it to 0")]
    return []


def _victims_text(kills):
    victims = kills.get("victims") or []
    if not victims:
        return ""
    return "; victims: %s" % ", ".join("%s x%s" % (v.get("name"), v.get("count", 1)) for v in victims[:5])


def _window_text(since_days):
    """The evidence window in words: evidence_days 0 (or unknown) means no time bound."""
    if since_days:
        return "in the last %s days" % since_days
    return "in all the logs the host keeps (no time bound)"


def rule_hist(evidence):
    findings = []
    panics = evidence.get("panics") or {}
    kills = evidence.get("oom_kills") or {}
    window = _window_text(evidence.get("since_days"))
    read = [s.get("name") for s in evidence.get("sources") or [] if s.get("read")]
    where = " (read: %s)" % ", ".join(read) if read else ""
    if panics.get("count"):
        findings.append(_finding("HIST001", "critical", (
            "The host already hit the no-killable-processes OOM panic: %d time(s) %s, newest %s "
            "('Out of memory and no killable processes' x%d, 'System is deadlocked on memory' x%d)%s" % (
                panics["count"], window, panics.get("newest_at") or "at an unknown time",
                panics.get("no_killable_count", 0), panics.get("deadlocked_count", 0), where))))
    if kills.get("count"):
        global_count = kills["count"] - (kills.get("memcg_count") or 0)
        findings.append(_finding("HIST002", "medium" if global_count > 0 else "low", (
            "The OOM killer fired %d time(s) %s (%d system-wide, %d in memory cgroups), newest %s%s%s" % (
                kills["count"], window, global_count, kills.get("memcg_count") or 0,
                kills.get("newest_at") or "at an unknown time", _victims_text(kills), where))))
    return findings


# ---------------------------------------------------------------- custom rules


def validate_custom_rules(rules):
    """Check and compile custom rules; returns [(rule, compiled)]. Raises ExposureError naming the rule."""
    if rules is None:
        return []
    if not isinstance(rules, (list, tuple)):
        raise ExposureError("custom rules must be a list of {id, severity, query, message}, got %s" % type(rules).__name__)
    if rules and not HAS_JMESPATH:
        raise ExposureError("custom rules need the Python library jmespath on the controller: pip install jmespath")
    compiled, seen = [], set()
    for index, rule in enumerate(rules):
        label = "custom rule #%d" % (index + 1)
        if not isinstance(rule, dict):
            raise ExposureError("%s must be a dict with id, severity, query, message; got %r" % (label, rule))
        rule_id = rule.get("id")
        if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
            raise ExposureError("%s: id must be a short name of letters, digits, '_', '.', '-' (got %r)" % (label, rule_id))
        label = "custom rule %s" % rule_id
        if rule_id in BUILTIN_RULES or rule_id in seen:
            raise ExposureError("%s: the id is already used by %s rule" % (label, "a built-in" if rule_id in BUILTIN_RULES else "another"))
        seen.add(rule_id)
        extra = set(rule) - {"id", "severity", "query", "message"}
        if extra:
            raise ExposureError("%s: unknown keys %s (allowed: id, severity, query, message)" % (label, ", ".join(sorted(extra))))
        if rule.get("severity") not in SEVERITIES:
            raise ExposureError("%s: severity must be one of %s, got %r" % (label, ", ".join(SEVERITIES), rule.get("severity")))
        query, message = rule.get("query"), rule.get("message")
        if not isinstance(query, str) or not query.strip():
            raise ExposureError("%s: query must be a non-empty JMESPath expression" % label)
        if not isinstance(message, str) or not message.strip():
            raise ExposureError("%s: message must be a non-empty string" % label)
        try:
            expression = jmespath.compile(query)
        except JMESPathError as exc:
            raise ExposureError("%s: invalid JMESPath query %r: %s" % (label, query, _one_line(exc)))
        compiled.append((rule, expression))
    return compiled


def _one_line(exc):
    return " ".join(str(exc).split())


def _runtime_error(exc):
    """What went wrong in a query, without the values it ran on: jmespath's type errors quote the
    whole offending value (a process list, with its command lines)."""
    if HAS_JMESPATH and isinstance(exc, jmespath.exceptions.JMESPathTypeError):
        expected = [str(t) for t in exc.expected_types or []]
        expected = ", ".join(expected[:-1]) + " or " + expected[-1] if len(expected) > 1 else "".join(expected)
        return "in function %s(), expected %s, received %s" % (exc.function_name, expected, exc.actual_type)
    if HAS_JMESPATH and isinstance(exc, (jmespath.exceptions.ArityError, jmespath.exceptions.UnknownFunctionError)):
        return _one_line(exc)  # names and counts only
    return type(exc).__name__


def _render(value):
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return _fmt_pct(value)
    return json.dumps(value, sort_keys=True, default=str)


def _format_message(label, template, values):
    def repl(match):
        key = match.group(1)
        if key not in values:
            raise ExposureError("%s: message placeholder {%s} is unknown; use {result}, {host} or a figure name (%s)"
                                % (label, key, ", ".join(sorted(k for k in values if k not in ("result", "host")))))
        return _render(values[key])
    return _PLACEHOLDER.sub(repl, template)


def run_custom_rules(compiled, document, figures, host):
    findings = []
    for rule, expression in compiled:
        label = "custom rule %s" % rule["id"]
        try:
            result = expression.search(document)
        except Exception as exc:  # pylint: disable=broad-except
            raise ExposureError("%s: query %r failed on this host's facts: %s" % (label, rule["query"], _runtime_error(exc)))
        if not result:
            continue
        values = dict(figures)
        values.update({"result": result, "host": host})
        pids = []
        if isinstance(result, list):
            pids = [item.get("pid") for item in result if isinstance(item, dict) and isinstance(item.get("pid"), int)]
        findings.append(_finding(rule["id"], rule["severity"], _format_message(label, rule["message"], values), pids))
    return findings


# ---------------------------------------------------------------- verdict


def unknown_result(host, reason, now=None):
    result = {"schema": SCHEMA, "host": host, "level": UNKNOWN, "reason": reason, "checked_at": format_time(now),
              "findings": [], "figures": {}, "flagged": [], "skipped": []}
    result["summary"] = summary_line(result)
    return result


def assess(facts, host=None, options=None, custom_rules=None, now=None):
    """Judge one host. ``facts``: ansible_facts (or a registered oom_score_facts result).

    Raises ExposureError for bad options or custom rules (the caller's mistake, same for
    every host); returns level ``unknown`` with a reason when the host's facts are unusable.
    """
    opts = normalize_options(options)
    compiled = validate_custom_rules(custom_rules)
    facts, reason = _unwrap(facts)
    if reason is None:
        reason = _check_oom(facts.get("oom"))
    if reason is not None:
        return unknown_result(host, reason, now)
    oom = facts["oom"]
    slabinfo = facts.get("slabinfo") if isinstance(facts.get("slabinfo"), dict) else None
    evidence = facts.get("oom_evidence") if isinstance(facts.get("oom_evidence"), dict) else None
    figures = figures_of(oom, slabinfo, evidence)
    skipped = []

    findings = rule_oom001(oom, figures, opts)
    oom002, flagged = rule_oom002(oom, figures, opts)
    findings += oom002 + rule_oom003(oom, figures, opts) + rule_slab001(oom, figures, opts)
    if figures["sunreclaim_kb"] is None:
        skipped.append({"id": "SLAB001", "reason": "SUnreclaim is not in this host's meminfo"})
    if slabinfo is None:
        skipped.append({"id": "SLAB002", "reason": "slabinfo facts were not gathered"})
    elif not (slabinfo.get("growth") or {}).get("baseline"):
        why = "no slab baseline yet: the next run shows growth since this one"
        if (slabinfo.get("growth") or {}).get("message"):
            why = "no slab baseline yet (%s)" % slabinfo["growth"]["message"]
        if not slabinfo.get("available", True):
            why = "slabinfo unavailable: %s" % (slabinfo.get("reason") or "no reason given")
        elif "growth" not in slabinfo:
            why = "no slab growth was asked for (baseline off)"
        skipped.append({"id": "SLAB002", "reason": why})
    else:
        findings += rule_slab002(slabinfo, opts)
    findings += rule_vm001(oom)
    if evidence is None:
        skipped.append({"id": "HIST001", "reason": "incident evidence was not gathered"})
    else:
        findings += rule_hist(evidence)
    panic = oom.get("panic") if isinstance(oom.get("panic"), dict) else None
    for rule_id, judge in (("PANIC001", lambda: rule_panic001(panic, opts)),
                           ("PANIC002", lambda: rule_panic002(panic, oom.get("vm"), opts))):
        found, why = judge() if panic is not None else ([], "no panic facts (gathered by an older oom_score_facts)")
        findings += found
        if why:
            skipped.append({"id": rule_id, "reason": why})
    document = {"oom": oom, "slabinfo": slabinfo, "oom_evidence": evidence, "figures": figures}
    findings += run_custom_rules(compiled, document, figures, host)

    findings.sort(key=lambda f: (-level_rank(f["severity"]), f["id"]))
    # Findings so far are kept (they hold whatever the unreadable processes add), but the host
    # cannot be cleared: unknown fails every gate, as the worst finding alone might not.
    reason = unreadable_reason(oom)
    result = {
        "schema": SCHEMA,
        "host": host,
        "level": UNKNOWN if reason else worst(f["severity"] for f in findings),
        "reason": reason,
        "checked_at": format_time(now),
        "findings": findings,
        "figures": figures,
        "flagged": flagged,
        "skipped": skipped,
    }
    result["summary"] = summary_line(result)
    return result


def summary_line(exposure):
    """One line per host for play output: level, top findings, key figures."""
    host = exposure.get("host") or "host"
    if exposure.get("level") == UNKNOWN:
        found = ", ".join("%s/%s" % (f["id"], f["severity"]) for f in exposure.get("findings") or [])
        return "%s: unknown (%s)%s" % (host, exposure.get("reason"), "; findings so far: %s" % found if found else "")
    figures = exposure.get("figures") or {}
    ids = ", ".join("%s/%s" % (f["id"], f["severity"]) for f in exposure.get("findings") or []) or "no findings"
    return "%s: %s (%s); unkillable %s = %s%% of %s, SUnreclaim %s%%, %d flagged" % (
        host, exposure.get("level"), ids, human_kb(figures.get("unkillable_rss_kb")),
        _fmt_pct(figures.get("unkillable_share_pct") or 0), human_kb(figures.get("mem_total_kb")),
        _fmt_pct(figures.get("sunreclaim_pct") or 0), len(exposure.get("flagged") or []))
