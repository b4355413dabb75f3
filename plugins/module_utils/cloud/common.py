# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cloud-neutral parts of disk snapshotting: the backend interface, the shapes the
backends return, retries with backoff, and the pure planning functions
(disk selection, name templates, retention). Private to the oomguard.fleet collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import random
import re
import time

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError

OWNER_TAG_KEY = 'oomguard:managed-by'
OWNER_TAG_VALUE = 'oomguard.fleet'
RUN_TAG_KEY = 'oomguard:run-id'

STATUS_PROGRESSING = 'progressing'
STATUS_ACCOMPLISHED = 'accomplished'
STATUS_FAILED = 'failed'

DISK_SELECTORS = ('all', 'system', 'data')

_TEMPLATE_FIELD = re.compile(r'\{([a-z_]+)\}')
# A zone id is its region id and one letter: cn-hangzhou-h (cn-hangzhou), ap-southeast-1a and us-east-1a
# (ap-southeast-1, us-east-1). No region id of either cloud ends in a one-letter part or a digit and a letter.
_ZONE_ID = re.compile(r'^([a-z][a-z0-9-]*?)(?:-[a-z]|(?<=[0-9])[a-z])$')


class CloudError(OomguardError):
    """The one error type the modules catch: 'Failed to <verb> <noun>: <cause>'."""

    def __init__(self, verb, noun, cause, code=None, retryable=False):
        self.verb = verb
        self.noun = noun
        self.cause = cause
        self.code = code
        self.retryable = retryable
        super().__init__('Failed to %s %s: %s' % (verb, noun, cause))


class SnapshotBackend(object):
    """One interface, one implementation per cloud.

    Disks are dicts ``{disk_id, type, device, size_gb}`` with ``type`` ``system`` or ``data``.
    Snapshots are dicts ``{snapshot_id, disk_id, name, status, progress, created_at, tags}``
    with ``status`` one of ``progressing``, ``accomplished``, ``failed``.
    """

    provider = None
    # The cloud's words for a snapshot that is done or failed; any other state (pending, recovering) is progressing.
    DONE_STATES = ()
    FAILED_STATES = ()
    retries = 6
    retry_base = 1.0
    retry_cap = 20.0
    calls = 0

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)

    @staticmethod
    def classify_error(exc):
        """Backoff factor for a retryable SDK error, or None."""
        return None

    @staticmethod
    def describe_error(exc):
        return str(exc)

    @staticmethod
    def error_code(exc):
        return getattr(exc, 'code', None)

    def _call(self, verb, noun, func):
        """The one wrapper around every API call: count, retry with backoff, turn errors into CloudError."""
        def once():
            self.calls += 1
            return func()
        try:
            result, dummy = call_with_retries(once, self.classify_error, attempts=self.retries, base=self.retry_base,
                                              cap=self.retry_cap, sleep=self.sleep)
            return result
        except Exception as exc:  # pylint: disable=broad-except
            raise CloudError(verb, noun, self.describe_error(exc), code=self.error_code(exc))

    def snapshot(self, snapshot_id, disk_id, name, state, progress, created_at, tags, **extra):
        """The one snapshot shape of every backend, from the cloud's own fields."""
        status = STATUS_ACCOMPLISHED if state in self.DONE_STATES else STATUS_FAILED if state in self.FAILED_STATES else STATUS_PROGRESSING
        snap = {'snapshot_id': snapshot_id, 'disk_id': disk_id, 'name': name, 'status': status,
                'progress': parse_progress(progress), 'created_at': created_at, 'tags': tags}
        snap.update(extra)
        return snap

    def list_disks(self, instance_id):
        raise NotImplementedError

    def create_snapshot(self, disk_id, name, description, tags, idempotency_token):
        raise NotImplementedError

    def describe_snapshots(self, instance_id=None, disk_id=None, snapshot_ids=None, tags=None):
        raise NotImplementedError

    def delete_snapshot(self, snapshot_id):
        raise NotImplementedError


