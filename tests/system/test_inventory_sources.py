"""The snapshot role with hosts from the dynamic inventories users have, on loopback only.

- ``amazon.aws.aws_ec2`` itself (from the pinned Ansible package in .venv-inventory, see
  scripts/inventory-venv.sh) lists moto_server's instances. It sets ``instance_id`` and
  ``placement.region``/``placement.availability_zone``, and no ``region``.
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

import pytest
import yaml

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import (
    REGION as AWS_REGION,
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    MotoServer,
    free_port,
    make_instance,
)

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


@pytest.fixture(scope='module')
def inventory_collections():
    """The collections directory of the pinned Ansible package (built on first use, then reused)."""
    proc = subprocess.run([os.path.join(TOP, 'scripts', 'inventory-venv.sh')], capture_output=True, text=True, check=False,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def ansible(tmp_path, cmd, inventories, env, collections=(), args=()):
    """Run an ansible command with these inventory sources and extra collection directories."""
    run_env = base_env(env)
    run_env['ANSIBLE_COLLECTIONS_PATH'] = os.pathsep.join([run_env['ANSIBLE_COLLECTIONS_PATH']] + list(collections))
    argv = [os.path.join(VENV_BIN, cmd)]
    for path in inventories:
        argv += ['-i', str(path)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=run_env, cwd=str(tmp_path), timeout=600,
                          check=False)


def playbook(tmp_path, inventories, env, target, collections=(), extra=()):
    """The play above on the group ``target``; returns the run and what each host recorded."""
    play = tmp_path / 'play.yml'
    play.write_text(PLAY)
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


def test_aws_ec2_inventory_against_moto(tmp_path, inventory_collections):
    with MotoServer() as moto:
        ec2 = moto.client()
        instances = dict(make_instance(ec2, data_disks=n) for n in (1, 2))
        source = tmp_path / 'fleet.aws_ec2.yml'
        source.write_text(yaml.safe_dump({
            'plugin': 'amazon.aws.aws_ec2',
            'regions': [AWS_REGION],
            'endpoint_url': moto.endpoint,
            'hostnames': ['instance-id'],
            # Test plumbing only: the role runs its cloud calls on the controller.
            'compose': {'ansible_connection': "'local'", 'oomguard_snapshot_metadata_url': repr(closed_loopback_url())},
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

        res, dumps = playbook(tmp_path, [source], env, 'aws_ec2', [inventory_collections],
                              extra=['-e', 'oomguard_snapshot_endpoint_url=%s' % moto.endpoint])
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
        assert TEST_SECRET_KEY not in res.stdout + res.stderr
        for instance_id, volumes in instances.items():
            record = dumps[instance_id]
            assert record['instance'] == {'provider': 'aws', 'instance_id': instance_id, 'region': AWS_REGION,
                                          'zone': hostvars[instance_id]['placement']['availability_zone'], 'source': 'inventory'}
            assert record['snapshots']['status'] == 'ok', record
            assert record['snapshots']['provider'] == 'aws' and record['snapshots']['region'] == AWS_REGION
            assert sorted(s['disk_id'] for s in record['snapshots']['snapshots']) == sorted(volumes)
        made = ec2.describe_snapshots(OwnerIds=['self'], Filters=[{'Name': 'tag:oomguard:managed-by', 'Values': ['oomguard.fleet']}])
        assert len(made['Snapshots']) == sum(len(v) for v in instances.values())


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
