# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``snapshot_result``, ``snapshots_record`` and ``snapshots_failure`` filters of the snapshot role: each host's
``oomguard_snapshots``, built by module_utils/_contract.py.

Documentation: snapshot_result.yml, snapshots_record.yml and snapshots_failure.yml next to this file.
"""

from __future__ import annotations

from ansible_collections.oomguard.fleet.plugins.module_utils import _contract


def snapshot_result(batch, host):
    return _contract.snapshot_host_result(batch, host)


def snapshots_record(result, run_id, instance=None, check_mode=False):
    return _contract.snapshots_record(run_id, result, instance, check_mode)


def snapshots_failure(failed_result, run_id, instance=None):
    return _contract.snapshots_failure(run_id, (failed_result or {}).get('msg', 'failed'), instance)


class FilterModule:
    """oomguard.fleet snapshot record filters."""

    def filters(self):
        return {'snapshot_result': snapshot_result, 'snapshots_record': snapshots_record, 'snapshots_failure': snapshots_failure}