def backoff_delays(attempts, base, cap, rng=None):
    """Full-jitter exponential backoff: one delay per retry (``attempts - 1`` of them)."""
    rng = rng or random.Random()
    delays = []
    for retry in range(max(attempts - 1, 0)):
        ceiling = min(cap, base * (2 ** retry))
        delays.append(ceiling / 2.0 + rng.uniform(0, ceiling / 2.0))
    return delays


def call_with_retries(func, classify, attempts=6, base=1.0, cap=20.0, sleep=time.sleep, rng=None):
    """Call ``func()``; on an error that ``classify(exc)`` rates retryable, back off and retry.

    ``classify`` returns ``None`` (not retryable) or a multiplier for the delay
    (``1`` for throttling and 5xx, more for the per-volume snapshot rate limit).
    Returns ``(result, retries)``; re-raises the last error when attempts run out.
    """
    delays = backoff_delays(attempts, base, cap, rng)
    retries = 0
    while True:
        try:
            return func(), retries
        except Exception as exc:  # pylint: disable=broad-except
            factor = classify(exc)
            if factor is None or retries >= len(delays):
                raise
            sleep(min(delays[retries] * factor, cap * factor))
            retries += 1


def parse_progress(value):
    """'40%' / '40' / 40 / None -> int percent 0..100."""
    if value is None or value == '':
        return 0
    text = str(value).strip().rstrip('%').strip()
    try:
        number = int(float(text))
    except ValueError:
        return 0
    return max(0, min(100, number))


def select_disks(disks, selectors):
    """Pick disks by ``all``, ``system``, ``data`` or explicit ids; unknown ids are an error."""
    selectors = list(selectors or ['all'])
    by_id = dict((disk['disk_id'], disk) for disk in disks)
    unknown = [item for item in selectors if item not in DISK_SELECTORS and item not in by_id]
    if unknown:
        raise CloudError('select', 'disks', 'disk ids %s are not attached to the instance (attached: %s)'
                         % (', '.join(unknown), ', '.join(sorted(by_id)) or 'none'))
    chosen = []
    for disk in disks:
        for item in selectors:
            if item == 'all' or item == disk['disk_id'] or item == disk['type']:
                chosen.append(disk)
                break
    return chosen


def render_template(template, values):
    """Fill ``{field}`` placeholders; an unknown field is an error naming the known ones."""
    def repl(match):
        key = match.group(1)
        if key not in values:
            raise CloudError('render', 'name template %r' % template,
                             'unknown field {%s}; known fields: %s' % (key, ', '.join('{%s}' % k for k in sorted(values))))
        return str(values[key])
    return _TEMPLATE_FIELD.sub(repl, template)


def validate_snapshot_name(name):
    """Both clouds accept 2..128 characters; ECS refuses names starting with auto or http(s)://."""
    if len(name) < 2 or len(name) > 128:
        return 'snapshot name %r must be 2 to 128 characters long' % name
    lowered = name.lower()
    if lowered.startswith('auto'):
        return 'snapshot name %r may not start with "auto" (reserved for automatic snapshots)' % name
    if lowered.startswith('http://') or lowered.startswith('https://'):
        return 'snapshot name %r may not start with http:// or https://' % name
    return None


def idempotency_token(run_id, disk_id):
    """A stable ClientToken (ASCII, at most 64 characters) per run and disk."""
    return 'oomguard-' + hashlib.sha256(('%s|%s' % (run_id, disk_id)).encode('utf-8')).hexdigest()[:48]


def snapshot_tags(run_id, extra_tags):
    tags = dict(extra_tags or {})
    tags[OWNER_TAG_KEY] = OWNER_TAG_VALUE
    if run_id:
        tags[RUN_TAG_KEY] = run_id
    return tags


