# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo a journalled remediation run: restore runtime values and drop-in files.

Private to the oomguard.fleet collection (used by the ``oom_rollback`` module). Intent
records are replayed newest first. A change whose intent was journalled but never made
(the run died in between) already shows its old state and is skipped, which is what makes
a killed run safe to roll back and a rollback safe to repeat.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.oomguard.fleet.plugins.module_utils import dropins
from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import remediation as rem


def resolve_run(records, run_id):
    """The run to roll back: ``run_id`` or, when None, the newest run with a change."""
    if run_id:
        return run_id
    return jr.latest_change_run(records)


def plan_rollback(records, run_id, proc_path):
    """Return {run_id, already, dropins, runtime, not_restored} without touching anything."""
    result = {"run_id": run_id, "already": False, "dropins": [], "runtime": [], "not_restored": []}
    if run_id is None:
        return result
    if jr.rolled_back(records, run_id):
        result["already"] = True
        return result
    files, values = {}, {}
    for record in reversed(jr.change_intents(records, run_id)):
        if record["op"] == "dropin":
            _plan_dropin(record, files, result)
        else:
            _plan_runtime(record, proc_path, values, result)
    return result


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
    result["dropins"].append({"unit": record.get("unit"), "path": path, "current": current,
                              "restore": record.get("previous"), "restore_meta": record.get("previous_meta"),
                              "remove_dir": bool(record.get("dir_created")), "expected": record.get("effective_before")})
    files[path] = (record.get("previous_meta") or ({"type": "file", "target": None} if record.get("previous") is not None else None),
                   record.get("previous"))


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


def rollback_diff(the_plan):
    diffs = []
    for item in the_plan["dropins"]:
        diffs.append({"before_header": item["path"], "after_header": item["path"],
                      "before": item["current"] or "", "after": item["restore"] or ""})
    for item in the_plan["runtime"]:
        header = "pid %d (%s) oom_score_adj" % (item["pid"], item["name"])
        diffs.append({"before_header": header, "after_header": header, "before": "%d\n" % item["old"], "after": "%d\n" % item["new"]})
    return diffs


def apply_rollback(the_plan, journal, proc_path, systemd_running, run_command, restart=False, selinux_module=None):
    """Restore what the plan says, journalling each step first; mark the run rolled back.

    With systemd running, each unit whose drop-in was restored is then checked through
    ``systemctl show``: the run fails when a drop-in of this collection still decides the unit's
    OOMScoreAdjust=, and warns when another file gives it another value than before the run."""
    return rem.keeping_partial(_rollback_steps, the_plan, journal, proc_path, systemd_running, run_command, restart,
                               selinux_module)


def expected_values(the_plan):
    """{unit: OOMScoreAdjust systemd reported before the run} (the oldest record of the run wins;
    None when the journal predates that record)."""
    expected = {}
    for item in the_plan["dropins"]:  # newest first: the last one seen is the run's first change
        if item["unit"]:
            expected[item["unit"]] = item.get("expected")
    return expected


def verify_restored(run_command, expected, read=None):
    """(problems, warnings) once the drop-ins were restored and systemd reloaded."""
    read = read or dropins.read_file
    problems, warnings = [], []
    for unit in sorted(expected):
        props = rem.systemd_oom(run_command, unit)
        if props.get("LoadState") != "loaded":
            continue
        shown, before = props.get("OOMScoreAdjust"), expected[unit]
        if before is not None and shown == before:
            continue
        source = dropins.setting_file(props, unit, read)
        if source and rem.is_ours(read(source)):
            problems.append("%s still gets OOMScoreAdjust=%s from %s, a drop-in of another oomguard run that was not rolled "
                            "back: roll that run back too (playbooks/rollback.yml undoes the newest run first)"
                            % (unit, shown, source))
        elif before is not None:
            warnings.append("%s now gets OOMScoreAdjust=%s from %s, not the %s systemd reported before the run: that file "
                            "changed since the run and was left as it is" % (unit, shown, source or "its unit file", before))
    return problems, warnings


def _rollback_steps(result, the_plan, journal, proc_path, systemd_running, run_command, restart, selinux_module):
    of = the_plan["run_id"]
    for item in the_plan["dropins"]:
        record = journal.intent("rollback-dropin", rollback_of=of, unit=item["unit"], path=item["path"],
                                previous=item["current"], content=item["restore"], restore_meta=item.get("restore_meta"))
        rem.restore_file(item["path"], item["restore"], item["remove_dir"], item.get("restore_meta"), selinux_module)
        journal.outcome(record, "rollback-dropin", "done", path=item["path"])
        result["dropins"].append({"unit": item["unit"], "path": item["path"],
                                  "action": "removed" if item["restore"] is None else "restored"})
    if the_plan["dropins"] and systemd_running:
        rem.systemctl(run_command, "daemon-reload")
        result["daemon_reload"] = True
    for item in the_plan["runtime"]:
        record = journal.intent("rollback-runtime", rollback_of=of, pid=item["pid"], starttime=item["starttime"],
                                name=item["name"], old=item["old"], new=item["new"])
        status = rem.set_runtime(proc_path, item)
        journal.outcome(record, "rollback-runtime", status, pid=item["pid"])
        result["processes" if status == "done" else status].append(dict(item, status=status))
    if restart and systemd_running:
        for unit in rem.restartable(sorted(set(item["unit"] for item in the_plan["dropins"] if item["unit"]))):
            rem.systemctl(run_command, "restart", unit)
            result["restarted"].append(unit)
    if not result["refused"]:
        journal.mark("rollback-complete", rollback_of=of)
    if the_plan["dropins"] and systemd_running:
        problems, result["warnings"] = verify_restored(run_command, expected_values(the_plan))
        if problems:
            raise rem.RemediationError("The rollback restored the journalled files, but %s." % "; ".join(problems))
