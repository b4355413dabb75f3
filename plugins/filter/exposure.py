# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``oomguard.fleet.exposure`` filter: facts in, ``oomguard_exposure`` out.

Documentation: exposure.yml next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.module_utils.exposure import ExposureError, assess


def exposure(facts, host=None, custom_rules=None, **options):
    """Judge one host's facts with the built-in and custom rules."""
    try:
        return assess(facts, host=host, options=options, custom_rules=custom_rules)
    except ExposureError as exc:
        raise AnsibleFilterError("oomguard.fleet.exposure: %s" % exc) from None


class FilterModule:
    """oomguard.fleet exposure filters."""

    def filters(self):
        return {"exposure": exposure}
