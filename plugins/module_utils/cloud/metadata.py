# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read instance id, region and zone from the clouds' token-protected metadata services
(Alibaba Cloud's hardened mode, AWS IMDSv2). The HTTP call is injected, so the logic
is testable without a network. Private to the oomguard.fleet collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import (
    CloudError,
    cloud_argument_spec,
    region_of_zone,
    zone_as_region_problem,
)

# Each flavour: default address, token request header, token header, and paths of the identity fields.
FLAVOURS = {
    'alicloud': {
        'url': 'http://100.100.100.200',
        'ttl_header': 'X-aliyun-ecs-metadata-token-ttl-seconds',
        'token_header': 'X-aliyun-ecs-metadata-token',
        'paths': {'instance_id': 'meta-data/instance-id', 'region': 'meta-data/region-id', 'zone': 'meta-data/zone-id'},
    },
    'aws': {
        'url': 'http://169.254.169.254',
        'ttl_header': 'X-aws-ec2-metadata-token-ttl-seconds',
        'token_header': 'X-aws-ec2-metadata-token',
        'paths': {'instance_id': 'meta-data/instance-id', 'region': 'meta-data/placement/region',
                  'zone': 'meta-data/placement/availability-zone'},
    },
}


class MetadataUnavailable(OomguardError):
    """This flavour's service did not answer, or not with its token flow."""


def read_identity(flavour, fetch, base_url=None, token_ttl=300, timeout=2.0):
    """``fetch(method, url, headers, timeout) -> (status, text)``; raises MetadataUnavailable."""
    spec = FLAVOURS[flavour]
    base = (base_url or spec['url']).rstrip('/')
    status, token = fetch('PUT', base + '/latest/api/token', {spec['ttl_header']: str(token_ttl)}, timeout)
    if status != 200 or not token:
        raise MetadataUnavailable('%s token request to %s answered HTTP %s' % (flavour, base, status))
    identity = {'provider': flavour}
    for key, path in spec['paths'].items():
        status, text = fetch('GET', '%s/latest/%s' % (base, path), {spec['token_header']: token.strip()}, timeout)
        if status != 200:
            raise MetadataUnavailable('%s %s answered HTTP %s' % (flavour, path, status))
        identity[key] = text.strip()
    return identity


def detect(provider, fetch, metadata_url=None, token_ttl=300, timeout=2.0):
    """Try the chosen flavour, or both (Alibaba Cloud first) for ``auto``."""
    flavours = ['alicloud', 'aws'] if provider == 'auto' else [provider]
    tried = []
    for flavour in flavours:
        try:
            return read_identity(flavour, fetch, metadata_url, token_ttl, timeout)
        except MetadataUnavailable as exc:
            tried.append(str(exc))
    raise CloudError('read', 'instance metadata',
                     'no metadata service answered (%s); set instance_id and region as inventory variables '
                     'or point metadata_url at the service' % '; '.join(tried))


def from_inventory(provider, instance_id, region, zone=None):
    """The identity given by inventory variables, or None when they are incomplete.

    A zone id where the region belongs raises CloudError naming the value and the region to
    set, with one exception: when ``zone`` holds the same zone id, as alibaba.alicloud.alicloud_ecs
    sets both ``region`` and ``availability_zone`` to the zone, the region is that zone's region.
    """
    if not (instance_id and region):
        return None
    if region_of_zone(region):
        if region == zone:
            region = region_of_zone(zone)
        else:
            raise CloudError('use', 'the region of instance %s' % instance_id,
                             zone_as_region_problem(region, 'region') + '. In the snapshot role set the inventory variable '
                             'region or oomguard_snapshot_region; with a zone in availability_zone as well, as '
                             'alibaba.alicloud.alicloud_ecs sets it, the region is taken from the zone')
    return {'provider': None if provider == 'auto' else provider, 'instance_id': instance_id,
            'region': region, 'zone': zone or None}


def instance_facts_argument_spec():
    """The options of cloud_instance_facts (its action plugin validates with the same spec)."""
    spec = cloud_argument_spec()
    spec.update(
        provider=dict(type='str', choices=['auto', 'alicloud', 'aws'], default='auto'),
        instance_id=dict(type='str'),
        region=dict(type='str'),
        zone=dict(type='str'),
        metadata_url=dict(type='str'),
        timeout=dict(type='float', default=2.0),
        token_ttl=dict(type='int', default=300, no_log=False),
    )
    return spec


def check_instance_facts_params(params):
    """A message for an invalid option value, else None."""
    if not 1 <= params['token_ttl'] <= 21600:
        return 'token_ttl must be between 1 and 21600 seconds, got %d' % params['token_ttl']
    return None
