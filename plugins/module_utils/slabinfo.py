# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather ``ansible_facts.slabinfo`` (docs/data-contract.md), with growth against a
baseline stored on the host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os

from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import parse_slabinfo
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import read_meminfo
from ansible_collections.oomguard.fleet.plugins.module_utils.proc_reader import read_text
from ansible_collections.oomguard.fleet.plugins.module_utils import safefile as sf
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError, format_time, parse_time, utc_now

SCHEMA = 1
DEFAULT_BASELINE_PATH = "/var/lib/oomguard/slabinfo-baseline.json"
BASELINE_MODES = ("compare", "store")


class BaselineError(OomguardError):
    """The baseline could not be written."""


def _stored_at(text):
    stamp = parse_time(text)
    if stamp is None:
        raise ValueError("stored_at %r is not a time such as 2026-11-29T02:00:00Z" % (text,))
    return stamp


def _boot_id(proc_path):
    try:
        return read_text(os.path.join(proc_path, "sys", "kernel", "random", "boot_id")).strip() or None
    except (IOError, OSError):
        return None


def load_baseline(path):
    """(baseline dict or None, message)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
        stored_at = _stored_at(data["stored_at"])
        caches = dict((str(k), int(v)) for k, v in data["caches"].items())
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None, "no baseline yet at %s" % path
        return None, "baseline at %s unreadable: %s" % (path, exc.strerror or exc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, "baseline at %s is not a valid baseline (%s); storing replaces it" % (path, exc)
    return {"stored_at": stored_at, "caches": caches, "boot_id": data.get("boot_id")}, None


def store_baseline(path, caches, now, boot_id):
    """Atomic write (``safefile.write_atomic``): a 0600 file; a missing directory is created 0700, an
    existing one is checked (no symlink, no foreign owner, no group/world write without the sticky
    bit) and never chmodded; a symlink at ``path`` is refused."""
    payload = {
        "schema": SCHEMA,
        "stored_at": format_time(now),
        "boot_id": boot_id,
        "caches": dict((c["name"], c["size_kb"]) for c in caches),
    }
    try:
        sf.write_atomic(path, json.dumps(payload, sort_keys=True), mode=0o600, dir_mode=0o700, keep_metadata=False)
    except sf.SafeFileError as exc:
        raise BaselineError("Failed to store the slab baseline at %s: %s Run with become: true or choose another baseline path."
                            % (path, exc))


def compute_growth(caches, baseline, now, top):
    hours = round((now - baseline["stored_at"]).total_seconds() / 3600.0, 3)
    rows = []
    for cache in caches:
        before = baseline["caches"].get(cache["name"], 0)
        grown = cache["size_kb"] - before
        if grown > 0:
            rows.append({
                "name": cache["name"],
                "size_kb": cache["size_kb"],
                "baseline_kb": before,
                "growth_kb": grown,
                "growth_kb_per_hour": round(grown / hours, 1) if hours > 0 else None,
            })
    rows.sort(key=lambda r: (-r["growth_kb"], r["name"]))
    return hours, rows[:top] if top else rows


def baseline_growth(caches, mode, baseline_path, check_mode, proc_path, now, top):
    baseline, message = load_baseline(baseline_path)
    boot_id = _boot_id(proc_path)
    growth = {"baseline": False, "baseline_at": None, "hours": None, "caches": [], "baseline_path": baseline_path,
              "stored": False, "message": message}
    if baseline is not None:
        growth["baseline"] = True
        growth["baseline_at"] = format_time(baseline["stored_at"])
        growth["hours"], growth["caches"] = compute_growth(caches, baseline, now, top)
        growth["message"] = "growth since %s" % growth["baseline_at"]
        if boot_id and baseline["boot_id"] and boot_id != baseline["boot_id"]:
            growth["message"] += "; the host rebooted since, so slab started again from empty"
    if mode == "store":
        if check_mode:
            growth["message"] += "; check mode: baseline not stored"
        else:
            store_baseline(baseline_path, caches, now, boot_id)
            growth["stored"] = True
            growth["message"] += "; stored a new baseline"
    elif baseline is None:
        growth["message"] += "; run with baseline=store to create one"
    return growth


def slabinfo_arguments(params, prefix=""):
    """gather_slabinfo_facts' arguments from module options: slabinfo_facts' ``top``, ``baseline`` and
    ``baseline_path``, or oom_score_facts' ``slabinfo_top`` ... (``prefix`` ``slabinfo_``)."""
    baseline = params[prefix + "baseline"]
    return dict(proc_path=params["proc_path"], top=params[prefix + "top"], baseline=None if baseline == "none" else baseline,
                baseline_path=params[prefix + "baseline_path"])


def gather_slabinfo_facts(proc_path="/proc", top=20, baseline=None, baseline_path=DEFAULT_BASELINE_PATH,
                          check_mode=False, now=None):
    """``ansible_facts.slabinfo`` for the procfs tree at ``proc_path``.

    ``baseline``: None (no growth), ``compare`` (read the stored baseline) or ``store``
    (compare, then replace the baseline with this run's figures unless in check mode)."""
    now = now or utc_now()
    page_size = os.sysconf("SC_PAGE_SIZE")
    meminfo = read_meminfo(proc_path)
    facts = {
        "schema": SCHEMA,
        "available": False,
        "reason": None,
        "version": None,
        "statistics": False,
        "total_kb": None,
        "active_kb": None,
        "cache_count": 0,
        "caches": [],
        "meminfo": {
            "slab_kb": meminfo.get("Slab"),
            "sreclaimable_kb": meminfo.get("SReclaimable"),
            "sunreclaim_kb": meminfo.get("SUnreclaim"),
            "mem_total_kb": meminfo.get("MemTotal"),
        },
    }
    path = os.path.join(proc_path, "slabinfo")
    try:
        text = read_text(path)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            facts["reason"] = ("%s does not exist: the kernel was built without CONFIG_SLUB_DEBUG (or CONFIG_SLAB); "
                               "only the meminfo slab figures are available" % path)
        elif exc.errno in (errno.EACCES, errno.EPERM):
            facts["reason"] = "%s is readable by root only; run the task with become: true" % path
        else:
            facts["reason"] = "%s could not be read: %s" % (path, exc.strerror or exc)
        return facts
    parsed = parse_slabinfo(text, page_size, path)
    caches = sorted(parsed["caches"], key=lambda c: (-c["size_kb"], c["name"]))
    facts.update({
        "available": True,
        "version": parsed["version"],
        "statistics": parsed["statistics"],
        "total_kb": sum(c["size_kb"] for c in caches),
        "active_kb": sum(c["active_kb"] for c in caches),
        "cache_count": len(caches),
        "caches": caches[:top] if top else caches,
    })
    if baseline:
        if baseline not in BASELINE_MODES:
            raise OomguardError("baseline must be one of %s, not %r" % (", ".join(BASELINE_MODES), baseline))
        facts["growth"] = baseline_growth(caches, baseline, baseline_path, check_mode, proc_path, now, top)
    return facts
