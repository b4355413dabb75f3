# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX job slices on the namespace fleet: 40 real SSH hosts split into 4 slices the way AWX
splits an inventory (host index modulo the slice count), the 4 jobs run at the same time with one
shared results directory, then the final report is built from the files alone (docs/scale.md).

The audit's sliced report must equal the one-job report host for host (level, reason, findings,
figures, flagged processes), timestamps and sources aside. remediate.yml in 4 slices with one run
id changes every host exactly once, each host's journal holds only its own change under that run
id, and 4 rollback slices put every host back. Each host reads its own fixture procfs (this
machine cannot make a -1000 process) through the roles' proc_path variables; the snapshot gate is
passed by its documented waiver.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import re
import socket
import subprocess
import time

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree, vendor_tree

_SPEC = importlib.util.spec_from_file_location('oomguard_fleet_harness_slices', os.path.join(TOP, 'tests', 'harness', 'fleet.py'))
fleet_mod = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fleet_mod)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the namespace fleet needs root')

HOSTS = 40
SLICES = 4
RUN_ID = 'oomguard-20261202T120000Z-4040'
JAVA = {'pid': 4242, 'ppid': 1, 'comm': 'java', 'oom_score_adj': -1000, 'rss_kb': 6000000, 'unit': 'app.service',
        'cmdline': ['java', '-jar', 'app.jar']}
APP = {'pid': 4343, 'ppid': 1, 'comm': 'app', 'oom_score_adj': 0, 'rss_kb': 900000, 'unit': 'app.service',
       'cmdline': ['app', '--serve']}
# Keys of a report's host entry that depend on when and by which job it was written.
WHEN_AND_WHERE = ('checked_at', 'written_at', 'stale', 'source', 'run_id')


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    state = tmp_path_factory.mktemp('slices-fleet')
    with fleet_mod.Fleet(str(state)).running(hosts=HOSTS) as running:
        yield running
        recorded = running.state
    assert fleet_mod.leftovers(recorded) == []


def fleet_vars(fleet):
    import yaml

    with open(fleet.inventory_path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)['all']['children']['fleet']['vars']


def audit_trees(base):
    """Four kinds of host, so that the report holds several levels."""
    kinds = {
        'java': lambda p: vendor_tree(p, extra=[JAVA], meminfo={'MemTotal': 8000000, 'MemAvailable': 400000}),
        'vendor': vendor_tree,
        'plain': lambda p: build_proc_tree(p, processes=[dict(APP)], meminfo={'MemTotal': 8000000, 'MemAvailable': 6000000}),
        'slab': lambda p: vendor_tree(p, meminfo={'MemTotal': 8000000, 'MemAvailable': 3000000, 'Slab': 2000000,
                                                  'SReclaimable': 100000, 'SUnreclaim': 1900000}),
    }
    paths = {}
    for kind, make in kinds.items():
        paths[kind] = make(str(base / kind / 'proc'))
        (base / kind / 'evidence').mkdir()
    return paths


def host_entries(fleet, make_vars):
    """Inventory order: the fleet's hosts, then one that refuses connections."""
    hosts = {}
    for index, host in enumerate(fleet.hosts):
        hosts[host['name']] = dict(make_vars(index, host['name']), ansible_host=host['address'])
    hosts['gone01'] = {'ansible_host': '127.0.0.1', 'ansible_port': closed_port(), 'ansible_ssh_timeout': 5}
    return hosts


def write_inventory(path, fleet, hosts):
    path.write_text(json.dumps({'all': {'children': {'fleet': {'hosts': hosts, 'vars': fleet_vars(fleet)}}}}))
    return path


def slice_hosts(hosts, number, count=SLICES):
    """AWX's job slicing: slice n (1-based) of N gets the hosts at index n-1, n-1+N, ... in order."""
    names = list(hosts)
    return {name: hosts[name] for name in names[number - 1::count]}


def playbook(inventory, name, *extra):
    env = base_env({'ANSIBLE_DEPRECATION_WARNINGS': 'false', 'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.default'})
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', str(inventory), '--forks', '10']
    cmd += [name if os.path.isabs(name) else os.path.join(TOP, 'playbooks', name)] + list(extra)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # pylint: disable=consider-using-with


def finish(procs, timeout=900):
    """Wait for every job; returns [(rc, output)] in order."""
    with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
        outputs = list(pool.map(lambda p: p.communicate(timeout=timeout)[0], procs))
    return [(p.returncode, out) for p, out in zip(procs, outputs)]