def is_ours(snapshot):
    return (snapshot.get('tags') or {}).get(OWNER_TAG_KEY) == OWNER_TAG_VALUE


def plan_retention(snapshots, keep, protect_ids=()):
    """Snapshot ids to delete so that each disk keeps its ``keep`` newest snapshots of ours.

    Snapshots without our owner tag are never candidates; ids in ``protect_ids`` (this
    run's) are always kept and count towards ``keep``. ``keep`` 0 means keep everything.
    """
    if not keep:
        return []
    protect = set(protect_ids)
    per_disk = {}
    for snap in snapshots:
        if is_ours(snap):
            per_disk.setdefault(snap['disk_id'], []).append(snap)
    doomed = []
    for disk_id in sorted(per_disk):
        ordered = sorted(per_disk[disk_id], key=lambda s: (s['snapshot_id'] in protect, s.get('created_at') or '', s['snapshot_id']),
                         reverse=True)
        for snap in ordered[keep:]:
            if snap['snapshot_id'] not in protect:
                doomed.append(snap['snapshot_id'])
    return doomed


def summarize(snapshots):
    """The contract's status and message for a list of this run's snapshots."""
    counts = {}
    for snap in snapshots:
        counts[snap['status']] = counts.get(snap['status'], 0) + 1
    if not snapshots:
        return 'ok', 'no disks selected'
    if counts.get(STATUS_FAILED):
        status = 'failed'
    elif counts.get(STATUS_ACCOMPLISHED) == len(snapshots):
        status = 'ok'
    else:
        status = STATUS_PROGRESSING
    parts = ['%d %s' % (counts[key], key) for key in (STATUS_ACCOMPLISHED, STATUS_PROGRESSING, STATUS_FAILED) if counts.get(key)]
    noun = 'snapshot' if len(snapshots) == 1 else 'snapshots'
    return status, '%d %s: %s' % (len(snapshots), noun, ', '.join(parts))


def progress_lines(snapshots):
    """One human line per snapshot, for progress output."""
    return ['%s (%s): %s %d%%' % (s['snapshot_id'], s['disk_id'], s['status'], s['progress']) for s in snapshots]


def region_of_zone(value):
    """The region id of a zone id (``cn-hangzhou-h`` -> ``cn-hangzhou``, ``us-east-1a`` -> ``us-east-1``), or None
    when ``value`` is not a zone id (a region id, or anything else)."""
    match = _ZONE_ID.match(value or '')
    return match.group(1) if match else None


def zone_as_region_problem(value, where):
    """A message when ``value``, given where a region is needed (``where`` names the option or variable), is a zone id."""
    region = region_of_zone(value)
    if region is None:
        return None
    return ('%s is %r, which is a zone id, not a region id; set it to the region %r (the zone id without its last letter)'
            % (where, value, region))


def check_cloud_params(params):
    """A message for an invalid combination of the cloud options, else None."""
    if params.get('profile') and (params.get('access_key') or params.get('secret_key') or params.get('security_token')):
        return ('profile and access_key/secret_key/security_token are mutually exclusive: name a profile, '
                'or give the keys, not both')
    bundle = params.get('ca_bundle')
    if bundle and not os.path.isfile(bundle):
        return 'ca_bundle %s is not a file; give the path of a PEM file with the CA certificates to trust' % bundle
    return None


def cloud_argument_spec():
    """The options of the doc fragment oomguard.fleet.cloud."""
    return dict(
        endpoint_url=dict(type='str'),
        access_key=dict(type='str', aliases=['access_key_id'], no_log=False),
        secret_key=dict(type='str', aliases=['access_key_secret'], no_log=True),
        security_token=dict(type='str', aliases=['session_token'], no_log=True),
        profile=dict(type='str', aliases=['aws_profile']),
        ca_bundle=dict(type='path', aliases=['aws_ca_bundle']),
        retries=dict(type='int', default=6),
        retry_delay=dict(type='float', default=1.0),
    )
