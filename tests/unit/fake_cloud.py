# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory cloud for the tests of disk_snapshot's batch runner and action plugin: a snapshot backend
(module_utils/cloud/common.py's interface) whose snapshots are done some seconds after creation, on a clock."""

from __future__ import annotations

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeCloud(object):
    """One region of an in-memory cloud: instances with disks, snapshots done ``seconds`` after creation."""

    provider = 'alicloud'

    def __init__(self, clock, seconds=4.0):
        self.clock = clock
        self.seconds = seconds
        self.disks = {}
        self.snapshots = {}
        self.failing = set()
        self.calls = []

    def add(self, instance_id, disks=2):
        self.disks[instance_id] = [{'disk_id': 'd-%s-%d' % (instance_id, n), 'type': 'system' if n == 0 else 'data',
                                    'device': '/dev/vd%s' % 'abc'[n], 'size_gb': 20} for n in range(disks)]

    def list_disks(self, instance_id):
        self.calls.append('list_disks')
        if instance_id not in self.disks:
            raise CloudError('list', 'disks of instance %s' % instance_id, 'no disks found')
        return list(self.disks[instance_id])

    def create_snapshot(self, disk_id, name, description, tags, token):
        self.calls.append('create_snapshot')
        snap_id = 's-%d' % (len(self.snapshots) + 1)
        self.snapshots[snap_id] = {'disk_id': disk_id, 'name': name, 'tags': dict(tags), 'at': self.clock()}
        return snap_id

    def _public(self, snap_id):
        snap = self.snapshots[snap_id]
        progress = min(100, int(100 * (self.clock() - snap['at']) / self.seconds))
        status = 'failed' if snap['disk_id'] in self.failing else 'accomplished' if progress >= 100 else 'progressing'
        return {'snapshot_id': snap_id, 'disk_id': snap['disk_id'], 'name': snap['name'], 'status': status,
                'progress': progress, 'created_at': '2026-11-29T02:00:00Z', 'tags': snap['tags']}

    def describe_snapshots(self, instance_id=None, disk_id=None, snapshot_ids=None, tags=None):
        self.calls.append('describe_snapshots')
        disks = set(d['disk_id'] for d in self.disks.get(instance_id, [])) if instance_id else None
        found = []
        for snap_id in sorted(self.snapshots):
            snap = self.snapshots[snap_id]
            if snapshot_ids is not None and snap_id not in snapshot_ids:
                continue
            if disks is not None and snap['disk_id'] not in disks:
                continue
            if any(snap['tags'].get(k) != v for k, v in (tags or {}).items()):
                continue
            found.append(self._public(snap_id))
        return found

    def delete_snapshot(self, snapshot_id):
        del self.snapshots[snapshot_id]
