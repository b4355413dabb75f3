#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: oom_rollback
short_description: Undo an oom_score_adj remediation run from the on-host journal
version_added: 0.1.0
description:
  - Reads the journal written by M(oomguard.fleet.oom_score_adj) and undoes the changes of one run, newest first.
  - Drop-in files are put back as they were before the run (removed when the run created them, together with an
    empty C(<unit>.d) directory it created), with their journalled mode, owner and group, or as the symlink they
    were; C(systemctl daemon-reload) runs when systemd is running.
  - Then, with systemd running, C(systemctl show -p OOMScoreAdjust -p DropInPaths) is read for each unit whose
    drop-in was restored. The module fails when a drop-in of this collection still decides the unit's value (one of
    a later run that was not rolled back; roll that one back too), and warns naming the file when another file
    gives another value than systemd reported before the run.
  - Runtime values are restored for processes that still run (same pid and start time). A process that exited
    since is reported in RV(not_restored); its service gets the old value from the unit file at its next start.
  - A change journalled but never made (the run was killed in between) is recognised and skipped.
  - Each restore is journalled before it is made, and a finished rollback is recorded, so running the module again
    changes nothing.
  - A file or value that someone changed after the run is left alone and reported in RV(not_restored).
  - The journal is read, and what to restore decided, while the host lock is held, so a run that changed the
    host or the journal meanwhile is taken into account.
  - A journal line that cannot be read (torn by a crash, damaged) and may hold a change of the run, or changes of
    the run out of order, make the module fail naming the lines (RV(journal_damaged_lines)) and change nothing,
    since the rollback could not prove it undoes every change. Without O(rollback_run_id) every unreadable line does.
author:
  - oomguard.fleet contributors (@oomguard)
extends_documentation_fragment:
  - oomguard.fleet.remediation
options:
  rollback_run_id:
    description:
      - The run to undo. When omitted, the newest run that made a change is undone.
    type: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports what would be restored; writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One before/after entry per process and per drop-in file.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: Linux only.
seealso:
  - module: oomguard.fleet.oom_score_adj
"""

EXAMPLES = r"""
- name: Undo the newest remediation run on this host
  oomguard.fleet.oom_rollback:
  become: true

- name: Undo one named run and restart the services it touched
  oomguard.fleet.oom_rollback:
    rollback_run_id: oomguard-20261129T020000Z-4711
    restart: true
  become: true
"""

RETURN = r"""
rollback_of:
  description: The run that was (or would be) undone; V(null) when the journal holds no change.
  returned: always
  type: str
  sample: oomguard-20261129T020000Z-4711
already_rolled_back:
  description: The journal records a finished rollback of that run, so nothing was done.
  returned: always
  type: bool
  sample: false
run_id:
  description: The id of this rollback run, written into its journal records.
  returned: always
  type: str
  sample: oomguard-20261129T030000Z-17
restored:
  description: Processes whose value was restored, each with C(old) (value before the rollback) and C(new).
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4242, name: java, unit: app.service, old: 0, new: -1000}]
dropins:
  description: Drop-in files restored (C(action) V(restored)) or removed (V(removed)).
  returned: always
  type: list
  elements: dict
  sample: [{unit: app.service, path: /etc/systemd/system/app.service.d/zz-oomguard.conf, action: removed}]
not_restored:
  description:
    - What was not restored, with the reason (process gone, changed by someone else).
    - Named so on purpose, not C(skipped), which Ansible reads as "the task was skipped".
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4242, name: java, reason: "process exited (or its pid was reused) since the run; nothing to restore at runtime"}]
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
journal_bad_lines:
  description:
    - How many journal lines are not a JSON record (a line torn by a crash, a damaged line).
    - Such a line is ignored when it cannot hold a change of the run rolled back; otherwise it is listed in RV(journal_damaged_lines).
  returned: always
  type: int
  sample: 0
