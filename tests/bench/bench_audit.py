# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the audit play against a ``ping`` play over the same namespace fleet.

Both run over the same hosts (real SSH, pipelining on), with the same forks, warm (each
is run once before timing), alternating, and the median of the timed runs is compared.
A third play that only makes the assess role's remote round trip (the facts module)
splits the audit's cost into that round trip and everything else (controller-side
rules, extra tasks, the report); a task timer shows where the audit's time goes.
Controller CPU time is printed beside wall time: on a busy machine it is the steadier
figure.

Environment: BENCH_HOSTS (30), BENCH_FORKS (10), BENCH_ROUNDS (3), BENCH_GOAL (1.5).
Exit status is 0 unless a play fails or the fleet cannot be built: the ratio is printed,
not enforced.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS = os.path.join(TOP, 'tests', 'harness', 'fleet.py')
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
CALLBACKS = os.path.join(TOP, 'tests', 'bench', 'callback_plugins')

PING_PLAY = '''\
- name: Ping every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
'''

FACTS_PLAY = '''\
- name: The assess role's remote round trip alone
  hosts: all
  gather_facts: false
  tasks:
    - name: One facts round trip, as the assess role makes it by default
      oomguard.fleet.oom_score_facts:
        gather_subset: [oom, slabinfo, evidence]
        slabinfo_baseline: store
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


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hosts_cpu(harness, fleet):
    """CPU seconds used so far by everything in the fleet's hosts (sshd, sessions, modules).

    Every process in a host is counted once: its own time while it lives, then inside its
    parent's reaped-children time (the host's sshd and tini stay up for the whole run).
    """
    tick = os.sysconf('SC_CLK_TCK')
    total = 0
    for host in fleet.hosts:
        for pid in harness.netns_pids(host['netns']):
            try:
                with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
                    fields = handle.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / tick


def run_play(playbook, inventory, forks, workdir, extra_vars=()):
    """Run one play; return wall seconds, controller CPU seconds and per-task wall seconds."""
    times_path = os.path.join(workdir, 'task-times.json')
    env = dict(os.environ)
    env.update({'ANSIBLE_PIPELINING': 'true', 'ANSIBLE_FORKS': str(forks), 'ANSIBLE_DEPRECATION_WARNINGS': 'false',
                'ANSIBLE_RETRY_FILES_ENABLED': 'false', 'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.default',
                'ANSIBLE_DISPLAY_SKIPPED_HOSTS': 'false', 'ANSIBLE_DISPLAY_OK_HOSTS': 'false',
                'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS, 'ANSIBLE_CALLBACKS_ENABLED': 'bench_task_timer',
                'BENCH_TASK_TIMES': times_path})
    argv = [PLAYBOOK_BIN, '-i', inventory, '-f', str(forks), playbook]
    for item in extra_vars:
        argv += ['-e', item]
    cpu = children_cpu()
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    cpu = children_cpu() - cpu
    if proc.returncode != 0:
        tail = proc.stdout[-4000:] + '\n' + proc.stderr[-2000:]
        raise RuntimeError('%s failed (rc=%d):\n%s' % (playbook, proc.returncode, tail))
    with open(times_path, encoding='utf-8') as handle:
        tasks = json.load(handle)
    return {'wall': elapsed, 'cpu': cpu, 'tasks': tasks}


def report(runs, label, settings):
    order = ('ping', 'facts', 'audit')
    wall = {name: statistics.median(r['wall'] for r in runs[name]) for name in order}
    cpu = {name: statistics.median(r['cpu'] for r in runs[name]) for name in order}
    remote = {name: statistics.median(r['hosts_cpu'] for r in runs[name]) for name in order}
    ratio = wall['audit'] / wall['ping']
    print('bench_audit: %(hosts)d namespace hosts over real SSH (fleet up in %(up).2fs), forks %(forks)d, '
          'pipelining on, warm, median of %(rounds)d; load average %(load).1f' % settings)
    print('  audit: %s' % label)
    for name in order:
        print('  %-5s %6.2fs wall, %6.2fs controller CPU, %5.2fs CPU in the hosts  (wall per run: %s)'
              % (name, wall[name], cpu[name], remote[name], ', '.join('%.2f' % r['wall'] for r in runs[name])))
    print('  audit/ping: %.2fx wall, %.2fx controller CPU (goal <= %.1fx wall): %s'
          % (ratio, cpu['audit'] / cpu['ping'], settings['goal'], 'MET' if ratio <= settings['goal'] else 'ABOVE GOAL'))
    if settings['load'] > os.cpu_count():
        print('  note: load average %.1f on %d CPUs while measuring: wall times are unreliable, '
              'compare the controller CPU figures' % (settings['load'], os.cpu_count()))
    print('  split: remote facts round trip %+.2fs over ping; the rest of the audit %+.2fs'
          % (wall['facts'] - wall['ping'], wall['audit'] - wall['facts']))
    median_run = sorted(runs['audit'], key=lambda r: r['wall'])[len(runs['audit']) // 2]
    print('  audit tasks, slowest first (median run; all hosts together): wall, controller CPU')
    for task in sorted(median_run['tasks'], key=lambda t: -t['seconds'])[:10]:
        print('    %6.2fs %6.2fs  %s' % (task['seconds'], task['cpu'], task['task']))


def main():
    settings = {'hosts': int(os.environ.get('BENCH_HOSTS', '30')), 'forks': int(os.environ.get('BENCH_FORKS', '10')),
                'rounds': int(os.environ.get('BENCH_ROUNDS', '3')), 'goal': float(os.environ.get('BENCH_GOAL', '1.5'))}
    if os.geteuid() != 0:
        print('bench_audit: skipped: the namespace fleet needs root')
        return 0
    harness = load_harness()
    with tempfile.TemporaryDirectory(prefix='oomguard-bench-') as workdir:
        fleet = harness.Fleet(os.path.join(workdir, 'fleet'))
        start = time.monotonic()
        try:
            fleet.up(settings['hosts'])
        except harness.FleetError as exc:
            raise RuntimeError('cannot build the fleet: %s' % exc) from exc
        settings['up'] = time.monotonic() - start
        try:
            plays = {'ping': os.path.join(workdir, 'ping.yml'), 'facts': os.path.join(workdir, 'facts.yml')}
            for name, text in (('ping', PING_PLAY), ('facts', FACTS_PLAY)):
                with open(plays[name], 'w', encoding='utf-8') as handle:
                    handle.write(text)
            label, plays['audit'] = audit_play(workdir)
            # The audit as users run it, with the report written inside the scratch directory.
            extra = {'audit': ['oomguard_report_dir=%s' % os.path.join(workdir, 'report')]}
            runs = {name: [] for name in plays}
            for round_no in range(settings['rounds'] + 1):
                for name in ('ping', 'facts', 'audit'):
                    before = hosts_cpu(harness, fleet)
                    result = run_play(plays[name], fleet.inventory_path, settings['forks'], workdir, extra.get(name, ()))
                    result['hosts_cpu'] = hosts_cpu(harness, fleet) - before
                    if round_no:  # round 0 warms controller caches, remote pycache and ControlPersist masters
                        runs[name].append(result)
        finally:
            fleet.down()
    settings['load'] = os.getloadavg()[0]
    report(runs, label, settings)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as exc:
        print('bench_audit: error: %s' % exc, file=sys.stderr)
        sys.exit(1)
