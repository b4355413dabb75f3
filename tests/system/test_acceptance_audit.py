# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit as a new user runs it: from the released tarball, against real SSH hosts.

The tarball is built the way a release is (``ansible-galaxy collection build``), installed
offline into a fresh collections path, and ``ansible-playbook oomguard.fleet.audit`` runs
from an unrelated directory, with ``ANSIBLE_COLLECTIONS_PATH`` naming only that path and no
``PWD``, against the namespace fleet plus one inventory host that cannot be reached. The
recap counts that host unreachable, the exit code is the documented one (4, docs/report.md
"Exit codes"), and every report format shows the host ``unknown``; the report is beside
the inventory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, VENV_BIN, base_env

HARNESS = os.path.join(TOP, 'tests', 'harness', 'fleet.py')
_SPEC = importlib.util.spec_from_file_location('oomguard_fleet_harness_acceptance', HARNESS)
fleet_mod = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fleet_mod)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the namespace fleet needs root')

GONE = 'gone01'
MEASURED = ('ok', 'low', 'medium', 'high', 'critical')


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def checkout_copy(dest):
    """The files of the checkout (tracked, and new ones not ignored), as a release is built from them."""
    out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=TOP, check=True,
                         capture_output=True, text=True).stdout.split('\n')
    for path in out:
        if path and os.path.isfile(os.path.join(TOP, path)):
            os.makedirs(os.path.dirname(os.path.join(dest, path)), exist_ok=True)
            shutil.copy2(os.path.join(TOP, path), os.path.join(dest, path))


def user_env(collections):
    """A user's shell: the collection only from the fresh path, nothing of the checkout, no PWD."""
    env = base_env({'ANSIBLE_COLLECTIONS_PATH': str(collections), 'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.default',
                    'ANSIBLE_DEPRECATION_WARNINGS': 'false'})
    for key in ('PYTHONPATH', 'PWD', 'OLDPWD', 'ANSIBLE_CONFIG'):
        env.pop(key, None)
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    src = tmp_path_factory.mktemp('src')
    checkout_copy(str(src))
    out = tmp_path_factory.mktemp('dist')
    collections = tmp_path_factory.mktemp('collections')
    env = user_env(collections)
    subprocess.run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out), str(src)],
                   check=True, capture_output=True, env=env, cwd=str(out))
    (tarball,) = list(out.glob('oomguard-fleet-*.tar.gz'))
    proc = subprocess.run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p',
                           str(collections), str(tarball)], capture_output=True, text=True, env=env, cwd=str(out),
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed_dir = collections / 'ansible_collections' / 'oomguard' / 'fleet'
    with tarfile.open(str(tarball)) as archive:
        assert 'playbooks/audit.yml' in archive.getnames()
    assert (installed_dir / 'playbooks' / 'audit.yml').is_file() and not (installed_dir / 'tests').exists()
    return collections


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    with fleet_mod.Fleet(str(tmp_path_factory.mktemp('fleet'))).running(2) as running:
        yield running


def site_inventory(fleet, site):
    """The fleet's inventory in the user's own directory, plus one host nobody answers for."""
    inventory = yaml.safe_load(fleet.inventory_text())
    gone = {'ansible_host': '127.0.0.1', 'ansible_port': closed_port(), 'ansible_ssh_timeout': 5}
    inventory['all']['children']['fleet']['hosts'][GONE] = gone
    path = site / 'inventory.yml'
    path.write_text(yaml.safe_dump(inventory, default_flow_style=False))
    return path


def recap(stdout, host):
    found = re.search(r'^%s +: ok=(\d+) +changed=\d+ +unreachable=(\d+) +failed=(\d+) ' % re.escape(host), stdout, re.M)
    assert found, stdout[-3000:]
    return dict(zip(('ok', 'unreachable', 'failed'), (int(v) for v in found.groups())))


def run_audit(installed, inventory, cwd, *extra):
    return subprocess.run([os.path.join(VENV_BIN, 'ansible-playbook'), 'oomguard.fleet.audit', '-i', str(inventory)]
                          + list(extra), capture_output=True, text=True, env=user_env(installed), cwd=str(cwd),
                          check=False, timeout=600)


def test_installed_audit_counts_an_unreachable_host_and_reports_it_unknown(installed, fleet, tmp_path):
    site = tmp_path / 'site'
    site.mkdir()
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    inventory = site_inventory(fleet, site)
    proc = run_audit(installed, inventory, elsewhere)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 4, output[-4000:]          # docs/report.md, "Exit codes": a host was unreachable
    assert 'fatal: [%s]: UNREACHABLE!' % GONE in proc.stdout
    assert recap(proc.stdout, GONE)['unreachable'] == 1
    names = [host['name'] for host in fleet.hosts]
    for name in names:
        assert recap(proc.stdout, name) == dict(recap(proc.stdout, name), unreachable=0, failed=0)
    assert recap(proc.stdout, 'localhost')['failed'] == 0

    report_dir = site / 'oomguard-report'                 # beside the inventory, not in the current directory
    assert os.listdir(str(elsewhere)) == []
    report = json.loads((report_dir / 'oomguard-report.json').read_text())
    levels = dict((h['host'], h) for h in report['hosts'])
    assert sorted(levels) == sorted(names + [GONE])
    assert levels[GONE]['level'] == 'unknown' and levels[GONE]['reason'].startswith('host unreachable: '), levels[GONE]
    for name in names:
        assert levels[name]['level'] in MEASURED, levels[name]
    assert report['totals']['by_level']['unknown'] == 1
    markdown = (report_dir / 'oomguard-report.md').read_text()
    assert re.search(r'^\| %s \| unknown \|' % GONE, markdown, re.M), markdown
    html = (report_dir / 'oomguard-report.html').read_text()
    assert GONE in html and 'unknown' in html
    junit = ET.fromstring((report_dir / 'oomguard-report.junit.xml').read_bytes())
    (case,) = [c for c in junit.iter('testcase') if c.get('name') == GONE]
    assert case.find('error') is not None
    assert 'gone01 [unknown] host unreachable' in proc.stdout   # the console summary too

    # With the report's gate the exit code stays the documented 4, and the gate names the host.
    proc = run_audit(installed, inventory, elsewhere, '-e', 'oomguard_report_fail_on=high')
    assert proc.returncode == 4, (proc.stdout + proc.stderr)[-4000:]
    assert re.search(r"host\(s\) at or above exposure level 'high': .*gone01 \(unknown\)", proc.stdout), proc.stdout[-3000:]
    assert recap(proc.stdout, GONE)['unreachable'] == 1
