# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side decisions of the ``remediate`` role: which processes to reset, or why not.

Private to oomguard.fleet; used by the ``remediate_plan`` and ``remediate_changes`` filters
(``filter/remediate_role.py``). On the host, ``module_utils/oom_change.py`` makes the changes.
Pure functions: variables in, the ``oomguard_changes`` structure of docs/data-contract.md out.
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN

SCHEMA = 1
UNKILLABLE = OOM_SCORE_ADJ_MIN
WAIVER = "oomguard_remediate_require_snapshot: false"


class RemediatePlanError(OomguardError):
    """Bad role input (the filter turns it into an error that names the variable)."""


def role_bool(value, name):
    """A role variable as a boolean: ``-e name=false`` arrives as the text ``"false"``."""
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise RemediatePlanError("%s must be true or false, got %r" % (name, value)) from None


def role_int(value, name, minimum, maximum=None):
    """A role variable as an integer in range (``-e name=5`` arrives as the text ``"5"``)."""
    what = "an integer from %d to %d" % (minimum, maximum) if maximum is not None else "an integer >= %d" % minimum
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip(), 10)
        except ValueError:
            pass
    if number is None or number < minimum or (maximum is not None and number > maximum):
        raise RemediatePlanError("%s must be %s, got %r" % (name, what, value))
    return number


def _base(run_id, mode, status, reason, candidates):
    return {"schema": SCHEMA, "run_id": run_id, "mode": mode, "status": status, "reason": reason,
            "changes": [], "candidates": candidates}


def candidates_from(exposure, processes, include, value):
    """Flagged processes, plus unkillable ones named in ``include`` (allowlisted ones are never
    flagged by the assessment, so naming them is the only way in)."""
    chosen, seen = [], set()
    for entry in list(exposure.get("flagged") or []) + [
            p for p in (processes or []) if isinstance(p, dict) and p.get("name") in include and p.get("oom_score_adj") == UNKILLABLE]:
        pid = entry.get("pid")
        if not isinstance(pid, int) or pid in seen:
            continue
        seen.add(pid)
        chosen.append({"pid": pid, "name": entry.get("name"), "unit": entry.get("unit"),
                       "old": entry.get("oom_score_adj", UNKILLABLE), "new": value, "rss_kb": entry.get("rss_kb")})
    chosen.sort(key=lambda c: -(c["rss_kb"] or 0))
    return chosen


def snapshot_refusal(snapshots, run_id):
    """Why the snapshot does not allow a change on this host, or None when it does."""
    if not isinstance(snapshots, dict) or not snapshots:
        return ("no snapshot of this host's disks from run %s (oomguard_snapshots is not set): nothing was changed. Run the "
                "oomguard.fleet.snapshot role first, or set %s to change without one" % (run_id, WAIVER))
    if snapshots.get("status") != "ok":
        return ("the snapshot of this host's disks did not succeed (oomguard_snapshots.status is %r: %s): nothing was changed. "
                "Fix the snapshot and run again, or set %s to change without one"
                % (snapshots.get("status"), snapshots.get("message") or "no message", WAIVER))
    if snapshots.get("run_id") != run_id:
        return ("the snapshot is from run %s, not from this run %s: nothing was changed. Snapshot again in this run, or set %s"
                % (snapshots.get("run_id"), run_id, WAIVER))
    return None


def remediate_plan(exposure, snapshots=None, run_id=None, mode="flag", include=None, require_snapshot=True,
                   max_changes=10, processes=None, value=0):
    """Return the role's plan: ``status`` is ``pending`` when the module should run on ``candidates``,
    else the final ``flagged``, ``unchanged`` or ``refused`` with its ``reason``."""
    if mode not in ("flag", "reset"):
        raise RemediatePlanError("oomguard_remediate_mode must be flag or reset, got %r" % (mode,))
    value = role_int(value, "oomguard_remediate_value", OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX)
    max_changes = role_int(max_changes, "oomguard_remediate_max_changes", 0)
    require_snapshot = role_bool(require_snapshot, "oomguard_remediate_require_snapshot")
    if not isinstance(exposure, dict) or not exposure:
        return _base(run_id, mode, "refused", "no oomguard_exposure for this host: run the oomguard.fleet.assess role "
                     "earlier in the play; nothing was changed", [])
    chosen = candidates_from(exposure, processes, set(include or []), value)
    if mode == "flag":
        if not chosen:
            return _base(run_id, mode, "unchanged", None, chosen)
        return _base(run_id, mode, "flagged", "mode is flag (report only): %d process(es) would be reset; set "
                     "oomguard_remediate_mode: reset to change them" % len(chosen), chosen)
    if not chosen:
        return _base(run_id, mode, "unchanged", None, chosen)
    if require_snapshot:
        refusal = snapshot_refusal(snapshots, run_id)
        if refusal:
            return _base(run_id, mode, "refused", refusal, chosen)
    if len(chosen) > max_changes:
        return _base(run_id, mode, "refused", "%d processes are flagged, more than oomguard_remediate_max_changes (%d): nothing "
                     "was changed. Check the assessment, then raise the cap or narrow the allowlist" % (len(chosen), max_changes), chosen)
    pending = _base(run_id, mode, "pending", None, chosen)
    pending["targets"] = [{"pid": c["pid"], "name": c["name"]} for c in chosen]
    return pending


def remediate_changes(plan, results=None, check_mode=False):
    """Fold the module results of a ``pending`` plan into ``oomguard_changes``."""
    if plan.get("status") != "pending":
        return dict(plan)
    out = dict(plan, status="unchanged", check_mode=bool(check_mode))
    out.pop("targets", None)
    errors, changes, vanished = [], [], []
    for result in results or []:
        if not isinstance(result, dict):
            continue
        changes.extend(result.get("changes") or [])
        vanished.extend(result.get("vanished") or [])
        if result.get("failed"):
            item = result.get("item")
            msg = result.get("msg", "failed")
            errors.append("pid %s (%s): %s" % (item.get("pid"), item.get("name"), msg) if isinstance(item, dict) else msg)
    out["changes"] = changes
    out["vanished"] = [{"pid": v.get("pid"), "name": v.get("name")} for v in vanished]
    if errors:
        out.update(status="failed", reason="; ".join(errors))
    elif changes:
        out["status"] = "changed"
    return out
