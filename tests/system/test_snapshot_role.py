"""The snapshot role through ansible-playbook over several hosts, against the ECS double,
moto_server and a metadata double, all on loopback."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import playbook
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
from ansible_collections.oomguard.fleet.tests.harness.metadata_double import MetadataDouble
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import REGION as AWS_REGION
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import TEST_ACCESS_KEY, TEST_SECRET_KEY, MotoServer, make_instance

KEY_ID = 'LTAI5tRoleTestKey0001'
SECRET = 'R0le-SECRET-4f1d9a-must-never-show-up'
REGION = 'cn-hangzhou'

PLAY = """
- name: Snapshot
  hosts: fleet
  gather_facts: false
  roles:
    - role: oomguard.fleet.snapshot
  post_tasks:
    - name: Dump the contract fact
      ansible.builtin.copy:
        content: "{{ {'snapshots': oomguard_snapshots, 'run_id': oomguard_run_id} | to_json }}"
        dest: "{{ dump_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false

- name: Read what failed hosts recorded
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Dump the contract fact of every host, failed ones too
      ansible.builtin.copy:
        content: "{{ hostvars[item].oomguard_snapshots | default(none) | to_json }}"
        dest: "{{ dump_dir }}/all-{{ item }}.json"
        mode: "0600"
      loop: "{{ groups['fleet'] }}"
      check_mode: false
      changed_when: false
