# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the snapshot role against a play looping amazon.aws.ec2_snapshot, side by side on moto_server.

Two fleet shapes, 20 instances x 3 volumes and 1 instance x 1 volume, each snapshotted by

- ``ours``: the ``oomguard.fleet.snapshot`` role with its defaults (provider aws, the endpoint at
  moto; ``instance_id`` and ``region`` as inventory variables; the metadata URL on a closed loopback
  port, so no metadata address is ever contacted). It finds each instance's volumes itself, makes
  the snapshots, waits for them to complete (``wait: true``) and applies its retention (one look
  at each disk's older snapshots), which the loop does not do.
- ``loop``: what amazon.aws users write today: per host, ``amazon.aws.ec2_instance_info`` on the
  host's ``instance_id`` for its volumes (the EBS volume ids of its ``block_device_mappings``),
  then ``amazon.aws.ec2_snapshot`` looped over them, both delegated to the controller, with
  ``region`` and ``endpoint_url`` in ``module_defaults`` for ``group/amazon.aws.aws``.
  ``ec2_snapshot`` waits for completion by default (``wait: true``), so both variants return only
  when every snapshot is complete. The volume list comes from the API, as the role's does, rather
  than from the inventory: a static inventory does not list volumes, and the volume ids in
  ``amazon.aws.aws_ec2``'s ``block_device_mappings`` are as old as the inventory's cache.
  (``amazon.aws.ec2_vol_info`` filtered on ``attachment.instance-id`` is the other common way; on
  moto it fails with ``KeyError: 'snapshot_id'``, as moto leaves ``SnapshotId`` out of volumes
  made without a snapshot, where EC2 returns an empty string.)

Both run over the same inventory (one host per instance, local connection), with the same forks
and collections path; amazon.aws comes from the pinned Ansible package (scripts/inventory-venv.sh).
Rounds are interleaved (which variant goes first alternates), each run on a fresh moto_server
with its own instances, and each run is checked: exactly one new snapshot per volume, and none
of another volume, else the bench fails. Prints each run's wall time, the medians, and
ours/loop against the goals (at most 0.5x at 20 x 3, at most 1.0x at 1 x 1), and the same for the
controller CPU time of the ``ansible-playbook`` run (itself and its workers, not moto_server's),
which moves much less than wall time when other work shares the CPUs. moto completes snapshots
at once, so this measures the work around the API calls, not the wait.
Talks only to moto_server on 127.0.0.1. Timings depend on the machine's load, which is printed.

BENCH_ROUNDS sets the number of rounds (default 3).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, '.build', 'collections'))

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import base_env  # noqa: E402
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import (  # noqa: E402
    REGION,
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    MotoServer,
    free_port,
)

SHAPES = ((20, 3, 0.5), (1, 1, 1.0))   # instances, volumes per instance, goal for ours/loop
FORKS = 20
ROUNDS = int(os.environ.get('BENCH_ROUNDS', '3'))

OURS = """
- name: Snapshot with the role
  hosts: fleet
  gather_facts: false
  roles:
    - oomguard.fleet.snapshot
"""

LOOP = """
- name: Snapshot every volume of every host with amazon.aws
  hosts: fleet
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws:
      region: "{{ region }}"
      endpoint_url: "{{ aws_endpoint }}"
  tasks:
    - name: Find the host's volumes
      amazon.aws.ec2_instance_info:
        instance_ids:
          - "{{ instance_id }}"
      delegate_to: localhost
      register: host_instance

    - name: Snapshot each volume and wait for it
      amazon.aws.ec2_snapshot:
        volume_id: "{{ item }}"
        description: "before remediation of {{ inventory_hostname }}"
        snapshot_tags:
          made-by: bench-loop
      loop: "{{ host_instance.instances[0].block_device_mappings | map(attribute='ebs.volume_id') | list }}"
      delegate_to: localhost
"""


