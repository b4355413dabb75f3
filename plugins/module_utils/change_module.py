# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the oom_score_adj and oom_rollback modules share: their common options, the host lock
around the one ``apply``, and how a run ends (private to oomguard.fleet)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import safefile as sf
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_change import RemediationError


def remediation_argument_spec():
    """Options of the ``oomguard.fleet.remediation`` doc fragment."""
    return dict(
        journal=dict(type="path", default=jr.DEFAULT_JOURNAL),
        run_id=dict(type="str"),
        restart=dict(type="bool", default=False),
        proc_path=dict(type="path", default="/proc"),
        root=dict(type="path", default="/"),
    )


def run_locked(journal_path, run_id, purpose, act):
    """Run ``act(journal)`` holding the host lock. Returns (outcome, error message or None).

    On a failure part way, the outcome is what was done before it, so the module can report it.
    """
    try:
        with jr.RunLock(journal_path, run_id, purpose):
            return act(jr.Journal(journal_path, run_id)), None
    except RemediationError as exc:
        return exc.partial or None, str(exc)
    except (jr.JournalError, sf.SafeFileError) as exc:
        return getattr(exc, "partial", None), str(exc)
    except (IOError, OSError) as exc:
        return getattr(exc, "partial", None), "Failed to change %s: %s" % (getattr(exc, "filename", None) or "a file", exc.strerror or exc)


def apply_locked(module, run_id, purpose, replan):
    """Decide again under the host lock what to change (``replan()``: another run may have changed the host or the
    journal since the look outside the lock) and make it with the one ``apply``.

    Returns (the plan made under the lock, or None when the lock was not had; outcome; error message or None)."""
    params = module.params
    plans = []

    def act(journal):
        the_plan = replan()
        plans.append(the_plan)
        if not rem.planned_change(the_plan):
            return rem.new_outcome()
        return rem.apply(the_plan, journal, params["proc_path"], rem.systemd_running(params["root"]), module.run_command,
                         params["restart"], selinux_module=module)

    outcome, error = run_locked(params["journal"], run_id, purpose, act)
    return (plans[0] if plans else None), outcome, error


def finish(module, result, the_plan, outcome, error, done_fields):
    """End a run of either module: the diff; ``changed`` from what was done, not what was planned (a run that failed
    before its first change, the lock held or the journal unwritable, changed nothing); ``done_fields(outcome)`` and
    the outcome's warnings; then fail with the error or the kernel's refusal, or exit."""
    if module._diff:
        result["diff"] = rem.plan_diff(the_plan)
    result["changed"] = bool(outcome and (outcome["processes"] or outcome["dropins"]))
    if outcome:
        result.update(done_fields(outcome))
        for warning in outcome["warnings"]:
            module.warn(warning)
        if outcome["refused"]:
            item = outcome["refused"][0]
            error = rem.refusal_message(item["pid"], item["name"], item["old"], item["new"], module.params["proc_path"])
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)
