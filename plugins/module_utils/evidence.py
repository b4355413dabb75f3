# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident evidence: past OOM kills and OOM panics in what the host keeps.

Sources, each optional (a missing one is recorded, never an error):

- the journal's kernel messages across boots (``journalctl _TRANSPORT=kernel``; ``-k``
  alone would mean the current boot only), through an injectable ``run_command``;
- ``/var/log/kern.log`` and ``/var/log/messages`` (and their ``.1`` rotations);
- ``/sys/fs/pstore`` (the kernel log saved by a crash) and ``/var/lib/systemd/pstore``, where
  systemd-pstore.service moves it at boot;
- kdump's ``/var/crash/*/vmcore-dmesg.txt`` (and Debian kdump-tools' ``dmesg.*``).

Reading is bounded: only entries from the last ``since_days`` days, and at most
``max_bytes`` from the end (newest part) of each source. Every path sits under ``root``
so tests use fixture trees.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import glob
import os
import re
import time

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import format_time
from ansible_collections.oomguard.fleet.plugins.module_utils.pycompat import UTC

SCHEMA = 1
DEFAULT_SINCE_DAYS = 30
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_VICTIMS = 10
MAX_EVENTS = 10
# Two sightings of one kill (journal and kern.log) or of one panic (warning + panic line,
# pstore + kdump) are merged when this close in wall time.
SAME_EVENT_SECONDS = 120

NO_KILLABLE = "Out of memory and no killable processes"
DEADLOCKED = "System is deadlocked on memory"

_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")
_MEMCG = re.compile(r"Memory cgroup out of memory|constraint=CONSTRAINT_MEMCG")
_GLOBAL = re.compile(r"constraint=CONSTRAINT_(NONE|CPUSET|MEMORY_POLICY)")
_PANIC_ON_OOM = re.compile(r"(system-wide|compulsory) panic_on_oom is enabled")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?\s")
_TRADITIONAL = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ")
_MONO = re.compile(r"\[\s*(\d+\.\d+)\]")
# kdump's crash directory names: RHEL <ip>-YYYY-MM-DD-HH:MM:SS, Debian kdump-tools YYYYMMDDHHMM.
_CRASH_DIR = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})-?(\d{2}):?(\d{2})(?::(\d{2}))?$")
_MONTHS = dict((name, index) for index, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1))


def iso(when):
    return format_time(when) if when else None


