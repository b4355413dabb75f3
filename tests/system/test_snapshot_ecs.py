"""disk_snapshot against the ECS API double, through the real SDK and real ansible runs."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import adhoc
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble

KEY_ID = 'LTAI5tOomguardTestKey01'
SECRET = 'Zx9-ecs-double-SECRET-never-printed-7f3a'
REGION = 'cn-hangzhou'
RUN_TAG = 'oomguard:run-id'
OWNER_TAG = 'oomguard:managed-by'


@pytest.fixture
def ecs():
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=1.0) as double:
        double.add_instance('i-web01', REGION, data_disks=2)
        yield double


def creds():
    return {'ALIBABA_CLOUD_ACCESS_KEY_ID': KEY_ID, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': SECRET}


def snap(ecs, run_id='run-1', env=None, check=False, diff=False, **extra):
    args = {'provider': 'alicloud', 'region': REGION, 'instance_id': 'i-web01', 'run_id': run_id,
            'endpoint_url': ecs.endpoint, 'poll_interval': 0.2, 'wait_timeout': 30, 'retry_delay': 0.05}
    args.update(extra)
    return adhoc('oomguard.fleet.disk_snapshot', args, env=creds() if env is None else env, check=check, diff=diff)


def ours(ecs):
    return [s for s in ecs.snapshots.values() if s['Tags'].get(OWNER_TAG) == 'oomguard.fleet']


def test_three_disks_get_three_tagged_snapshots(ecs):
    res = snap(ecs)
    assert not res.failed, res.output
    assert res['changed'] is True
    assert res['status'] == 'ok'
    assert len(res['snapshots']) == 3
    assert {s['disk_id'] for s in res['snapshots']} == {'d-web01-0', 'd-web01-1', 'd-web01-2'}
    assert all(s['status'] == 'accomplished' and s['progress'] == 100 for s in res['snapshots'])
    made = ours(ecs)
    assert len(made) == 3
    assert all(s['Tags'][RUN_TAG] == 'run-1' for s in made)
    assert sorted(s['SnapshotName'] for s in made) == ['run-1-d-web01-0', 'run-1-d-web01-1', 'run-1-d-web01-2']
    assert ecs.count('CreateSnapshot', 200) == 3


def test_same_run_again_creates_none(ecs):
    first = snap(ecs)
    second = snap(ecs)
    assert not second.failed, second.output
    assert second['changed'] is False
    assert second['created'] == []
    assert sorted(second['reused']) == sorted(first['created'])
    assert ecs.count('CreateSnapshot') == 3
    assert len(ours(ecs)) == 3


def test_client_token_makes_a_retried_create_return_the_same_snapshot(ecs):
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.alicloud import AlicloudBackend
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError, idempotency_token
    backend = AlicloudBackend(REGION, ecs.endpoint, {'access_key_id': KEY_ID, 'access_key_secret': SECRET}, retry_base=0.01)
    token = idempotency_token('run-x', 'd-web01-1')
    first = backend.create_snapshot('d-web01-1', 'name-a', 'd', {'k': 'v'}, token)
    again = backend.create_snapshot('d-web01-1', 'name-a', 'd', {'k': 'v'}, token)
    assert first == again
    assert len(ecs.snapshots_of('d-web01-1')) == 1
    with pytest.raises(CloudError) as err:
        backend.create_snapshot('d-web01-1', 'other-name', 'd', {'k': 'v'}, token)
    assert 'IdempotentParameterMismatch' in str(err.value)


def test_one_snapshot_in_progress_per_disk(ecs):
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.alicloud import AlicloudBackend
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError
    ecs.snapshot_seconds = 30
    backend = AlicloudBackend(REGION, ecs.endpoint, {'access_key_id': KEY_ID, 'access_key_secret': SECRET}, retry_base=0.01)
    backend.create_snapshot('d-web01-0', 'first-one', '', {}, 'token-1')
    with pytest.raises(CloudError) as err:
        backend.create_snapshot('d-web01-0', 'second-one', '', {}, 'token-2')
    assert 'IncorrectDiskStatus.CreatingSnapshot' in str(err.value)
    assert str(err.value).startswith('Failed to create snapshot of disk d-web01-0: ')


def test_retention_deletes_only_our_older_snapshots(ecs):
    foreign = ecs.add_foreign_snapshot('d-web01-1', name='manual-before-upgrade', age_seconds=7200)
    foreign_tagged = ecs.add_foreign_snapshot('d-web01-1', name='other-tool', age_seconds=3600, tags={'team': 'db'})
    run1 = snap(ecs, run_id='run-1')
    run2 = snap(ecs, run_id='run-2', retention=2)
    assert run2['deleted'] == []  # two of ours per disk: nothing to delete yet
    run3 = snap(ecs, run_id='run-3', retention=2)
    assert not run3.failed, run3.output
    assert sorted(run3['deleted']) == sorted(run1['created'])
    assert foreign in ecs.snapshots and foreign_tagged in ecs.snapshots
    left = {s['Tags'][RUN_TAG] for s in ours(ecs)}
    assert left == {'run-2', 'run-3'}
    assert len(ours(ecs)) == 6


def test_retention_check_mode_lists_but_deletes_nothing(ecs):
    snap(ecs, run_id='run-1')
    snap(ecs, run_id='run-2')
    before = set(ecs.snapshots)
    res = snap(ecs, run_id='run-2', retention=1, check=True)
    assert res['changed'] is True
    assert len(res['would_delete']) == 3
    assert res['deleted'] == []
    assert set(ecs.snapshots) == before


def test_check_mode_creates_nothing(ecs):
    res = snap(ecs, check=True)
    assert not res.failed, res.output
    assert res['changed'] is True
    assert [w['disk_id'] for w in res['would_create']] == ['d-web01-0', 'd-web01-1', 'd-web01-2']
    assert res['created'] == []
    assert ecs.snapshots == {}
    assert ecs.count('CreateSnapshot') == 0


def test_injected_throttling_is_retried_and_succeeds(ecs):
    ecs.inject_throttling('CreateSnapshot', 3, code='Throttling.User', status=400)
    ecs.inject_throttling('DescribeDisks', 2, code='Throttling', status=403)
    res = snap(ecs)
    assert not res.failed, res.output
    assert res['status'] == 'ok' and len(res['created']) == 3
    assert ecs.count('CreateSnapshot', 400) == 3
    assert ecs.count('DescribeDisks', 403) == 2
    assert ecs.count('CreateSnapshot', 200) == 3


def test_server_errors_are_retried(ecs):
    ecs.inject_server_error('DescribeSnapshots', 2)
    res = snap(ecs)
    assert not res.failed, res.output
    assert ecs.count('DescribeSnapshots', 503) == 2


def test_throttling_beyond_the_retries_fails_with_the_code(ecs):
    ecs.inject_throttling('DescribeDisks', 50, code='Throttling.Api')
    res = snap(ecs, retries=2)
    assert res.failed
    assert res['msg'].startswith('Failed to list disks of instance i-web01: Throttling.Api')
    assert res['snapshots'] == []
    assert ecs.snapshots == {}


def test_failed_snapshot_fails_the_host_with_ids_and_states(ecs):
    ecs.fail_snapshots_of('d-web01-2')
    res = snap(ecs)
    assert res.failed
    assert 'Failed to create snapshots of instance i-web01: the cloud marked' in res['msg']
    failed = [s for s in res['snapshots'] if s['status'] == 'failed']
    assert [s['disk_id'] for s in failed] == ['d-web01-2']
    assert failed[0]['snapshot_id'] in res['msg']
    assert len(res['snapshots']) == 3
    assert res['status'] == 'failed'


def test_failed_snapshot_keeps_older_ones(ecs):
    snap(ecs, run_id='run-1')
    ecs.fail_snapshots_of('d-web01-2')
    res = snap(ecs, run_id='run-2', retention=1)
    assert res.failed
    assert res['deleted'] == []
    assert len([s for s in ours(ecs) if s['Tags'][RUN_TAG] == 'run-1']) == 3


def test_timeout_fails_with_states_so_far(ecs):
    ecs.snapshot_seconds = 60
    res = snap(ecs, wait_timeout=1)
    assert res.failed
    assert res['timed_out'] is True
    assert 'Failed to wait for snapshots of instance i-web01: still not accomplished after 1 seconds' in res['msg']
    assert all(s['status'] == 'progressing' for s in res['snapshots'])
    assert all(s['snapshot_id'] in res['msg'] for s in res['snapshots'])


def test_on_timeout_return_reports_progress_without_failing(ecs):
    ecs.snapshot_seconds = 60
    res = snap(ecs, wait_timeout=1, on_timeout='return')
    assert not res.failed, res.output
    assert res['status'] == 'progressing' and res['timed_out'] is True
    assert all('progressing' in line for line in res['progress'])


def test_wait_false_returns_progressing(ecs):
    ecs.snapshot_seconds = 60
    res = snap(ecs, wait=False)
    assert not res.failed
    assert res['status'] == 'progressing'
    assert len(res['created']) == 3


def test_disk_selection(ecs):
    res = snap(ecs, disks=['system'])
    assert [s['disk_id'] for s in res['snapshots']] == ['d-web01-0']
    res = snap(ecs, run_id='run-2', disks=['data'])
    assert sorted(s['disk_id'] for s in res['snapshots']) == ['d-web01-1', 'd-web01-2']
    res = snap(ecs, run_id='run-3', disks=['d-web01-2'])
    assert [s['disk_id'] for s in res['snapshots']] == ['d-web01-2']
    res = snap(ecs, run_id='run-4', disks=['d-nope'])
    assert res.failed
    assert 'disk ids d-nope are not attached to the instance' in res['msg']


def test_unknown_instance_is_a_clear_error(ecs):
    res = snap(ecs, instance_id='i-missing')
    assert res.failed
    assert res['msg'] == 'Failed to list disks of instance i-missing: no disks found in region cn-hangzhou; check instance_id and region'


def test_name_starting_with_auto_is_refused_before_any_create(ecs):
    res = snap(ecs, name='auto-{disk_id}')
    assert res.failed
    assert 'may not start with "auto"' in res['msg']
    assert ecs.count('CreateSnapshot') == 0


def test_bad_name_template_field(ecs):
    res = snap(ecs, name='x-{hostname}')
    assert res.failed
    assert 'unknown field {hostname}' in res['msg']


def test_wrong_secret_is_refused_by_signature_check(ecs):
    res = snap(ecs, env={'ALIBABA_CLOUD_ACCESS_KEY_ID': KEY_ID, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': 'wrong-secret'})
    assert res.failed
    assert 'SignatureDoesNotMatch' in res['msg']
    assert ecs.snapshots == {}
    assert ('SignatureDoesNotMatch', 'The request signature does not conform to Aliyun standards.') in ecs.refused


def test_unsigned_and_tampered_requests_are_refused(ecs):
    url = ecs.endpoint + '/?RegionId=%s&DiskId=d-web01-0' % REGION
    request = urllib.request.Request(url, method='POST', headers={'x-acs-action': 'CreateSnapshot', 'x-acs-version': '2014-05-26'})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert json.loads(err.value.read())['Code'] == 'MissingAuthorization'
    forged = urllib.request.Request(url, method='POST', headers={
        'x-acs-action': 'CreateSnapshot', 'x-acs-version': '2014-05-26',
        'Authorization': 'ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=host;x-acs-action;x-acs-content-sha256;'
                         'x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=%s' % (KEY_ID, '0' * 64),
        'x-acs-date': '2026-11-29T02:00:00Z', 'x-acs-signature-nonce': 'n1',
        'x-acs-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(forged, timeout=5)
    assert json.loads(err.value.read())['Code'] in ('SignatureDoesNotMatch', 'InvalidTimeStamp.Expired')
    assert ecs.snapshots == {}


def test_signature_of_the_sdk_is_verified_for_real(ecs):
    """The double recomputes the signature: the SDK's request passes, the same request with one query value changed does not."""
    from ansible_collections.oomguard.fleet.tests.harness import ecs_double
    captured = {}
    original = ecs._verify

    def capture(handler, body):
        original(handler, body)
        captured.setdefault('path', handler.path)
        captured.setdefault('headers', handler.headers)
    ecs._verify = capture
    assert not snap(ecs, disks=['system']).failed
    auth = captured['headers']['Authorization']
    fields = dict(p.split('=', 1) for p in auth.split(' ', 1)[1].split(','))
    names = fields['SignedHeaders'].split(';')
    split = urllib.parse.urlsplit(captured['path'])
    pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
    good = ecs_double.sign(SECRET, ecs_double.canonical_request('POST', split.path, pairs, captured['headers'], names,
                                                                captured['headers']['x-acs-content-sha256']))
    assert good == fields['Signature']
    tampered = [(k, v + 'x' if k == 'RegionId' else v) for k, v in pairs]
    bad = ecs_double.sign(SECRET, ecs_double.canonical_request('POST', split.path, tampered, captured['headers'], names,
                                                               captured['headers']['x-acs-content-sha256']))
    assert bad != fields['Signature']


