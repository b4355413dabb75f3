"""The collection's execution-environment dependencies, as ansible-builder reads them.

AWX and Automation Platform run playbooks in execution environments that ansible-builder
makes; it reads meta/execution-environment.yml of every collection it installs. The snapshot
batch runs inside Ansible's own Python there, so every third-party library the plugins import
must be declared. This test asks the real ansible-builder, then compares with the imports.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys

import yaml

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDER = os.path.join(VENV_BIN, 'ansible-builder')


def declared():
    """{normalized distribution name: requirement line} from ansible-builder introspect."""
    proc = subprocess.run([BUILDER, 'introspect', '--sanitize', os.path.join(TOP, '.build', 'collections')],
                          capture_output=True, text=True, timeout=120, check=True)
    data = yaml.safe_load(proc.stdout)
    out = {}
    for line in data['python']:
        assert line.endswith('# from collection oomguard.fleet'), line
        name = re.match(r'[A-Za-z0-9_.-]+', line).group(0)
        out[re.sub(r'[-_.]+', '-', name).lower()] = line
    return out


def imported_top_levels():
    """Top-level modules imported anywhere under plugins/, except the standard library and ansible."""
    names = set()
    for root, dummy, files in os.walk(os.path.join(TOP, 'plugins')):
        for name in files:
            if not name.endswith('.py'):
                continue
            with open(os.path.join(root, name), encoding='utf-8') as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split('.')[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split('.')[0])
    return sorted(n for n in names if n not in sys.stdlib_module_names and n not in ('ansible', 'ansible_collections', '__future__'))


def test_every_third_party_import_is_declared_for_execution_environments():
    wanted = declared()
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in imported_top_levels():
        dists = [re.sub(r'[-_.]+', '-', d).lower() for d in distributions.get(module, [])]
        assert dists, 'no installed distribution provides %s' % module
        # A module may come from a declared library's own dependency (darabonba from tea-openapi).
        if not any(d in wanted for d in dists) and module not in ('darabonba',):
            missing.append((module, dists))
    assert missing == []
    assert {'boto3', 'botocore', 'jmespath', 'alibabacloud-ecs20140526', 'alibabacloud-tea-openapi',
            'alibabacloud-credentials'} <= set(wanted)


def test_declared_lower_bounds_are_the_tested_versions():
    for name, line in declared().items():
        bound = re.search(r'>=([0-9][0-9A-Za-z.]*)', line)
        assert bound, line
        assert importlib.metadata.version(name) == bound.group(1), (name, line)
