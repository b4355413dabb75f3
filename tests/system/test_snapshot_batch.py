"""disk_snapshot with ``instances``: in the controller's process, and as module rounds elsewhere.

Both against the ECS double through the real SDK and real ansible-playbook runs. On a
local connection without become the batch runs in the action plugin's process: each
instance's disks are listed once. With become (as on a remote delegate) the module runs
in rounds of ``progress_interval``: each round lists the disks again, so the double's
DescribeDisks count tells the two paths apart.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, playbook
from ansible_collections.oomguard.fleet.tests.harness.ansible_package import ansible_package_fixture
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble

KEY_ID = 'LTAI5tOomguardBatchKey1'
SECRET = 'Qm4-batch-SECRET-never-printed-2c9d'
REGION = 'cn-shanghai'
COLLECTIONS = os.path.join(TOP, '.build', 'collections')

ansible_package = ansible_package_fixture()

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Snapshot two instances
      oomguard.fleet.disk_snapshot:
        provider: alicloud
        region: %(region)s
        endpoint_url: %(endpoint)s
        run_id: run-batch
        poll_interval: 0.2
        progress_interval: 1
        retries: 2
        retry_delay: 0.05
        instances:
          - {host: web01, instance_id: i-web01}
          - {host: web02, instance_id: i-web02}
      environment: "{{ snapshot_environment }}"
%(extra)s      register: batch

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ batch | to_json }}"
        dest: %(dump)s
        mode: "0600"
"""


@pytest.fixture
def ecs():
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=3.0) as double:
        double.add_instance('i-web01', REGION, data_disks=2)
        double.add_instance('i-web02', REGION, data_disks=1)
        yield double


def run(tmp_path, ecs, environment, extra=''):
    dump = tmp_path / 'batch.json'
    play = PLAY % {'region': REGION, 'endpoint': ecs.endpoint, 'extra': extra, 'dump': dump}
    # The credentials reach the task only through its environment keyword, never the process's.
    proc = playbook(tmp_path, play, 'localhost ansible_connection=local\n', env={'HOME': str(tmp_path)},
                    args=['-e', json.dumps({'snapshot_environment': environment})])
    assert SECRET not in proc.stdout + proc.stderr
    result = json.loads(dump.read_text()) if dump.exists() else None
    return proc, result


CREDENTIALS = {'ALIBABA_CLOUD_ACCESS_KEY_ID': KEY_ID, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': SECRET}


def test_in_the_controller_process_with_the_task_environment(tmp_path, ecs):
    proc, result = run(tmp_path, ecs, CREDENTIALS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['failed_hosts'] == [] and result['changed'] is True
    assert len(result['hosts']['web01']['snapshots']) == 3 and len(result['hosts']['web02']['snapshots']) == 2
    assert all(s['status'] == 'accomplished' for h in result['hosts'].values() for s in h['snapshots'])
    # One process: each instance's disks listed once, however long the wait.
    assert ecs.count('DescribeDisks') == 2
    assert 'disk_snapshot: snapshotting 2 instances, progress every 1 s' in proc.stdout
    assert '\nweb02: s-' in proc.stdout and 'progressing 0%' in proc.stdout
    assert proc.stdout.count('accomplished 100%') == 5


def test_in_the_controller_process_without_credentials_each_host_fails_clearly(tmp_path, ecs):
    proc, result = run(tmp_path, ecs, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the batch reports per host; the role fails them
    assert result['failed_hosts'] == ['web01', 'web02']
    assert result['hosts']['web01']['msg'].startswith('Failed to list disks of instance i-web01: CredentialException(')
    assert ecs.requests == []


def test_with_become_the_module_runs_in_rounds(tmp_path, ecs):
    proc, result = run(tmp_path, ecs, CREDENTIALS, extra='      become: true\n      become_method: ansible.builtin.su\n')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['failed_hosts'] == [] and result['changed'] is True
    assert len(result['hosts']['web01']['snapshots']) == 3 and len(result['hosts']['web02']['snapshots']) == 2
    assert sorted(result['hosts']['web01']['created']) == sorted(s['snapshot_id'] for s in result['hosts']['web01']['snapshots'])
    # 3 s snapshots in 1 s rounds: each round is a module run that lists the disks again,
    # and reuses (by run tag) what the first round created.
    assert ecs.count('DescribeDisks') >= 4
    assert ecs.count('CreateSnapshot', 200) == 5
    assert len(ecs.snapshots) == 5
    assert 'progressing' in proc.stdout and proc.stdout.count('accomplished 100%') >= 5


def test_a_json_stdout_callback_gets_a_clean_document(tmp_path, ecs, ansible_package):
    """With ansible.posix.json as the stdout callback the progress lines stay off stdout."""
    dump = tmp_path / 'batch.json'
    play = PLAY % {'region': REGION, 'endpoint': ecs.endpoint, 'extra': '', 'dump': dump}
    proc = playbook(tmp_path, play, 'localhost ansible_connection=local\n',
                    env={'HOME': str(tmp_path), 'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
                         'ANSIBLE_COLLECTIONS_PATH': os.pathsep.join([COLLECTIONS, ansible_package])},
                    args=['-e', json.dumps({'snapshot_environment': CREDENTIALS})])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The whole of stdout is the callback's one document: any progress line there breaks it.
    document = json.loads(proc.stdout)
    tasks = [t for play in document['plays'] for t in play['tasks'] if t['task']['name'] == 'Snapshot two instances']
    assert len(tasks) == 1
    batch = tasks[0]['hosts']['localhost']
    assert batch['action'] == 'oomguard.fleet.disk_snapshot' and batch['failed_hosts'] == []
    assert sorted(batch['hosts']) == ['web01', 'web02']
    assert document['stats']['localhost']['failures'] == 0
    assert len(ecs.snapshots) == 5
