"""The playbooks carry the tags users reach for: assess, snapshot, remediate, report (and rollback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import vendor_tree

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def playbook(name, *args, cwd=None):
    return subprocess.run([os.path.join(VENV_BIN, 'ansible-playbook'), os.path.join(TOP, 'playbooks', name)] + list(args),
                          env=base_env({'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.default'}), capture_output=True, text=True,
                          timeout=300, check=False, cwd=cwd)


def listed_tags(name):
    res = playbook(name, '-i', 'localhost,', '--list-tags')
    assert res.returncode == 0, res.stdout + res.stderr
    tags = set()
    for found in re.findall(r'TASK TAGS: \[([^\]]*)\]', res.stdout):
        tags.update(tag.strip() for tag in found.split(',') if tag.strip())
    return tags - {'always'}


@pytest.mark.parametrize('name,tags', [
    ('audit.yml', {'assess', 'report'}),
    ('remediate.yml', {'assess', 'snapshot', 'remediate', 'report'}),
    ('rollback.yml', {'rollback'}),
])
def test_playbooks_list_the_tags(name, tags):
    assert listed_tags(name) == tags


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / 'inventory.yml'
    path.write_text('all:\n  hosts:\n    web01:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n'
                    % sys.executable)
    return path


def audit_vars(tmp_path):
    (tmp_path / 'root').mkdir(exist_ok=True)
    return json.dumps({'oomguard_assess_proc_path': str(vendor_tree(tmp_path / 'proc')),
                       'oomguard_assess_evidence_root': str(tmp_path / 'root'),
                       'oomguard_assess_slab_baseline_path': str(tmp_path / 'state' / 'slab-baseline.json'),
                       'oomguard_report_dir': str(tmp_path / 'report')})


def test_audit_with_tag_assess_judges_and_writes_no_report(tmp_path, inventory):
    res = playbook('audit.yml', '-i', str(inventory), '-e', audit_vars(tmp_path), '--tags', 'assess')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # Ansible runs a role's argument validation under every tag: look for the role's own tasks.
    assert 'TASK [oomguard.fleet.assess : Gather the facts and judge the exposure]' in res.stdout, res.stdout[-3000:]
    assert not re.search(r'TASK \[oomguard\.fleet\.report : (?!Validating arguments)', res.stdout)
    assert not (tmp_path / 'report').exists()


def test_audit_with_tag_report_writes_the_report_without_assessing(tmp_path, inventory):
    res = playbook('audit.yml', '-i', str(inventory), '-e', audit_vars(tmp_path), '--tags', 'report')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'TASK [oomguard.fleet.assess : Gather the facts and judge the exposure]' not in res.stdout
    with open(str(tmp_path / 'report' / 'oomguard-report.json')) as handle:
        report = json.load(handle)
    # Not judged in this run: unknown, never ok.
    assert [(h['host'], h['level']) for h in report['hosts']] == [('web01', 'unknown')]
