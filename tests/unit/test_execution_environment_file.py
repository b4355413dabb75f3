# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The example execution-environment.yml stays in step with the collection it installs.

It names the tarball ``ansible-galaxy collection build`` makes (so its version is galaxy.yml's),
pins the ansible-core the tests use, and is a valid ansible-builder 3 definition (ansible-builder
itself writes the build context from it; tests/system/test_ee_audit.py builds it for real).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name):
    with open(os.path.join(TOP, name), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def test_it_installs_the_tarball_of_this_version():
    definition, galaxy = load('execution-environment.yml'), load('galaxy.yml')
    tarball = '%s-%s-%s.tar.gz' % (galaxy['namespace'], galaxy['name'], galaxy['version'])
    assert definition['version'] == 3
    assert definition['additional_build_files'] == [{'src': tarball, 'dest': 'collections'}]
    assert definition['dependencies']['galaxy'] == {'collections': [{'name': '/build/collections/' + tarball, 'type': 'file'}]}


def test_it_pins_the_tested_ansible_core():
    definition = load('execution-environment.yml')
    with open(os.path.join(TOP, 'requirements.txt'), encoding='utf-8') as handle:
        pins = [line.strip() for line in handle if line.startswith('ansible-core==')]
    assert [definition['dependencies']['ansible_core']['package_pip']] == pins


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(sys.executable), 'ansible-builder')),
                    reason='ansible-builder is not installed beside this Python (ansible-test units; make unit has it)')
def test_ansible_builder_accepts_it(tmp_path):
    builder = os.path.join(os.path.dirname(sys.executable), 'ansible-builder')
    proc = subprocess.run([builder, 'create', '-f', os.path.join(TOP, 'execution-environment.yml'), '-c', str(tmp_path / 'context')],
                          capture_output=True, text=True, check=False, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (tmp_path / 'context' / 'Containerfile').read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/fedora/fedora:42"' in containerfile
    assert 'ansible-galaxy collection install' in containerfile and 'USER 1000' in containerfile
    assert (tmp_path / 'context' / '_build' / 'requirements.yml').is_file()
    assert 'openssh-client [platform:dpkg]' in (tmp_path / 'context' / '_build' / 'bindep.txt').read_text()