def test_missing_sdk_gives_missing_required_lib(ecs, tmp_path):
    shadow = tmp_path / 'shadow'
    (shadow / 'alibabacloud_ecs20140526').mkdir(parents=True)
    (shadow / 'alibabacloud_ecs20140526' / '__init__.py').write_text('raise ImportError("No module named alibabacloud_ecs20140526")\n')
    env = dict(creds(), PYTHONPATH=str(shadow) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    res = snap(ecs, env=env)
    assert res.failed
    assert 'Failed to import the required Python library (alibabacloud_ecs20140526 and alibabacloud_tea_openapi)' in res['msg']
    assert ecs.requests == []


def test_bad_options_fail_clearly(ecs):
    res = snap(ecs, retention=-1)
    assert res.failed and res['msg'] == 'retention must be 0 or more, got -1'
    res = adhoc('oomguard.fleet.disk_snapshot', {'provider': 'alicloud', 'instance_id': 'i-web01', 'endpoint_url': ecs.endpoint},
                env=creds())
    assert res.failed and res['msg'] == 'region is required with instance_id'
    res = adhoc('oomguard.fleet.disk_snapshot', {'provider': 'alicloud', 'region': REGION, 'endpoint_url': ecs.endpoint}, env=creds())
    assert res.failed and res['msg'] == 'give exactly one of instance_id and instances'


def test_batch_of_instances_isolates_a_failing_one(ecs):
    ecs.add_instance('i-web02', REGION, data_disks=1)
    ecs.add_instance('i-web03', REGION, data_disks=0)
    ecs.fail_snapshots_of('d-web02-1')
    args = {'provider': 'alicloud', 'region': REGION, 'run_id': 'batch-1', 'endpoint_url': ecs.endpoint, 'poll_interval': 0.2,
            'retry_delay': 0.05, 'instances': [{'host': 'web01', 'instance_id': 'i-web01'}, {'host': 'web02', 'instance_id': 'i-web02'},
                                               {'host': 'web03', 'instance_id': 'i-web03'}, {'host': 'ghost', 'instance_id': 'i-ghost'}]}
    res = adhoc('oomguard.fleet.disk_snapshot', dict(args, progress_interval=1), env=creds())
    assert not res.failed, res.output
    assert res['failed_hosts'] == ['ghost', 'web02']
    assert res['hosts']['web01']['status'] == 'ok' and len(res['hosts']['web01']['snapshots']) == 3
    assert res['hosts']['web03']['status'] == 'ok' and len(res['hosts']['web03']['snapshots']) == 1
    assert 'd-web02-1' in res['hosts']['web02']['msg']
    assert res['hosts']['ghost']['msg'].startswith('Failed to list disks of instance i-ghost')


def test_no_credentials_anywhere_is_a_clear_error_and_nothing_is_sent(ecs, tmp_path):
    res = snap(ecs, env={'HOME': str(tmp_path)}, retries=1)
    assert res.failed
    assert res['msg'].startswith('Failed to list disks of instance i-web01: CredentialException(')
    assert 'unable to load credentials from any of the providers in the chain' in res['msg']
    assert ecs.requests == []


def test_diff_mode_shows_the_snapshots_before_and_after(ecs, tmp_path):
    from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import playbook
    snap(ecs, run_id='run-1')
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Snapshot with retention 1
      oomguard.fleet.disk_snapshot:
        provider: alicloud
        region: %s
        instance_id: i-web01
        run_id: run-2
        endpoint_url: %s
        retention: 1
        disks: [system]
""" % (REGION, ecs.endpoint)
    old = [s['SnapshotId'] for s in ours(ecs) if s['SourceDiskId'] == 'd-web01-0'][0]
    check = playbook(tmp_path, play, 'localhost ansible_connection=local\n', env=creds(), args=['--check', '--diff'])
    assert check.returncode == 0, check.stdout + check.stderr
    assert '+        "(new snapshot of d-web01-0)"' in check.stdout
    assert len(ours(ecs)) == 3
    real = playbook(tmp_path, play, 'localhost ansible_connection=local\n', env=creds(), args=['--diff'])
    assert real.returncode == 0, real.stdout + real.stderr
    new = [s['SnapshotId'] for s in ours(ecs) if s['SourceDiskId'] == 'd-web01-0' and s['Tags'][RUN_TAG] == 'run-2'][0]
    assert old not in ecs.snapshots
    assert '-        "%s"' % old in real.stdout
    assert '+        "%s"' % new in real.stdout


def batch_requests(ecs, count, **overrides):
    requests = []
    for n in range(count):
        instance_id = 'i-many%d' % n
        ecs.add_instance(instance_id, REGION, data_disks=1)
        request = dict(key='host%d' % n, instance_id=instance_id, region=REGION, run_id='run-many', disks=['all'],
                       name='{run_id}-{disk_id}', description='d', tags={}, retention=0, wait=True, wait_timeout=30,
                       poll_interval=0.2)
        request.update(overrides)
        requests.append(request)
    return requests


def test_many_instances_are_polled_together(ecs):
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.alicloud import AlicloudBackend
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import run_many
    backend = AlicloudBackend(REGION, ecs.endpoint, {'access_key_id': KEY_ID, 'access_key_secret': SECRET}, retry_base=0.01)
    results = run_many(lambda request: backend, batch_requests(ecs, 8), concurrency=8)
    assert all(r['status'] == 'ok' and not r['failed'] and len(r['snapshots']) == 2 for r in results.values())
    # 8 lookups of the run's snapshots before creating, then one call per poll for all 16 snapshots
    # (about 1 s / 0.2 s polls), not one per instance per poll.
    polls = ecs.count('DescribeSnapshots') - 8
    assert 1 <= polls <= 12, polls


def test_a_failing_shared_poll_fails_each_waiting_host_with_the_cause(ecs):
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.alicloud import AlicloudBackend
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import run_many
    backend = AlicloudBackend(REGION, ecs.endpoint, {'access_key_id': KEY_ID, 'access_key_secret': SECRET},
                              retries=1, retry_base=0.01)
    requests = batch_requests(ecs, 3)
    original = backend.create_snapshot
    made = []

    def create_then_throttle(*args):
        # Once the last of the 6 snapshots exists, every later DescribeSnapshots is throttled.
        made.append(original(*args))
        if len(made) == 6:
            ecs.inject_throttling('DescribeSnapshots', 1000, code='Throttling.User')
        return made[-1]
    backend.create_snapshot = create_then_throttle
    results = run_many(lambda request: backend, requests, concurrency=1)
    for result in results.values():
        assert result['failed'] is True
        assert result['msg'].startswith('Failed to describe snapshots: Throttling.User')
        assert len(result['snapshots']) == 2