def amazon_aws_collections():
    """The collections directory holding amazon.aws (built on first use, then reused)."""
    proc = subprocess.run([os.path.join(TOP, 'scripts', 'inventory-venv.sh')], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit('bench_snapshot_aws: scripts/inventory-venv.sh failed')
    return proc.stdout.strip().splitlines()[-1]


def write(path, text):
    with open(path, 'w') as handle:
        handle.write(text)


def make_fleet(ec2, instances, volumes):
    """``instances`` instances of ``volumes`` volumes each (root included) in one RunInstances call:
    [(instance id, [volume ids])]. As tests/harness/moto_ec2.make_instance does for one, in a
    fraction of its time for twenty."""
    image_id = ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId']
    mappings = [{'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 8}}]
    mappings += [{'DeviceName': '/dev/sd%s' % 'fghijk'[n], 'Ebs': {'VolumeSize': 10}} for n in range(volumes - 1)]
    made = ec2.run_instances(ImageId=image_id, MinCount=instances, MaxCount=instances, InstanceType='t3.micro',
                             BlockDeviceMappings=mappings)['Instances']
    ids = [instance['InstanceId'] for instance in made]
    described = dict((instance['InstanceId'], [m['Ebs']['VolumeId'] for m in instance['BlockDeviceMappings']])
                     for reservation in ec2.describe_instances(InstanceIds=ids)['Reservations']
                     for instance in reservation['Instances'])
    fleet = [(instance_id, described[instance_id]) for instance_id in ids]
    if len(fleet) != instances or any(len(vols) != volumes for dummy, vols in fleet):
        raise SystemExit('bench_snapshot_aws: moto made %s, expected %d instances of %d volumes'
                         % ([len(vols) for dummy, vols in fleet], instances, volumes))
    return fleet


def snapshots_by_volume(ec2, volumes):
    """{volume id: number of snapshots} for the given volumes."""
    counts = dict((v, 0) for v in volumes)
    for page in ec2.get_paginator('describe_snapshots').paginate(OwnerIds=['self']):
        for snap in page['Snapshots']:
            if snap['VolumeId'] in counts:
                counts[snap['VolumeId']] += 1
            elif any(t['Key'] in ('made-by', 'oomguard:managed-by') for t in snap.get('Tags', [])):
                raise SystemExit('bench_snapshot_aws: snapshot %s of unknown volume %s' % (snap['SnapshotId'], snap['VolumeId']))
    return counts


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(variant, instances, volumes, env, tmp):
    """One run of ``variant`` on a fresh moto_server; returns its wall and controller CPU time after checking the snapshots."""
    with MotoServer() as moto:
        ec2 = moto.client()
        hosts = make_fleet(ec2, instances, volumes)
        all_volumes = [v for dummy, vols in hosts for v in vols]
        before = snapshots_by_volume(ec2, all_volumes)
        lines = ['[fleet:vars]', 'ansible_connection=local', 'ansible_python_interpreter=%s' % sys.executable,
                 'aws_endpoint=%s' % moto.endpoint,
                 'oomguard_snapshot_provider=aws', 'oomguard_snapshot_endpoint_url=%s' % moto.endpoint,
                 'oomguard_snapshot_metadata_url=http://127.0.0.1:%d' % free_port(), '[fleet]']
        lines += ['host%02d instance_id=%s region=%s' % (n, instance_id, REGION) for n, (instance_id, dummy) in enumerate(hosts)]
        inventory = os.path.join(tmp, 'inventory.ini')
        write(inventory, '\n'.join(lines) + '\n')
        playbook = os.path.join(tmp, '%s.yml' % variant)
        write(playbook, OURS if variant == 'ours' else LOOP)
        start, cpu = time.monotonic(), children_cpu()
        proc = subprocess.run(['ansible-playbook', '-i', inventory, playbook], capture_output=True, text=True, env=env,
                              check=False, cwd=tmp)
        elapsed, cpu = time.monotonic() - start, children_cpu() - cpu
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit('bench_snapshot_aws: the %s play failed' % variant)
        after = snapshots_by_volume(ec2, all_volumes)
        wrong = dict((v, after[v] - before[v]) for v in all_volumes if after[v] - before[v] != 1)
        if wrong:
            raise SystemExit('bench_snapshot_aws: %s: volumes without exactly one new snapshot: %s' % (variant, wrong))
        if TEST_SECRET_KEY in proc.stdout + proc.stderr:
            raise SystemExit('bench_snapshot_aws: %s printed the secret key' % variant)
    return elapsed, cpu


def main():
    collections = amazon_aws_collections()
    env = base_env({'AWS_ACCESS_KEY_ID': TEST_ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY': TEST_SECRET_KEY,
                    'ANSIBLE_FORKS': str(FORKS)})
    env['ANSIBLE_COLLECTIONS_PATH'] = os.pathsep.join([env['ANSIBLE_COLLECTIONS_PATH'], collections])
    times = dict(((shape, variant), []) for shape in SHAPES for variant in ('ours', 'loop'))
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(ROUNDS):
            for shape in SHAPES:
                order = ('ours', 'loop') if round_ % 2 == 0 else ('loop', 'ours')
                for variant in order:
                    times[(shape, variant)].append(run_once(variant, shape[0], shape[1], env, tmp))
            loads.append(os.getloadavg()[0])
    cpu = dict((key, [c for dummy, c in runs]) for key, runs in times.items())
    times = dict((key, [t for t, dummy in runs]) for key, runs in times.items())
    print('bench_snapshot_aws: the snapshot role vs a play looping amazon.aws.ec2_snapshot on moto_server, forks %d, '
          '%d interleaved rounds, fresh moto state per run (1-min load average %s on %d CPUs)'
          % (FORKS, ROUNDS, ' '.join('%.1f' % load for load in loads), os.cpu_count()))
    for shape in SHAPES:
        instances, volumes, goal = shape
        ours, loop = times[(shape, 'ours')], times[(shape, 'loop')]
        ratio = statistics.median(ours) / statistics.median(loop)
        print('  %2d x %d (%d snapshots): ours %s s, median %.2f s; loop %s s, median %.2f s; ours/loop %.2fx (goal <= %.1fx: %s)'
              % (instances, volumes, instances * volumes, ' '.join('%.2f' % t for t in ours), statistics.median(ours),
                 ' '.join('%.2f' % t for t in loop), statistics.median(loop), ratio, goal, 'met' if ratio <= goal else 'MISSED'))
        ours, loop = cpu[(shape, 'ours')], cpu[(shape, 'loop')]
        ratio = statistics.median(ours) / statistics.median(loop)
        print('  %s  controller CPU: ours median %.2f s, loop median %.2f s; ours/loop %.2fx (goal <= %.1fx: %s)'
              % (' ' * len('%2d x %d (%d snapshots):' % (instances, volumes, instances * volumes)), statistics.median(ours),
                 statistics.median(loop), ratio, goal, 'met' if ratio <= goal else 'MISSED'))


if __name__ == '__main__':
    main()