def recap(output):
    found = {}
    for match in re.finditer(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', output, re.M):
        found[match.group(1)] = {'ok': int(match.group(2)), 'changed': int(match.group(3)),
                                 'unreachable': int(match.group(4)), 'failed': int(match.group(5))}
    return found


FINAL_REPORT = """
- name: Build the fleet report from the slices' result files
  hosts: localhost
  gather_facts: false
  roles:
    - role: oomguard.fleet.report
      vars:
        oomguard_report_hosts: []
        oomguard_report_results_dir: "{{ results_dir }}"
        oomguard_report_write_results: false
"""


def final_report(tmp_path, results, report_dir):
    play = tmp_path / 'final-report.yml'
    play.write_text(FINAL_REPORT)
    inventory = tmp_path / 'localhost.json'
    inventory.write_text(json.dumps({'all': {'hosts': {'localhost': {'ansible_connection': 'local'}}}}))
    ((rc, out),) = finish([playbook(inventory, str(play), '-e', 'results_dir=%s' % results,
                                    '-e', 'oomguard_report_dir=%s' % report_dir)])
    assert rc == 0, out[-4000:]
    return json.loads((report_dir / 'oomguard-report.json').read_text())


def by_host(report):
    return {h['host']: {k: v for k, v in h.items() if k not in WHEN_AND_WHERE} for h in report['hosts']}


def test_slicing_is_awx_index_modulo_count():
    hosts = {'h%02d' % i: {} for i in range(10)}
    assert list(slice_hosts(hosts, 1, 4)) == ['h00', 'h04', 'h08']
    assert list(slice_hosts(hosts, 4, 4)) == ['h03', 'h07']
    assert sorted(n for k in range(1, 5) for n in slice_hosts(hosts, k, 4)) == sorted(hosts)


def test_four_audit_slices_make_the_one_job_report(fleet, tmp_path):
    trees = audit_trees(tmp_path / 'trees')
    kinds = sorted(trees)

    def make_vars(index, name):
        kind = kinds[index % len(kinds)]
        return {'oomguard_assess_proc_path': trees[kind], 'oomguard_assess_evidence_root': str(tmp_path / 'trees' / kind / 'evidence'),
                'oomguard_assess_slab_baseline_path': str(tmp_path / 'baselines' / (name + '.json'))}

    hosts = host_entries(fleet, make_vars)
    whole = write_inventory(tmp_path / 'whole.json', fleet, hosts)
    start = time.monotonic()
    ((rc, out),) = finish([playbook(whole, 'audit.yml', '-e', 'oomguard_report_dir=%s' % (tmp_path / 'one-job'))])
    one_job_seconds = time.monotonic() - start
    assert rc == 4, out[-4000:]  # gone01 is unreachable: docs/report.md, "Exit codes"
    one_job = json.loads((tmp_path / 'one-job' / 'oomguard-report.json').read_text())

    results = tmp_path / 'shared-results'
    procs = []
    for number in range(1, SLICES + 1):
        inventory = write_inventory(tmp_path / ('slice%d.json' % number), fleet, slice_hosts(hosts, number))
        procs.append(playbook(inventory, 'audit.yml', '-e', 'oomguard_report_dir=%s' % (tmp_path / ('slice%d' % number)),
                              '-e', 'oomguard_assess_results_dir=%s' % results, '-e', 'oomguard_run_id=' + RUN_ID))
    start = time.monotonic()
    done = finish(procs)
    sliced_seconds = time.monotonic() - start
    seen = {}
    for number, (rc, out) in enumerate(done, 1):
        assert rc == (4 if 'gone01' in slice_hosts(hosts, number) else 0), out[-4000:]
        for name, counts in recap(out).items():
            if name != 'localhost':
                seen.setdefault(name, []).append(number)
    assert seen == {name: [index % SLICES + 1] for index, name in enumerate(hosts)}
    assert sorted(os.listdir(results)) == sorted(name + '.json' for name in hosts)

    final = final_report(tmp_path, results, tmp_path / 'final')
    want, got = by_host(one_job), by_host(final)
    assert sorted(got) == sorted(hosts)
    assert got == want
    assert [h['host'] for h in final['hosts']] == [h['host'] for h in one_job['hosts']]  # the same order, worst first
    assert final['totals']['by_level'] == one_job['totals']['by_level']
    assert len({h['level'] for h in final['hosts']}) >= 3, final['totals']['by_level']
    assert got['gone01']['level'] == 'unknown'
    assert {h['run_id'] for h in final['hosts'] if h['host'] != 'gone01'} == {RUN_ID}
    assert final['sources']['results'] == len(hosts) and final['problems'] == []
    print('audit of %d hosts: one job %.1f s, %d concurrent slices %.1f s' % (len(hosts), one_job_seconds, SLICES, sliced_seconds))


def journal(path):
    with open(path, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_four_remediate_slices_change_each_host_once_and_roll_back(fleet, tmp_path):
    def make_vars(dummy, name):
        base = tmp_path / 'hosts' / name
        vendor_tree(base / 'proc', extra=[JAVA], meminfo={'MemTotal': 8000000, 'MemAvailable': 400000})
        (base / 'evidence').mkdir()
        return {'oomguard_assess_proc_path': str(base / 'proc'), 'oomguard_assess_evidence_root': str(base / 'evidence'),
                'oomguard_assess_slab_baseline_path': str(base / 'state' / 'slab.json'),
                'oomguard_remediate_proc_path': str(base / 'proc'), 'oomguard_remediate_root': str(base / 'root'),
                'oomguard_remediate_journal': str(base / 'state' / 'journal.jsonl'), 'oomguard_snapshot_enabled': False}

    hosts = host_entries(fleet, make_vars)
    del hosts['gone01']
    results = tmp_path / 'shared-results'
    common = ['-e', 'oomguard_hosts=fleet', '-e', 'oomguard_become=false', '-e', 'oomguard_run_id=' + RUN_ID]
    inventories = [write_inventory(tmp_path / ('slice%d.json' % n), fleet, slice_hosts(hosts, n)) for n in range(1, SLICES + 1)]

    def adj(name, pid=4242):
        return int((tmp_path / 'hosts' / name / 'proc' / str(pid) / 'oom_score_adj').read_text())

    start = time.monotonic()
    done = finish([playbook(inv, 'remediate.yml', *(common + [
        '-e', 'oomguard_remediate_mode=reset', '-e', 'oomguard_remediate_require_snapshot=false',
        '-e', 'oomguard_report_results_dir=%s' % results, '-e', 'oomguard_report_dir=%s' % (tmp_path / ('report%d' % n))]))
        for n, inv in enumerate(inventories, 1)])
    remediate_seconds = time.monotonic() - start
    changed_in, before_rollback = {}, {}
    for number, (rc, out) in enumerate(done, 1):
        assert rc == 0, out[-4000:]
        for name, counts in recap(out).items():
            if name != 'localhost':
                assert counts['changed'] >= 1 and counts['failed'] == counts['unreachable'] == 0, (name, counts)
                changed_in.setdefault(name, []).append(number)
    assert changed_in == {name: [index % SLICES + 1] for index, name in enumerate(hosts)}
    for name in hosts:
        assert adj(name) == 0 and adj(name, 1799) == -1000, name  # java reset; sshd is allowlisted
        records = journal(tmp_path / 'hosts' / name / 'state' / 'journal.jsonl')
        before_rollback[name] = records
        assert {r['run_id'] for r in records} == {RUN_ID}, records
        intents = [r for r in records if r['state'] == 'intent']
        assert sorted(r['id'] for r in records if r['state'] == 'done') == sorted(r['id'] for r in intents), records
        assert [(r['pid'], r['old'], r['new']) for r in intents if r['op'] == 'runtime'] == [(4242, -1000, 0)], records
        dropin = tmp_path / 'hosts' / name / 'root' / 'etc/systemd/system/app.service.d/zz-oomguard.conf'
        assert [r['path'] for r in intents if r['op'] == 'dropin'] == [str(dropin)]
        assert 'OOMScoreAdjust=0' in dropin.read_text()

    final = final_report(tmp_path, results, tmp_path / 'final')
    assert sorted(h['host'] for h in final['hosts']) == sorted(hosts)
    assert final['totals']['changed_hosts'] == len(hosts)
    for entry in final['hosts']:
        assert entry['run_id'] == RUN_ID and entry['changes']['status'] == 'changed', entry
        assert [(c['pid'], c['old'], c['new']) for c in entry['changes']['changes']] == [(4242, -1000, 0)], entry['changes']
        assert entry['changes']['changes'][0]['dropin'].startswith(str(tmp_path / 'hosts' / entry['host'] / 'root') + '/')

    start = time.monotonic()
    done = finish([playbook(inv, 'rollback.yml', *(common + ['-e', 'oomguard_rollback_run_id=' + RUN_ID])) for inv in inventories])
    rollback_seconds = time.monotonic() - start
    for rc, out in done:
        assert rc == 0, out[-4000:]
        assert '1 value(s) restored' in out
    for name in hosts:
        assert adj(name) == -1000, name
        assert not (tmp_path / 'hosts' / name / 'root' / 'etc/systemd/system/app.service.d').exists()
        records = journal(tmp_path / 'hosts' / name / 'state' / 'journal.jsonl')
        assert records[:len(before_rollback[name])] == before_rollback[name]  # the run's records stay as they were
        assert records[-1]['op'] == 'rollback-complete' and records[-1]['rollback_of'] == RUN_ID, records[-1]
    print('remediate of %d hosts in %d concurrent slices %.1f s, rollback %.1f s' % (len(hosts), SLICES, remediate_seconds, rollback_seconds))