def parse_iso_prefix(line):
    """Wall time at the start of an RFC 3339 / journalctl short-iso line, or None."""
    match = _ISO.match(line)
    if not match:
        return None
    zone = match.group(4) or "Z"
    try:
        when = datetime.datetime.strptime("%s %s" % (match.group(1), match.group(2)), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if zone == "Z":
        return when.replace(tzinfo=UTC)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (when - sign * offset).replace(tzinfo=UTC)


def parse_traditional_prefix(line, year):
    """Wall time of a classic syslog line (``Nov 29 01:02:03 host ...``, local time, no year)."""
    match = _TRADITIONAL.match(line)
    if not match or match.group(1) not in _MONTHS:
        return None
    try:
        local = datetime.datetime(year, _MONTHS[match.group(1)], int(match.group(2)),
                                  int(match.group(3)), int(match.group(4)), int(match.group(5)))
    except ValueError:
        return None
    return datetime.datetime.fromtimestamp(time.mktime(local.timetuple()), UTC)


def classify(line):
    """(kind, details) for one log line, or (None, None).

    kinds: ``kill`` (details pid, name), ``no_killable``, ``deadlocked``, ``panic_on_oom``,
    ``memcg`` / ``global`` (context lines that say what the next kill belongs to).
    """
    match = _KILLED.search(line)
    if match:
        return "kill", {"pid": int(match.group(1)), "name": match.group(2), "memcg": bool(_MEMCG.search(line))}
    if NO_KILLABLE in line:
        return "no_killable", {}
    if DEADLOCKED in line:
        return "deadlocked", {}
    if _PANIC_ON_OOM.search(line):
        return "panic_on_oom", {}
    if _MEMCG.search(line):
        return "memcg", {}
    if _GLOBAL.search(line):
        return "global", {}
    return None, None


def scan_text(text, source, since, default_at=None, year_of=None):
    """Events from log text. Lines with a wall time before ``since`` are dropped.

    ``default_at``: the wall time for lines without one (pstore/kdump: the file's mtime).
    ``year_of``: year for classic syslog lines that carry none (a datetime: the file's mtime).
    """
    events = []
    memcg_context = False
    for line in text.splitlines():
        kind, details = classify(line)
        if kind is None:
            continue
        if kind in ("memcg", "global"):
            memcg_context = kind == "memcg"
            continue
        at = parse_iso_prefix(line)
        if at is None and year_of is not None:
            at = parse_traditional_prefix(line, year_of.year)
            if at is not None and at > year_of + datetime.timedelta(days=1):
                at = parse_traditional_prefix(line, year_of.year - 1)
        if at is None:
            at = default_at
        if at is not None and since is not None and at < since:
            memcg_context = False
            continue
        mono = _MONO.search(line)
        event = {"kind": kind, "at": at, "mono": float(mono.group(1)) if mono else None, "source": source,
                 "line": line.strip()[:300]}
        if kind == "kill":
            event.update(details)
            event["memcg"] = details["memcg"] or memcg_context
            memcg_context = False
        events.append(event)
    return events


def _close(first, second):
    if first["mono"] is not None and second["mono"] is not None and abs(first["mono"] - second["mono"]) < 1.0:
        return first["at"] is None or second["at"] is None or abs((first["at"] - second["at"]).total_seconds()) <= 86400
    if first["at"] is not None and second["at"] is not None:
        return abs((first["at"] - second["at"]).total_seconds()) <= SAME_EVENT_SECONDS
    return False


def merge_events(events, same):
    """Group sightings of one event (``same(a, b)`` and close in time); returns groups, newest first."""
    groups = []
    for event in events:
        for group in groups:
            if any(same(event, seen) and _close(event, seen) for seen in group):
                group.append(event)
                break
        else:
            groups.append([event])
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC)
    groups.sort(key=lambda g: max(e["at"] or epoch for e in g), reverse=True)
    return groups


def _newest(group):
    stamps = [e["at"] for e in group if e["at"] is not None]
    return max(stamps) if stamps else None


def summarize(events, max_victims=MAX_VICTIMS, max_events=MAX_EVENTS):
    kills = merge_events([e for e in events if e["kind"] == "kill"],
                         lambda a, b: a["pid"] == b["pid"] and a["name"] == b["name"])
    panics = merge_events([e for e in events if e["kind"] != "kill"], lambda a, b: True)
    victims = {}
    for group in kills:
        name = group[0]["name"]
        entry = victims.setdefault(name, {"name": name, "count": 0, "newest_at": None, "pids": []})
        entry["count"] += 1
        newest = _newest(group)
        if newest is not None and (entry["newest_at"] is None or newest > entry["newest_at"]):
            entry["newest_at"] = newest
        if len(entry["pids"]) < 5:
            entry["pids"].append(group[0]["pid"])
    ranked = sorted(victims.values(), key=lambda v: (-v["count"], v["name"]))[:max_victims]
    for entry in ranked:
        entry["newest_at"] = iso(entry["newest_at"])
    kill_facts = {
        "count": len(kills),
        "memcg_count": sum(1 for g in kills if any(e["memcg"] for e in g)),
        "newest_at": iso(_newest(kills[0])) if kills else None,
        "victims": ranked,
        "events": [{"at": iso(_newest(g)), "pid": g[0]["pid"], "name": g[0]["name"],
                    "memcg": any(e["memcg"] for e in g), "sources": sorted(set(e["source"] for e in g)),
                    "line": g[0]["line"]} for g in kills[:max_events]],
    }
    panic_facts = {
        "count": len(panics),
        "no_killable_count": sum(1 for g in panics if any(e["kind"] == "no_killable" for e in g)),
        "deadlocked_count": sum(1 for g in panics if any(e["kind"] == "deadlocked" for e in g)),
        "panic_on_oom_count": sum(1 for g in panics if any(e["kind"] == "panic_on_oom" for e in g)),
        "newest_at": iso(_newest(panics[0])) if panics else None,
        "events": [{"at": iso(_newest(g)), "kinds": sorted(set(e["kind"] for e in g)),
                    "sources": sorted(set(e["source"] for e in g)), "line": g[-1]["line"]} for g in panics[:max_events]],
    }
    return kill_facts, panic_facts


