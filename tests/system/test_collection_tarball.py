"""The collection tarball holds what users run and read, and nothing else.

Built the way a release is built (``ansible-galaxy collection build``) from a copy of the
checkout in which a user's leftovers were planted: a report written in the repository root,
the changelog tool's plugin cache, hypothesis's database, build output. The tarball's list
is compared with the intended one, derived from the tracked files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest

from tests.harness.ansible_cli import TOP, VENV_BIN, base_env

# What a user of the collection gets: the tracked files under these paths, plus the two
# metadata files the build writes.
SHIPPED_DIRS = ('plugins/', 'roles/', 'playbooks/', 'meta/', 'docs/')
SHIPPED_FILES = ('README.md', 'COPYING', 'changelogs/changelog.yaml', 'changelogs/config.yaml')
NOT_SHIPPED = ('docs/testing.md',)  # how this repository's own tests run
BUILD_FILES = ('MANIFEST.json', 'FILES.json')

# Files a working checkout gathers that must never reach users.
LEFTOVERS = ('oomguard-report/web-1.json', 'oomguard-report/oomguard-report.html', 'changelogs/.plugin-cache.yaml',
             '.hypothesis/examples/x', 'artifacts/demo/report.json', 'tests/output/junit.xml',
             'changelogs/fragments/new.yml', 'oomguard-fleet-0.0.9.tar.gz')


def tracked_files():
    out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=TOP, check=True,
                         capture_output=True, text=True).stdout.split('\n')
    return sorted(path for path in out if path and os.path.isfile(os.path.join(TOP, path)))


def intended(files):
    keep = set(path for path in files if (path.startswith(SHIPPED_DIRS) or path in SHIPPED_FILES) and path not in NOT_SHIPPED)
    return keep | set(BUILD_FILES)


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    src = tmp_path_factory.mktemp('src')
    files = tracked_files()
    for path in files:
        os.makedirs(os.path.dirname(os.path.join(src, path)), exist_ok=True)
        shutil.copy2(os.path.join(TOP, path), os.path.join(src, path))
    for path in LEFTOVERS:
        os.makedirs(os.path.dirname(os.path.join(src, path)), exist_ok=True)
        with open(os.path.join(src, path), 'w', encoding='utf-8') as handle:
            handle.write('{"host": "db-prod-7", "cmdline": "java -Dpassword=hunter2"}\n')
    out = tmp_path_factory.mktemp('out')
    subprocess.run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out), str(src)],
                   check=True, capture_output=True, env=base_env())
    (built,) = list(out.glob('*.tar.gz'))
    with tarfile.open(built) as archive:
        names = set(member.name for member in archive.getmembers() if member.isfile())
    return files, names


def test_tarball_holds_exactly_the_intended_files(tarball):
    files, names = tarball
    want = intended(files)
    assert names - want == set(), 'packed but not meant for users'
    assert want - names == set(), 'meant for users but missing'


def test_no_leftover_of_a_working_checkout_is_packed(tarball):
    _files, names = tarball
    assert not [name for name in names if name in LEFTOVERS or name.startswith(('oomguard-report', 'tests/', '.'))]


def test_what_users_need_is_there(tarball):
    _files, names = tarball
    for role in ('assess', 'snapshot', 'remediate', 'report'):
        assert 'roles/%s/README.md' % role in names  # Galaxy's importer requires a readme per role
        assert 'roles/%s/meta/argument_specs.yml' % role in names
    assert {'COPYING', 'README.md', 'meta/runtime.yml', 'playbooks/audit.yml'} <= names
    assert any(name.startswith('plugins/modules/') for name in names)
