# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the audit play against a ``ping`` play over the same namespace fleet, and how both
grow with the fleet.

Both run over the same hosts (real SSH, pipelining on), with the same forks, warm (each
is run once before timing), alternating, and the median of the timed runs is compared.
At the first size and forks, a third play that only makes the assess role's remote round
trip (the facts module) splits the audit's cost into that round trip and everything else
(controller-side rules, extra tasks, the report); a task timer shows where the audit's
time goes. Controller CPU time is printed beside wall time: on a busy machine it is the
steadier figure.

Growth: the fleet is built once at the largest size (in fleets of at most 150 namespace
hosts each, the harness's per-fleet limit being 250), and each size runs on the first N
hosts (``--limit``), at each forks setting. Printed per size and forks: ping and audit wall,
audit/ping (goal <= 1.25x at every size) and controller CPU per host (goal: flat, the
largest size no more than +10% over the smallest). The per-host figures feed the capacity
table in docs/scale.md.

Environment: BENCH_SIZES ("30,100,300"), BENCH_FORKS ("10,50"), BENCH_ROUNDS (2 timed runs
after one warm run per size), BENCH_GOAL (1.25), BENCH_CPU_GROWTH_GOAL (10, percent),
BENCH_FLEET_SIZE (150, hosts per namespace fleet).
Exit status is 0 unless a play fails or the fleet cannot be built: the figures are printed,
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


def run_play(playbook, inventory, forks, workdir, extra_vars=(), limit=None):
    """Run one play; return wall seconds, controller CPU seconds and per-task wall seconds."""
    times_path = os.path.join(workdir, 'task-times.json')
    env = dict(os.environ)
    env.update({'ANSIBLE_PIPELINING': 'true', 'ANSIBLE_FORKS': str(forks), 'ANSIBLE_DEPRECATION_WARNINGS': 'false',
                'ANSIBLE_RETRY_FILES_ENABLED': 'false', 'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.default',
                'ANSIBLE_DISPLAY_SKIPPED_HOSTS': 'false', 'ANSIBLE_DISPLAY_OK_HOSTS': 'false',
                'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS, 'ANSIBLE_CALLBACKS_ENABLED': 'bench_task_timer',
                'BENCH_TASK_TIMES': times_path})
    inventories = [inventory] if isinstance(inventory, str) else list(inventory)
    argv = [PLAYBOOK_BIN, '-f', str(forks), playbook]
    for path in inventories:
        argv += ['-i', path]
    if limit:
        argv += ['--limit', '@' + limit]
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
    print('  audit/ping: %.2fx wall, %.2fx controller CPU (goal <= %.2fx wall): %s'
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


def growth(table, settings):
    """The growth table: one row per size and forks."""
    print('bench_audit: growth, %s hosts x forks %s, median of %d timed runs each; load average %.1f'
          % (', '.join(str(n) for n in settings['sizes']), ', '.join(str(f) for f in settings['forks_list']),
             settings['rounds'], os.getloadavg()[0]))
    heads = ('hosts', 'forks', 'ping', 'audit', 'audit/ping', 'ping CPU/host (ms)', 'audit CPU/host (ms)')
    print('  %6s %5s %9s %9s %10s %22s %22s' % heads)
    for (size, forks), row in sorted(table.items()):
        ratio = row['audit_wall'] / row['ping_wall']
        print('  %6d %5d %8.2fs %8.2fs %9.2fx %22.1f %22.1f  %s' % (
            size, forks, row['ping_wall'], row['audit_wall'], ratio, 1000 * row['ping_cpu'] / size,
            1000 * row['audit_cpu'] / size, 'MET' if ratio <= settings['goal'] else 'ABOVE GOAL'))
    smallest, largest = settings['sizes'][0], settings['sizes'][-1]
    for forks in settings['forks_list']:
        small, large = table.get((smallest, forks)), table.get((largest, forks))
        if not small or not large or smallest == largest:
            continue
        change = 100.0 * ((large['audit_cpu'] / largest) / (small['audit_cpu'] / smallest) - 1)
        print('  forks %d: audit controller CPU per host %d -> %d hosts: %+.1f%% (goal <= +%.0f%%): %s' % (
            forks, smallest, largest, change, settings['cpu_goal'], 'MET' if change <= settings['cpu_goal'] else 'ABOVE GOAL'))
    worst = max(row['audit_wall'] / row['ping_wall'] for row in table.values())
    print('  worst audit/ping: %.2fx (goal <= %.2fx at every size)' % (worst, settings['goal']))
    per_host = table[(largest, settings['forks_list'][-1])]
    print('  at %d hosts, forks %d: %.3f s of wall per host for the audit, i.e. %d hosts per hour per controller' % (
        largest, settings['forks_list'][-1], per_host['audit_wall'] / largest, 3600.0 * largest / per_host['audit_wall']))


def build_fleets(harness, workdir, hosts, per_fleet=150):
    """Fleets of at most ``per_fleet`` hosts, named apart, together ``hosts`` hosts; returns them built."""
    fleets = []
    left, index = hosts, 0
    try:
        while left > 0:
            count = min(per_fleet, left)
            fleet = harness.Fleet(os.path.join(workdir, 'fleet%d' % index))
            fleets.append(fleet)
            fleet.up(count, name_format='f%d-n%%03d' % index)
            left -= count
            index += 1
    except harness.FleetError as exc:
        for fleet in fleets:
            fleet.down()
        raise RuntimeError('cannot build the fleet: %s' % exc) from exc
    return fleets


def main():
    settings = {'sizes': sorted(int(n) for n in os.environ.get('BENCH_SIZES', '30,100,300').split(',')),
                'forks_list': [int(n) for n in os.environ.get('BENCH_FORKS', '10,50').split(',')],
                'rounds': int(os.environ.get('BENCH_ROUNDS', '2')), 'goal': float(os.environ.get('BENCH_GOAL', '1.25')),
                'cpu_goal': float(os.environ.get('BENCH_CPU_GROWTH_GOAL', '10'))}
    if os.geteuid() != 0:
        print('bench_audit: skipped: the namespace fleet needs root')
        return 0
    harness = load_harness()
    with tempfile.TemporaryDirectory(prefix='oomguard-bench-') as workdir:
        start = time.monotonic()
        fleets = build_fleets(harness, workdir, settings['sizes'][-1], int(os.environ.get('BENCH_FLEET_SIZE', '150')))
        up = time.monotonic() - start
        try:
            names = [host['name'] for fleet in fleets for host in fleet.hosts]
            # One group per fleet: each fleet's connection variables (key, known_hosts) sit on its group.
            inventories = []
            for index, fleet in enumerate(fleets):
                inventories.append(os.path.join(workdir, 'inventory-%d.yml' % index))
                with open(inventories[-1], 'w', encoding='utf-8') as handle:
                    handle.write(fleet.inventory_text().replace('\n    fleet:\n', '\n    fleet%d:\n' % index, 1))
            plays = {'ping': os.path.join(workdir, 'ping.yml'), 'facts': os.path.join(workdir, 'facts.yml')}
            for name, text in (('ping', PING_PLAY), ('facts', FACTS_PLAY)):
                with open(plays[name], 'w', encoding='utf-8') as handle:
                    handle.write(text)
            label, plays['audit'] = audit_play(workdir)
            # The audit as users run it, with the report written inside the scratch directory.
            extra = {'audit': ['oomguard_report_dir=%s' % os.path.join(workdir, 'report')]}
            table, detail = {}, None
            for size in settings['sizes']:
                limit = os.path.join(workdir, 'limit-%d' % size)
                with open(limit, 'w', encoding='utf-8') as handle:
                    handle.write('\n'.join(names[:size]) + '\n')
                first = size == settings['sizes'][0]
                order = ('ping', 'facts', 'audit') if first else ('ping', 'audit')
                for name in order:   # warms controller caches, remote pycache and ControlPersist masters
                    run_play(plays[name], inventories, max(settings['forks_list']), workdir, extra.get(name, ()), limit)
                for forks in settings['forks_list']:
                    runs = {name: [] for name in order}
                    for _round in range(settings['rounds']):
                        for name in order:
                            before = sum(hosts_cpu(harness, fleet) for fleet in fleets)
                            result = run_play(plays[name], inventories, forks, workdir, extra.get(name, ()), limit)
                            result['hosts_cpu'] = sum(hosts_cpu(harness, fleet) for fleet in fleets) - before
                            runs[name].append(result)
                    table[(size, forks)] = dict(('%s_%s' % (name, key), statistics.median(r[key] for r in runs[name]))
                                                for name in ('ping', 'audit') for key in ('wall', 'cpu'))
                    if detail is None:
                        detail = (runs, dict(settings, hosts=size, forks=forks, up=up, load=os.getloadavg()[0]))
        finally:
            for fleet in fleets:
                fleet.down()
    report(detail[0], label, detail[1])
    growth(table, settings)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as exc:
        print('bench_audit: error: %s' % exc, file=sys.stderr)
        sys.exit(1)
