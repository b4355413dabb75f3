# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alibaba Cloud ECS backend for disk snapshots, on alibabacloud_ecs20140526 and
alibabacloud_tea_openapi (requests signed ACS3-HMAC-SHA256 by the SDK).
Private to the oomguard.fleet collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time
import traceback

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError, SnapshotBackend

SDK_IMPORT_ERROR = None
try:
    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_ecs20140526.client import Client as EcsClient
    from alibabacloud_tea_openapi import models as openapi_models
    from darabonba.policy.retry import RetryOptions
except ImportError:
    SDK_IMPORT_ERROR = traceback.format_exc()

SDK_NAME = 'alibabacloud_ecs20140526 and alibabacloud_tea_openapi'

# Codes the SDK itself retries (exact match), then our backoff covers the Throttling* family and 5xx.
SDK_RETRY_CODES = ['Throttling', 'Throttling.User', 'Throttling.Api', 'ServiceUnavailable']
PAGE_SIZE = 100


def classify_error(exc):
    """Backoff factor for a retryable ECS error, or None."""
    code = str(getattr(exc, 'code', '') or '')
    status = getattr(exc, 'status_code', None) or 0
    if code.startswith('Throttling') or code == 'ServiceUnavailable':
        return 1.0
    if isinstance(status, int) and status >= 500:
        return 1.0
    return None


def describe_error(exc):
    code = getattr(exc, 'code', None)
    message = getattr(exc, 'message', None) or str(exc)
    if code and code not in message:
        return '%s: %s' % (code, message)
    return message


def credentials_from(options, environ=None):
    """Explicit options first, then the SDK's environment variables; None means the SDK's default chain."""
    environ = os.environ if environ is None else environ
    key_id = options.get('access_key') or environ.get('ALIBABA_CLOUD_ACCESS_KEY_ID') or environ.get('ALICLOUD_ACCESS_KEY')
    secret = options.get('secret_key') or environ.get('ALIBABA_CLOUD_ACCESS_KEY_SECRET') or environ.get('ALICLOUD_SECRET_KEY')
    token = options.get('security_token') or environ.get('ALIBABA_CLOUD_SECURITY_TOKEN') or environ.get('ALICLOUD_SECURITY_TOKEN')
    if key_id and secret:
        return {'access_key_id': key_id, 'access_key_secret': secret, 'security_token': token}
    return None


def split_endpoint(endpoint_url):
    """'http://127.0.0.1:8080' -> ('http', '127.0.0.1:8080'); a bare host means https."""
    if not endpoint_url:
        return None, None
    if '://' in endpoint_url:
        scheme, rest = endpoint_url.split('://', 1)
        return scheme.lower(), rest.rstrip('/')
    return 'https', endpoint_url.rstrip('/')


def profile_credentials(profile, environ=None, home=None):
    """A credential client for a named profile: the Alibaba Cloud CLI's ~/.aliyun/config.json when it
    exists, else the SDKs' credentials file (ALIBABA_CLOUD_CREDENTIALS_FILE, default
    ~/.alibabacloud/credentials.ini)."""
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider
    from alibabacloud_credentials.provider.profile import ProfileCredentialsProvider
    environ = os.environ if environ is None else environ
    home = home or os.path.expanduser('~')
    cli_config = os.path.join(home, '.aliyun', 'config.json')
    if os.path.isfile(cli_config):
        provider = CLIProfileCredentialsProvider(profile_name=profile, profile_file=cli_config)
    else:
        provider = ProfileCredentialsProvider(profile_name=profile, profile_file=environ.get('ALIBABA_CLOUD_CREDENTIALS_FILE')
                                              or os.path.join(home, '.alibabacloud', 'credentials.ini'))
    return CredentialClient(provider=provider)


