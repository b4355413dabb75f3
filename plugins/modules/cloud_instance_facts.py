#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: cloud_instance_facts
short_description: Find out which cloud instance a host is, from inventory or the metadata service
version_added: 0.1.0
description:
  - Sets C(ansible_facts.cloud_instance) with the provider, instance id, region and zone of the host,
    which M(oomguard.fleet.disk_snapshot) needs.
  - When O(instance_id) and O(region) are given (pass the inventory variables that dynamic inventory plugins set),
    they are used as they are, on the controller, without connecting to the host or calling any metadata service.
  - Otherwise it runs on the host and asks the instance metadata service with its token flow,
    Alibaba Cloud's hardened mode (C(PUT /latest/api/token) with C(X-aliyun-ecs-metadata-token-ttl-seconds),
    then the C(X-aliyun-ecs-metadata-token) header) at V(http://100.100.100.200),
    or AWS IMDSv2 (C(X-aws-ec2-metadata-token-ttl-seconds), then C(X-aws-ec2-metadata-token)) at V(http://169.254.169.254).
author:
  - oomguard.fleet maintainers (@oomguard)
extends_documentation_fragment:
  - oomguard.fleet.cloud
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
options:
  provider:
    description:
      - The cloud to ask. V(auto) tries Alibaba Cloud first, then AWS.
    type: str
    choices: [auto, alicloud, aws]
    default: auto
  instance_id:
    description:
      - The instance id from inventory. With O(region) it skips the metadata call.
    type: str
  region:
    description:
      - The region id from inventory, for example V(cn-hangzhou) or V(us-east-1). With O(instance_id) it skips the metadata call.
      - Pass what the inventory source sets. C(amazon.aws.aws_ec2) sets C(placement.region).
        C(alibaba.alicloud.alicloud_ecs) puts the zone id in C(region) and in C(availability_zone);
        when O(zone) holds the same zone id, the region is that zone's region (V(cn-hangzhou-h) gives V(cn-hangzhou)).
      - Any other zone id here (a region id followed by one letter, such as V(cn-hangzhou-h) or V(us-east-1a)) fails
        the task with a message naming the value and the region id to set.
    type: str
  zone:
    description:
      - The zone id from inventory (C(availability_zone), or C(placement.availability_zone) from C(amazon.aws.aws_ec2)),
        reported as given when the metadata call is skipped.
    type: str
  metadata_url:
    description:
      - Base URL of the metadata service, instead of the provider's link-local address.
      - With O(provider=auto) both token flows are tried against this one URL.
    type: str
  timeout:
    description:
      - Seconds to wait for each metadata request.
    type: float
    default: 2.0
  token_ttl:
    description:
      - Lifetime in seconds asked for the metadata session token (1 to 21600).
    type: int
    default: 300
notes:
  - The options of the C(oomguard.fleet.cloud) fragment (credentials, O(endpoint_url), retries) are accepted so that one
    C(module_defaults) entry for C(group/oomguard.fleet.cloud) serves both modules of the group; the metadata service needs none of them.
attributes:
  check_mode:
    support: full
    details: Only reads; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: full
    platforms: posix
seealso:
  - module: oomguard.fleet.disk_snapshot
'''

EXAMPLES = r'''
- name: Identify the instance (inventory variables win, else the metadata service)
  oomguard.fleet.cloud_instance_facts:
    instance_id: "{{ instance_id | default(omit) }}"
    region: "{{ region | default(omit) }}"

- name: Identify a host of an amazon.aws.aws_ec2 inventory
  oomguard.fleet.cloud_instance_facts:
    provider: aws
    instance_id: "{{ instance_id }}"
    region: "{{ placement.region }}"
    zone: "{{ placement.availability_zone }}"

- name: Identify a host of an alibaba.alicloud.alicloud_ecs inventory (region and availability_zone hold the zone)
  oomguard.fleet.cloud_instance_facts:
    provider: alicloud
    instance_id: "{{ instance_id }}"
    region: "{{ region }}"
    zone: "{{ availability_zone }}"

- name: Ask the AWS metadata service through a local relay
  oomguard.fleet.cloud_instance_facts:
    provider: aws
    metadata_url: http://127.0.0.1:8169
'''

RETURN = r'''
ansible_facts:
  description: Facts about the instance.
  returned: always
  type: dict
  contains:
    cloud_instance:
      description: The instance identity.
      type: dict
      returned: always
      contains:
        provider:
          description: V(alicloud) or V(aws); null when taken from inventory with O(provider=auto).
          type: str
          sample: alicloud
        instance_id:
          description: The instance id.
          type: str
          sample: i-bp1g6zv0ce8oghu7k5jd
        region:
          description: The region id.
          type: str
          sample: cn-hangzhou
        zone:
          description: The zone id, null when unknown.
          type: str
          sample: cn-hangzhou-h
        source:
          description: V(inventory) or V(metadata).
          type: str
          sample: metadata
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.metadata import (
    check_instance_facts_params,
    detect,
    instance_facts_argument_spec,
)


def fetch(method, url, headers, timeout):
    """One metadata request; connection failures are status 0, never exceptions."""
    try:
        response = open_url(url, method=method, headers=headers, timeout=timeout, use_proxy=False, follow_redirects='none')
        return response.getcode(), response.read().decode('utf-8', 'replace')
    except HTTPError as exc:
        return exc.code, ''
    except (URLError, OSError, ValueError) as exc:
        return 0, str(exc)


def main():
    module = AnsibleModule(argument_spec=instance_facts_argument_spec(), supports_check_mode=True)
    params = module.params
    problem = check_instance_facts_params(params)
    if problem:
        module.fail_json(msg=problem)
    # Inventory identities (instance_id and region) never get here: the action plugin answers those itself.
    try:
        identity = detect(params['provider'], fetch, params['metadata_url'], params['token_ttl'], params['timeout'])
    except CloudError as exc:
        module.fail_json(msg=str(exc))
    identity['source'] = 'metadata'
    module.exit_json(changed=False, ansible_facts={'cloud_instance': identity})


if __name__ == '__main__':
    main()
