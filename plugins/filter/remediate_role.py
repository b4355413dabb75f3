# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``remediate_plan`` and ``remediate_changes`` filters of the remediate role (plugin_utils/remediate_role.py).

Documentation: remediate_plan.yml and remediate_changes.yml next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.plugin_utils import remediate_role as logic


def remediate_plan(exposure, **options):
    try:
        return logic.remediate_plan(exposure, **options)
    except logic.RemediatePlanError as exc:
        raise AnsibleFilterError("oomguard.fleet.remediate_plan: %s" % exc) from None


def remediate_changes(plan, results=None, check_mode=False):
    return logic.remediate_changes(plan, results, check_mode)


class FilterModule:
    """oomguard.fleet remediation filters."""

    def filters(self):
        return {"remediate_plan": remediate_plan, "remediate_changes": remediate_changes}
