# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The example execution-environment.yml, built for real, runs the audit as an AWX job.

ansible-builder builds the image with podman from the collection's tarball and its Python needs,
on a local Debian base image (tests/harness/ee.py: public images cannot be pulled here). Then
ansible-runner, with --process-isolation in that image, runs ``oomguard.fleet.audit`` (from the
image's collections, not the checkout's) against a namespace fleet over SSH, the key handed to
ssh-agent in the container as AWX hands a machine credential. The report it writes through the
mounted private data directory must judge every host, and no container may be left behind.
"""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import TOP

_SPEC = importlib.util.spec_from_file_location('oomguard_fleet_harness_ee_audit', os.path.join(TOP, 'tests', 'harness', 'fleet.py'))
fleet_mod = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fleet_mod)
_SPEC = importlib.util.spec_from_file_location('oomguard_ee_harness', os.path.join(TOP, 'tests', 'harness', 'ee.py'))
ee = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ee)

HOSTS = 3
PLAYBOOK = """
- name: The collection's audit, from the execution environment's collections
  ansible.builtin.import_playbook: oomguard.fleet.audit
"""


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    reason = ee.unavailable_reason()
    if reason:
        pytest.skip('execution environment: ' + reason)
    built = ee.ensure_ee(str(tmp_path_factory.mktemp('ee-build')))
    print('execution environment %s (%s): %s' % (built['image'], 'built' if built['built'] else 'cached',
                                                 ', '.join('%s %.1f s' % kv for kv in built['times'].items())))
    yield built['image']
    assert ee.containers() == []
    ee.cleanup_state()


def test_the_image_holds_the_collection_and_its_python_needs(image):
    proc = ee.podman('run', '--rm', '--network=none', image, 'python3', '-c',
                     'import json, importlib.metadata as m, ansible.release as r, pathlib;'
                     'print(json.dumps([r.__version__, m.version("ansible-runner"), m.version("boto3"), m.version("jmespath"),'
                     'm.version("alibabacloud_ecs20140526"), json.loads(pathlib.Path("/usr/share/ansible/collections/'
                     'ansible_collections/oomguard/fleet/MANIFEST.json").read_text())["collection_info"]["version"]]))')
    core, runner, boto3, jmespath, ecs, collection = json.loads(proc.stdout)
    definition, dummy = ee._ee_pins()  # pylint: disable=protected-access
    assert 'ansible-core==' + core == definition['dependencies']['ansible_core']['package_pip']
    assert 'ansible-runner==' + runner == definition['dependencies']['ansible_runner']['package_pip']
    with open(os.path.join(TOP, 'requirements.txt'), encoding='utf-8') as handle:
        pins = handle.read()
    for name, version in (('boto3', boto3), ('jmespath', jmespath), ('alibabacloud-ecs20140526', ecs)):
        assert '%s==%s\n' % (name, version) in pins
    with open(os.path.join(TOP, 'galaxy.yml'), encoding='utf-8') as handle:
        assert 'version: %s\n' % collection in handle.read()
    user = ee.podman('image', 'inspect', '--format', '{{.Config.User}}', image).stdout.strip()
    assert user == '1000'  # ansible-builder's default, as AWX expects


def test_audit_runs_in_the_execution_environment_as_an_awx_job(image, tmp_path):
    state = tmp_path / 'fleet'
    with fleet_mod.Fleet(str(state)).running(hosts=HOSTS) as fleet:
        private = ee.runner_private_data_dir(str(tmp_path / 'job'), fleet, PLAYBOOK,
                                             {'oomguard_report_dir': '/runner/report'}, fleet.key_path)
        proc = ee.run_in_ee(image, private, ident='audit')
        recorded = fleet.state
    assert fleet_mod.leftovers(recorded) == []
    artifacts = tmp_path / 'job' / 'artifacts' / 'audit'
    stdout = (artifacts / 'stdout').read_text(errors='replace')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + stdout[-3000:]
    assert (artifacts / 'status').read_text() == 'successful' and (artifacts / 'rc').read_text() == '0'
    command = json.loads((artifacts / 'command').read_text())['command']
    assert command[:2] == ['podman', 'run'] and image in command and '--network=host' in command
    for host in recorded['hosts']:
        assert host['name'] + ' ' in stdout and 'unreachable=0' in stdout
    # The play ran inside the image: its collection path and Python, not the checkout's.
    events = [json.loads((artifacts / 'job_events' / name).read_text()) for name in os.listdir(artifacts / 'job_events')]
    assert any('/usr/share/ansible/collections/ansible_collections/oomguard/fleet' in json.dumps(e) for e in events)
    assert not any(TOP + '/' in json.dumps(e) for e in events)
    report = json.loads((tmp_path / 'job' / 'report' / 'oomguard-report.json').read_text())
    assert sorted(h['host'] for h in report['hosts']) == sorted(h['name'] for h in recorded['hosts'])
    assert all(h['level'] != 'unknown' and h['source'] == 'play' for h in report['hosts']), report['hosts']
    assert report['totals']['hosts'] == HOSTS
    for fmt in ('oomguard-report.html', 'oomguard-report.md', 'oomguard-report.csv', 'oomguard-report.junit.xml'):
        assert (tmp_path / 'job' / 'report' / fmt).is_file(), fmt
    assert ee.containers() == []
