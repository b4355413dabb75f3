# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pieces shared by the oom_score_adj and oom_rollback modules (private to oomguard.fleet)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import safefile as sf
from ansible_collections.oomguard.fleet.plugins.module_utils.remediation import RemediationError


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
