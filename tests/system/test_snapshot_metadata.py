"""cloud_instance_facts against the metadata doubles (token flows) on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import adhoc
from ansible_collections.oomguard.fleet.tests.harness.metadata_double import MetadataDouble


@pytest.mark.parametrize('flavour,instance_id,region,zone', [
    ('alicloud', 'i-bp1g6zv0ce8oghu7k5jd', 'cn-hangzhou', 'cn-hangzhou-h'),
    ('aws', 'i-0123456789abcdef0', 'eu-west-1', 'eu-west-1b'),
])
@pytest.mark.parametrize('provider', ['auto', 'explicit'])
def test_reads_identity_with_the_token_flow(flavour, instance_id, region, zone, provider):
    with MetadataDouble(flavour, instance_id, region, zone) as md:
        res = adhoc('oomguard.fleet.cloud_instance_facts',
                    {'provider': flavour if provider == 'explicit' else 'auto', 'metadata_url': md.url})
        assert not res.failed, res.output
        assert res['changed'] is False
        assert res['ansible_facts']['cloud_instance'] == {
            'provider': flavour, 'instance_id': instance_id, 'region': region, 'zone': zone, 'source': 'metadata'}
        puts = [entry for entry in md.log if entry[0] == 'PUT' and entry[2] == 200]
        gets = [entry for entry in md.log if entry[0] == 'GET']
        assert len(puts) == 1
        assert len(gets) == 3 and all(status == 200 for dummy, dummy2, status in gets)


def test_metadata_refuses_reads_without_a_token():
    with MetadataDouble('alicloud', 'i-1', 'cn-beijing') as md:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(md.url + '/latest/meta-data/instance-id', timeout=5)
        assert err.value.code == 401
        request = urllib.request.Request(md.url + '/latest/api/token', method='PUT',
                                         headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 400


def test_inventory_values_win_and_skip_the_call():
    with MetadataDouble('aws', 'i-from-metadata', 'us-east-1') as md:
        res = adhoc('oomguard.fleet.cloud_instance_facts',
                    {'provider': 'aws', 'instance_id': 'i-from-inventory', 'region': 'ap-south-1', 'metadata_url': md.url})
        assert res['ansible_facts']['cloud_instance'] == {
            'provider': 'aws', 'instance_id': 'i-from-inventory', 'region': 'ap-south-1', 'zone': None, 'source': 'inventory'}
        assert md.log == []


def test_no_metadata_service_is_a_clear_error():
    with MetadataDouble('aws', 'i-1', 'us-east-1') as md:
        url = md.url
    # The double is stopped: nothing listens there any more.
    res = adhoc('oomguard.fleet.cloud_instance_facts', {'metadata_url': url, 'timeout': 1})
    assert res.failed
    assert res['msg'].startswith('Failed to read instance metadata: no metadata service answered (alicloud token request')
    assert 'set instance_id and region as inventory variables' in res['msg']


def test_wrong_flavour_is_reported():
    with MetadataDouble('aws', 'i-1', 'us-east-1') as md:
        res = adhoc('oomguard.fleet.cloud_instance_facts', {'provider': 'alicloud', 'metadata_url': md.url})
        assert res.failed
        assert 'alicloud token request to %s answered HTTP 400' % md.url in res['msg']


def test_token_ttl_is_validated():
    res = adhoc('oomguard.fleet.cloud_instance_facts', {'metadata_url': 'http://127.0.0.1:9', 'token_ttl': 0})
    assert res.failed and res['msg'] == 'token_ttl must be between 1 and 21600 seconds, got 0'


def test_inventory_values_need_no_connection_to_the_host(tmp_path):
    from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import playbook
    play = """
- hosts: db01
  gather_facts: false
  tasks:
    - name: Identify
      oomguard.fleet.cloud_instance_facts:
        provider: alicloud
        instance_id: "{{ instance_id | default(omit) }}"
        region: "{{ region | default(omit) }}"
    - name: Keep the facts
      ansible.builtin.copy:
        content: "{{ ansible_facts.cloud_instance | to_json }}"
        dest: %s
        mode: "0600"
      delegate_to: localhost
""" % (tmp_path / 'identity.json')
    # Nothing listens on port 9 of loopback: any connection attempt makes the host unreachable.
    host = 'db01 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=9 ansible_ssh_common_args="-o ConnectTimeout=3"'
    known = playbook(tmp_path, play, host + ' instance_id=i-bp1db01 region=cn-beijing\nlocalhost ansible_connection=local\n')
    assert known.returncode == 0, known.stdout + known.stderr
    assert json.loads((tmp_path / 'identity.json').read_text()) == {
        'provider': 'alicloud', 'instance_id': 'i-bp1db01', 'region': 'cn-beijing', 'zone': None, 'source': 'inventory'}
    unknown = playbook(tmp_path, play, host + ' instance_id=i-bp1db01\n')
    assert unknown.returncode != 0
    assert 'UNREACHABLE' in unknown.stdout
