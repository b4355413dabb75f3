# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the audit play against a ``ping`` play over the same namespace fleet.

Both run over the same hosts (real SSH, pipelining on), with the same forks, warm (each
is run once before timing), alternating, and the median of the timed runs is compared.
A third play that only runs the facts module splits the audit's cost into the remote
round trip and everything else (controller-side rules, files, extra tasks).

Environment: BENCH_HOSTS (30), BENCH_FORKS (10), BENCH_ROUNDS (3), BENCH_GOAL (1.5).
Exit status is 0 unless a play fails or the fleet cannot be built: the ratio is printed,
not enforced.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS = os.path.join(TOP, 'tests', 'harness', 'fleet.py')
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')

PING_PLAY = '''\
- name: Ping every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
'''

FACTS_PLAY = '''\
- name: Gather the oom and slabinfo facts only
  hosts: all
  gather_facts: false
  tasks:
    - name: One facts round trip
      oomguard.fleet.oom_score_facts:
        gather_subset: [oom, slabinfo]
'''

ASSESS_PLAY = '''\
- name: Assess every host
  hosts: all
  gather_facts: false
  roles:
    - role: oomguard.fleet.assess
'''


def load_harness():
    spec = importlib.util.spec_from_file_location('oomguard_fleet_harness', HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def audit_play(workdir):
    """The audit as users run it, or the closest thing the collection has so far."""
    audit = os.path.join(TOP, 'playbooks', 'audit.yml')
    if os.path.exists(audit):
        return 'playbooks/audit.yml', audit
    path = os.path.join(workdir, 'audit-stand-in.yml')
    if os.path.isdir(os.path.join(TOP, 'roles', 'assess')):
        label, text = 'roles/assess play (playbooks/audit.yml not found)', ASSESS_PLAY
    else:
        label, text = 'oom_score_facts play (no audit playbook or assess role yet)', FACTS_PLAY
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)
    return label, path


def run_play(playbook, inventory, forks, workdir, extra_vars=()):
    env = dict(os.environ)
    env.update({'ANSIBLE_PIPELINING': 'true', 'ANSIBLE_FORKS': str(forks), 'ANSIBLE_DEPRECATION_WARNINGS': 'false',
                'ANSIBLE_RETRY_FILES_ENABLED': 'false', 'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.default',
                'ANSIBLE_DISPLAY_SKIPPED_HOSTS': 'false', 'ANSIBLE_DISPLAY_OK_HOSTS': 'false'})
    argv = [PLAYBOOK_BIN, '-i', inventory, '-f', str(forks), playbook]
    for item in extra_vars:
        argv += ['-e', item]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = proc.stdout[-4000:] + '\n' + proc.stderr[-2000:]
        raise RuntimeError('%s failed (rc=%d):\n%s' % (playbook, proc.returncode, tail))
    return elapsed


def main():
    hosts = int(os.environ.get('BENCH_HOSTS', '30'))
    forks = int(os.environ.get('BENCH_FORKS', '10'))
    rounds = int(os.environ.get('BENCH_ROUNDS', '3'))
    goal = float(os.environ.get('BENCH_GOAL', '1.5'))
    if os.geteuid() != 0:
        print('bench_audit: skipped: the namespace fleet needs root')
        return 0
    harness = load_harness()
    with tempfile.TemporaryDirectory(prefix='oomguard-bench-') as workdir:
        fleet = harness.Fleet(os.path.join(workdir, 'fleet'))
        start = time.monotonic()
        try:
            fleet.up(hosts)
        except harness.FleetError as exc:
            raise RuntimeError('cannot build the fleet: %s' % exc) from exc
        up_seconds = time.monotonic() - start
        try:
            results_dir = os.path.join(workdir, 'results')
            os.makedirs(results_dir)
            plays = {'ping': os.path.join(workdir, 'ping.yml'), 'facts': os.path.join(workdir, 'facts.yml')}
            for name, text in (('ping', PING_PLAY), ('facts', FACTS_PLAY)):
                with open(plays[name], 'w', encoding='utf-8') as handle:
                    handle.write(text)
            label, plays['audit'] = audit_play(workdir)
            extra = {'audit': ['oomguard_assess_results_dir=%s' % results_dir,
                               'oomguard_report_dir=%s' % os.path.join(workdir, 'report')]}
            order = ('ping', 'facts', 'audit')
            for name in order:  # warm: controller caches, remote pycache, ControlPersist masters
                run_play(plays[name], fleet.inventory_path, forks, workdir, extra.get(name, ()))
            times = {name: [] for name in order}
            for _round in range(rounds):
                for name in order:
                    times[name].append(run_play(plays[name], fleet.inventory_path, forks, workdir,
                                                extra.get(name, ())))
        finally:
            fleet.down()
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median['audit'] / median['ping']
    print('bench_audit: %d namespace hosts over real SSH (fleet up in %.2fs), forks %d, pipelining on, '
          'warm, median of %d' % (hosts, up_seconds, forks, rounds))
    print('  audit: %s' % label)
    for name in order:
        print('  %-5s %6.2fs  (runs: %s)' % (name, median[name], ', '.join('%.2f' % t for t in times[name])))
    print('  audit/ping ratio %.2fx (goal <= %.1fx): %s' % (ratio, goal, 'MET' if ratio <= goal else 'ABOVE GOAL'))
    print('  split: remote facts round trip %.2fs over ping; rest of the audit (controller rules, files, '
          'extra tasks) %.2fs' % (median['facts'] - median['ping'], median['audit'] - median['facts']))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as exc:
        print('bench_audit: error: %s' % exc, file=sys.stderr)
        sys.exit(1)