"""


def inventory(ecs, hosts, metadata_host=None, extra=''):
    lines = ['[fleet:vars]', 'ansible_connection=local', 'oomguard_snapshot_endpoint_url=%s' % ecs.endpoint,
             'oomguard_snapshot_progress_interval=1', 'oomguard_snapshot_poll_interval=0.2', 'oomguard_snapshot_retry_delay=0.05',
             extra, '[fleet]']
    for host, instance_id in hosts:
        lines.append('%s instance_id=%s region=%s oomguard_snapshot_provider=alicloud' % (host, instance_id, REGION))
    if metadata_host:
        lines.append('%s oomguard_snapshot_metadata_url=%s' % metadata_host)
    # A host with snapshots switched off never fails, so the play (and the dump play after it) goes on
    # even when every snapshotting host fails.
    lines.append('bystander oomguard_snapshot_enabled=false')
    lines.append('[local]\nlocalhost ansible_connection=local')
    return '\n'.join(lines) + '\n'


def dumps(dump_dir):
    out = {}
    for name in os.listdir(dump_dir):
        with open(os.path.join(dump_dir, name)) as handle:
            out[name[:-len('.json')]] = json.load(handle)
    return out


def recap(output):
    return dict((m.group(1), dict(changed=int(m.group(3)), failed=int(m.group(4)), ok=int(m.group(2))))
                for m in re.finditer(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)', output, re.M))


@pytest.fixture
def ecs():
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=2.0) as double:
        for n in (1, 2, 3):
            double.add_instance('i-web0%d' % n, REGION, data_disks=2)
        double.add_instance('i-meta04', REGION, data_disks=1)
        yield double


def env():
    return {'ALIBABA_CLOUD_ACCESS_KEY_ID': KEY_ID, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': SECRET, 'ANSIBLE_FORKS': '10'}


HOSTS = [('web01', 'i-web01'), ('web02', 'i-web02'), ('web03', 'i-web03')]


def test_check_mode_then_real_run_then_idempotent_rerun(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    with MetadataDouble('alicloud', 'i-meta04', REGION, REGION + '-k') as md:
        inv = inventory(ecs, HOSTS, metadata_host=('meta04', md.url))
        args = ['-e', 'dump_dir=%s' % dump_dir, '-e', 'oomguard_run_id=oomguard-20261129T020000Z-0042']

        check = playbook(tmp_path, PLAY, inv, env=env(), args=args + ['--check'])
        assert check.returncode == 0, check.stdout + check.stderr
        assert ecs.snapshots == {} and ecs.count('CreateSnapshot') == 0
        facts = dumps(dump_dir)
        assert facts['web01']['snapshots']['check_mode'] is True
        assert len(facts['web01']['snapshots']['would_create']) == 3
        assert 'would create 3 snapshots' in check.stdout
        assert all(v['changed'] == 1 for k, v in recap(check.stdout).items() if k not in ('localhost', 'bystander'))

        real = playbook(tmp_path, PLAY, inv, env=env(), args=args)
        assert real.returncode == 0, real.stdout + real.stderr
        assert len(ecs.snapshots) == 3 * 3 + 2
        # Progress: a line per snapshot with its percent, before and after the wait.
        assert re.search(r'^web02: s-\d+ \(d-web02-1\): progressing \d+%$', real.stdout, re.M)
        assert re.search(r'^meta04: s-\d+ \(d-meta04-1\): accomplished 100%$', real.stdout, re.M)
        facts = dumps(dump_dir)
        for host, instance_id in HOSTS + [('meta04', 'i-meta04')]:
            record = facts[host]['snapshots']
            assert record['schema'] == 1
            assert record['run_id'] == 'oomguard-20261129T020000Z-0042'
            assert record['status'] == 'ok'
            assert record['provider'] == 'alicloud'
            assert record['instance_id'] == instance_id and record['region'] == REGION
            assert all(s['status'] == 'accomplished' and s['progress'] == 100 for s in record['snapshots'])
            assert {s['snapshot_id'] for s in record['snapshots']} <= set(ecs.snapshots)
        assert len(facts['meta04']['snapshots']['snapshots']) == 2
        assert md.count('PUT') == 2  # check run and real run asked the metadata service; inventory hosts never did
        assert all(v['changed'] == 1 for k, v in recap(real.stdout).items() if k not in ('localhost', 'bystander'))

        creates = ecs.count('CreateSnapshot')
        again = playbook(tmp_path, PLAY, inv, env=env(), args=args)
        assert again.returncode == 0, again.stdout + again.stderr
        assert ecs.count('CreateSnapshot') == creates
        assert len(ecs.snapshots) == 11
        assert all(v['changed'] == 0 for k, v in recap(again.stdout).items() if k in ('web01', 'web02', 'web03', 'meta04'))


def test_run_id_is_made_once_for_the_play(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    res = playbook(tmp_path, PLAY, inventory(ecs, HOSTS), env=env(), args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode == 0, res.stdout + res.stderr
    facts = dumps(dump_dir)
    run_ids = {facts[h]['run_id'] for h, dummy in HOSTS}
    assert len(run_ids) == 1
    run_id = run_ids.pop()
    assert re.match(r'^oomguard-\d{8}T\d{6}Z-\d{4}$', run_id)
    assert {s['Tags']['oomguard:run-id'] for s in ecs.snapshots.values()} == {run_id}


def test_a_failed_snapshot_fails_only_that_host(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    ecs.fail_snapshots_of('d-web02-2')
    res = playbook(tmp_path, PLAY, inventory(ecs, HOSTS), env=env(), args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode != 0
    counts = recap(res.stdout)
    assert counts['web02']['failed'] == 1
    assert counts['web01']['failed'] == 0 and counts['web03']['failed'] == 0
    facts = dumps(dump_dir)
    record = facts['all-web02']
    assert record['status'] == 'failed'
    assert 'Failed to create snapshots of instance i-web02: the cloud marked' in record['message']
    failed = [s for s in record['snapshots'] if s['status'] == 'failed']
    assert [s['disk_id'] for s in failed] == ['d-web02-2']
    assert failed[0]['snapshot_id'] in res.stdout
    assert facts['all-web01']['status'] == 'ok'


def test_timeout_fails_the_hosts_with_states(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    ecs.snapshot_seconds = 120
    res = playbook(tmp_path, PLAY, inventory(ecs, HOSTS[:2], extra='oomguard_snapshot_wait_timeout=2'), env=env(),
                   args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode != 0
    facts = dumps(dump_dir)
    for host in ('web01', 'web02'):
        record = facts['all-' + host]
        assert record['status'] == 'failed'
        assert 'still not accomplished after 2 seconds' in record['message']
        assert len(record['snapshots']) == 3 and all(s['status'] == 'progressing' for s in record['snapshots'])


def test_switched_off_records_skipped(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    res = playbook(tmp_path, PLAY, inventory(ecs, HOSTS[:1], extra='oomguard_snapshot_enabled=false'), env=env(),
                   args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode == 0, res.stdout + res.stderr
    record = dumps(dump_dir)['web01']['snapshots']
    assert record['status'] == 'skipped' and record['snapshots'] == []
    assert ecs.requests == []


def test_unknown_provider_with_inventory_ids_says_what_to_set(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    inv = inventory(ecs, []) + '[fleet]\nweb09 instance_id=i-web01 region=%s\n' % REGION
    res = playbook(tmp_path, PLAY, inv, env=env(), args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode != 0
    assert 'Set oomguard_snapshot_provider to alicloud or aws' in res.stdout
    assert dumps(dump_dir)['all-web09']['status'] == 'failed'


def test_a_host_without_metadata_fails_alone_with_the_reason(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    with MetadataDouble('alicloud', 'i-meta04', REGION) as md:
        url = md.url
    # The double is stopped: nothing answers there, as on a host outside any cloud.
    inv = inventory(ecs, HOSTS[:1], metadata_host=('meta04', url), extra='oomguard_snapshot_provider=alicloud')
    res = playbook(tmp_path, PLAY, inv, env=env(), args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode != 0
    counts = recap(res.stdout)
    assert counts['meta04']['failed'] == 1 and counts['web01']['failed'] == 0
    facts = dumps(dump_dir)
    record = facts['all-meta04']
    assert record['status'] == 'failed' and record['snapshots'] == [] and record['schema'] == 1
    assert record['instance_id'] is None and record['region'] is None and record['provider'] is None
    assert record['message'].startswith('Failed to read instance metadata: no metadata service answered (alicloud token request')
    assert facts['all-web01']['status'] == 'ok' and len(facts['all-web01']['snapshots']) == 3
    assert ecs.count('DescribeDisks') == 1  # only web01's instance was asked for


def test_no_credential_in_any_output_log_or_file(ecs, tmp_path):
    """Secrets given as role variables (from an extra-vars file) and through the environment."""
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    log = tmp_path / 'ansible.log'
    secrets = tmp_path / 'secrets.yml'
    secrets.write_text('oomguard_snapshot_access_key: %s\noomguard_snapshot_secret_key: %s\n'
                       'oomguard_snapshot_security_token: ""\n' % (KEY_ID, SECRET))
    inputs = {str(secrets), str(tmp_path / 'play.yml'), str(tmp_path / 'inventory.ini')}
    runs = []
    for extra_env, args in (({'ANSIBLE_FORKS': '10'}, ['-e', '@%s' % secrets]), (env(), [])):
        res = playbook(tmp_path, PLAY, inventory(ecs, HOSTS), env=extra_env, log_path=log,
                       args=args + ['-vvv', '-e', 'dump_dir=%s' % dump_dir, '-e', 'oomguard_run_id=run-%d' % len(runs)])
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        runs.append(res)
    assert len(ecs.snapshots) == 18
    for res in runs:
        assert SECRET not in res.stdout and SECRET not in res.stderr
    written = [p for p in tmp_path.rglob('*') if p.is_file() and str(p) not in inputs]
    assert str(log) in [str(p) for p in written] and log.stat().st_size > 0
    for path in written:
        assert SECRET not in path.read_text(errors='replace'), path
    # The key id is allowed in output; the secret never went over the wire either (only a signature).
    assert ecs.refused == []


def test_role_against_moto(tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    with MotoServer() as moto:
        ec2 = moto.client()
        instances = [make_instance(ec2, data_disks=n) for n in (2, 1)]
        lines = ['[fleet:vars]', 'ansible_connection=local', 'oomguard_snapshot_provider=aws',
                 'oomguard_snapshot_endpoint_url=%s' % moto.endpoint, 'oomguard_snapshot_retention=1', '[fleet]']
        lines += ['ec2-%d instance_id=%s region=%s' % (n, iid, AWS_REGION) for n, (iid, dummy) in enumerate(instances)]
        lines.append('[local]\nlocalhost ansible_connection=local')
        aws_env = {'AWS_ACCESS_KEY_ID': TEST_ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY': TEST_SECRET_KEY}
        for run in ('run-a', 'run-b'):
            res = playbook(tmp_path, PLAY, '\n'.join(lines) + '\n', env=aws_env,
                           args=['-e', 'dump_dir=%s' % dump_dir, '-e', 'oomguard_run_id=%s' % run])
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
            assert TEST_SECRET_KEY not in res.stdout + res.stderr
        facts = dumps(dump_dir)
        assert facts['ec2-0']['snapshots']['status'] == 'ok' and len(facts['ec2-0']['snapshots']['snapshots']) == 3
        assert len(facts['ec2-1']['snapshots']['snapshots']) == 2
        assert len(facts['ec2-0']['snapshots']['deleted']) == 3  # run-a's, by retention 1
        ours = ec2.describe_snapshots(OwnerIds=['self'], Filters=[{'Name': 'tag:oomguard:managed-by', 'Values': ['oomguard.fleet']}])
        assert {t['Value'] for s in ours['Snapshots'] for t in s['Tags'] if t['Key'] == 'oomguard:run-id'} == {'run-b'}


def test_serial_batches_snapshot_each_host_once(ecs, tmp_path):
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    play = PLAY.replace('  hosts: fleet\n', '  hosts: fleet\n  serial: 2\n', 1)
    res = playbook(tmp_path, play, inventory(ecs, HOSTS), env=env(), args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert ecs.count('CreateSnapshot') == 9
    # The second batch did not look at the first batch's instances again.
    looked_at = [params['InstanceId'] for action, params in ecs.calls if action == 'DescribeDisks']
    first_of_batch_two = looked_at.index('i-web03')
    assert set(looked_at[:first_of_batch_two]) == {'i-web01', 'i-web02'}
    assert set(looked_at[first_of_batch_two:]) == {'i-web03'}
    facts = dumps(dump_dir)
    assert all(facts[h]['snapshots']['status'] == 'ok' for h, dummy in HOSTS)
    assert len({facts[h]['run_id'] for h, dummy in HOSTS}) == 1
