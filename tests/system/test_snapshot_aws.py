"""disk_snapshot against moto's real EC2 emulator (moto_server on loopback), through boto3 and ansible."""

from __future__ import annotations

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import adhoc
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import (
    REGION,
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    FaultProxy,
    MotoServer,
    make_instance,
)

RUN_TAG = 'oomguard:run-id'
OWNER_TAG = 'oomguard:managed-by'


@pytest.fixture
def aws():
    with MotoServer() as moto, FaultProxy(moto.port) as proxy:
        ec2 = moto.client()
        instance_id, volumes = make_instance(ec2, data_disks=2)
        yield {'moto': moto, 'proxy': proxy, 'ec2': ec2, 'instance_id': instance_id, 'volumes': volumes}
    assert moto.proc.poll() is not None  # stopped by PID


def creds():
    return {'AWS_ACCESS_KEY_ID': TEST_ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY': TEST_SECRET_KEY}


def snap(aws, run_id='run-1', check=False, **extra):
    args = {'provider': 'aws', 'region': REGION, 'instance_id': aws['instance_id'], 'run_id': run_id,
            'endpoint_url': aws['proxy'].endpoint, 'poll_interval': 0.2, 'wait_timeout': 30, 'retry_delay': 0.05}
    args.update(extra)
    return adhoc('oomguard.fleet.disk_snapshot', args, env=creds(), check=check)


def ours(aws, run_id=None):
    filters = [{'Name': 'tag:%s' % OWNER_TAG, 'Values': ['oomguard.fleet']}]
    if run_id:
        filters.append({'Name': 'tag:%s' % RUN_TAG, 'Values': [run_id]})
    return aws['ec2'].describe_snapshots(OwnerIds=['self'], Filters=filters)['Snapshots']


def test_three_volumes_get_three_tagged_snapshots(aws):
    res = snap(aws)
    assert not res.failed, res.output
    assert res['changed'] is True and res['status'] == 'ok'
    assert sorted(s['disk_id'] for s in res['snapshots']) == sorted(aws['volumes'])
    system = [d for d in res['disks'] if d['type'] == 'system']
    assert [d['device'] for d in system] == ['/dev/sda1']
    made = ours(aws, 'run-1')
    assert len(made) == 3
    assert sorted(s['SnapshotId'] for s in made) == sorted(res['created'])
    names = {t['Value'] for s in made for t in s['Tags'] if t['Key'] == 'Name'}
    assert names == {'run-1-%s' % v for v in aws['volumes']}


def test_same_run_again_creates_none(aws):
    first = snap(aws)
    second = snap(aws)
    assert not second.failed, second.output
    assert second['changed'] is False and second['created'] == []
    assert sorted(second['reused']) == sorted(first['created'])
    assert len(ours(aws)) == 3
    assert aws['proxy'].count('CreateSnapshot') == 3


def test_retention_deletes_only_our_older_snapshots(aws):
    ec2 = aws['ec2']
    foreign = ec2.create_snapshot(VolumeId=aws['volumes'][1], Description='manual')['SnapshotId']
    run1 = snap(aws, run_id='run-1')
    snap(aws, run_id='run-2')
    run3 = snap(aws, run_id='run-3', retention=2)
    assert not run3.failed, run3.output
    assert sorted(run3['deleted']) == sorted(run1['created'])
    left = {t['Value'] for s in ours(aws) for t in s['Tags'] if t['Key'] == RUN_TAG}
    assert left == {'run-2', 'run-3'}
    ids = {s['SnapshotId'] for s in ec2.describe_snapshots(OwnerIds=['self'])['Snapshots']}
    assert foreign in ids


def test_check_mode_creates_nothing(aws):
    res = snap(aws, check=True)
    assert not res.failed, res.output
    assert res['changed'] is True
    assert sorted(w['disk_id'] for w in res['would_create']) == sorted(aws['volumes'])
    assert ours(aws) == []
    assert aws['proxy'].count('CreateSnapshot') == 0


@pytest.mark.parametrize('code', ['RequestLimitExceeded', 'SnapshotCreationPerVolumeRateExceeded'])
def test_injected_throttling_is_retried_and_succeeds(aws, code):
    aws['proxy'].inject_throttling('CreateSnapshot', 2, code=code)
    res = snap(aws)
    assert not res.failed, res.output
    assert len(res['created']) == 3
    assert aws['proxy'].count('CreateSnapshot', 400) == 2
    assert aws['proxy'].count('CreateSnapshot', 200) == 3
    assert len(ours(aws)) == 3


def test_throttling_beyond_the_retries_fails_clearly(aws):
    aws['proxy'].inject_throttling('DescribeInstances', 100)
    res = snap(aws, retries=2)
    assert res.failed
    assert res['msg'].startswith('Failed to list disks of instance %s: RequestLimitExceeded' % aws['instance_id'])
    assert ours(aws) == []


def test_failed_snapshot_fails_the_host_with_ids_and_states(aws):
    aws['proxy'].fail_snapshots_of(aws['volumes'][2])
    res = snap(aws)
    assert res.failed
    assert res['status'] == 'failed'
    failed = [s for s in res['snapshots'] if s['status'] == 'failed']
    assert [s['disk_id'] for s in failed] == [aws['volumes'][2]]
    assert failed[0]['snapshot_id'] in res['msg']
    assert 'Failed to create snapshots of instance %s: the cloud marked' % aws['instance_id'] in res['msg']


def test_unknown_instance_is_a_clear_error(aws):
    res = snap(aws, instance_id='i-0123456789abcdef0')
    assert res.failed
    assert res['msg'].startswith('Failed to list disks of instance i-0123456789abcdef0: ')


def shadow_boto3(tmp_path):
    shadow = tmp_path / 'shadow'
    (shadow / 'boto3').mkdir(parents=True)
    (shadow / 'boto3' / '__init__.py').write_text('raise ImportError("No module named boto3")\n')
    return str(shadow)


def test_missing_boto3_gives_missing_required_lib(aws, tmp_path):
    import os
    args = {'provider': 'aws', 'region': REGION, 'instance_id': aws['instance_id'], 'endpoint_url': aws['proxy'].endpoint}
    res = adhoc('oomguard.fleet.disk_snapshot', args,
                env=dict(creds(), PYTHONPATH=shadow_boto3(tmp_path) + os.pathsep + os.environ.get('PYTHONPATH', '')))
    assert res.failed
    assert 'Failed to import the required Python library (boto3)' in res['msg']


def test_batch_without_boto3_on_the_controller_runs_the_module_instead(aws, tmp_path):
    """Ansible's own Python cannot import boto3; the module's environment can: the batch falls back to module rounds."""
    import json
    import os
    from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import playbook
    clean = os.environ.get('PYTHONPATH', '')
    dump = tmp_path / 'batch.json'
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Snapshot a batch of one
      oomguard.fleet.disk_snapshot:
        provider: aws
        region: %s
        endpoint_url: %s
        run_id: run-fallback
        poll_interval: 0.2
        progress_interval: 1
        instances: [{host: web01, instance_id: %s}]
      environment: {PYTHONPATH: "%s"}
      register: batch
    - name: Keep the result
      ansible.builtin.copy: {content: "{{ batch | to_json }}", dest: %s, mode: "0600"}
""" % (REGION, aws['proxy'].endpoint, aws['instance_id'], clean, dump)
    env = dict(creds(), PYTHONPATH=shadow_boto3(tmp_path) + os.pathsep + clean)
    res = playbook(tmp_path, play, 'localhost ansible_connection=local\n', env=env, args=['-vvv'])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert 'boto3 is not importable by the controller\'s Python, running the module instead' in res.stdout
    result = json.loads(dump.read_text())
    assert result['failed_hosts'] == [] and len(result['hosts']['web01']['snapshots']) == 3
    assert len(ours(aws, 'run-fallback')) == 3


def test_batch_without_boto3_anywhere_says_which_library(aws, tmp_path):
    import os
    args = {'provider': 'aws', 'region': REGION, 'endpoint_url': aws['proxy'].endpoint,
            'instances': [{'host': 'web01', 'instance_id': aws['instance_id']}]}
    res = adhoc('oomguard.fleet.disk_snapshot', args,
                env=dict(creds(), PYTHONPATH=shadow_boto3(tmp_path) + os.pathsep + os.environ.get('PYTHONPATH', '')))
    assert res.failed
    assert 'Failed to import the required Python library (boto3)' in res['msg']
    assert ours(aws) == []
