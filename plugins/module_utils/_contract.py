# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data contract's vocabulary, each idea written once (docs/data-contract.md).

Private to the oomguard.fleet collection: not a public API, and it may change without notice.
Modules, action plugins, filters and the report import it. Modules run it on the managed
host's own Python (2.7, 3.6 and later), so it stays importable there.

Levels and the gate
    ``SEVERITY_LEVELS`` ok ... critical, ``UNKNOWN``, ``LEVELS`` (both). ``level_rank`` orders
    them; ``unknown`` ranks above ``critical`` because it is never safe. ``gate_tripped``:
    ``NO_GATE`` (``none``) never trips; ``unknown`` trips every gate that is set (unless the
    caller passes ``unknown_fails=False``). ``never`` is a deprecated alias of ``none``.
Run id
    ``new_run_id`` makes ``oomguard-<UTC %Y%m%dT%H%M%SZ>-<4 digits>``; the roles reach it
    through the ``oomguard.fleet.run_id`` filter.
Timestamps
    ``utc_now``, ``format_time`` (``%Y-%m-%dT%H:%M:%SZ``) and ``parse_time``.
Per-host result file
    ``<results_dir>/<safe_host_filename(host)>``: ``result_payload`` builds its content (the
    report normalises each section first: ``plugin_utils/report.result_file_payload``) and
    ``write_result_file`` is its one writer (mode 0640, directory 0750, atomic), used by the
    ``oom_exposure`` and ``fleet_report`` actions alike.
oomguard_snapshots
    ``snapshots_record`` (and ``snapshots_failure``) build the snapshot role's per-host record from
    the host's disk_snapshot result (``snapshot_host_result``); the role reaches them through the
    ``oomguard.fleet.snapshot_result``, ``snapshots_record`` and ``snapshots_failure`` filters.
Errors
    ``OomguardError``: the base of every error the collection raises on purpose.

Files are written through ``module_utils/safefile.write_atomic`` (the collection's one atomic
write: an unpredictable temp name in the same directory, removed on any failure).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import random
import re

from ansible_collections.oomguard.fleet.plugins.module_utils.pycompat import STRING_TYPES, UTC
from ansible_collections.oomguard.fleet.plugins.module_utils.pycompat import utc_now as _utc_now


class OomguardError(Exception):
    """Base of the collection's own errors; modules and actions catch this one type."""


# ---- levels and the gate ------------------------------------------------------------------

SEVERITY_LEVELS = ("ok", "low", "medium", "high", "critical")
UNKNOWN = "unknown"
LEVELS = SEVERITY_LEVELS + (UNKNOWN,)
_RANK = dict((name, rank) for rank, name in enumerate(LEVELS))

NO_GATE = "none"
# Deprecated spelling of NO_GATE, accepted until 0.2.0 (the assess role's old default).
NO_GATE_ALIASES = ("never",)
GATE_LEVELS = SEVERITY_LEVELS[1:]
GATE_CHOICES = (NO_GATE,) + GATE_LEVELS
GATE_CHOICES_WITH_ALIASES = GATE_CHOICES + NO_GATE_ALIASES


def level_rank(level):
    """Rank of a level for comparisons: ok 0 ... critical 4, ``unknown`` 5 (never safe).

    Anything else raises ``ValueError``."""
    try:
        return _RANK[level]
    except (KeyError, TypeError):
        raise ValueError("level must be one of %s, got %r" % (", ".join(LEVELS), level))


# The level as a number in exported data (the Prometheus gauge, the HTML table's sort key): not a
# rank, since unknown is no level on that scale.
LEVEL_VALUE_UNKNOWN = -1


def level_value(level):
    """ok 0 ... critical 4; ``unknown`` (or anything else) -1."""
    return _RANK[level] if level in SEVERITY_LEVELS else LEVEL_VALUE_UNKNOWN


def worst_level(levels):
    """The worst of ``levels`` (``ok`` for none)."""
    result = "ok"
    for level in levels:
        if level_rank(level) > level_rank(result):
            result = level
    return result


def normalize_gate(fail_on):
    """``fail_on`` with the deprecated alias (``never``) and None read as ``none``; ValueError when not a gate."""
    if fail_on is None or fail_on in NO_GATE_ALIASES:
        return NO_GATE
    if fail_on not in GATE_CHOICES:
        raise ValueError("fail_on must be one of %s, got %r" % (", ".join(GATE_CHOICES_WITH_ALIASES), fail_on))
    return fail_on


