# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``oomguard.fleet.run_id`` filter: a new run id, made by the one maker in ``module_utils/_contract.py``.

Documentation: run_id.yml next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import new_run_id, parse_time


def run_id(when=None):
    """``oomguard-<UTC %Y%m%dT%H%M%SZ>-<4 digits>``: for now when the input is empty, else for the given time."""
    if when in (None, ""):
        return new_run_id()
    stamp = parse_time(when)
    if stamp is None:
        raise AnsibleFilterError("oomguard.fleet.run_id: the input must be empty (now) or a time such as "
                                 "2026-11-29T02:00:00Z, got %r" % (when,))
    return new_run_id(stamp)


class FilterModule:
    """oomguard.fleet run id filter."""

    def filters(self):
        return {"run_id": run_id}
