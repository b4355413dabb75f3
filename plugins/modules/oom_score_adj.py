#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: oom_score_adj
short_description: Set the OOM killer's oom_score_adj of processes, at runtime and through systemd
version_added: 0.1.0
description:
  - Selects processes by O(pid), O(name), systemd O(unit) or a O(cmdline) regular expression (every given
    selector must match), or by an explicit O(processes) list, and sets their C(/proc/<pid>/oom_score_adj) to O(value).
  - With O(persist=systemd) it also writes the drop-in C(/etc/systemd/system/<unit>.d/zz-oomguard.conf)
    (C([Service]) C(OOMScoreAdjust=<value>)) for each process's unit, runs C(systemctl daemon-reload) when
    systemd is running, and restarts the unit only when O(restart=true).
  - systemd applies the drop-ins of all its directories (C(/etc), C(/run), C(/usr/lib) ...) in file-name order and the
    last C(OOMScoreAdjust=) wins, so the name sorts after numbered names and after C(override.conf) (what
    C(systemctl edit) writes). Before any change, the module fails naming the file when a drop-in read after its own
    would set another value (also in check mode); after the C(daemon-reload) it reads C(systemctl show -p OOMScoreAdjust
    -p DropInPaths) and fails, before any runtime change, naming the file that wins when systemd still reports another
    value.
  - A drop-in C(50-oomguard.conf) written by earlier versions of the collection is replaced by C(zz-oomguard.conf)
    (journalled, so a rollback puts it back); journals of earlier runs that name it roll back as before.
  - A process without a systemd service unit gets the runtime change and a warning that it will not survive
    a restart. So does a process under a user's service manager (C(user@UID.service)); no drop-in is written for a
    user manager and it is never restarted.
  - Each change is first appended to an on-host journal and fsynced, so that M(oomguard.fleet.oom_rollback)
    can undo the run even when it was killed half way. A lock keeps two runs off one host.
  - A process that exits while the module runs is reported in RV(vanished), never an error. A process that cannot
    be read for another reason (a permission, or C(hidepid) on C(/proc)) fails the task; run it with C(become).
  - What to change is read again under the host lock, so a run that waited for another one acts on what that one left.
author:
  - oomguard.fleet contributors (@oomguard)
extends_documentation_fragment:
  - oomguard.fleet.remediation
options:
  pid:
    description:
      - Select the process with this pid.
    type: int
  name:
    description:
      - Select processes whose command name (C(comm), at most 15 characters) is exactly this.
    type: str
  unit:
    description:
      - Select processes that run in this systemd unit (from C(/proc/<pid>/cgroup)), for example V(app.service).
      - With O(persist=systemd) the unit's drop-in is written even when none of its processes runs.
      - Must be a valid systemd unit name (C(NAME.TYPE) or C(NAME@INSTANCE.TYPE), ASCII letters, digits and C(:-_.\),
        at most 255 characters); anything else, such as V(../../x.service), is an error.
    type: str
  cmdline:
    description:
      - Select processes whose command line (arguments joined by spaces) matches this Python regular expression.
      - Matching all command lines of the host may take at most 5 seconds. An expression that backtracks
        catastrophically (such as V((a+\)+$)) fails the task before anything is changed, instead of hanging the host.
    type: str
  processes:
    description:
      - Select exactly these processes, each by C(pid) and, to guard against a reused pid, C(name).
      - All of them are changed under one hold of the host lock, with one C(daemon-reload); the C(oomguard.fleet.remediate)
        role uses this. A listed process that is gone, or whose pid now runs another command, is reported in RV(vanished).
      - Cannot be combined with O(pid), O(name), O(unit) or O(cmdline).
    type: list
    elements: dict
    suboptions:
      pid:
        description: Process id.
        type: int
        required: true
      name:
        description: Expected command name (C(comm)); the process is skipped when it differs.
        type: str
  value:
    description:
      - The new C(oom_score_adj), from V(-1000) (never killed by the OOM killer) to V(1000) (killed first).
      - V(0) is the kernel default.
    type: int
    required: true
  force:
    description:
      - Take over a file at the drop-in's path that this collection did not write (it lacks the header comment
        C(Managed by oomguard.fleet)), or a symlink there. Without it such a file fails the task before
        anything is changed.
      - Its content, mode, owner and symlink target are journalled, and M(oomguard.fleet.oom_rollback) puts them back;
        a symlink is replaced by the module's file, its target is never written.
    type: bool
    default: false
  persist:
    description:
      - V(none) changes running processes only.
      - V(systemd) also writes the unit's drop-in so that the value survives restarts.
    type: str
    choices: [none, systemd]
    default: none
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads everything, reports what would change, writes nothing (no journal record either).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One before/after entry per process (its value) and per drop-in file (its content).
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: Linux only (procfs); drop-ins need systemd.
seealso:
  - module: oomguard.fleet.oom_rollback
  - name: systemd.exec(5) OOMScoreAdjust
    description: How systemd applies OOMScoreAdjust= to a service's processes.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#OOMScoreAdjust=
