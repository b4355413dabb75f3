"""A loopback double of the Alibaba Cloud ECS API (version 2014-05-26), for tests.

Implements what disk snapshotting uses, with the real API's shapes and rules:
DescribeDisks, CreateSnapshot, DescribeSnapshots, DeleteSnapshot (and the
DeleteSnapshots spelling as an alias). Every request must carry a valid
ACS3-HMAC-SHA256 signature made with a key pair the test registered; the signature
is recomputed here from the raw request, independently of the SDK's code.

Snapshots go ``progressing`` -> ``accomplished`` with ``Progress`` rising over
``snapshot_seconds``; one snapshot in progress per disk; ``ClientToken`` makes
CreateSnapshot idempotent; names may not start with ``auto``. Faults: throttle the
next N calls of an action, fail snapshots of chosen disks, answer 5xx.

Usage::

    with EcsDouble(keys={'AKID': 'secret'}, snapshot_seconds=5) as ecs:
        ecs.add_instance('i-1', 'cn-hangzhou', data_disks=2)
        endpoint = ecs.endpoint            # 'http://127.0.0.1:PORT'
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

from ansible_collections.oomguard.fleet.tests.harness.loopback_http import LoopbackServer

API_VERSION = '2014-05-26'
ALGORITHM = 'ACS3-HMAC-SHA256'
MAX_CLOCK_SKEW = 900


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _iso(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def canonical_request(method, path, query_pairs, headers, signed_header_names, payload_hash):
    """ACS3 canonical request, written from Alibaba Cloud's published V3 signature spec."""
    encoded = sorted((quote(k, safe='~'), quote(v, safe='~')) for k, v in query_pairs)
    canonical_query = '&'.join('%s=%s' % kv for kv in encoded)
    lines = []
    for name in signed_header_names:
        values = sorted(v.strip() for v in headers.get_all(name) or [])
        lines.append('%s:%s\n' % (name, ','.join(values)))
    return '\n'.join([method, path or '/', canonical_query, ''.join(lines), ';'.join(signed_header_names), payload_hash])


def sign(secret, canonical):
    digest = hashlib.sha256(canonical.encode('utf-8')).hexdigest()
    string_to_sign = '%s\n%s' % (ALGORITHM, digest)
    return hmac.new(secret.encode('utf-8'), string_to_sign.encode('utf-8'), hashlib.sha256).hexdigest()


