"""The README has the sections users of a collection look for, before the contributor's make targets,
and its version matrix and library list agree with what the repository pins and tests."""

from __future__ import annotations

import os
import re

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*path):
    with open(os.path.join(TOP, *path), encoding='utf-8') as handle:
        return handle.read()


README = read('README.md')
HEADINGS = re.findall(r'^## (.+)$', README, re.M)


def section(title):
    match = re.search(r'^## %s\n(.*?)(?=^## |\Z)' % re.escape(title), README, re.M | re.S)
    assert match, 'README has no section %r' % title
    return match.group(1)


def test_user_sections_come_before_the_contributors_make_targets():
    setup = HEADINGS.index('Set-up: two commands')
    for title in ('Installing', 'Supported versions', 'Using it', 'Release notes', 'Licensing'):
        assert title in HEADINGS and HEADINGS.index(title) < setup, title
    assert HEADINGS.index('Tests and benchmarks') > setup


def test_the_two_commands_are_kept():
    text = section('Set-up: two commands')
    assert ('make demo   # installs what it needs, audits a bundled fleet of recorded hosts, writes the report to '
            'artifacts/demo/\n') in text
    assert '`tests/fixtures/hosts/`' in text and '`make audit-local`' in text
    assert 'make test   # installs what it needs, runs every test: unit, system, sanity, lint, molecule, compat\n' in text


def test_installing_with_galaxy_and_a_requirements_file():
    text = section('Installing')
    assert 'ansible-galaxy collection install oomguard.fleet\n' in text
    assert 'ansible-galaxy collection install -r requirements.yml\n' in text
    blocks = re.findall(r'```yaml\n(.*?)```', text, re.S)
    assert [yaml.safe_load(block)['collections'][0]['name'] for block in blocks] == ['oomguard.fleet']
    libraries = [re.split(r'[<>=!~ ]', line.strip())[0] for line in read('meta', 'ee-requirements.txt').splitlines()
                 if line.strip() and not line.startswith('#')]
    assert libraries and [lib for lib in libraries if '`%s`' % lib not in text] == []


def test_the_version_matrix_is_the_tested_one():
    text = section('Supported versions')
    pinned = re.search(r'^ansible-core==(\S+)$', read('requirements.txt'), re.M).group(1)
    compat = [line.split()[0] for line in read('tests', 'compat', 'versions').splitlines() if line.strip() and not line.startswith('#')]
    missing = [version for version in [pinned] + compat if version not in text]
    assert missing == [], ("README's Supported versions lacks %s (requirements.txt, tests/compat/versions): "
                           "add the row with its controller Python" % ', '.join(missing))
    minimum = yaml.safe_load(read('meta', 'runtime.yml'))['requires_ansible']
    assert minimum == '>=2.16.0' and 'ansible-core 2.16 or newer' in text


def test_licensing_matches_galaxy_and_copying():
    assert yaml.safe_load(read('galaxy.yml'))['license'] == ['GPL-3.0-or-later']
    assert 'GNU General Public License v3.0 or later' in section('Licensing')
    assert read('COPYING').lstrip().startswith('GNU GENERAL PUBLIC LICENSE')
