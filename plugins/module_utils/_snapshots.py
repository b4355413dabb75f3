# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oomguard_snapshots builders (to join module_utils/_contract.py). Private to the oomguard.fleet collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


# ---- snapshots ------------------------------------------------------------------------------
# oomguard_snapshots, the record the snapshot role sets per host (docs/data-contract.md), built
# from the host's result of the role's disk_snapshot task. The role reaches these through the
# oomguard.fleet.snapshot_result, snapshots_record and snapshots_failure filters.

SNAPSHOTS_SCHEMA = 1


def _instance_fields(instance):
    instance = instance or {}
    return instance.get("provider"), instance.get("instance_id"), instance.get("region")


def snapshot_host_result(batch, host):
    """``host``'s result in the registered loop of the role's disk_snapshot task (one item per provider, each
    with ``hosts``); a failed result saying what to set when no item has the host (its provider is unknown)."""
    for item in (batch or {}).get("results") or []:
        hosts = item.get("hosts") if isinstance(item, dict) else None
        if hosts and host in hosts:
            return hosts[host]
    message = ("The cloud provider of %s is unknown: instance_id and region came from inventory, so nothing was "
               "detected. Set oomguard_snapshot_provider to alicloud or aws." % host)
    return {"failed": True, "changed": False, "status": "failed", "msg": message, "snapshots": [],
            "would_create": [], "deleted": [], "would_delete": []}


def snapshots_record(run_id, result=None, instance=None, check_mode=False):
    """``oomguard_snapshots`` of a host from its disk_snapshot result (``snapshot_host_result``), of the
    instance it identified (``ansible_facts.cloud_instance``); with no result, the record of a host whose
    snapshots are switched off (status ``skipped``)."""
    provider, instance_id, region = _instance_fields(instance)
    if result is None:
        return {"schema": SNAPSHOTS_SCHEMA, "run_id": run_id, "status": "skipped",
                "message": "snapshots switched off (oomguard_snapshot_enabled: false)",
                "provider": None, "instance_id": None, "region": None, "snapshots": []}
    return {
        "schema": SNAPSHOTS_SCHEMA,
        "run_id": run_id,
        "status": "ok" if result.get("status") == "ok" and not result.get("failed") else "failed",
        "message": result["msg"] if "msg" in result else result.get("message"),
        "provider": provider,
        "instance_id": instance_id,
        "region": region,
        "snapshots": result.get("snapshots") or [],
        "check_mode": bool(check_mode),
        "would_create": result.get("would_create") or [],
        "deleted": (result.get("deleted") or []) + (result.get("would_delete") or []),
    }


def snapshots_failure(run_id, message, instance=None):
    """``oomguard_snapshots`` of a host whose identification or snapshot task failed before it had a result."""
    provider, instance_id, region = _instance_fields(instance)
    return {"schema": SNAPSHOTS_SCHEMA, "run_id": run_id, "status": "failed", "message": message,
            "provider": provider, "instance_id": instance_id, "region": region, "snapshots": []}
