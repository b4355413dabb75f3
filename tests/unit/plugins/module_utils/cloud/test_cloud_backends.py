"""Error classification and credential handling of the ECS and EC2 backends, with the SDKs' real exception types."""

from __future__ import annotations

import pytest

# The SDKs are in the checkout's venv (make unit); a bare ansible-test units venv may lack them.
tea_exceptions = pytest.importorskip('alibabacloud_tea_openapi.exceptions')
botocore_exceptions = pytest.importorskip('botocore.exceptions')
ClientException, ServerException = tea_exceptions.ClientException, tea_exceptions.ServerException
ThrottlingException = tea_exceptions.ThrottlingException
ClientError, EndpointConnectionError = botocore_exceptions.ClientError, botocore_exceptions.EndpointConnectionError

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import alicloud, aws  # noqa: E402
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import MissingSdk, build_backend  # noqa: E402


@pytest.mark.parametrize('exc,factor', [
    (ClientException(status_code=400, code='Throttling.User', message='denied'), 1.0),
    (ThrottlingException(status_code=403, code='Throttling', message='denied', retry_after=1), 1.0),
    (ClientException(status_code=400, code='Throttling.Api', message='denied'), 1.0),
    (ServerException(status_code=503, code='ServiceUnavailable', message='down'), 1.0),
    (ServerException(status_code=500, code='InternalError', message='oops'), 1.0),
    (ClientException(status_code=404, code='InvalidDiskId.NotFound', message='gone'), None),
    (ClientException(status_code=403, code='IncorrectDiskStatus.CreatingSnapshot', message='busy'), None),
    (ValueError('x'), None),
])
def test_alicloud_classify(exc, factor):
    assert alicloud.classify_error(exc) == factor


def test_alicloud_describe_error_includes_code_once():
    exc = ClientException(status_code=400, code='SignatureDoesNotMatch', message='code: 400, bad signature request id: 1')
    assert alicloud.describe_error(exc) == 'SignatureDoesNotMatch: code: 400, bad signature request id: 1'
    exc = ClientException(status_code=400, code='X', message='X already said')
    assert alicloud.describe_error(exc) == 'X already said'


def client_error(code, status=400):
    return ClientError({'Error': {'Code': code, 'Message': 'm'}, 'ResponseMetadata': {'HTTPStatusCode': status}}, 'CreateSnapshot')


@pytest.mark.parametrize('exc,factor', [
    (client_error('RequestLimitExceeded'), 1.0),
    (client_error('SnapshotCreationPerVolumeRateExceeded'), 4.0),
    (client_error('InternalError', 500), 1.0),
    (client_error('Unavailable', 503), 1.0),
    (client_error('SomethingElse', 502), 1.0),
    (client_error('InvalidVolume.NotFound'), None),
    (client_error('UnauthorizedOperation', 403), None),
    (EndpointConnectionError(endpoint_url='http://127.0.0.1:1'), None),
])
def test_aws_classify(exc, factor):
    assert aws.classify_error(exc) == factor


def test_aws_describe_error():
    assert aws.describe_error(client_error('RequestLimitExceeded')) == 'RequestLimitExceeded: m'


