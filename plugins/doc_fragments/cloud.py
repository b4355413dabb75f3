# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options shared by the modules that call a cloud API (action group oomguard.fleet.cloud).
    DOCUMENTATION = r'''
options:
  endpoint_url:
    description:
      - The API endpoint to call instead of the public one, for private (VPC) endpoints, proxies and tests.
      - Give a URL such as V(https://ecs-vpc.cn-hangzhou.aliyuncs.com) or V(http://127.0.0.1:8080).
      - When omitted the SDK picks the public endpoint of O(region).
    type: str
  access_key:
    description:
      - The access key id.
      - When omitted, the SDK's standard credential chain applies. For V(alicloud) the environment variables
        E(ALIBABA_CLOUD_ACCESS_KEY_ID), E(ALIBABA_CLOUD_ACCESS_KEY_SECRET) and E(ALIBABA_CLOUD_SECURITY_TOKEN)
        (or the older E(ALICLOUD_ACCESS_KEY), E(ALICLOUD_SECRET_KEY), E(ALICLOUD_SECURITY_TOKEN)),
        then the SDK's default chain (profile file, RAM role of the controller's instance).
        For V(aws) boto3's chain (E(AWS_ACCESS_KEY_ID), E(AWS_PROFILE), shared files, instance role).
    type: str
    aliases: [access_key_id]
  secret_key:
    description:
      - The secret access key that belongs to O(access_key). Never logged.
    type: str
    aliases: [access_key_secret]
  security_token:
    description:
      - A temporary security token (Alibaba Cloud STS token or AWS session token) that goes with O(access_key). Never logged.
    type: str
    aliases: [session_token]
  profile:
    description:
      - A named profile to take the credentials (and for V(aws) the other settings) from, instead of O(access_key).
      - For V(aws) a profile of boto3's shared files (C(~/.aws/config), C(~/.aws/credentials)); the E(AWS_PROFILE)
        environment variable also works without this option.
      - For V(alicloud) a profile of the Alibaba Cloud CLI's C(~/.aliyun/config.json) when that file exists, else of
        the SDKs' credentials file (E(ALIBABA_CLOUD_CREDENTIALS_FILE), default C(~/.alibabacloud/credentials.ini)).
      - Mutually exclusive with O(access_key), O(secret_key) and O(security_token).
    type: str
    aliases: [aws_profile]
  ca_bundle:
    description:
      - The path of a PEM file with the CA certificates to trust when calling O(endpoint_url) or the public endpoint,
        for TLS-intercepting proxies and private endpoints with their own CA.
      - When omitted, V(aws) takes E(AWS_CA_BUNDLE) or the profile's C(ca_bundle), else boto3's default;
        V(alicloud) the SDK's default trust store.
      - The file must exist. Certificates are always verified.
    type: path
    aliases: [aws_ca_bundle]
  retries:
    description:
      - How many times in all to try one API call that meets throttling or a server error
        (ECS C(Throttling*), C(ServiceUnavailable), 5xx; AWS C(RequestLimitExceeded), 5xx and, with four times longer waits,
        C(SnapshotCreationPerVolumeRateExceeded)). This is on top of the SDK's own short retries.
    type: int
    default: 6
  retry_delay:
    description:
      - Base delay in seconds of the jittered exponential backoff between those attempts (capped at 20 times this value).
    type: float
    default: 1.0
notes:
  - Set the credentials and region once for a play with C(module_defaults) on the action group C(group/oomguard.fleet.cloud).
'''
