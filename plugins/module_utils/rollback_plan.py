# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan the undoing of a journalled remediation run: the runtime values and drop-in files to restore.

Private to the oomguard.fleet collection (used by the ``oom_rollback`` module). The plan has the
shape of a forward change and goes through the same ``apply``. Intent records are replayed
newest first. A change whose intent was journalled but never made (the run died in between)
already shows its old state and is skipped, which is what makes a killed run safe to roll
back and a rollback safe to repeat.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem


def resolve_run(records, run_id):
    """The run to roll back: ``run_id`` or, when None, the newest run with a change."""
    if run_id:
        return run_id
    return jr.latest_change_run(records)


def plan_rollback(records, run_id, proc_path):
    """The plan that undoes run ``run_id``: of the shape of a forward change (``oom_change.new_plan``), for the
    same ``oom_change.apply``, plus {run_id, already, not_restored}. Nothing is touched."""
    found = {"dropins": [], "runtime": [], "not_restored": []}
    already = run_id is not None and jr.rolled_back(records, run_id)
    if run_id is not None and not already:
        files, values = {}, {}
        for record in reversed(jr.change_intents(records, run_id)):
            if record["op"] == "dropin":
                _plan_dropin(record, files, found)
            else:
                _plan_runtime(record, proc_path, values, found)
    return rem.new_plan(found["dropins"], found["runtime"], rollback_of=run_id, run_id=run_id, already=already,
                        not_restored=found["not_restored"])


def _state_is(meta, text, want_text, want_meta):
    """Whether a path (lstat ``meta``, ``text``) is in a journalled state: a symlink to the same target,
    absent, or a regular file with that content."""
    if want_meta is not None and want_meta.get("type") == "symlink":
        return meta is not None and meta["type"] == "symlink" and meta["target"] == want_meta.get("target")
    if want_text is None:
        return meta is None
    return meta is not None and meta["type"] == "file" and text == want_text


def _plan_dropin(record, files, result):
    path = record["path"]
    meta, current = files[path] if path in files else rem.read_dropin(path)
    if _state_is(meta, current, record.get("previous"), record.get("previous_meta")):
        return
    if not _state_is(meta, current, record.get("content"), None):
        result["not_restored"].append({"path": path, "unit": record.get("unit"),
                                       "reason": "changed by someone else since the run; left as it is"})
        return
    restore = record.get("previous")
    result["dropins"].append(rem.dropin_change(
        record.get("unit"), path, current, meta, restore, "removed" if restore is None else "restored",
        content_meta=record.get("previous_meta"), remove_dir=bool(record.get("dir_created")), expected=record.get("effective_before")))
    files[path] = (record.get("previous_meta") or ({"type": "file", "target": None} if restore is not None else None), restore)


def _plan_runtime(record, proc_path, values, result):
    pid = record["pid"]
    proc = rem.read_process(proc_path, pid)
    if proc is None or proc["starttime"] != record.get("starttime"):
        result["not_restored"].append({"pid": pid, "name": record.get("name"),
                                       "reason": "process exited (or its pid was reused) since the run; nothing to restore at runtime"})
        return
    current = values.get(pid, proc["oom_score_adj"])
    if current == record["old"]:
        return
    if current != record["new"]:
        result["not_restored"].append({"pid": pid, "name": proc["name"],
                                       "reason": "oom_score_adj is %d, neither the journalled old %d nor new %d; left as it is"
                                       % (current, record["old"], record["new"])})
        return
    result["runtime"].append({"pid": pid, "name": proc["name"], "unit": record.get("unit"), "starttime": proc["starttime"],
                              "old": current, "new": record["old"]})
    values[pid] = record["old"]
