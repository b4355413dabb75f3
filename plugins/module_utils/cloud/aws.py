# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS EC2 (EBS) backend for disk snapshots, on boto3. Private to the oomguard.fleet collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time
import traceback

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError, SnapshotBackend

SDK_IMPORT_ERROR = None
try:
    import boto3
    from botocore.config import Config as BotoConfig
except ImportError:
    SDK_IMPORT_ERROR = traceback.format_exc()

SDK_NAME = 'boto3'

THROTTLING_CODES = ('RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'ServiceUnavailable', 'InternalError', 'Unavailable')
# The per-volume snapshot rate limit lifts slowly: wait longer than for plain throttling.
SLOW_CODES = ('SnapshotCreationPerVolumeRateExceeded',)


def _error_code(exc):
    response = getattr(exc, 'response', None) or {}
    return (response.get('Error') or {}).get('Code')


def classify_error(exc):
    code = _error_code(exc)
    if code in SLOW_CODES:
        return 4.0
    if code in THROTTLING_CODES:
        return 1.0
    status = ((getattr(exc, 'response', None) or {}).get('ResponseMetadata') or {}).get('HTTPStatusCode') or 0
    if status >= 500:
        return 1.0
    return None


def describe_error(exc):
    code = _error_code(exc)
    if code:
        message = ((getattr(exc, 'response', None) or {}).get('Error') or {}).get('Message') or str(exc)
        return '%s: %s' % (code, message)
    return str(exc)


def _tag_list(tags):
    return [{'Key': k, 'Value': v} for k, v in sorted(tags.items())]


class AwsBackend(SnapshotBackend):
    provider = 'aws'
    # pending, recoverable and recovering are progressing.
    DONE_STATES = ('completed',)
    FAILED_STATES = ('error',)

    def __init__(self, region, endpoint_url=None, credentials=None, retries=6, retry_base=1.0, retry_cap=20.0, sleep=time.sleep,
                 profile=None, ca_bundle=None):
        self.retries = retries
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.sleep = sleep
        self.calls = 0
        creds = dict((k, v) for k, v in (credentials or {}).items() if v)
        if profile:
            creds['profile_name'] = profile
        try:
            session = boto3.session.Session(region_name=region, **creds)
            # botocore's standard retry mode handles transient errors; our backoff adds the slow codes on top.
            # verify=None keeps botocore's own choice (AWS_CA_BUNDLE, the profile's ca_bundle, certifi).
            self.client = session.client('ec2', endpoint_url=endpoint_url, verify=ca_bundle or None,
                                         config=BotoConfig(retries={'mode': 'standard', 'max_attempts': 2},
                                                           connect_timeout=5, read_timeout=20))
        except Exception as exc:  # pylint: disable=broad-except
            raise CloudError('create', 'EC2 client', describe_error(exc))

    classify_error = staticmethod(classify_error)
    describe_error = staticmethod(describe_error)
    error_code = staticmethod(_error_code)

    def list_disks(self, instance_id):
        noun = 'disks of instance %s' % instance_id
        reservations = self._call('list', noun, lambda: self.client.describe_instances(InstanceIds=[instance_id]))['Reservations']
        instances = [i for r in reservations for i in r.get('Instances', [])]
        if not instances:
            raise CloudError('list', noun, 'instance not found; check instance_id and region')
        instance = instances[0]
        root = instance.get('RootDeviceName')
        disks = []
        for mapping in instance.get('BlockDeviceMappings', []):
            ebs = mapping.get('Ebs') or {}
            if not ebs.get('VolumeId'):
                continue
            disks.append({'disk_id': ebs['VolumeId'], 'type': 'system' if mapping.get('DeviceName') == root else 'data',
                          'device': mapping.get('DeviceName'), 'size_gb': None})
        if not disks:
            raise CloudError('list', noun, 'the instance has no EBS volumes')
        volumes = self._call('list', noun, lambda: self.client.describe_volumes(VolumeIds=[d['disk_id'] for d in disks]))['Volumes']
        sizes = dict((v['VolumeId'], v.get('Size')) for v in volumes)
        for disk in disks:
            disk['size_gb'] = sizes.get(disk['disk_id'])
        disks.sort(key=lambda d: (d['type'] != 'system', d['device'] or '', d['disk_id']))
        return disks

    def create_snapshot(self, disk_id, name, description, tags, idempotency_token):
        all_tags = dict(tags)
        all_tags['Name'] = name
        # EC2 CreateSnapshot has no client token: the run tag looked up before creating makes it idempotent.
        response = self._call('create', 'snapshot of volume %s' % disk_id, lambda: self.client.create_snapshot(
            VolumeId=disk_id, Description=description,
            TagSpecifications=[{'ResourceType': 'snapshot', 'Tags': _tag_list(all_tags)}]))
        return response['SnapshotId']

    def describe_snapshots(self, instance_id=None, disk_id=None, snapshot_ids=None, tags=None):
        filters = [{'Name': 'tag:%s' % k, 'Values': [v]} for k, v in sorted((tags or {}).items())]
        if disk_id:
            filters.append({'Name': 'volume-id', 'Values': [disk_id]})
        elif instance_id and not snapshot_ids:
            volume_ids = [d['disk_id'] for d in self.list_disks(instance_id)]
            filters.append({'Name': 'volume-id', 'Values': volume_ids})
        kwargs = {'OwnerIds': ['self']}
        if filters:
            kwargs['Filters'] = filters
        if snapshot_ids:
            kwargs['SnapshotIds'] = list(snapshot_ids)
        found = []
        while True:
            page = self._call('describe', 'snapshots', lambda: self.client.describe_snapshots(**kwargs))
            found.extend(self._normalize(s) for s in page.get('Snapshots', []))
            if not page.get('NextToken'):
                break
            kwargs['NextToken'] = page['NextToken']
        return found

    def _normalize(self, snap):
        tags = dict((t['Key'], t['Value']) for t in snap.get('Tags', []))
        started = snap.get('StartTime')
        return self.snapshot(snap['SnapshotId'], snap.get('VolumeId'), tags.get('Name'), snap.get('State'), snap.get('Progress'),
                             started.strftime('%Y-%m-%dT%H:%M:%S.%fZ') if hasattr(started, 'strftime') else started, tags,
                             state_message=snap.get('StateMessage'))

    def delete_snapshot(self, snapshot_id):
        self._call('delete', 'snapshot %s' % snapshot_id, lambda: self.client.delete_snapshot(SnapshotId=snapshot_id))
