"""The snapshot role with hosts from the dynamic inventories users have, on loopback only.

- ``amazon.aws.aws_ec2`` itself (from the Ansible package built for the running ansible-core,
  tests/harness/ansible_package.py) lists moto_server's instances. It sets ``instance_id`` and
  ``placement.region``/``placement.availability_zone``, and no ``region``. From those alone the
  snapshot role snapshots each instance and the remediate role resets only the hosts snapshotted in
  this run; ``compose`` adds only the test plumbing (local connection, a fixture procfs per
  instance), and ``ansible.posix.profile_tasks`` times the roles' tasks meanwhile.
- An inventory in the shape ``alibaba.alicloud.alicloud_ecs`` writes (its ``_add_hosts`` sets
  ``region`` to the instance's ``availability_zone``, a zone id such as ``cn-hangzhou-h``;
  footmark's ``read()`` drops the region id), against the ECS double, which files disks by region.

A metadata URL on a closed loopback port is set for every host, so no path can reach a real
metadata address.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import sys

import pytest
import yaml

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.harness.ansible_package import ansible_package_fixture
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import (
    REGION as AWS_REGION,
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    FaultProxy,
    MotoServer,
    free_port,
    make_instance,
)
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

KEY_ID = 'LTAI5tInventoryKey001'
SECRET = 'Inv3ntory-SECRET-never-shown'
ALI_REGION = 'cn-hangzhou'
ALI_ZONE = 'cn-hangzhou-h'

PLAY = """
- name: Snapshot
  hosts: "{{ target }}"
  gather_facts: false
  roles:
    - role: oomguard.fleet.snapshot

- name: Dump what every host recorded, failed ones too
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Dump the snapshot record and the instance identity
      ansible.builtin.copy:
        content: >-
          {{ {'snapshots': hostvars[item].oomguard_snapshots | default(none),
              'instance': hostvars[item].ansible_facts.cloud_instance | default(none)} | to_json }}
        dest: "{{ dump_dir }}/{{ item }}.json"
        mode: "0600"
      loop: "{{ groups[target] }}"
"""


inventory_collections = ansible_package_fixture()


def ansible(tmp_path, cmd, inventories, env, collections=(), args=()):
    """Run an ansible command with these inventory sources and extra collection directories."""
    run_env = base_env(env)
    run_env['ANSIBLE_COLLECTIONS_PATH'] = os.pathsep.join([run_env['ANSIBLE_COLLECTIONS_PATH']] + list(collections))
    argv = [os.path.join(VENV_BIN, cmd)]
    for path in inventories:
        argv += ['-i', str(path)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=run_env, cwd=str(tmp_path), timeout=600,
                          check=False)


def playbook(tmp_path, inventories, env, target, collections=(), extra=(), play_text=PLAY):
    """The play above on the group ``target``; returns the run and what each host recorded."""
    play = tmp_path / 'play.yml'
    play.write_text(play_text)
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir(exist_ok=True)
    res = ansible(tmp_path, 'ansible-playbook', inventories, env, collections,
                  [str(play), '-e', 'target=%s' % target, '-e', 'dump_dir=%s' % dump_dir] + list(extra))
    dumps = {}
    for name in os.listdir(dump_dir):
        with open(os.path.join(dump_dir, name)) as handle:
            dumps[name[:-len('.json')]] = json.load(handle)
    return res, dumps


def recap(output):
    return dict((m.group(1), int(m.group(2)))
                for m in re.finditer(r'^(\S+)\s+: ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)', output, re.M))


def plain(value):
    """ansible-inventory --list marks values from an inventory plugin {'__ansible_unsafe': ...}: take the values."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def closed_loopback_url():
    return 'http://127.0.0.1:%d' % free_port()


