# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pick and build the snapshot backend for a provider. Private to the oomguard.fleet collection."""

from __future__ import annotations


class MissingSdk(Exception):
    def __init__(self, library, import_error):
        super().__init__(library)
        self.library = library
        self.import_error = import_error


def build_backend(provider, params):
    """A backend for ``provider`` from module params; raises MissingSdk or CloudError.

    Only the chosen provider's SDK is imported (inside the branch): each costs hundreds of
    milliseconds of start-up.
    """
    region = params['region']
    delay = params.get('retry_delay') or 0.0
    retry = dict(retries=max(1, params.get('retries') or 1), retry_base=delay, retry_cap=20 * delay)
    if provider == 'alicloud':
        from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import alicloud
        if alicloud.SDK_IMPORT_ERROR:
            raise MissingSdk(alicloud.SDK_NAME, alicloud.SDK_IMPORT_ERROR)
        return alicloud.AlicloudBackend(region, params.get('endpoint_url'), alicloud.credentials_from(params),
                                        profile=params.get('profile'), ca_bundle=params.get('ca_bundle'), **retry)
    if provider == 'aws':
        from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import aws
        if aws.SDK_IMPORT_ERROR:
            raise MissingSdk(aws.SDK_NAME, aws.SDK_IMPORT_ERROR)
        creds = {'aws_access_key_id': params.get('access_key'), 'aws_secret_access_key': params.get('secret_key'),
                 'aws_session_token': params.get('security_token')}
        return aws.AwsBackend(region, params.get('endpoint_url'), creds, profile=params.get('profile'),
                              ca_bundle=params.get('ca_bundle'), **retry)
    raise ValueError('unknown provider %r' % provider)
