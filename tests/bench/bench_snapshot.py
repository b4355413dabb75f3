# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the snapshot role on 20 hosts x 3 disks against the ECS double with 5 s snapshots.

Prints the wall time of the role's play, the wall time of an empty play over the same
inventory (ansible-playbook's own start-up), and their ratios to one snapshot's 5 s.
Goal: the role finishes within 1.5x one snapshot, i.e. the hosts are done in parallel.
Talks only to the ECS double on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, '.build', 'collections'))

from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble  # noqa: E402

HOSTS = 20
DATA_DISKS = 2
SNAPSHOT_SECONDS = 5.0
KEY_ID, SECRET = 'LTAIbenchKeyId0001', 'bench-secret-value-0001'


def run(playbook, inventory, env):
    start = time.monotonic()
    proc = subprocess.run(['ansible-playbook', '-i', inventory, playbook], capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit('bench_snapshot: playbook failed')
    if os.environ.get("BENCH_SHOW"):
        print("\n".join(l for l in proc.stdout.splitlines() if l.startswith("@@")))
    return elapsed, proc.stdout


def main():
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
               ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, '.build', 'collections'), ANSIBLE_FORKS=str(HOSTS + 5),
               ANSIBLE_HOST_KEY_CHECKING='false', ANSIBLE_LOCALHOST_WARNING='false')
    env['PATH'] = os.path.join(TOP, '.venv', 'bin') + os.pathsep + env.get('PATH', '')
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=SNAPSHOT_SECONDS) as ecs, tempfile.TemporaryDirectory() as tmp:
        lines = ['[fleet:vars]', 'ansible_connection=local', 'ansible_python_interpreter=%s' % sys.executable,
                 'oomguard_snapshot_provider=alicloud', 'oomguard_snapshot_endpoint_url=%s' % ecs.endpoint,
                 'oomguard_snapshot_progress_interval=10', 'oomguard_snapshot_poll_interval=0.25', '[fleet]']
        for n in range(HOSTS):
            ecs.add_instance('i-bench%02d' % n, 'cn-hangzhou', data_disks=DATA_DISKS)
            lines.append('host%02d instance_id=i-bench%02d region=cn-hangzhou' % (n, n))
        inventory = os.path.join(tmp, 'inventory.ini')
        with open(inventory, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        empty = os.path.join(tmp, 'empty.yml')
        with open(empty, 'w') as handle:
            handle.write('- hosts: fleet\n  gather_facts: false\n  tasks: []\n')
        role = os.path.join(tmp, 'snapshot.yml')
        with open(role, 'w') as handle:
            handle.write('- hosts: fleet\n  gather_facts: false\n  roles:\n    - oomguard.fleet.snapshot\n')
        baseline, dummy = run(empty, inventory, env)
        total, out = run(role, inventory, env)
        made = sum(1 for snaps in [ecs.snapshots] for s in snaps.values() if s['Tags'].get('oomguard:managed-by') == 'oomguard.fleet')
        if made != HOSTS * (DATA_DISKS + 1):
            raise SystemExit('bench_snapshot: expected %d snapshots, found %d' % (HOSTS * (DATA_DISKS + 1), made))
    print('bench_snapshot: %d hosts x %d disks, %.0f s per snapshot on the ECS double' % (HOSTS, DATA_DISKS + 1, SNAPSHOT_SECONDS))
    print('  role play wall time      %.2f s  ratio %.2fx one snapshot' % (total, total / SNAPSHOT_SECONDS))
    print('  empty play (start-up)    %.2f s' % baseline)
    print('  role minus start-up      %.2f s  ratio %.2fx one snapshot (goal <= 1.5x)' % (total - baseline, (total - baseline) / SNAPSHOT_SECONDS))
    print('  serial would take        %.0f s' % (HOSTS * SNAPSHOT_SECONDS))


if __name__ == '__main__':
    main()