def gate_tripped(level, fail_on, unknown_fails=True):
    """True when a host at ``level`` stops at the gate ``fail_on``.

    ``none`` (or its alias ``never``) never trips; ``unknown`` trips every gate that is set
    unless ``unknown_fails`` is false; else the level trips at or above ``fail_on``."""
    fail_on = normalize_gate(fail_on)
    if fail_on == NO_GATE:
        return False
    if level == UNKNOWN:
        return bool(unknown_fails)
    return level_rank(level) >= level_rank(fail_on)


def gate_message(exposure, fail_on, fail_on_name="fail_on"):
    """Why the gate stops this host: its level, the setting, and the findings (or the reason for ``unknown``)."""
    why = exposure.get("reason") if exposure["level"] == UNKNOWN else ", ".join(f["id"] for f in exposure["findings"])
    return "%s is %s, at or above %s=%s (%s)" % (exposure.get("host"), exposure["level"], fail_on_name, fail_on, why)


# ---- per-host result file ---------------------------------------------------------------------

RESULT_SCHEMA = 1
RESULT_KEYS = ("schema", "host", "run_id", "written_at", "exposure", "snapshots", "changes")
RESULT_FILE_MODE = 0o640
RESULT_DIR_MODE = 0o750
_NAME_KEEP = re.compile(r"[^A-Za-z0-9._@:+-]")
_NAME_MAX = 100
# Lone surrogates (undecodable bytes a host sent) cannot be written as UTF-8.
_SURROGATE = re.compile(u"[\ud800-\udfff]")
# safefile's advice for hosts; on the controller the playbook's user writes and become does not apply.
_BECOME_HINT = re.compile(r"run with become: true,? or ")


class ResultFileError(OomguardError):
    """A result file could not be written; the message says what to fix."""


def controller_text(exc):
    """A safefile message for the controller, without the advice to use become."""
    return _BECOME_HINT.sub("", str(exc))


def safe_host_filename(host):
    """The result file name of an inventory host: one file per host, readable by people.

    A name that is already a safe lower-case file name is kept (``web01.json``). Any other
    name (path separators, spaces, leading dots, capitals, very long) is made safe and gets
    ``~`` and the first 16 hex digits of the SHA-256 of the exact name, so ``web/1``,
    ``web_1`` and ``Web_1`` get three files, also on case-insensitive file systems. Kept
    names never contain ``~``, so the two kinds never meet. The exact name is the ``host``
    inside the file.
    """
    readable = _NAME_KEEP.sub("_", host).lstrip(".")[:_NAME_MAX] or "_"
    if readable == host and host == host.lower():
        return host + ".json"
    digest = hashlib.sha256(host.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return "%s~%s.json" % (readable, digest)


def result_file_path(results_dir, host):
    """``<results_dir>/<safe_host_filename(host)>``."""
    return os.path.join(results_dir, safe_host_filename(host))


def result_payload(host, run_id=None, written_at=None, exposure=None, snapshots=None, changes=None):
    """The content of a host's result file: every key of ``RESULT_KEYS``, absent sections None."""
    return {"schema": RESULT_SCHEMA, "host": host, "run_id": run_id, "written_at": written_at,
            "exposure": exposure, "snapshots": snapshots, "changes": changes}


def result_file_text(payload):
    """A result file's text: JSON, valid UTF-8 whatever the host sent (lone surrogates become U+FFFD)."""
    return _SURROGATE.sub(u"\ufffd", json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)) + "\n"


def write_result_file(results_dir, host, payload):
    """Write ``payload`` as the result file of ``host`` (mode 0640; the directory is made 0750); return its path.

    Raises ResultFileError saying what is wrong; the callers add which option to fix."""
    from ansible_collections.oomguard.fleet.plugins.module_utils import safefile  # safefile's errors derive from this module's

    path = result_file_path(results_dir, host)
    try:
        safefile.write_atomic(path, result_file_text(payload), mode=RESULT_FILE_MODE, dir_mode=RESULT_DIR_MODE)
    except safefile.SafeFileError as exc:
        raise ResultFileError(controller_text(exc))
    return path


