"""The batch runner of disk_snapshot (module_utils/cloud/runner.py): run_batch against an in-memory cloud on a fake
clock, and the bookkeeping the action plugin's waiting rounds use (pending, merge, time_out, host_lines)."""

from __future__ import annotations

import re

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import runner
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import MissingSdk
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import (
    batch_result,
    host_lines,
    merge,
    pending,
    prepare,
    run_batch,
    snapshot_argument_spec,
    time_out,
)
from ansible_collections.oomguard.fleet.tests.unit.fake_cloud import FakeClock, FakeCloud


def host(status, failed=False, snapshots=None, **extra):
    result = {'status': status, 'failed': failed, 'instance_id': 'i-' + status, 'changed': False,
              'snapshots': snapshots if snapshots is not None else [{'snapshot_id': 's-1', 'disk_id': 'd-1', 'status': status,
                                                                     'progress': 40}],
              'created': [], 'deleted': []}
    result.update(extra)
    return result


def test_pending_skips_done_and_failed():
    hosts = {'a': host('progressing'), 'b': host('ok'), 'c': host('failed', failed=True), 'd': host('progressing')}
    assert pending(hosts) == ['a', 'd']
    assert batch_result(hosts, {'run_id': 'r', 'provider': 'aws'})['failed_hosts'] == ['c']


def test_merge_keeps_what_earlier_rounds_created():
    hosts = {'a': host('progressing', changed=True, created=['s-1']), 'b': host('ok')}
    merged = merge(hosts, {'a': host('ok', reused=['s-1'], deleted=['s-0'])})
    assert merged['a']['status'] == 'ok'
    assert merged['a']['changed'] is True
    assert merged['a']['created'] == ['s-1'] and merged['a']['reused'] == []
    assert merged['a']['deleted'] == ['s-0']
    assert merged['b'] is hosts['b']


def test_host_lines_prefix_hosts_and_show_failures_and_messages():
    hosts = {'b': host('progressing'), 'a': host('failed', failed=True, msg='Failed to x'),
             'c': host('ok', snapshots=[], message='would create 2 snapshots'), 'd': host('ok', snapshots=[], message='')}
    assert host_lines(hosts) == ['a: s-1 (d-1): failed 40%', 'a: FAILED: Failed to x', 'b: s-1 (d-1): progressing 40%',
                                 'c: would create 2 snapshots']
    assert host_lines(hosts, ['b']) == ['b: s-1 (d-1): progressing 40%']


def test_time_out_fails_only_pending_hosts_with_their_states():
    hosts = time_out({'a': host('progressing'), 'b': host('ok')}, 30)
    assert hosts['a']['failed'] is True and hosts['a']['timed_out'] is True and hosts['a']['status'] == 'failed'
    assert hosts['a']['msg'] == hosts['a']['message'] == (
        'Failed to wait for snapshots of instance i-progressing: still not accomplished after 30 seconds '
        '(wait_timeout); states: s-1 (d-1): progressing 40%')
    assert hosts['b']['failed'] is False


def batch_params(**overrides):
    params = dict((key, spec.get('default')) for key, spec in snapshot_argument_spec().items())
    params.update(provider='alicloud', region='cn-hangzhou', poll_interval=1.0, progress_interval=2,
                  instances=[{'host': 'web01', 'instance_id': 'i-1', 'region': None},
                             {'host': 'web02', 'instance_id': 'i-2', 'region': None}])
    params.update(overrides)
    return params


@pytest.fixture
def cloud(monkeypatch):
    clock = FakeClock()
    fake = FakeCloud(clock)
    fake.add('i-1', disks=2)
    fake.add('i-2', disks=1)
    built = []

    def build(provider, params):
        built.append((provider, params['region'], params.get('access_key')))
        return fake

    monkeypatch.setattr(runner, 'require_sdk', lambda provider: None)
    monkeypatch.setattr(runner, 'build_backend', build)
    fake.built = built
    return fake


def run(cloud, check_mode=False, progress=None, **overrides):
    params = batch_params(**overrides)
    assert prepare(params) is None
    return run_batch(params, check_mode=check_mode, progress=progress, sleep=cloud.clock.sleep, clock=cloud.clock)


def test_prepare_checks_the_options_and_makes_a_run_id_once():
    params = batch_params(run_id=None)
    assert prepare(params) is None
    assert re.match(r'^oomguard-\d{8}T\d{6}Z-\d{4}$', params['run_id'])
    made = params['run_id']
    assert prepare(params) is None and params['run_id'] == made
    bad = batch_params(run_id=None, concurrency=0)
    assert prepare(bad) == 'concurrency must be 1 or more, got 0'
    assert bad['run_id'] is None


