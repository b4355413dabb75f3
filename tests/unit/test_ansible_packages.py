# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/inventory/ansible-packages names an Ansible package for every ansible-core the tests run."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.oomguard.fleet.tests.harness import ansible_package

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*parts):
    with open(os.path.join(TOP, *parts)) as handle:
        return handle.read()


def cores_under_test():
    cores = [re.search(r'^ansible-core==(\S+)$', read('requirements.txt'), re.M).group(1)]
    for line in read('tests', 'compat', 'versions').splitlines():
        if line.strip() and not line.startswith('#'):
            cores.append(line.split()[0])
    return cores


@pytest.mark.parametrize('core', cores_under_test())
def test_every_tested_core_has_its_package(core):
    # The community package's major is the core's minor minus 7 since ansible 9 / ansible-core 2.16.
    package = ansible_package.package_for(core)
    assert int(package.split('.')[0]) == int(core.split('.')[1]) - 7, (core, package)


def test_a_core_without_a_package_is_named():
    with pytest.raises(LookupError, match=r'names no Ansible package for ansible-core 2\.15$'):
        ansible_package.package_for('2.15.13')