# ---- timestamps -----------------------------------------------------------------------------

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
RUN_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_now():
    """Now, in UTC, to the second."""
    return _utc_now().replace(microsecond=0)


def format_time(stamp=None):
    """``2026-11-29T02:00:00Z``: how every time the collection writes looks (now when ``stamp`` is None)."""
    stamp = utc_now() if stamp is None else stamp
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)
    return stamp.strftime(TIME_FORMAT)


def parse_time(value):
    """``%Y-%m-%dT%H:%M:%SZ`` text (also with an offset or fractions, on Python 3.7+) -> aware UTC datetime;
    None when it does not parse."""
    if not isinstance(value, STRING_TYPES) or not value:
        return None
    text = value.strip()
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        pass
    fromisoformat = getattr(datetime.datetime, "fromisoformat", None)
    if fromisoformat is None:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range by its offset
        return None


# ---- run id ---------------------------------------------------------------------------------

RUN_ID_PREFIX = "oomguard-"
RUN_ID_RANDOM_MAX = 9999


def new_run_id(now=None, rand=None):
    """``oomguard-<UTC %Y%m%dT%H%M%SZ>-<0000..9999>``: one id per play, shared by snapshot, remediate and report."""
    stamp = (now or _utc_now()).strftime(RUN_ID_TIME_FORMAT)
    suffix = rand if rand is not None else random.SystemRandom().randint(0, RUN_ID_RANDOM_MAX)
    return "%s%s-%04d" % (RUN_ID_PREFIX, stamp, suffix)


# ---- snapshots ------------------------------------------------------------------------------
# oomguard_snapshots, the record the snapshot role sets per host (docs/data-contract.md), built
# from the host's result of the role's disk_snapshot task. The role reaches these through the
# oomguard.fleet.snapshot_result, snapshots_record and snapshots_failure filters.

SNAPSHOTS_SCHEMA = 1


def _instance_fields(instance):
    instance = instance or {}
    return instance.get("provider"), instance.get("instance_id"), instance.get("region")


def snapshot_host_result(batch, host):
    """``host``'s result in the registered loop of the role's disk_snapshot task (one item per provider, each
    with ``hosts``); a failed result saying what to set when no item has the host (its provider is unknown)."""
    for item in (batch or {}).get("results") or []:
        hosts = item.get("hosts") if isinstance(item, dict) else None
        if hosts and host in hosts:
            return hosts[host]
    message = ("The cloud provider of %s is unknown: instance_id and region came from inventory, so nothing was "
               "detected. Set oomguard_snapshot_provider to alicloud or aws." % host)
    return {"failed": True, "changed": False, "status": "failed", "msg": message, "snapshots": [],
            "would_create": [], "deleted": [], "would_delete": []}


def snapshots_record(run_id, result=None, instance=None, check_mode=False):
    """``oomguard_snapshots`` of a host from its disk_snapshot result (``snapshot_host_result``), of the
    instance it identified (``ansible_facts.cloud_instance``); with no result, the record of a host whose
    snapshots are switched off (status ``skipped``)."""
    provider, instance_id, region = _instance_fields(instance)
    if result is None:
        return {"schema": SNAPSHOTS_SCHEMA, "run_id": run_id, "status": "skipped",
                "message": "snapshots switched off (oomguard_snapshot_enabled: false)",
                "provider": None, "instance_id": None, "region": None, "snapshots": []}
    return {
        "schema": SNAPSHOTS_SCHEMA,
        "run_id": run_id,
        "status": "ok" if result.get("status") == "ok" and not result.get("failed") else "failed",
        "message": result["msg"] if "msg" in result else result.get("message"),
        "provider": provider,
        "instance_id": instance_id,
        "region": region,
        "snapshots": result.get("snapshots") or [],
        "check_mode": bool(check_mode),
        "would_create": result.get("would_create") or [],
        "deleted": (result.get("deleted") or []) + (result.get("would_delete") or []),
    }


def snapshots_failure(run_id, message, instance=None):
    """``oomguard_snapshots`` of a host whose identification or snapshot task failed before it had a result."""
    provider, instance_id, region = _instance_fields(instance)
    return {"schema": SNAPSHOTS_SCHEMA, "run_id": run_id, "status": "failed", "message": message,
            "provider": provider, "instance_id": instance_id, "region": region, "snapshots": []}