def test_run_batch_snapshots_every_host_and_reports_progress(cloud):
    seen = []
    result = run(cloud, progress=seen.append, run_id='run-1', access_key='AK')
    assert result['failed_hosts'] == [] and result['changed'] is True and result['run_id'] == 'run-1'
    assert result['provider'] == 'alicloud' and result['message'] == '2 instances, 0 failed'
    assert [s['status'] for s in result['hosts']['web01']['snapshots']] == ['accomplished', 'accomplished']
    assert len(result['hosts']['web02']['snapshots']) == 1
    # One backend for the region, built with the options; each instance's disks listed once.
    assert cloud.built == [('alicloud', 'cn-hangzhou', 'AK')]
    assert cloud.calls.count('list_disks') == 2
    # The started snapshots first, then every 2 s of the 4 s wait: the lines of the hosts still waiting.
    assert seen[0] == ['web01: s-1 (d-i-1-0): progressing 0%', 'web01: s-2 (d-i-1-1): progressing 0%',
                       'web02: s-3 (d-i-2-0): progressing 0%']
    assert len(seen) >= 2 and all(re.match(r'^web0[12]: s-\d \(d-i-[12]-\d\): progressing \d+%$', line)
                                  for lines in seen for line in lines)
    assert 4.0 <= cloud.clock.now <= 6.0


def test_run_batch_again_with_the_same_run_id_creates_nothing(cloud):
    run(cloud, run_id='run-1')
    again = run(cloud, run_id='run-1')
    assert again['changed'] is False and again['failed_hosts'] == []
    assert sorted(again['hosts']['web01']['reused']) == ['s-1', 's-2'] and again['hosts']['web01']['created'] == []
    assert len(cloud.snapshots) == 3


def test_run_batch_in_check_mode_creates_nothing(cloud):
    seen = []
    result = run(cloud, check_mode=True, progress=seen.append, run_id='run-1')
    assert cloud.snapshots == {} and 'create_snapshot' not in cloud.calls
    assert result['changed'] is True and seen == []
    assert result['hosts']['web01']['message'] == 'would create 2 snapshots'
    assert host_lines(result['hosts']) == ['web01: would create 2 snapshots', 'web02: would create 1 snapshots']


def test_run_batch_isolates_failing_hosts(cloud):
    cloud.failing.add('d-i-2-0')
    result = run(cloud, run_id='run-1', instances=[{'host': 'web01', 'instance_id': 'i-1', 'region': None},
                                                   {'host': 'web02', 'instance_id': 'i-2', 'region': None},
                                                   {'host': None, 'instance_id': 'i-ghost', 'region': None}])
    assert result['failed_hosts'] == ['i-ghost', 'web02']
    assert result['hosts']['web01']['status'] == 'ok' and result['hosts']['web01']['failed'] is False
    assert result['hosts']['web02']['msg'].startswith('Failed to create snapshots of instance i-2: the cloud marked s-3 (disk d-i-2-0) failed')
    assert result['hosts']['i-ghost']['msg'] == 'Failed to list disks of instance i-ghost: no disks found'
    assert result['message'] == '3 instances, 2 failed'


def test_run_batch_times_out_with_the_runs_message(cloud):
    cloud.seconds = 100.0
    result = run(cloud, run_id='run-1', wait_timeout=3)
    assert result['failed_hosts'] == ['web01', 'web02']
    assert result['hosts']['web02']['msg'] == (
        'Failed to wait for snapshots of instance i-2: still not accomplished after 3 seconds (wait_timeout); '
        'states: s-3 (d-i-2-0): progressing 3%')
    assert result['hosts']['web02']['timed_out'] is True


def test_run_batch_without_waiting_returns_the_started_states(cloud):
    result = run(cloud, run_id='run-1', wait=False)
    assert result['failed_hosts'] == [] and cloud.clock.now == 0.0
    assert [s['status'] for s in result['hosts']['web01']['snapshots']] == ['progressing', 'progressing']


def test_run_batch_says_which_sdk_is_missing(monkeypatch):
    def missing(provider):
        raise MissingSdk('boto3', 'Traceback: ImportError')
    monkeypatch.setattr(runner, 'require_sdk', missing)
    with pytest.raises(MissingSdk) as err:
        run_batch(batch_params(provider='aws', run_id='r'))
    assert err.value.library == 'boto3'
