"""disk_snapshot's ``profile`` and ``ca_bundle`` options reach the SDK clients: the ECS double and
moto_server (behind a recording proxy) on loopback, over TLS with a certificate made for the test."""

from __future__ import annotations

import subprocess
import threading

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import adhoc, playbook
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import REGION as AWS_REGION
from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import FaultProxy, MotoServer, make_instance
from ansible_collections.oomguard.fleet.tests.system.test_snapshot_role import PLAY, dumps

KEY_ID = 'LTAI5tProfileKey0001'
SECRET = 'Pr0file-SECRET-never-shown'
AWS_PROFILE_KEY = 'AKIAOOMGUARDPROFILE1'
AWS_DEFAULT_KEY = 'AKIAOOMGUARDDEFAULT1'


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    where = tmp_path_factory.mktemp('tls')
    cert, key = where / 'cert.pem', where / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(key), '-out', str(cert),
                    '-days', '1', '-subj', '/CN=oomguard-test-ca', '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, capture_output=True)
    return str(cert), str(key)


def ecs_args(ecs, **extra):
    args = {'provider': 'alicloud', 'region': 'cn-hangzhou', 'instance_id': 'i-bp1prof01', 'endpoint_url': ecs.endpoint,
            'run_id': 'run-profile', 'retry_delay': 0.05, 'retries': 2, 'poll_interval': 0.2}
    args.update(extra)
    return args


@pytest.fixture
def ecs(tls):
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=0.2).serve_tls(*tls) as double:
        double.add_instance('i-bp1prof01', 'cn-hangzhou', data_disks=1)
        yield double


def alibaba_home(tmp_path, cli_config=False):
    """A HOME with the SDKs' credentials file (or the CLI's config.json): the default profile holds a key the
    double refuses, the profile ``ops`` the right one."""
    home = tmp_path / 'home'
    if cli_config:
        (home / '.aliyun').mkdir(parents=True)
        (home / '.aliyun' / 'config.json').write_text(
            '{"current": "default", "profiles": ['
            '{"name": "default", "mode": "AK", "access_key_id": "LTAI5tWrongKey000001", "access_key_secret": "wrong"},'
            '{"name": "ops", "mode": "AK", "access_key_id": "%s", "access_key_secret": "%s"}]}' % (KEY_ID, SECRET))
    else:
        (home / '.alibabacloud').mkdir(parents=True)
        (home / '.alibabacloud' / 'credentials.ini').write_text(
            '[default]\nenable = true\ntype = access_key\naccess_key_id = LTAI5tWrongKey000001\naccess_key_secret = wrong\n\n'
            '[ops]\nenable = true\ntype = access_key\naccess_key_id = %s\naccess_key_secret = %s\n' % (KEY_ID, SECRET))
    return str(home)


@pytest.mark.parametrize('cli_config', [False, True], ids=['credentials-file', 'cli-config'])
def test_alicloud_profile_and_ca_bundle_reach_the_sdk(ecs, tls, tmp_path, cli_config):
    env = {'HOME': alibaba_home(tmp_path, cli_config)}
    res = adhoc('oomguard.fleet.disk_snapshot', ecs_args(ecs, profile='ops', ca_bundle=tls[0]), env=env)
    assert not res.failed, res.output
    assert res['status'] == 'ok' and len(res['snapshots']) == 2
    assert ecs.refused == []
    assert SECRET not in res.output

    # The default profile's key is refused by the double: without profile, that is the key the SDK used.
    res = adhoc('oomguard.fleet.disk_snapshot', ecs_args(ecs, ca_bundle=tls[0], run_id='run-default'), env=env)
    assert res.failed and res['msg'].startswith('Failed to list disks of instance i-bp1prof01:'), res.output
    assert ecs.refused, res.output


def test_alicloud_without_the_ca_bundle_the_certificate_is_refused(ecs, tmp_path):
    res = adhoc('oomguard.fleet.disk_snapshot', ecs_args(ecs, access_key=KEY_ID, secret_key=SECRET, retries=1),
                env={'HOME': str(tmp_path)})
    assert res.failed
    assert 'CERTIFICATE_VERIFY_FAILED' in res['msg'], res['msg']
    assert ecs.calls == []


class RecordingProxy(FaultProxy):
    """The fault proxy in front of moto, over TLS, keeping each request's access key id."""

    def __init__(self, upstream_port):
        super().__init__(upstream_port)
        self.key_ids = []
        self.key_lock = threading.Lock()

    def handle(self, handler):
        auth = handler.headers.get('Authorization') or ''
        with self.key_lock:
            self.key_ids.append(auth.split('Credential=', 1)[-1].split('/', 1)[0] if 'Credential=' in auth else None)
        super().handle(handler)


@pytest.fixture
def moto_tls(tls):
    with MotoServer() as moto:
        ec2 = moto.client()
        instance_id, volumes = make_instance(ec2, data_disks=1)
        with RecordingProxy(moto.port).serve_tls(*tls) as proxy:
            yield proxy, instance_id, volumes


