# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/compat/versions covers every minor from meta/runtime.yml's minimum to the newest, each with
a controller Python that minor supports, and the README's support table says the same."""

from __future__ import annotations

import os
import re

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*path):
    with open(os.path.join(TOP, *path), encoding='utf-8') as handle:
        return handle.read()


def minor(version):
    return tuple(int(part) for part in version.split('.')[:2])


def listed():
    """[(version, controller Python minor or None for the default python3)] in file order."""
    rows = []
    for line in read('tests', 'compat', 'versions').splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        fields = line.split()
        assert len(fields) in (1, 2), 'tests/compat/versions: want "VERSION [PYTHON]", got %r' % line
        python = None
        if len(fields) == 2:
            match = re.search(r'(?:versions/|python)(3\.\d+)', fields[1])
            assert match, 'tests/compat/versions: cannot tell the Python version of %r' % fields[1]
            python = match.group(1)
        rows.append((fields[0], python))
    return rows


def pinned():
    return re.search(r'^ansible-core==(\S+)$', read('requirements.txt'), re.M).group(1)


def test_every_admitted_minor_up_to_the_newest_is_tested_once():
    minimum = minor(yaml.safe_load(read('meta', 'runtime.yml'))['requires_ansible'].lstrip('>='))
    minors = sorted([minor(version) for version, _python in listed()] + [minor(pinned())])
    assert len(set(minors)) == len(minors), 'a minor is tested twice: %s' % minors
    assert minors[0] == minimum
    assert minors == [(2, n) for n in range(minimum[1], minors[-1][1] + 1)], 'a minor is missing: %s' % minors
    assert minors[-1] >= (2, 21)


def test_the_newest_is_last_because_it_runs_the_whole_stack():
    versions = [minor(version) for version, _python in listed()]
    assert versions[-1] == max(versions + [minor(pinned())])


def test_cores_from_2_20_name_a_controller_python_they_support():
    for version, python in listed():
        if minor(version) >= (2, 20):
            assert python and minor(python) >= (3, 12), '%s needs a 3.12+ controller Python, not %s' % (version, python)


def test_readme_rows_name_the_controller_python():
    table = [line for line in read('README.md').splitlines() if line.startswith('| 2.')]
    for version, python in listed():
        rows = [row for row in table if version in row]
        assert len(rows) == 1, 'README: one support table row for %s' % version
        assert '| %s |' % (python or '3.11') in rows[0], rows[0]
