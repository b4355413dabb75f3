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
    empty C(<unit>.d) directory it created); C(systemctl daemon-reload) runs when systemd is running.
  - Runtime values are restored for processes that still run (same pid and start time). A process that exited
    since is reported in RV(not_restored); its service gets the old value from the unit file at its next start.
  - A change journalled but never made (the run was killed in between) is recognised and skipped.
  - Each restore is journalled before it is made, and a finished rollback is recorded, so running the module again
    changes nothing.
  - A file or value that someone changed after the run is left alone and reported in RV(not_restored).
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
  sample: [{unit: app.service, path: /etc/systemd/system/app.service.d/50-oomguard.conf, action: removed}]
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
  description: Journal lines that were not valid JSON (a line torn by a crash) and were ignored.
  returned: always
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import remediation as rem
from ansible_collections.oomguard.fleet.plugins.module_utils import rollback as rb
from ansible_collections.oomguard.fleet.plugins.module_utils.common import remediation_argument_spec, run_locked


def main():
    argument_spec = remediation_argument_spec()
    argument_spec.update(rollback_run_id=dict(type="str"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    run_id = params["run_id"] or jr.new_run_id()
    result = dict(changed=False, run_id=run_id, rollback_of=None, already_rolled_back=False, restored=[], dropins=[],
                  not_restored=[], daemon_reload=False, restarted=[], journal_bad_lines=0)
    try:
        records, result["journal_bad_lines"] = jr.read_records(params["journal"])
    except jr.JournalError as exc:
        module.fail_json(msg=str(exc), **result)
    target = rb.resolve_run(records, params["rollback_run_id"])
    result["rollback_of"] = target
    if target is None:
        module.warn("The journal %s records no change; nothing to roll back" % params["journal"])
        module.exit_json(**result)
    if params["rollback_run_id"] and not jr.change_intents(records, target):
        module.warn("The journal %s records no change for run %s; nothing to roll back" % (params["journal"], target))
    try:
        the_plan = rb.plan_rollback(records, target, params["proc_path"])
    except rem.RemediationError as exc:
        module.fail_json(msg="Failed to read what to restore: %s" % exc, **result)
    result.update(already_rolled_back=the_plan["already"], not_restored=the_plan["not_restored"])
    result["changed"] = bool(the_plan["dropins"] or the_plan["runtime"])
    if module._diff:
        result["diff"] = rb.rollback_diff(the_plan)
    if module.check_mode or not result["changed"]:
        result.update(restored=the_plan["runtime"], dropins=[
            {"unit": d["unit"], "path": d["path"], "action": "removed" if d["restore"] is None else "restored"} for d in the_plan["dropins"]])
        module.exit_json(**result)

    def act(journal):
        return rb.apply_rollback(the_plan, journal, params["proc_path"], rem.systemd_running(params["root"]),
                                 module.run_command, params["restart"])

    outcome, error = run_locked(params["journal"], run_id, "rollback of %s" % target, act)
    # What was done, not what was planned: a run that failed before its first change (the lock is held,
    # the journal cannot be written) changed nothing.
    result["changed"] = bool(outcome and (outcome["processes"] or outcome["dropins"]))
    if outcome:
        result.update(restored=outcome["processes"], dropins=outcome["dropins"], daemon_reload=outcome["daemon_reload"],
                      restarted=outcome["restarted"], not_restored=the_plan["not_restored"] + outcome["vanished"])
        if outcome["refused"]:
            item = outcome["refused"][0]
            error = rem.refusal_message(item["pid"], item["name"], item["old"], item["new"], params["proc_path"])
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
