# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the snapshot role on 20 hosts x 3 disks against the ECS double with 5 s snapshots.

Runs the role over 1 host and over 20 hosts and prints, for each, the play's wall time,
the same minus an empty play's start-up over the same inventory, and the time from the
first CreateSnapshot the double saw to the end of the play, each against one snapshot's
5 s. Goal: 20 hosts within 1.5x one snapshot, i.e. the hosts are done in parallel.
Talks only to the ECS double on 127.0.0.1. Timings depend on the machine's load, which
is printed with them.
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
    return elapsed, proc.stdout


def write(path, text):
    with open(path, 'w') as handle:
        handle.write(text)


def measure(hosts, env, tmp):
    """Wall time of the role over ``hosts`` hosts, and the double's view: first CreateSnapshot to play end."""
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=SNAPSHOT_SECONDS) as ecs:
        lines = ['[fleet:vars]', 'ansible_connection=local', 'ansible_python_interpreter=%s' % sys.executable,
                 'oomguard_snapshot_provider=alicloud', 'oomguard_snapshot_endpoint_url=%s' % ecs.endpoint,
                 'oomguard_snapshot_progress_interval=10', 'oomguard_snapshot_poll_interval=0.25', '[fleet]']
        for n in range(hosts):
            ecs.add_instance('i-bench%02d' % n, 'cn-hangzhou', data_disks=DATA_DISKS)
            lines.append('host%02d instance_id=i-bench%02d region=cn-hangzhou' % (n, n))
        inventory = os.path.join(tmp, 'inventory-%d.ini' % hosts)
        write(inventory, '\n'.join(lines) + '\n')
        role = os.path.join(tmp, 'snapshot.yml')
        write(role, '- hosts: fleet\n  gather_facts: false\n  roles:\n    - oomguard.fleet.snapshot\n')
        empty = os.path.join(tmp, 'empty.yml')
        write(empty, '- hosts: fleet\n  gather_facts: false\n  tasks: []\n')
        baseline, dummy = run(empty, inventory, env)
        total, dummy = run(role, inventory, env)
        end = time.monotonic()
        made = [s for s in ecs.snapshots.values() if s['Tags'].get('oomguard:managed-by') == 'oomguard.fleet']
        if len(made) != hosts * (DATA_DISKS + 1):
            raise SystemExit('bench_snapshot: expected %d snapshots, found %d' % (hosts * (DATA_DISKS + 1), len(made)))
        creates = [t for t, action, status in ecs.timeline if action == 'CreateSnapshot' and status == 200]
        return {'total': total, 'baseline': baseline, 'create_spread': max(creates) - min(creates),
                'from_first_create': end - min(creates)}


def main():
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
               ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, '.build', 'collections'), ANSIBLE_FORKS=str(HOSTS + 5),
               ANSIBLE_HOST_KEY_CHECKING='false', ANSIBLE_LOCALHOST_WARNING='false',
               ALIBABA_CLOUD_ECS_METADATA_DISABLED='true')
    env['PATH'] = os.path.join(TOP, '.venv', 'bin') + os.pathsep + env.get('PATH', '')
    with tempfile.TemporaryDirectory() as tmp:
        one = measure(1, env, tmp)
        many = measure(HOSTS, env, tmp)
    load = os.getloadavg()[0]
    print('bench_snapshot: %d hosts x %d disks, %.0f s per snapshot on the ECS double, forks %s (load average %.1f on %d CPUs)'
          % (HOSTS, DATA_DISKS + 1, SNAPSHOT_SECONDS, env['ANSIBLE_FORKS'], load, os.cpu_count()))
    for label, m in (('1 host ', one), ('%d hosts' % HOSTS, many)):
        print('  %s: play %.2f s (%.2fx one snapshot); minus empty-play start-up %.2f s: %.2f s (%.2fx); '
              'first CreateSnapshot to play end %.2f s (%.2fx); CreateSnapshot spread %.2f s'
              % (label, m['total'], m['total'] / SNAPSHOT_SECONDS, m['baseline'], m['total'] - m['baseline'],
                 (m['total'] - m['baseline']) / SNAPSHOT_SECONDS, m['from_first_create'], m['from_first_create'] / SNAPSHOT_SECONDS,
                 m['create_spread']))
    print('  %d hosts vs 1 host: %.2fx the time for %dx the snapshots (serial would be %.0f s)'
          % (HOSTS, many['total'] / one['total'], HOSTS, HOSTS * SNAPSHOT_SECONDS))
    print('  goal: %d hosts within 1.5x one snapshot (%.1f s): first CreateSnapshot to play end %.2fx, whole play minus start-up %.2fx'
          % (HOSTS, 1.5 * SNAPSHOT_SECONDS, many['from_first_create'] / SNAPSHOT_SECONDS,
             (many['total'] - many['baseline']) / SNAPSHOT_SECONDS))


if __name__ == '__main__':
    main()
