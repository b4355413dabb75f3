"""Metadata token flows and provider detection, driven through the injected HTTP call."""

from __future__ import annotations

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.metadata import detect, from_inventory


class Service(object):
    """A table-driven metadata service: answers by (method, url) and checks the token headers."""

    def __init__(self, flavour, base, values):
        self.flavour, self.base, self.values, self.calls = flavour, base, values, []
        self.ttl, self.token = {'alicloud': ('X-aliyun-ecs-metadata-token-ttl-seconds', 'X-aliyun-ecs-metadata-token'),
                                'aws': ('X-aws-ec2-metadata-token-ttl-seconds', 'X-aws-ec2-metadata-token')}[flavour]

    def __call__(self, method, url, headers, timeout):
        self.calls.append((method, url, dict(headers), timeout))
        if not url.startswith(self.base):
            return 0, 'connection refused'
        path = url[len(self.base):]
        if method == 'PUT':
            return (200, 'tok-123') if path == '/latest/api/token' and self.ttl in headers else (400, '')
        if headers.get(self.token) != 'tok-123':
            return 401, ''
        return (200, self.values[path] + '\n') if path in self.values else (404, '')


ALI = {'/latest/meta-data/instance-id': 'i-bp1', '/latest/meta-data/region-id': 'cn-hangzhou', '/latest/meta-data/zone-id': 'cn-hangzhou-h'}
AWS = {'/latest/meta-data/instance-id': 'i-0ab', '/latest/meta-data/placement/region': 'us-east-1',
       '/latest/meta-data/placement/availability-zone': 'us-east-1a'}


def test_alicloud_default_address_and_token_flow():
    service = Service('alicloud', 'http://100.100.100.200', ALI)
    assert detect('alicloud', service) == {'provider': 'alicloud', 'instance_id': 'i-bp1', 'region': 'cn-hangzhou', 'zone': 'cn-hangzhou-h'}
    method, url, headers, dummy = service.calls[0]
    assert (method, url, headers) == ('PUT', 'http://100.100.100.200/latest/api/token', {'X-aliyun-ecs-metadata-token-ttl-seconds': '300'})


def test_aws_default_address_and_ttl():
    service = Service('aws', 'http://169.254.169.254', AWS)
    assert detect('aws', service, token_ttl=60, timeout=0.5)['region'] == 'us-east-1'
    assert service.calls[0][2] == {'X-aws-ec2-metadata-token-ttl-seconds': '60'}
    assert all(call[3] == 0.5 for call in service.calls)


def test_auto_falls_back_to_aws_on_the_same_url():
    service = Service('aws', 'http://127.0.0.1:1234', AWS)
    identity = detect('auto', service, metadata_url='http://127.0.0.1:1234/')
    assert identity['provider'] == 'aws'
    assert [c[1] for c in service.calls][:2] == ['http://127.0.0.1:1234/latest/api/token'] * 2


def test_nothing_answers():
    service = Service('aws', 'http://elsewhere', AWS)
    with pytest.raises(CloudError) as err:
        detect('auto', service, metadata_url='http://127.0.0.1:9')
    assert str(err.value).startswith('Failed to read instance metadata: no metadata service answered '
                                     '(alicloud token request to http://127.0.0.1:9 answered HTTP 0; aws token request')


def test_a_missing_path_is_reported():
    values = dict(AWS)
    del values['/latest/meta-data/placement/region']
    with pytest.raises(CloudError) as err:
        detect('aws', Service('aws', 'http://169.254.169.254', values))
    assert 'aws meta-data/placement/region answered HTTP 404' in str(err.value)


def test_from_inventory():
    assert from_inventory('aws', 'i-1', 'eu-west-1') == {'provider': 'aws', 'instance_id': 'i-1', 'region': 'eu-west-1', 'zone': None}
    assert from_inventory('auto', 'i-1', 'eu-west-1')['provider'] is None
    assert from_inventory('aws', 'i-1', None) is None
    assert from_inventory('aws', '', 'eu-west-1') is None


def test_from_inventory_alicloud_ecs_zone_in_region_and_availability_zone():
    """alibaba.alicloud.alicloud_ecs sets region and availability_zone both to the zone id."""
    assert from_inventory('alicloud', 'i-bp1', 'cn-hangzhou-h', 'cn-hangzhou-h') == {
        'provider': 'alicloud', 'instance_id': 'i-bp1', 'region': 'cn-hangzhou', 'zone': 'cn-hangzhou-h'}
    assert from_inventory('auto', 'i-bp1', 'ap-southeast-1a', 'ap-southeast-1a')['region'] == 'ap-southeast-1'


def test_from_inventory_aws_ec2_placement():
    assert from_inventory('aws', 'i-0ab', 'us-east-1', 'us-east-1a') == {
        'provider': 'aws', 'instance_id': 'i-0ab', 'region': 'us-east-1', 'zone': 'us-east-1a'}


@pytest.mark.parametrize('region,zone,expected', [
    ('cn-hangzhou-h', None, 'cn-hangzhou'),
    ('cn-hangzhou-h', 'cn-hangzhou-i', 'cn-hangzhou'),
    ('us-east-1a', None, 'us-east-1'),
    ('eu-central-1b', 'eu-central-1b-x', 'eu-central-1'),
])
def test_from_inventory_refuses_a_zone_where_the_region_belongs(region, zone, expected):
    with pytest.raises(CloudError) as err:
        from_inventory('alicloud', 'i-bp1', region, zone)
    message = str(err.value)
    assert message.startswith("Failed to use the region of instance i-bp1: region is '%s', which is a zone id, not a region id; "
                              "set it to the region '%s'" % (region, expected))
    assert 'oomguard_snapshot_region' in message