journal_damaged_lines:
  description:
    - Numbers (from 1) of the journal lines that blocked the rollback, which then fails and changes nothing.
    - An unreadable line may hold a change of the run when it names the run, names a run id cut short that the run's
      id starts with, or cannot name a run at all (cut before its run id, or written by an earlier version, which put
      the run id last). When O(rollback_run_id) is not given, every unreadable line may hold the newest run. Changes
      of the run out of order, or two different records with one id, also block.
    - Repair or delete those lines (keep a copy of the journal first), then run again.
  returned: always
  type: list
  elements: int
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import new_run_id
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.module_utils import rollback_plan as rb
from ansible_collections.oomguard.fleet.plugins.module_utils.change_module import apply_locked, finish, remediation_argument_spec


def look(params, result, target=None):
    """Read the journal and decide what to restore: (run to undo, plan, damage message or None).

    An unreadable line that may hold a change of the run (``journal.bad_lines_of``), and changes of
    the run out of order (``journal.disordered_lines_of``), block the rollback; when the run is not
    named, every unreadable line does, since the newest run may be among them."""
    journal = jr.read_journal(params["journal"])
    named = params["rollback_run_id"]
    if target is None:
        target = rb.resolve_run(journal["records"], named)
    bad = jr.bad_lines_of(journal, named)
    disordered = jr.disordered_lines_of(journal, target) if target else []
    result.update(journal_bad_lines=len(journal["bad"]), journal_damaged_lines=sorted(set(bad + disordered)))
    damage = jr.damage_message(params["journal"], target, bool(named), bad, disordered)
    the_plan = None
    if target is not None and not damage:
        the_plan = rb.plan_rollback(journal["records"], target, params["proc_path"])
        the_plan["intents"] = bool(jr.change_intents(journal["records"], target))
    return target, the_plan, damage


def main():
    argument_spec = remediation_argument_spec()
    argument_spec.update(rollback_run_id=dict(type="str"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    run_id = params["run_id"] or new_run_id()
    result = dict(changed=False, run_id=run_id, rollback_of=None, already_rolled_back=False, restored=[], dropins=[],
                  not_restored=[], daemon_reload=False, restarted=[], journal_bad_lines=0,
                  journal_damaged_lines=[])
    try:
        target, the_plan, damage = look(params, result)
    except jr.JournalError as exc:
        module.fail_json(msg=str(exc), **result)
    except rem.RemediationError as exc:
        module.fail_json(msg="Failed to read what to restore: %s" % exc, **result)
    result["rollback_of"] = target
    if damage:
        module.fail_json(msg=damage, **result)
    if target is None:
        module.warn("The journal %s records no change; nothing to roll back" % params["journal"])
        module.exit_json(**result)
    if params["rollback_run_id"] and not the_plan["intents"]:
        module.warn("The journal %s records no change for run %s; nothing to roll back" % (params["journal"], target))
    result.update(already_rolled_back=the_plan["already"], not_restored=the_plan["not_restored"])
    result["changed"] = rem.planned_change(the_plan)
    if module.check_mode or not result["changed"]:
        if module._diff:
            result["diff"] = rem.plan_diff(the_plan)
        result.update(restored=the_plan["runtime"], dropins=rem.dropin_rows(the_plan["dropins"]))
        module.exit_json(**result)

    def replan():
        # What to restore is decided again under the lock, from the journal as it is then: another run may
        # have changed the host or the journal since the look above.
        locked_plan, locked_damage = look(params, result, target)[1:]
        if locked_damage:
            raise jr.JournalError(locked_damage)
        return locked_plan

    locked_plan, outcome, error = apply_locked(module, run_id, "rollback of %s" % target, replan)
    if locked_plan:
        the_plan = locked_plan
        result.update(already_rolled_back=the_plan["already"], not_restored=the_plan["not_restored"])
    finish(module, result, the_plan, outcome, error, lambda done: dict(
        restored=done["processes"], dropins=done["dropins"], daemon_reload=done["daemon_reload"],
        restarted=done["restarted"], not_restored=the_plan["not_restored"] + done["vanished"]))


if __name__ == "__main__":
    main()