def aws_args(proxy, instance_id, **extra):
    args = {'provider': 'aws', 'region': AWS_REGION, 'instance_id': instance_id, 'endpoint_url': proxy.endpoint,
            'run_id': 'run-aws-profile', 'retry_delay': 0.05, 'retries': 1, 'poll_interval': 0.2}
    args.update(extra)
    return args


def test_aws_profile_and_ca_bundle_reach_boto3(moto_tls, tls, tmp_path):
    proxy, instance_id, volumes = moto_tls
    shared = tmp_path / 'credentials'
    shared.write_text('[default]\naws_access_key_id = %s\naws_secret_access_key = x\n\n'
                      '[ops]\naws_access_key_id = %s\naws_secret_access_key = y\n' % (AWS_DEFAULT_KEY, AWS_PROFILE_KEY))
    env = {'AWS_SHARED_CREDENTIALS_FILE': str(shared)}
    res = adhoc('oomguard.fleet.disk_snapshot', aws_args(proxy, instance_id, aws_profile='ops', aws_ca_bundle=tls[0]), env=env)
    assert not res.failed, res.output
    assert res['status'] == 'ok' and sorted(s['disk_id'] for s in res['snapshots']) == sorted(volumes)
    assert proxy.key_ids and set(proxy.key_ids) == {AWS_PROFILE_KEY}

    del proxy.key_ids[:]
    res = adhoc('oomguard.fleet.disk_snapshot', aws_args(proxy, instance_id, ca_bundle=tls[0], run_id='run-aws-default'), env=env)
    assert not res.failed, res.output
    assert set(proxy.key_ids) == {AWS_DEFAULT_KEY}


def test_aws_without_the_ca_bundle_the_certificate_is_refused(moto_tls, tmp_path):
    proxy, instance_id, dummy = moto_tls
    res = adhoc('oomguard.fleet.disk_snapshot', aws_args(proxy, instance_id, access_key=AWS_DEFAULT_KEY, secret_key='x'))
    assert res.failed
    assert 'CERTIFICATE_VERIFY_FAILED' in res['msg'] or 'certificate verify failed' in res['msg'], res['msg']
    assert proxy.actions == []


@pytest.mark.parametrize('extra,message', [
    ({'profile': 'ops', 'access_key': 'AKIA1'},
     'profile and access_key/secret_key/security_token are mutually exclusive: name a profile, or give the keys, not both'),
    ({'ca_bundle': '/nonexistent/ca.pem'},
     'ca_bundle /nonexistent/ca.pem is not a file; give the path of a PEM file with the CA certificates to trust'),
])
def test_bad_profile_or_ca_bundle_options(extra, message):
    args = {'provider': 'aws', 'region': AWS_REGION, 'instance_id': 'i-1', 'endpoint_url': 'http://127.0.0.1:9'}
    args.update(extra)
    res = adhoc('oomguard.fleet.disk_snapshot', args)
    assert res.failed and res['msg'] == message


def test_unknown_aws_profile_is_named(tmp_path):
    shared = tmp_path / 'credentials'
    shared.write_text('[default]\naws_access_key_id = %s\naws_secret_access_key = x\n' % AWS_DEFAULT_KEY)
    res = adhoc('oomguard.fleet.disk_snapshot', {'provider': 'aws', 'region': AWS_REGION, 'instance_id': 'i-1',
                                                 'endpoint_url': 'http://127.0.0.1:9', 'profile': 'nope'},
                env={'AWS_SHARED_CREDENTIALS_FILE': str(shared)})
    assert res.failed
    assert res['msg'].startswith('Failed to create EC2 client:') and 'nope' in res['msg'], res['msg']


def test_the_snapshot_role_passes_profile_and_ca_bundle(ecs, tls, tmp_path):
    """Through the role the batch runs inside the controller's Ansible process: the options reach that path too."""
    dump_dir = tmp_path / 'dump'
    dump_dir.mkdir()
    inventory = ('[fleet]\nweb01 instance_id=i-bp1prof01 region=cn-hangzhou ansible_connection=local\n'
                 '[fleet:vars]\noomguard_snapshot_provider=alicloud\noomguard_snapshot_endpoint_url=%s\n'
                 'oomguard_snapshot_profile=ops\noomguard_snapshot_ca_bundle=%s\noomguard_snapshot_poll_interval=0.2\n'
                 'oomguard_snapshot_retry_delay=0.05\n' % (ecs.endpoint, tls[0]))
    res = playbook(tmp_path, PLAY, inventory, env={'HOME': alibaba_home(tmp_path)}, args=['-e', 'dump_dir=%s' % dump_dir])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    record = dumps(dump_dir)['web01']['snapshots']
    assert record['status'] == 'ok' and len(record['snapshots']) == 2
    assert ecs.refused == []
