"""0.1.0, the first release, reads as one: built with antsibull-changelog from the fragments, in a copy.

0.1.0 is not released yet, so every fragment folds into it. A fix, security fix or breaking change
to code that never shipped is no news for its users: such items go under ``trivial`` (or, reworded
as what the release does, ``minor_changes``). The release has a summary, and no known issue
contradicts what the release does.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP, VENV_BIN, base_env

FIRST = '0.1.0'
NOT_IN_A_FIRST_RELEASE = ('bugfixes', 'security_fixes', 'breaking_changes', 'deprecated_features', 'removed_features')


def release_copy(tmp_path):
    root = tmp_path / 'ansible_collections' / 'oomguard' / 'fleet'
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=TOP, check=True, capture_output=True,
                           text=True).stdout.split('\n')
    for path in files:
        if path.startswith(('changelogs/', 'plugins/', 'roles/', 'playbooks/', 'meta/')) or path == 'galaxy.yml':
            if os.path.isfile(os.path.join(TOP, path)):
                os.makedirs(os.path.dirname(str(root / path)), exist_ok=True)
                shutil.copy2(os.path.join(TOP, path), str(root / path))
    env = base_env({'ANSIBLE_COLLECTIONS_PATH': str(tmp_path)})
    proc = subprocess.run([os.path.join(VENV_BIN, 'antsibull-changelog'), 'release', '--version', FIRST, '--date', '2026-12-02'],
                          cwd=str(root), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(str(root / 'changelogs' / 'changelog.yaml')) as handle:
        changelog = yaml.safe_load(handle)
    with open(str(root / 'CHANGELOG.rst')) as handle:
        return changelog, handle.read()


def test_fragments_lint():
    proc = subprocess.run([os.path.join(VENV_BIN, 'antsibull-changelog'), 'lint'], cwd=TOP, env=base_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == '', proc.stdout + proc.stderr


def test_the_first_release_is_coherent(tmp_path):
    with open(os.path.join(TOP, 'galaxy.yml')) as handle:
        assert yaml.safe_load(handle)['version'] == FIRST
    with open(os.path.join(TOP, 'changelogs', 'changelog.yaml')) as handle:
        assert FIRST not in (yaml.safe_load(handle)['releases'] or {}), 'released already: fragments fold into the next version'
    changelog, rst = release_copy(tmp_path)
    assert list(changelog['releases']) == [FIRST]
    release = changelog['releases'][FIRST]
    changes = release['changes']
    assert changes['release_summary'].startswith('First release of ``oomguard.fleet``.')
    wrong = dict((section, changes[section]) for section in NOT_IN_A_FIRST_RELEASE if changes.get(section))
    assert wrong == {}, ('%s is the first release: a fix to code that never shipped goes under trivial, or under minor_changes '
                         'worded as what the release does' % FIRST)
    # What the release does, said as such: no "before"/"now" against a version nobody had.
    worded_as_history = [item for item in changes['minor_changes'] if ' no longer ' in item or ' as before' in item
                         or ' used to ' in item]
    assert worded_as_history == []
    # A gate-stopped host keeps its verdict (docs/assess.md); no known issue may say otherwise.
    assert not [item for item in changes.get('known_issues', []) if 'has no ``oomguard_exposure``' in item]
    assert {'oomguard.fleet.disk_snapshot', 'oomguard.fleet.oom_score_facts'} <= set(
        'oomguard.fleet.' + module['name'] for module in release['modules'])
    assert 'Release Summary' in rst and 'Bugfixes' not in rst and 'Breaking Changes' not in rst