# The order users run: snapshot, assess, remediate; a failed snapshot leaves the host in the play
# (as playbooks/remediate.yml does) so that remediate records why it refuses it.
AWS_PLAY = """
- name: Snapshot, assess and remediate the aws_ec2 hosts
  hosts: aws_ec2
  gather_facts: false
  tasks:
    - name: Snapshot before any change
      block:
        - name: Snapshot the disks
          ansible.builtin.include_role:
            name: oomguard.fleet.snapshot
      rescue:
        - name: Go on without a snapshot
          ansible.builtin.debug:
            msg: "snapshot failed: {{ oomguard_snapshots.message }}"

    - name: Assess exposure
      ansible.builtin.include_role:
        name: oomguard.fleet.assess

    - name: Reset
      ansible.builtin.include_role:
        name: oomguard.fleet.remediate

- name: Dump what every host recorded
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Dump the records and the instance identity
      ansible.builtin.copy:
        content: >-
          {{ {'snapshots': hostvars[item].oomguard_snapshots | default(none),
              'changes': hostvars[item].oomguard_changes | default(none),
              'run_id': hostvars[item].oomguard_run_id | default(none),
              'instance': hostvars[item].ansible_facts.cloud_instance | default(none)} | to_json }}
        dest: "{{ dump_dir }}/{{ item }}.json"
        mode: "0600"
      loop: "{{ groups[target] }}"
"""
JAVA = {'pid': 4242, 'ppid': 1, 'comm': 'java', 'oom_score_adj': -1000, 'rss_kb': 6000000, 'unit': 'app.service',
        'cmdline': ['java', '-jar', 'app.jar']}


def fixture_host(base):
    """A host's fixture procfs (the vendor's sshd and udevd at -1000, plus a -1000 java service)."""
    vendor_tree(base / 'proc', extra=[JAVA], meminfo={'MemTotal': 8000000, 'MemAvailable': 400000})
    (base / 'evidence').mkdir()


def adj(base, pid=4242):
    return int((base / 'proc' / str(pid) / 'oom_score_adj').read_text())


def role_task_names(role):
    """The names of a role's tasks (blocks included), as its tasks files spell them."""
    names = set()

    def walk(tasks):
        for task in tasks or ():
            names.add(task.get('name'))
            for key in ('block', 'rescue', 'always'):
                walk(task.get(key))

    tasks_dir = os.path.join(TOP, 'roles', role, 'tasks')
    for name in os.listdir(tasks_dir):
        with open(os.path.join(tasks_dir, name)) as handle:
            walk(yaml.safe_load(handle))
    return names - {None}


def profile_summary(output):
    """ansible.posix.profile_tasks' summary: (task name, seconds) per line after the closing ==== line."""
    tail = output.rsplit('\n' + '=' * 20, 1)[-1]
    return [(m.group(1), float(m.group(2))) for m in re.finditer(r'^(\S.*?) -+ (\d+\.\d\d)s$', tail, re.M)]


