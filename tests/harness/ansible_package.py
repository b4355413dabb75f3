"""The Ansible community package built for the ansible-core that runs the tests, for its real peers.

The tests use plugins it bundles: ``amazon.aws.aws_ec2`` (dynamic inventory) and the
``ansible.posix.json`` and ``ansible.posix.profile_tasks`` callbacks. Each ansible-core minor gets
the package made for it (tests/inventory/ansible-packages: 2.16 -> ansible 9 ... 2.21 -> ansible 14),
installed without dependencies by scripts/inventory-venv.sh with the interpreter that runs the
tests, so a compat venv (scripts/compat.sh) gets the peers of its own core. In a test module::

    ansible_package = ansible_package_fixture()

gives the collections directory to add to ANSIBLE_COLLECTIONS_PATH (built on first use, then reused).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP

PACKAGES = os.path.join(TOP, 'tests', 'inventory', 'ansible-packages')


def running_core():
    """ansible-core's version in the interpreter that runs the tests (and the ansible commands)."""
    from ansible.release import __version__
    return __version__


def package_for(core):
    """The Ansible package version that tests/inventory/ansible-packages names for this ansible-core."""
    minor = '.'.join(core.split('.')[:2])
    with open(PACKAGES) as handle:
        for line in handle:
            fields = line.split()
            if fields and not fields[0].startswith('#') and fields[0] == minor:
                return fields[1]
    raise LookupError('%s names no Ansible package for ansible-core %s' % (PACKAGES, minor))


@functools.lru_cache(maxsize=None)
def collections_dir():
    """Build (once) the package of the running ansible-core; its directory holding ansible_collections/."""
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run([os.path.join(TOP, 'scripts', 'inventory-venv.sh')], capture_output=True, text=True,
                          env=env, check=False, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError('scripts/inventory-venv.sh failed:\n%s%s' % (proc.stdout, proc.stderr))
    path = proc.stdout.strip().splitlines()[-1]
    expected = os.path.join(TOP, '.venv-inventory', package_for(running_core()))
    if not path.startswith(expected + os.sep):
        raise RuntimeError('scripts/inventory-venv.sh gave %s, not a directory of %s' % (path, expected))
    return path


def ansible_package_fixture(scope='module'):
    """A pytest fixture named by the assignment: the collections directory of the matching package."""
    import pytest

    @pytest.fixture(scope=scope)
    def ansible_package():
        return collections_dir()

    return ansible_package