def read_tail(path, max_bytes):
    """(text, bytes_read, truncated): the newest ``max_bytes`` of a file, cut at a line start."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        start = max(0, size - max_bytes)
        handle.seek(start)
        data = handle.read(max_bytes)
    if start:
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
    return data.decode("utf-8", "replace"), len(data), bool(start)


def _mtime(path):
    return datetime.datetime.fromtimestamp(os.stat(path).st_mtime, UTC)


def crash_time(path):
    """When kdump saved a crash, from its directory name (local time); None if the name has none."""
    match = _CRASH_DIR.search(os.path.basename(os.path.dirname(path)))
    if not match:
        return None
    try:
        local = datetime.datetime(*[int(g or 0) for g in match.groups()])
    except ValueError:
        return None
    return datetime.datetime.fromtimestamp(time.mktime(local.timetuple()), UTC)


def _source(name, path):
    return {"name": name, "path": path, "read": False, "bytes": 0, "truncated": False, "files": 0, "events": 0,
            "reason": None}


def _read_files(name, where, paths, since, max_bytes, events, wall_from_mtime):
    """Read the files of one source (shown as ``where``) into ``events``; returns the source record."""
    record = _source(name, where)
    reasons = []
    for path in paths:
        try:
            mtime = _mtime(path)
            if wall_from_mtime:
                mtime = crash_time(path) or mtime
        except (IOError, OSError) as exc:
            reasons.append("%s: %s" % (path, exc.strerror or exc))
            continue
        if since is not None and mtime < since:
            reasons.append("%s: not written in the window" % path)
            continue
        try:
            text, size, truncated = read_tail(path, max_bytes)
        except (IOError, OSError) as exc:
            reasons.append("%s could not be read: %s%s" % (
                path, exc.strerror or exc, "; run with become: true" if exc.errno in (errno.EPERM, errno.EACCES) else ""))
            continue
        found = scan_text(text, name, since, default_at=mtime if wall_from_mtime else None,
                          year_of=None if wall_from_mtime else mtime)
        events.extend(found)
        record["read"] = True
        record["files"] += 1
        record["bytes"] += size
        record["truncated"] = record["truncated"] or truncated
        record["events"] += len(found)
    if reasons:
        record["reason"] = "; ".join(reasons)
    return record


def read_journal(root, since, max_bytes, run_command, journalctl, events):
    record = _source("journal", "journalctl _TRANSPORT=kernel")
    persistent_dir = os.path.join(root, "var", "log", "journal")
    record["persistent"] = os.path.isdir(persistent_dir)
    if run_command is None or not journalctl:
        record["reason"] = "journalctl not found"
        return record
    argv = [journalctl, "--no-pager", "--quiet", "--output=short-iso", "_TRANSPORT=kernel",
            "--lines=%d" % max(1, max_bytes // 100)]
    if since is not None:
        argv.append("--since=%s UTC" % since.strftime("%Y-%m-%d %H:%M:%S"))
    if os.path.normpath(root) != "/":
        if not record["persistent"]:
            record["reason"] = "no persistent journal under %s" % persistent_dir
            return record
        argv.append("--directory=%s" % persistent_dir)
    record["path"] = " ".join(argv)
    rc, out, err = run_command(argv)
    if rc != 0:
        record["reason"] = "journalctl exited %s: %s" % (rc, " ".join((err or out or "").split())[:200])
        return record
    data = out.encode("utf-8", "replace") if not isinstance(out, bytes) else out
    record["truncated"] = len(data) > max_bytes
    if record["truncated"]:
        data = data[-max_bytes:]
        data = data[data.find(b"\n") + 1:]
    found = scan_text(data.decode("utf-8", "replace"), "journal", since)
    events.extend(found)
    record.update({"read": True, "bytes": len(data), "events": len(found)})
    if not record["persistent"]:
        record["reason"] = "journald keeps no persistent journal (%s is absent): only the current boot" % persistent_dir
    return record


# systemd-pstore.service (systemd 243+, on by default where systemd ships it) moves what the
# kernel left in /sys/fs/pstore here at boot: one directory per crash, named by its record id,
# with the console log reassembled as dmesg.txt beside the raw dmesg-* parts.
SYSTEMD_PSTORE_DIR = os.path.join("var", "lib", "systemd", "pstore")


def systemd_pstore_files(directory):
    """The console logs systemd-pstore archived: each crash directory's dmesg.txt, else its raw
    dmesg-* parts (an archive made without reassembly), and dmesg-* files left at the top."""
    paths = sorted(glob.glob(os.path.join(directory, "dmesg-*")))
    for crash in sorted(glob.glob(os.path.join(directory, "*"))):
        if not os.path.isdir(crash):
            continue
        whole = os.path.join(crash, "dmesg.txt")
        paths.extend([whole] if os.path.isfile(whole) else sorted(glob.glob(os.path.join(crash, "dmesg-*"))))
    return [p for p in paths if os.path.isfile(p)]


def gather_evidence(root="/", since_days=DEFAULT_SINCE_DAYS, max_bytes=DEFAULT_MAX_BYTES, run_command=None,
                    journalctl=None, now=None, max_victims=MAX_VICTIMS, max_events=MAX_EVENTS):
    """``ansible_facts.oom_evidence`` for the host (or fixture tree) at ``root``.

    ``run_command(argv) -> (rc, stdout, stderr)`` runs journalctl (AnsibleModule.run_command
    fits); ``journalctl`` is its path, or None when it is not installed.
    """
    now = now or datetime.datetime.now(UTC)
    since = now - datetime.timedelta(days=since_days) if since_days else None
    events = []
    sources = [read_journal(root, since, max_bytes, run_command, journalctl, events)]
    logs = [("kern.log", ("kern.log", "kern.log.1")), ("messages", ("messages", "messages.1"))]
    for name, files in logs:
        paths = [os.path.join(root, "var", "log", f) for f in files]
        present = [p for p in paths if os.path.isfile(p)]
        if present:
            sources.append(_read_files(name, paths[0], present, since, max_bytes, events, wall_from_mtime=False))
        else:
            record = _source(name, paths[0])
            record["reason"] = "absent"
            sources.append(record)
    pstore_dir = os.path.join(root, "sys", "fs", "pstore")
    archive_dir = os.path.join(root, SYSTEMD_PSTORE_DIR)
    crash_dir = os.path.join(root, "var", "crash")
    globbed = [
        ("pstore", pstore_dir, sorted(p for p in glob.glob(os.path.join(pstore_dir, "*")) if os.path.isfile(p))),
        ("systemd-pstore", archive_dir, systemd_pstore_files(archive_dir)),
        ("kdump", crash_dir, sorted(glob.glob(os.path.join(crash_dir, "*", "vmcore-dmesg.txt"))
                                    + glob.glob(os.path.join(crash_dir, "*", "dmesg.[0-9]*")))),
    ]
    for name, directory, paths in globbed:
        if paths:
            sources.append(_read_files(name, directory, paths, since, max_bytes, events, wall_from_mtime=True))
        else:
            record = _source(name, directory)
            record["reason"] = "absent" if not os.path.isdir(directory) else "empty"
            sources.append(record)
    kills, panics = summarize(events, max_victims, max_events)
    return {
        "schema": SCHEMA,
        "since_days": since_days,
        "since": iso(since),
        "checked_at": iso(now),
        "bytes_read": sum(s["bytes"] for s in sources),
        "sources": sources,
        "oom_kills": kills,
        "panics": panics,
    }
