# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``oomguard.fleet.exposure`` filter (facts in, ``oomguard_exposure`` out) and the
``oomguard.fleet.exposure_gate`` filter (a verdict against a ``fail_on`` level).

Documentation: exposure.yml and exposure_gate.yml next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import LEVELS, gate_message, gate_tripped, normalize_gate
from ansible_collections.oomguard.fleet.plugins.module_utils.exposure import ExposureError, assess


def exposure(facts, host=None, custom_rules=None, **options):
    """Judge one host's facts with the built-in and custom rules."""
    try:
        return assess(facts, host=host, options=options, custom_rules=custom_rules)
    except ExposureError as exc:
        raise AnsibleFilterError("oomguard.fleet.exposure: %s" % exc) from None


def exposure_gate(verdict, fail_on, name="fail_on"):
    """The gate's message when ``verdict`` is at or above ``fail_on``, else an empty string."""
    try:
        normalize_gate(fail_on)
    except ValueError as exc:
        raise AnsibleFilterError("oomguard.fleet.exposure_gate: %s" % exc) from None
    if not isinstance(verdict, dict) or verdict.get("level") not in LEVELS:
        raise AnsibleFilterError("oomguard.fleet.exposure_gate: the input must be an oomguard_exposure verdict "
                                 "(a dict with a level), got %r" % (verdict,))
    if not gate_tripped(verdict["level"], fail_on):
        return ""
    return gate_message(verdict, fail_on, name)


class FilterModule:
    """oomguard.fleet exposure filters."""

    def filters(self):
        return {"exposure": exposure, "exposure_gate": exposure_gate}