def test_credentials_options_win_over_environment():
    env = {'ALIBABA_CLOUD_ACCESS_KEY_ID': 'env-id', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET': 'env-secret'}
    assert alicloud.credentials_from({'access_key': 'opt-id', 'secret_key': 'opt-secret'}, env) == {
        'access_key_id': 'opt-id', 'access_key_secret': 'opt-secret', 'security_token': None}
    assert alicloud.credentials_from({}, env)['access_key_id'] == 'env-id'
    assert alicloud.credentials_from({}, {'ALICLOUD_ACCESS_KEY': 'old', 'ALICLOUD_SECRET_KEY': 's', 'ALICLOUD_SECURITY_TOKEN': 't'}) == {
        'access_key_id': 'old', 'access_key_secret': 's', 'security_token': 't'}
    assert alicloud.credentials_from({}, {}) is None
    assert alicloud.credentials_from({'access_key': 'only-id'}, {}) is None


@pytest.mark.parametrize('url,expected', [
    ('http://127.0.0.1:8080', ('http', '127.0.0.1:8080')),
    ('https://ecs-vpc.cn-hangzhou.aliyuncs.com/', ('https', 'ecs-vpc.cn-hangzhou.aliyuncs.com')),
    ('ecs.cn-beijing.aliyuncs.com', ('https', 'ecs.cn-beijing.aliyuncs.com')),
    (None, (None, None)),
])
def test_split_endpoint(url, expected):
    assert alicloud.split_endpoint(url) == expected


def test_build_backend_reports_a_missing_sdk(monkeypatch):
    monkeypatch.setattr(alicloud, 'SDK_IMPORT_ERROR', 'Traceback: ImportError')
    with pytest.raises(MissingSdk) as err:
        build_backend('alicloud', {'region': 'cn-hangzhou'})
    assert err.value.library == 'alibabacloud_ecs20140526 and alibabacloud_tea_openapi'
    monkeypatch.setattr(aws, 'SDK_IMPORT_ERROR', 'Traceback: ImportError')
    with pytest.raises(MissingSdk) as err:
        build_backend('aws', {'region': 'us-east-1'})
    assert err.value.library == 'boto3'


def test_build_backend_unknown_provider():
    with pytest.raises(ValueError):
        build_backend('gcp', {'region': 'x'})


@pytest.mark.parametrize('backend,state,status', [
    (aws.AwsBackend, 'pending', 'progressing'),
    (aws.AwsBackend, 'recovering', 'progressing'),
    (aws.AwsBackend, 'completed', 'accomplished'),
    (aws.AwsBackend, 'error', 'failed'),
    (alicloud.AlicloudBackend, 'progressing', 'progressing'),
    (alicloud.AlicloudBackend, 'accomplished', 'accomplished'),
    (alicloud.AlicloudBackend, 'failed', 'failed'),
    (alicloud.AlicloudBackend, 'something-new', 'progressing'),
])
def test_each_backend_maps_its_clouds_states_to_ours(backend, state, status):
    snap = object.__new__(backend).snapshot('s-1', 'd-1', 'n', state, '40%', '2026-11-29T02:00:03Z', {'k': 'v'}, extra=1)
    assert snap == {'snapshot_id': 's-1', 'disk_id': 'd-1', 'name': 'n', 'status': status, 'progress': 40,
                    'created_at': '2026-11-29T02:00:03Z', 'tags': {'k': 'v'}, 'extra': 1}


def test_aws_snapshot_fields():
    import datetime
    raw = {'SnapshotId': 'snap-1', 'VolumeId': 'vol-1', 'State': 'completed', 'Progress': '100%', 'StateMessage': None,
           'StartTime': datetime.datetime(2026, 11, 29, 2, 0, 3), 'Tags': [{'Key': 'Name', 'Value': 'run-vol-1'}]}
    assert object.__new__(aws.AwsBackend)._normalize(raw) == {
        'snapshot_id': 'snap-1', 'disk_id': 'vol-1', 'name': 'run-vol-1', 'status': 'accomplished', 'progress': 100,
        'created_at': '2026-11-29T02:00:03.000000Z', 'tags': {'Name': 'run-vol-1'}, 'state_message': None}


def test_options_from_environment_fill_what_the_task_left_unset():
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import options_from_environment
    params = {'provider': 'alicloud', 'access_key': None, 'secret_key': 'opt', 'security_token': None}
    filled = options_from_environment(params, {'ALICLOUD_ACCESS_KEY': 'old', 'ALIBABA_CLOUD_ACCESS_KEY_ID': 'new',
                                               'ALIBABA_CLOUD_ACCESS_KEY_SECRET': 'env', 'ALICLOUD_SECURITY_TOKEN': 't'})
    assert filled == {'provider': 'alicloud', 'access_key': 'new', 'secret_key': 'opt', 'security_token': 't'}
    assert params['access_key'] is None
    aws_params = {'provider': 'aws', 'profile': None, 'ca_bundle': None}
    assert options_from_environment(aws_params, {'AWS_PROFILE': 'ops', 'AWS_CA_BUNDLE': '/ca.pem'}) == {
        'provider': 'aws', 'profile': 'ops', 'ca_bundle': '/ca.pem'}
    assert options_from_environment(aws_params, {}) == aws_params
    # A variable that is no cloud option of the provider needs a process with that environment.
    assert options_from_environment(aws_params, {'AWS_PROFILE': 'ops', 'HTTPS_PROXY': 'http://127.0.0.1:3128'}) is None
    assert options_from_environment(aws_params, {'ALIBABA_CLOUD_ACCESS_KEY_ID': 'x'}) is None


def test_require_sdk_names_an_unknown_provider():
    from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import require_sdk
    with pytest.raises(ValueError):
        require_sdk('gcp')
    assert require_sdk('aws') is aws and require_sdk('alicloud') is alicloud