class EcsDouble(LoopbackServer):
    name = 'ecs-double'

    def __init__(self, keys, snapshot_seconds=5.0, host='127.0.0.1', clock=time.time):
        super().__init__(host)
        self.keys = dict(keys)
        self.snapshot_seconds = float(snapshot_seconds)
        self.clock = clock
        self.lock = threading.RLock()
        self.disks = {}             # disk_id -> {DiskId, InstanceId, RegionId, Type, Device, Size}
        self.snapshots = {}         # snapshot_id -> dict (internal, with _started/_fail)
        self.tokens = {}            # ClientToken -> (fingerprint, snapshot_id)
        self.nonces = set()
        self.throttle = {}          # action -> [remaining, code, status]
        self.server_errors = {}     # action -> remaining 503s
        self.fail_disks = set()
        self.requests = []          # (action, status) for every request, signed or not
        self.timeline = []          # (time.monotonic(), action, status) for every request
        self.calls = []             # (action, params) of every signed request
        self.refused = []           # (code, message) of requests refused for auth
        self._ids = itertools.count(1)

    @property
    def endpoint(self):
        return self.url

    # ---- fixtures and fault injection ----
    def add_instance(self, instance_id, region, data_disks=2, zone=None):
        ids = []
        with self.lock:
            for index in range(data_disks + 1):
                disk_id = 'd-%s-%d' % (instance_id.replace('i-', ''), index)
                self.disks[disk_id] = {
                    'DiskId': disk_id, 'InstanceId': instance_id, 'RegionId': region, 'ZoneId': zone or region + '-h',
                    'Type': 'system' if index == 0 else 'data', 'Device': '/dev/xvd%s' % 'abcdefghij'[index],
                    'Size': 40 if index == 0 else 100, 'Category': 'cloud_essd', 'Status': 'In_use',
                }
                ids.append(disk_id)
        return ids

    def add_foreign_snapshot(self, disk_id, name='manual-backup', age_seconds=3600.0, tags=None):
        """A snapshot someone else made (not ours): retention must never touch it."""
        with self.lock:
            return self._new_snapshot(disk_id, name, '', tags or {}, started=self.clock() - age_seconds)

    def inject_throttling(self, action, times, code='Throttling.User', status=400):
        with self.lock:
            self.throttle[action] = [times, code, status]

    def inject_server_error(self, action, times):
        with self.lock:
            self.server_errors[action] = times

    def fail_snapshots_of(self, disk_id):
        with self.lock:
            self.fail_disks.add(disk_id)

    def count(self, action, status=None):
        with self.lock:
            return sum(1 for a, s in self.requests if a == action and (status is None or s == status))

    def snapshots_of(self, disk_id):
        with self.lock:
            return [self._view(s) for s in self.snapshots.values() if s['SourceDiskId'] == disk_id]

    # ---- state ----
    def _new_snapshot(self, disk_id, name, description, tags, started=None):
        snap_id = 's-%012d' % next(self._ids)
        disk = self.disks[disk_id]
        self.snapshots[snap_id] = {
            'SnapshotId': snap_id, 'SnapshotName': name, 'Description': description,
            'SourceDiskId': disk_id, 'SourceDiskType': disk['Type'], 'SourceDiskSize': str(disk['Size']),
            'RegionId': disk['RegionId'], 'InstanceId': disk['InstanceId'],
            'Tags': dict(tags), '_started': self.clock() if started is None else started,
            '_fail': disk_id in self.fail_disks,
        }
        return snap_id

    def _view(self, snap):
        elapsed = self.clock() - snap['_started']
        if snap['_fail'] and elapsed >= self.snapshot_seconds / 2:
            status, progress = 'failed', int(50)
        elif elapsed >= self.snapshot_seconds:
            status, progress = 'accomplished', 100
        else:
            status, progress = 'progressing', int(100 * elapsed / self.snapshot_seconds) if self.snapshot_seconds else 100
        out = dict((k, v) for k, v in snap.items() if not k.startswith('_'))
        out.update({
            'Status': status, 'Progress': '%d%%' % progress, 'CreationTime': _iso(snap['_started']),
            'RemainTime': max(0, int(self.snapshot_seconds - elapsed)) if status == 'progressing' else 0,
            'Tags': {'Tag': [{'TagKey': k, 'TagValue': v} for k, v in sorted(snap['Tags'].items())]},
            'Usage': 'none', 'Category': 'standard',
        })
        return out

    # ---- HTTP ----
    def handle(self, handler):
        length = int(handler.headers.get('content-length') or 0)
        body = handler.rfile.read(length) if length else b''
        request_id = str(uuid.uuid4()).upper()
        action = handler.headers.get('x-acs-action') or ''
        try:
            self._verify(handler, body)
            params = dict(parse_qsl(urlsplit(handler.path).query, keep_blank_values=True))
            if handler.headers.get('content-type', '').startswith('application/x-www-form-urlencoded') and body:
                params.update(parse_qsl(body.decode('utf-8'), keep_blank_values=True))
            with self.lock:
                self.calls.append((action, params))
            status, payload = 200, self._dispatch(action, params)
        except ApiError as exc:
            status, payload = exc.status, {'Code': exc.code, 'Message': exc.message, 'HostId': 'ecs.127.0.0.1'}
        payload['RequestId'] = request_id
        with self.lock:
            self.requests.append((action, status))
            self.timeline.append((time.monotonic(), action, status))
        self.reply(handler, status, json.dumps(payload).encode('utf-8'), 'application/json;charset=utf-8')

    def _refuse(self, status, code, message):
        with self.lock:
            self.refused.append((code, message))
        raise ApiError(status, code, message)

    def _verify(self, handler, body):
        auth = handler.headers.get('Authorization') or ''
        if not auth.startswith(ALGORITHM + ' '):
            self._refuse(400, 'MissingAuthorization' if not auth else 'InvalidSignatureMethod',
                         'The request must be signed with %s.' % ALGORITHM)
        fields = dict(part.strip().split('=', 1) for part in auth[len(ALGORITHM) + 1:].split(',') if '=' in part)
        key_id, signed, signature = fields.get('Credential'), fields.get('SignedHeaders', ''), fields.get('Signature', '')
        if key_id not in self.keys:
            self._refuse(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.')
        names = [n for n in signed.split(';') if n]
        required = {'host', 'x-acs-action', 'x-acs-content-sha256', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-version'}
        if not required.issubset(names) or names != sorted(names):
            self._refuse(400, 'IncompleteSignature', 'SignedHeaders must list, sorted: %s.' % ', '.join(sorted(required)))
        for name in names:
            if handler.headers.get(name) is None:
                self._refuse(400, 'IncompleteSignature', 'Signed header %s is missing.' % name)
        payload_hash = handler.headers.get('x-acs-content-sha256')
        if hashlib.sha256(body).hexdigest() != payload_hash:
            self._refuse(400, 'InvalidPayloadHash', 'x-acs-content-sha256 does not match the body.')
        if handler.headers.get('x-acs-version') != API_VERSION:
            self._refuse(400, 'InvalidVersion', 'Specified parameter Version is not valid.')
        try:
            when = datetime.strptime(handler.headers.get('x-acs-date'), '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            self._refuse(400, 'InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted.')
        if abs(time.time() - when) > MAX_CLOCK_SKEW:
            self._refuse(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.')
        split = urlsplit(handler.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        expected = sign(self.keys[key_id], canonical_request(handler.command, split.path, pairs, handler.headers, names, payload_hash))
        if not hmac.compare_digest(expected, signature):
            self._refuse(400, 'SignatureDoesNotMatch', 'The request signature does not conform to Aliyun standards.')
        nonce = handler.headers.get('x-acs-signature-nonce')
        with self.lock:
            if nonce in self.nonces:
                self._refuse(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.')
            self.nonces.add(nonce)

    def _dispatch(self, action, params):
        with self.lock:
            if self.server_errors.get(action):
                self.server_errors[action] -= 1
                raise ApiError(503, 'ServiceUnavailable', 'The request has failed due to a temporary failure of the server.')
            throttle = self.throttle.get(action)
            if throttle and throttle[0] > 0:
                throttle[0] -= 1
                raise ApiError(throttle[2], throttle[1], 'Request was denied due to request throttling.')
            handler = {
                'DescribeDisks': self._describe_disks,
                'CreateSnapshot': self._create_snapshot,
                'DescribeSnapshots': self._describe_snapshots,
                'DeleteSnapshot': self._delete_snapshot,
                'DeleteSnapshots': self._delete_snapshot,
            }.get(action)
            if handler is None:
                raise ApiError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.')
            return handler(params)

    @staticmethod
    def _tags(params):
        tags = {}
        for n in range(1, 21):
            key = params.get('Tag.%d.Key' % n)
            if key is not None:
                tags[key] = params.get('Tag.%d.Value' % n, '')
        return tags

    @staticmethod
    def _page(items, params):
        size = int(params.get('PageSize') or 10)
        number = int(params.get('PageNumber') or 1)
        if not 1 <= size <= 100:
            raise ApiError(400, 'InvalidPageSize.Malformed', 'Specified parameter PageSize is not valid.')
        return items[(number - 1) * size:number * size], size, number

    def _region(self, params):
        region = params.get('RegionId')
        if not region:
            raise ApiError(400, 'MissingRegionId', 'RegionId is mandatory for this action.')
        return region

    def _describe_disks(self, params):
        region = self._region(params)
        rows = [d for d in self.disks.values() if d['RegionId'] == region]
        if params.get('InstanceId'):
            rows = [d for d in rows if d['InstanceId'] == params['InstanceId']]
        if params.get('DiskIds'):
            wanted = set(json.loads(params['DiskIds']))
            rows = [d for d in rows if d['DiskId'] in wanted]
        if params.get('DiskType') in ('system', 'data'):
            rows = [d for d in rows if d['Type'] == params['DiskType']]
        rows.sort(key=lambda d: d['DiskId'])
        page, size, number = self._page(rows, params)
        return {'Disks': {'Disk': [dict(d) for d in page]}, 'TotalCount': len(rows), 'PageSize': size, 'PageNumber': number}

    def _create_snapshot(self, params):
        disk_id = params.get('DiskId')
        if not disk_id:
            raise ApiError(400, 'MissingDiskId', 'DiskId is mandatory for this action.')
        name = params.get('SnapshotName', '')
        tags = self._tags(params)
        token = params.get('ClientToken')
        fingerprint = json.dumps([disk_id, name, params.get('Description', ''), sorted(tags.items())])
        if token:
            if len(token) > 64 or not all(32 < ord(c) < 127 for c in token):
                raise ApiError(400, 'InvalidClientToken.Malformed', 'Specified parameter ClientToken is not valid.')
            if token in self.tokens:
                seen_fingerprint, snap_id = self.tokens[token]
                if seen_fingerprint != fingerprint:
                    raise ApiError(400, 'IdempotentParameterMismatch', 'The specified parameters are different from before.')
                return {'SnapshotId': snap_id}
        if disk_id not in self.disks:
            raise ApiError(404, 'InvalidDiskId.NotFound', 'The specified disk does not exist.')
        if name:
            lowered = name.lower()
            if lowered.startswith('auto') or lowered.startswith('http://') or lowered.startswith('https://') or not 2 <= len(name) <= 128:
                raise ApiError(400, 'InvalidSnapshotName.Malformed', 'Specified snapshot name is not valid.')
        for key in tags:
            if key.startswith('aliyun') or key.startswith('acs:') or not key:
                raise ApiError(400, 'InvalidTagKey.Malformed', 'Specified tag key is not valid.')
        if any(self._view(s)['Status'] == 'progressing' for s in self.snapshots.values() if s['SourceDiskId'] == disk_id):
            raise ApiError(403, 'IncorrectDiskStatus.CreatingSnapshot', 'A snapshot is being created for the specified disk.')
        snap_id = self._new_snapshot(disk_id, name, params.get('Description', ''), tags)
        if token:
            self.tokens[token] = (fingerprint, snap_id)
        return {'SnapshotId': snap_id}

    def _describe_snapshots(self, params):
        region = self._region(params)
        rows = [self._view(s) for s in self.snapshots.values() if s['RegionId'] == region]
        if params.get('InstanceId'):
            rows = [r for r in rows if r['InstanceId'] == params['InstanceId']]
        if params.get('DiskId'):
            rows = [r for r in rows if r['SourceDiskId'] == params['DiskId']]
        if params.get('SnapshotIds'):
            wanted = set(json.loads(params['SnapshotIds']))
            rows = [r for r in rows if r['SnapshotId'] in wanted]
        if params.get('Status') and params['Status'] != 'all':
            rows = [r for r in rows if r['Status'] == params['Status']]
        for key, value in self._tags(params).items():
            rows = [r for r in rows if any(t['TagKey'] == key and t['TagValue'] == value for t in r['Tags']['Tag'])]
        rows.sort(key=lambda r: (r['CreationTime'], r['SnapshotId']), reverse=True)
        page, size, number = self._page(rows, params)
        return {'Snapshots': {'Snapshot': page}, 'TotalCount': len(rows), 'PageSize': size, 'PageNumber': number}

    def _delete_snapshot(self, params):
        snap_id = params.get('SnapshotId')
        if snap_id not in self.snapshots:
            raise ApiError(404, 'InvalidSnapshotId.NotFound', 'The specified snapshot does not exist.')
        if self._view(self.snapshots[snap_id])['Status'] == 'progressing' and params.get('Force') != 'true':
            raise ApiError(403, 'IncorrectSnapshotStatus', 'The snapshot is being created; use Force to delete it.')
        del self.snapshots[snap_id]
        return {}
