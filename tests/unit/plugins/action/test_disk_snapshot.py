# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disk_snapshot action: where a batch runs (this process, or the module in rounds), what it passes and prints.

This process's batch runs against an in-memory cloud (tests/unit/fake_cloud.py) put in place of the SDK
backends; the module's rounds are a fake ``_execute_module`` that answers as the module would.
"""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.oomguard.fleet.plugins.action import disk_snapshot as action
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import runner
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import MissingSdk
from ansible_collections.oomguard.fleet.tests.unit.fake_cloud import FakeClock, FakeCloud

INSTANCES = [{'host': 'web01', 'instance_id': 'i-1'}, {'host': 'web02', 'instance_id': 'i-2'}]


def round_result(statuses, **extra):
    """What the module returns for a batch whose hosts are in ``statuses`` ({host: status})."""
    hosts = {}
    for key, status in statuses.items():
        snap = {'snapshot_id': 's-' + key, 'disk_id': 'd-' + key, 'status': 'accomplished' if status == 'ok' else status,
                'progress': 100 if status == 'ok' else 40}
        hosts[key] = {'status': status, 'failed': status == 'failed', 'changed': True, 'instance_id': 'i-' + key[-1],
                      'snapshots': [snap], 'created': [snap['snapshot_id']], 'reused': [], 'deleted': [], 'message': status}
        if status == 'failed':
            hosts[key]['msg'] = 'Failed to create snapshots of instance i-%s: the cloud marked it failed' % key[-1]
    result = {'changed': True, 'run_id': 'ignored', 'provider': 'alicloud', 'hosts': hosts}
    result.update(extra)
    return result


class Harness(object):
    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.shown = []
        self.verbose = []
        self.calls = []
        self.answers = []
        self.clock = FakeClock()
        self.cloud = FakeCloud(time.monotonic, seconds=0.3)
        self.cloud.add('i-1', disks=2)
        self.cloud.add('i-2', disks=1)
        self.built = []
        monkeypatch.setattr(action.display, 'display', lambda msg, *a, **kw: self.shown.append(msg))
        monkeypatch.setattr(action.display, 'vvv', lambda msg, *a, **kw: self.verbose.append(msg))
        monkeypatch.setattr(action, 'require_sdk', lambda provider: None)
        monkeypatch.setattr(runner, 'require_sdk', lambda provider: None)
        monkeypatch.setattr(runner, 'build_backend', self.build)

    def build(self, provider, params):
        self.built.append(dict((k, params.get(k)) for k in ('region', 'access_key', 'secret_key', 'security_token', 'profile')))
        return self.cloud

    def run(self, transport='local', become=False, check_mode=False, environment=None, **args):
        task = mock.MagicMock()
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.diff = False
        task.environment = [environment] if environment is not None else None
        connection = mock.MagicMock()
        connection.transport = transport
        play_context = mock.MagicMock()
        play_context.become = become
        templar = mock.MagicMock()
        templar.template.side_effect = lambda value, *a, **kw: value
        plugin = action.ActionModule(task, connection, play_context, loader=None, templar=templar, shared_loader_obj=None)
        plugin.clock = self.clock

        def fake_execute_module(module_name=None, module_args=None, task_vars=None, **kwargs):
            self.calls.append(dict(module_args))
            self.clock.now += module_args.get('wait_timeout', 0) if module_args.get('on_timeout') == 'return' else 0
            answer = self.answers.pop(0)
            if callable(answer):
                answer = answer(module_args)
            return answer

        plugin._execute_module = fake_execute_module
        return plugin.run(task_vars={'inventory_hostname': 'localhost'})


@pytest.fixture
def harness(monkeypatch):
    return Harness(monkeypatch)


def batch(**extra):
    args = dict(provider='alicloud', region='cn-hangzhou', run_id='run-1', poll_interval=0.05, progress_interval=1,
                instances=INSTANCES)
    args.update(extra)
    return args


def test_one_instance_runs_the_module_as_it_is(harness):
    harness.answers.append({'changed': True, 'status': 'ok'})
    args = dict(provider='alicloud', region='cn-hangzhou', instance_id='i-1', access_key_id='AK')
    assert harness.run(**args) == {'changed': True, 'status': 'ok'}
    assert harness.calls == [args] and harness.built == []


def test_on_a_local_connection_the_batch_runs_here_with_the_task_environment_as_options(harness):
    secret = 'env-secret-value'
    saved = dict(os.environ)
    result = harness.run(environment={'ALIBABA_CLOUD_ACCESS_KEY_ID': 'env-id', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': secret},
                         **batch())
    assert harness.calls == []
    assert result['failed_hosts'] == [] and result['changed'] is True and result['run_id'] == 'run-1'
    assert all(s['status'] == 'accomplished' for h in result['hosts'].values() for s in h['snapshots'])
    # The credentials reach the backend as options; the process environment is never touched.
    assert harness.built == [{'region': 'cn-hangzhou', 'access_key': 'env-id', 'secret_key': secret, 'security_token': None,
                              'profile': None}]
    assert dict(os.environ) == saved
    assert harness.shown[0] == 'disk_snapshot: snapshotting 2 instances, progress every 1 s'
    assert 'web02: s-3 (d-i-2-0): progressing 0%' in harness.shown
    assert harness.shown[-3:] == ['web01: s-1 (d-i-1-0): accomplished 100%', 'web01: s-2 (d-i-1-1): accomplished 100%',
                                  'web02: s-3 (d-i-2-0): accomplished 100%']


def test_task_options_win_over_the_task_environment(harness):
    harness.run(environment={'ALIBABA_CLOUD_ACCESS_KEY_ID': 'env-id', 'ALICLOUD_ACCESS_KEY': 'old-id'},
                access_key='opt-id', secret_key='opt-secret', **batch())
    assert harness.built[0]['access_key'] == 'opt-id' and harness.built[0]['secret_key'] == 'opt-secret'


def test_check_mode_here_creates_nothing_and_prints_what_it_would_do(harness):
    result = harness.run(check_mode=True, **batch())
    assert harness.cloud.snapshots == {} and result['changed'] is True
    assert harness.shown == ['web01: would create 2 snapshots', 'web02: would create 1 snapshots']


def test_bad_options_fail_before_any_work(harness):
    result = harness.run(**batch(concurrency=0))
    assert result == {'failed': True, 'msg': 'concurrency must be 1 or more, got 0'}
    with pytest.raises(AnsibleActionFail):
        harness.run(**batch(wait_timeout='soon'))
    assert harness.calls == [] and harness.built == [] and harness.shown == []


def test_a_run_id_is_made_once_when_none_is_given(harness):
    result = harness.run(**batch(run_id=None))
    assert result['run_id'].startswith('oomguard-')
    assert set(s['tags']['oomguard:run-id'] for s in harness.cloud.snapshots.values()) == {result['run_id']}


def rounds_of(harness, *answers):
    harness.answers.extend(answers)


@pytest.mark.parametrize('where', [dict(become=True), dict(transport='ssh')])
def test_with_become_or_elsewhere_the_module_runs_in_rounds(harness, where):
    rounds_of(harness, round_result({'web01': 'progressing', 'web02': 'ok'}), round_result({'web01': 'ok'}, changed=False))
    result = harness.run(**dict(batch(run_id=None, wait_timeout=60, access_key_id='AK'), **where))
    assert harness.built == []
    first, second = harness.calls
    # The run id is made once here, so every round works on it; the later rounds wait for the hosts still waiting.
    assert first['run_id'] == second['run_id'] == result['run_id'] and result['run_id'].startswith('oomguard-')
    assert [i['host'] for i in first['instances']] == ['web01', 'web02'] and [i['host'] for i in second['instances']] == ['web01']
    assert first['on_timeout'] == second['on_timeout'] == 'return' and first['wait_timeout'] == 1
    assert first['access_key'] == 'AK' and 'access_key_id' not in first
    assert result['failed_hosts'] == [] and result['changed'] is True and result['message'] == '2 instances, 0 failed'
    assert result['hosts']['web01']['status'] == 'ok' and result['hosts']['web01']['created'] == ['s-web01']
    assert harness.shown == ['disk_snapshot: snapshotting 2 instances, progress every 1 s', 'web01: s-web01 (d-web01): progressing 40%',
                             'web02: s-web02 (d-web02): accomplished 100%', 'web01: s-web01 (d-web01): accomplished 100%']


def test_rounds_end_at_wait_timeout_with_the_runs_timeout_message(harness):
    rounds_of(harness, *[round_result({'web01': 'progressing', 'web02': 'failed'})] + [round_result({'web01': 'progressing'})] * 2)
    result = harness.run(become=True, **batch(wait_timeout=3))
    assert [call['wait_timeout'] for call in harness.calls] == [1, 1, 1]
    assert result['failed_hosts'] == ['web01', 'web02']
    assert result['hosts']['web01']['msg'] == (
        'Failed to wait for snapshots of instance i-1: still not accomplished after 3 seconds (wait_timeout); '
        'states: s-web01 (d-web01): progressing 40%')
    assert harness.shown[-2:] == ['web01: s-web01 (d-web01): progressing 40%', 'web01: FAILED: ' + result['hosts']['web01']['msg']]


def test_a_failing_round_is_the_tasks_result(harness):
    rounds_of(harness, {'failed': True, 'msg': 'Failed to import the required Python library (boto3)'})
    result = harness.run(become=True, **batch())
    assert result == {'failed': True, 'msg': 'Failed to import the required Python library (boto3)'}


def test_check_mode_in_the_module_is_one_run_without_waiting(harness):
    rounds_of(harness, round_result({'web01': 'ok', 'web02': 'ok'}))
    harness.run(become=True, check_mode=True, **batch())
    assert len(harness.calls) == 1 and harness.calls[0]['wait'] is False
    assert harness.shown == ['web01: s-web01 (d-web01): accomplished 100%', 'web02: s-web02 (d-web02): accomplished 100%']


def test_without_the_sdk_here_the_module_runs_instead(harness, monkeypatch):
    def missing(provider):
        raise MissingSdk('boto3', 'Traceback: ImportError: boto3')
    monkeypatch.setattr(action, 'require_sdk', missing)
    rounds_of(harness, round_result({'web01': 'ok', 'web02': 'ok'}))
    result = harness.run(**batch(provider='aws', region='us-east-1'))
    assert result['failed_hosts'] == [] and len(harness.calls) == 1 and harness.built == []
    assert harness.verbose == ["disk_snapshot: boto3 is not importable by the controller's Python, running the module instead: "
                               "Traceback: ImportError: boto3"]


def test_an_environment_beyond_the_cloud_options_runs_the_module(harness):
    rounds_of(harness, round_result({'web01': 'ok', 'web02': 'ok'}))
    harness.run(environment={'AWS_ACCESS_KEY_ID': 'id', 'HTTPS_PROXY': 'http://127.0.0.1:3128'}, **batch(provider='aws', region='us-east-1'))
    assert len(harness.calls) == 1 and harness.built == []
    assert harness.verbose == ["disk_snapshot: the task's environment sets more than the cloud options, running the module instead"]


def test_no_lines_under_a_json_stdout_callback(harness, monkeypatch):
    monkeypatch.setattr(action, 'human_callback', lambda: False)
    result = harness.run(**batch())
    assert result['failed_hosts'] == [] and harness.shown == []