class AlicloudBackend(SnapshotBackend):
    provider = 'alicloud'
    DONE_STATES = ('accomplished',)
    FAILED_STATES = ('failed',)

    def __init__(self, region, endpoint_url=None, credentials=None, retries=6, retry_base=1.0, retry_cap=20.0,
                 sleep=time.sleep, connect_timeout_ms=5000, read_timeout_ms=20000, profile=None, ca_bundle=None):
        self.region = region
        self.retries = retries
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.sleep = sleep
        protocol, endpoint = split_endpoint(endpoint_url)
        config = openapi_models.Config(region_id=region, endpoint=endpoint, protocol=protocol or 'https',
                                       connect_timeout=connect_timeout_ms, read_timeout=read_timeout_ms)
        if ca_bundle:
            config.ca = ca_bundle
        if profile:
            config.credential = profile_credentials(profile)
        elif credentials:
            config.access_key_id = credentials['access_key_id']
            config.access_key_secret = credentials['access_key_secret']
            config.security_token = credentials.get('security_token')
        else:
            from alibabacloud_credentials.client import Client as CredentialClient
            config.credential = CredentialClient()
        config.retry_options = RetryOptions({
            'retryable': True,
            'retryCondition': [{
                'maxAttempts': 2,
                'errorCode': SDK_RETRY_CODES,
                'exception': ['ThrottlingException'],
                'backoff': {'policy': 'ExponentialWithEqualJitter', 'period': int(retry_base * 500), 'cap': int(retry_cap * 1000)},
            }],
        })
        try:
            self.client = EcsClient(config)
        except Exception as exc:  # pylint: disable=broad-except
            raise CloudError('create', 'ECS client', describe_error(exc))
        self.calls = 0

    classify_error = staticmethod(classify_error)
    describe_error = staticmethod(describe_error)

    def list_disks(self, instance_id):
        disks = []
        page = 1
        while True:
            request = ecs_models.DescribeDisksRequest(region_id=self.region, instance_id=instance_id,
                                                      page_size=PAGE_SIZE, page_number=page)
            body = self._call('list', 'disks of instance %s' % instance_id, lambda: self.client.describe_disks(request)).body
            items = body.disks.disk if body.disks and body.disks.disk else []
            for disk in items:
                disks.append({'disk_id': disk.disk_id, 'type': 'system' if disk.type == 'system' else 'data',
                              'device': disk.device, 'size_gb': disk.size})
            if len(items) < PAGE_SIZE or page * PAGE_SIZE >= (body.total_count or 0):
                break
            page += 1
        if not disks:
            raise CloudError('list', 'disks of instance %s' % instance_id,
                             'no disks found in region %s; check instance_id and region' % self.region)
        disks.sort(key=lambda d: (d['type'] != 'system', d['device'] or '', d['disk_id']))
        return disks

    def create_snapshot(self, disk_id, name, description, tags, idempotency_token):
        request = ecs_models.CreateSnapshotRequest(
            disk_id=disk_id, snapshot_name=name, description=description, client_token=idempotency_token,
            tag=[ecs_models.CreateSnapshotRequestTag(key=k, value=v) for k, v in sorted(tags.items())])
        body = self._call('create', 'snapshot of disk %s' % disk_id, lambda: self.client.create_snapshot(request)).body
        return body.snapshot_id

    def describe_snapshots(self, instance_id=None, disk_id=None, snapshot_ids=None, tags=None):
        found = []
        page = 1
        while True:
            request = ecs_models.DescribeSnapshotsRequest(
                region_id=self.region, instance_id=instance_id, disk_id=disk_id,
                snapshot_ids=json.dumps(list(snapshot_ids)) if snapshot_ids else None,
                tag=[ecs_models.DescribeSnapshotsRequestTag(key=k, value=v) for k, v in sorted((tags or {}).items())] or None,
                page_size=PAGE_SIZE, page_number=page)
            body = self._call('describe', 'snapshots', lambda: self.client.describe_snapshots(request)).body
            items = body.snapshots.snapshot if body.snapshots and body.snapshots.snapshot else []
            for snap in items:
                found.append(self._normalize(snap))
            if len(items) < PAGE_SIZE or page * PAGE_SIZE >= (body.total_count or 0):
                break
            page += 1
        return found

    def _normalize(self, snap):
        tags = dict((t.tag_key, t.tag_value) for t in snap.tags.tag) if snap.tags and snap.tags.tag else {}
        return self.snapshot(snap.snapshot_id, snap.source_disk_id, snap.snapshot_name, snap.status, snap.progress,
                             snap.creation_time, tags)

    def delete_snapshot(self, snapshot_id):
        request = ecs_models.DeleteSnapshotRequest(snapshot_id=snapshot_id)
        self._call('delete', 'snapshot %s' % snapshot_id, lambda: self.client.delete_snapshot(request))