def test_aws_ec2_inventory_feeds_snapshot_and_remediate(tmp_path, inventory_collections):
    with MotoServer() as moto, FaultProxy(moto.port) as proxy:
        ec2 = moto.client()
        instances = dict(make_instance(ec2, data_disks=n) for n in (1, 2, 1))
        broken = sorted(instances)[-1]
        proxy.fail_snapshots_of(instances[broken][-1])
        hosts_dir = tmp_path / 'hosts'
        for instance_id in instances:
            fixture_host(hosts_dir / instance_id)
        base = repr(str(hosts_dir) + '/') + ' ~ instance_id ~ '
        source = tmp_path / 'fleet.aws_ec2.yml'
        source.write_text(yaml.safe_dump({
            'plugin': 'amazon.aws.aws_ec2',
            'regions': [AWS_REGION],
            'endpoint_url': moto.endpoint,
            'hostnames': ['instance-id'],
            # Test plumbing only: the local connection, each instance's fixture procfs, drop-in root
            # and journal, and a closed metadata port. The identity is what aws_ec2 sets.
            'compose': {
                'ansible_connection': "'local'",
                'ansible_python_interpreter': repr(sys.executable),
                'oomguard_snapshot_metadata_url': repr(closed_loopback_url()),
                'oomguard_assess_proc_path': base + "'/proc'",
                'oomguard_assess_evidence_root': base + "'/evidence'",
                'oomguard_assess_slab_baseline_path': base + "'/state/slab.json'",
                'oomguard_remediate_proc_path': base + "'/proc'",
                'oomguard_remediate_root': base + "'/root'",
                'oomguard_remediate_journal': base + "'/state/journal.jsonl'",
            },
        }))
        env = {'AWS_ACCESS_KEY_ID': TEST_ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY': TEST_SECRET_KEY}

        listed = ansible(tmp_path, 'ansible-inventory', [source], env, [inventory_collections], ['--list'])
        assert listed.returncode == 0, listed.stdout + listed.stderr
        hostvars = plain(json.loads(listed.stdout)['_meta']['hostvars'])
        assert set(hostvars) == set(instances)
        for instance_id, hv in hostvars.items():
            # What aws_ec2 sets: the region only under placement, derived from the zone.
            assert hv['instance_id'] == instance_id
            assert hv['placement']['region'] == AWS_REGION
            assert hv['placement']['availability_zone'].startswith(AWS_REGION)
            assert 'region' not in hv and 'availability_zone' not in hv
            assert hv['oomguard_remediate_proc_path'] == str(hosts_dir / instance_id / 'proc')

        profile_env = dict(env, ANSIBLE_CALLBACKS_ENABLED='ansible.posix.profile_tasks', PROFILE_TASKS_TASK_OUTPUT_LIMIT='200')
        res, dumps = playbook(tmp_path, [source], profile_env, 'aws_ec2', [inventory_collections], play_text=AWS_PLAY,
                              extra=['-e', 'oomguard_snapshot_endpoint_url=%s' % proxy.endpoint, '-e', 'oomguard_remediate_mode=reset',
                                     '-e', 'oomguard_snapshot_retry_delay=0.05'])
        output = res.stdout + res.stderr
        assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-4000:]
        assert TEST_SECRET_KEY not in output
        # Our output as without the callback: the batch's progress and every host's recap.
        assert 'disk_snapshot: snapshotting 3 instances' in res.stdout
        assert recap(res.stdout) == dict([(i, 0) for i in instances] + [('localhost', 0)])

        run_ids = set(record['run_id'] for record in dumps.values())
        assert len(run_ids) == 1
        run_id = run_ids.pop()
        assert run_id.startswith('oomguard-20')
        for instance_id, volumes in instances.items():
            record = dumps[instance_id]
            host = hosts_dir / instance_id
            assert record['instance'] == {'provider': 'aws', 'instance_id': instance_id, 'region': AWS_REGION,
                                          'zone': hostvars[instance_id]['placement']['availability_zone'], 'source': 'inventory'}
            states = dict((s['disk_id'], s['status']) for s in record['snapshots']['snapshots'])
            assert sorted(states) == sorted(volumes), record
            assert [v for v, state in states.items() if state != 'accomplished'] == (
                [instances[broken][-1]] if instance_id == broken else [])
            journal = host / 'state' / 'journal.jsonl'
            if instance_id == broken:
                assert record['snapshots']['status'] == 'failed', record
                assert instances[broken][-1] in record['snapshots']['message']
                changes = record['changes']
                assert changes['status'] == 'refused' and "'failed'" in changes['reason'], changes
                assert adj(host) == -1000 and not journal.exists()
                assert not (host / 'root').exists()
            else:
                assert record['snapshots']['status'] == 'ok' and record['snapshots']['run_id'] == run_id, record
                assert record['snapshots']['region'] == AWS_REGION
                changes = record['changes']
                assert changes['status'] == 'changed' and changes['run_id'] == run_id, changes
                assert [(c['pid'], c['old'], c['new']) for c in changes['changes']] == [(4242, -1000, 0)]
                assert adj(host) == 0
                # The allowlisted sshd (the vendor's table) stays at -1000.
                assert adj(host, 1799) == -1000
                records = [json.loads(line) for line in journal.read_text().splitlines()]
                assert records and set(r['run_id'] for r in records) == {run_id}
                assert any(r['state'] == 'done' for r in records)
        made = ec2.describe_snapshots(OwnerIds=['self'], Filters=[{'Name': 'tag:oomguard:managed-by', 'Values': ['oomguard.fleet']},
                                                                  {'Name': 'tag:oomguard:run-id', 'Values': [run_id]}])
        # One snapshot per volume on moto, tagged with the run id, as each host recorded it (the
        # failed one too: moto made it, the proxy reported it in error).
        by_volume = dict((s['VolumeId'], s['SnapshotId']) for s in made['Snapshots'])
        assert len(by_volume) == len(made['Snapshots']) == sum(len(v) for v in instances.values())
        for instance_id, volumes in instances.items():
            recorded = dict((s['disk_id'], s.get('snapshot_id')) for s in dumps[instance_id]['snapshots']['snapshots'])
            assert recorded == dict((volume, by_volume[volume]) for volume in volumes)

        # ansible.posix.profile_tasks timed the roles' own tasks.
        summary = profile_summary(res.stdout)
        timed = {}
        for name, seconds in summary:
            role, task = name.split(' : ', 1) if ' : ' in name else ('', name)
            timed.setdefault(role, set()).add(task)
            assert seconds >= 0
        for role in ('snapshot', 'assess', 'remediate'):
            named = set(task for task in timed.get('oomguard.fleet.' + role, ())
                        if not task.startswith("Validating arguments against arg spec 'main'"))  # meta/argument_specs.yml
            assert named and named <= role_task_names(role), (role, named, summary)
        assert 'Reset the flagged processes (one host lock, each change journalled on the host first)' in timed['oomguard.fleet.remediate']
        assert 'Snapshot the disks of every host at once, printing progress' in timed['oomguard.fleet.snapshot']

        rollback = ansible(tmp_path, 'ansible-playbook', [source], env, [inventory_collections],
                           [os.path.join(TOP, 'playbooks', 'rollback.yml'), '-e', 'oomguard_hosts=aws_ec2',
                            '-e', 'oomguard_become=false', '-e', 'oomguard_rollback_run_id=%s' % run_id])
        assert rollback.returncode == 0, rollback.stdout[-4000:] + rollback.stderr[-4000:]
        for instance_id in instances:
            host = hosts_dir / instance_id
            assert adj(host) == -1000
            assert not (host / 'root' / 'etc' / 'systemd' / 'system' / 'app.service.d' / 'zz-oomguard.conf').exists()
        assert rollback.stdout.count('1 value(s) restored, 1 drop-in(s) restored or removed') == len(instances) - 1