"""

EXAMPLES = r"""
- name: Make a Java service killable again, now and after restarts
  oomguard.fleet.oom_score_adj:
    unit: app.service
    value: 0
    persist: systemd
    run_id: "{{ oomguard_run_id }}"
  become: true

- name: Reset exactly these processes under one lock (pid and name must both still match)
  oomguard.fleet.oom_score_adj:
    processes:
      - {pid: 4242, name: java}
      - {pid: 5120, name: redis-server}
    value: 0
    persist: systemd

- name: Raise one process's value at runtime only
  oomguard.fleet.oom_score_adj:
    pid: 4242
    value: 500

- name: Show what would change for every batch worker, without changing it
  oomguard.fleet.oom_score_adj:
    cmdline: "worker --queue=batch"
    value: 300
  check_mode: true
  diff: true
"""

RETURN = r"""
run_id:
  description: The run id written into the journal records.
  returned: always
  type: str
  sample: oomguard-20261129T020000Z-4711
journal:
  description: Path of the journal.
  returned: always
  type: str
  sample: /var/lib/oomguard/journal.jsonl
changes:
  description:
    - What was changed (or, in check mode, would be), in the shape of C(oomguard_changes.changes) of the data contract.
    - A drop-in written for a unit with no running process has V(null) pid, name and old.
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4242, name: java, unit: app.service, old: -1000, new: 0, persist: systemd,
            dropin: /etc/systemd/system/app.service.d/zz-oomguard.conf}]
matched:
  description: Processes that matched the selectors, with their value before the run.
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4242, name: java, unit: app.service, oom_score_adj: -1000}]
dropins:
  description:
    - Drop-in files written (or that would be), each with C(action) V(created), V(updated), V(taken over) (a file
      the collection did not write, with O(force=true)) or V(removed) (a C(50-oomguard.conf) of an earlier version,
      replaced by C(zz-oomguard.conf)).
  returned: always
  type: list
  elements: dict
  sample: [{unit: app.service, path: /etc/systemd/system/app.service.d/zz-oomguard.conf, action: created}]
unpersisted:
  description:
    - With O(persist=systemd), matched processes whose value no system drop-in can keep, and why (C(reason)). They
      run in no systemd service unit (a session scope, or no unit), or under a user's service manager
      (C(user@UID.service)). They get the runtime value only, which will not survive a restart of the process; a
      warning says so.
  returned: always
  type: list
  elements: dict
  sample: [{pid: 77, name: adhoc, unit: session-1.scope, reason: "session-1.scope is not a service, socket, mount or swap unit"}]
vanished:
  description:
    - Processes that exited (or whose pid was reused) between selection and the write, and O(processes) entries that
      were already gone; not an error.
  returned: always
  type: list
  elements: dict
  sample: []
daemon_reload:
  description: Whether C(systemctl daemon-reload) ran.
  returned: always
  type: bool
  sample: true
restarted:
  description: Units restarted because O(restart=true).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import new_run_id
from ansible_collections.oomguard.fleet.plugins.module_utils import procfs
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.module_utils.change_module import apply_locked, finish, remediation_argument_spec

SELECTORS = ["pid", "name", "unit", "cmdline"]