def alicloud_ecs_host(instance_id, zone, name):
    """The variables alibaba.alicloud.alicloud_ecs sets for an instance (a subset of footmark's read())."""
    return {'id': instance_id, 'instance_id': instance_id, 'instance_name': name, 'availability_zone': zone,
            'region': zone, 'status': 'running', 'instance_type': 'ecs.g6.large', 'tags': {},
            'ansible_connection': 'local', 'oomguard_snapshot_metadata_url': closed_loopback_url()}


@pytest.fixture
def ecs():
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=0.5) as double:
        double.add_instance('i-bp1ali01', ALI_REGION, data_disks=1, zone=ALI_ZONE)
        double.add_instance('i-bp1ali02', ALI_REGION, data_disks=1, zone=ALI_ZONE)
        yield double


def test_alicloud_ecs_inventory_with_the_zone_in_region(tmp_path, ecs):
    hosts = {'ali01': alicloud_ecs_host('i-bp1ali01', ALI_ZONE, 'ali01')}
    # A hand-written host with only the zone in region: refused, naming the value and the region to set.
    hosts['typo02'] = {'instance_id': 'i-bp1ali02', 'region': ALI_ZONE, 'oomguard_snapshot_provider': 'alicloud',
                       'ansible_connection': 'local', 'oomguard_snapshot_metadata_url': closed_loopback_url()}
    source = tmp_path / 'fleet.yml'
    source.write_text(yaml.safe_dump({'alicloud': {'hosts': hosts, 'vars': {
        'oomguard_snapshot_endpoint_url': ecs.endpoint, 'oomguard_snapshot_progress_interval': 1,
        'oomguard_snapshot_poll_interval': 0.2, 'oomguard_snapshot_retry_delay': 0.05}}}))
    env = {'ALIBABA_CLOUD_ACCESS_KEY_ID': KEY_ID, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': SECRET}
    res, dumps = playbook(tmp_path, [source], env, 'alicloud')
    assert res.returncode == 2, res.stdout[-4000:] + res.stderr[-4000:]
    assert recap(res.stdout) == {'ali01': 0, 'typo02': 1, 'localhost': 0}

    good = dumps['ali01']
    assert good['instance'] == {'provider': 'alicloud', 'instance_id': 'i-bp1ali01', 'region': ALI_REGION, 'zone': ALI_ZONE,
                                'source': 'inventory'}
    assert good['snapshots']['status'] == 'ok' and good['snapshots']['region'] == ALI_REGION
    assert sorted(s['disk_id'] for s in good['snapshots']['snapshots']) == ['d-bp1ali01-0', 'd-bp1ali01-1']

    bad = dumps['typo02']['snapshots']
    assert bad['status'] == 'failed' and bad['snapshots'] == []
    assert bad['message'].startswith(
        "Failed to use the region of instance i-bp1ali02: region is 'cn-hangzhou-h', which is a zone id, not a region id; "
        "set it to the region 'cn-hangzhou'")
    assert 'oomguard_snapshot_region' in bad['message']
    assert bad['message'] in res.stdout
    # Only the good host's instance reached the API.
    assert {params['InstanceId'] for action, params in ecs.calls if action == 'DescribeDisks'} == {'i-bp1ali01'}