def select_and_plan(params, result):
    """Read the host and decide what to change; fills result's matched, unpersisted and vanished."""
    try:
        if params["processes"] is not None:
            processes, result["vanished"] = rem.select_listed(params["proc_path"], params["processes"])
        else:
            processes = rem.select_processes(params["proc_path"], params["pid"], params["name"], params["unit"], params["cmdline"])[0]
    except rem.RemediationError as exc:
        raise rem.RemediationError("Failed to select processes: %s" % exc)
    result["matched"] = [dict((k, p[k]) for k in ("pid", "name", "unit", "oom_score_adj")) for p in processes]
    the_plan = rem.plan(processes, params["value"], params["persist"], params["root"], params["unit"], params["force"])
    result["unpersisted"] = [dict((k, item[k]) for k in ("pid", "name", "unit", "reason")) for item in the_plan["unpersisted"]]
    return the_plan


def warn_about(module, result, the_plan):
    for item in the_plan["unpersisted"]:
        module.warn("pid %d (%s) cannot be persisted at system level: %s. Its oom_score_adj is set at runtime only and "
                    "will not survive a restart of the process" % (item["pid"], item["name"], item["reason"]))
    if not result["matched"] and not the_plan["dropins"]:
        module.warn("No process matched the selectors; nothing to do")
    for item in result["vanished"]:
        module.warn("pid %d (%s) is gone or runs another command now; left alone" % (item["pid"], item["name"]))


def finish_unchanged(module, params, result, the_plan):
    """Check mode, or nothing to change: report the plan and exit."""
    warn_about(module, result, the_plan)
    result["changed"] = rem.planned_change(the_plan)
    if module._diff:
        result["diff"] = rem.plan_diff(the_plan)
    done = {"processes": the_plan["runtime"], "dropins": rem.dropin_rows(the_plan["dropins"])}
    result.update(changes=rem.contract_changes(the_plan, done, params["persist"]), dropins=done["dropins"])
    module.exit_json(**result)


def main():
    argument_spec = remediation_argument_spec()
    argument_spec.update(
        pid=dict(type="int"),
        name=dict(type="str"),
        unit=dict(type="str"),
        cmdline=dict(type="str"),
        value=dict(type="int", required=True),
        persist=dict(type="str", choices=["none", "systemd"], default="none"),
        processes=dict(type="list", elements="dict", options=dict(pid=dict(type="int", required=True), name=dict(type="str"))),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_one_of=[SELECTORS + ["processes"]],
                           mutually_exclusive=[["processes", selector] for selector in SELECTORS], supports_check_mode=True)
    params = module.params
    problem = procfs.oom_score_adj_error(params["value"]) or rem.unit_name_error(params["unit"])
    if problem:
        module.fail_json(msg=problem)
    run_id = params["run_id"] or new_run_id()
    result = dict(changed=False, run_id=run_id, journal=params["journal"], changes=[], matched=[], dropins=[],
                  unpersisted=[], vanished=[], daemon_reload=False, restarted=[])
    try:
        the_plan = select_and_plan(params, result)
    except rem.RemediationError as exc:
        module.fail_json(msg=str(exc), **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="Failed to read %s: %s (run with become: true if it is a permission problem)"
                         % (exc.filename or params["proc_path"], exc.strerror or exc), **result)
    if the_plan["overridden"]:
        warn_about(module, result, the_plan)
        module.fail_json(msg=rem.override_message(the_plan, params["root"]), **result)
    if module.check_mode or not rem.planned_change(the_plan):
        finish_unchanged(module, params, result, the_plan)

    def replan():
        # What changes is decided again under the lock: another run may have changed the host since the look above.
        locked_plan = select_and_plan(params, result)
        if locked_plan["overridden"]:
            raise rem.RemediationError(rem.override_message(locked_plan, params["root"]))
        return locked_plan

    locked_plan, outcome, error = apply_locked(module, run_id, "remediate", replan)
    the_plan = locked_plan or the_plan
    warn_about(module, result, the_plan)
    finish(module, result, the_plan, outcome, error, lambda done: dict(
        changes=rem.contract_changes(the_plan, done, params["persist"]), dropins=done["dropins"],
        vanished=result["vanished"] + done["vanished"], daemon_reload=done["daemon_reload"], restarted=done["restarted"]))


if __name__ == "__main__":
    main()
