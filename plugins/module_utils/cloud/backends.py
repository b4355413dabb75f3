# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pick and build the snapshot backend for a provider. Private to the oomguard.fleet collection."""

from __future__ import annotations

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError


class MissingSdk(OomguardError):
    """The provider's SDK is not importable by this Python."""

    def __init__(self, library, import_error):
        super().__init__(library)
        self.library = library
        self.import_error = import_error


# The variables of the task's environment that the SDKs read as credentials, by the option each one fills
# (ALICLOUD_* are the older names the Alibaba Cloud SDK still reads).
ENVIRONMENT_OPTIONS = {
    'alicloud': {
        'ALIBABA_CLOUD_ACCESS_KEY_ID': 'access_key', 'ALICLOUD_ACCESS_KEY': 'access_key',
        'ALIBABA_CLOUD_ACCESS_KEY_SECRET': 'secret_key', 'ALICLOUD_SECRET_KEY': 'secret_key',
        'ALIBABA_CLOUD_SECURITY_TOKEN': 'security_token', 'ALICLOUD_SECURITY_TOKEN': 'security_token',
    },
    'aws': {
        'AWS_ACCESS_KEY_ID': 'access_key', 'AWS_SECRET_ACCESS_KEY': 'secret_key',
        'AWS_SESSION_TOKEN': 'security_token', 'AWS_SECURITY_TOKEN': 'security_token',
        'AWS_PROFILE': 'profile', 'AWS_DEFAULT_PROFILE': 'profile', 'AWS_CA_BUNDLE': 'ca_bundle',
    },
}


def options_from_environment(params, environment):
    """``params`` with the cloud options that the task's ``environment`` gives filled in where the task left
    them unset (the options win, as they do over the SDKs' own chains); None when the environment holds a
    variable that is not one of those, which only a process with that environment can honour."""
    names = ENVIRONMENT_OPTIONS[params['provider']]
    if any(key not in names for key in environment):
        return None
    filled = dict(params)
    # The current names first: they win over the older ones, as in the SDKs.
    for key in sorted(environment, key=lambda name: list(names).index(name)):
        option = names[key]
        if not params.get(option) and not filled.get(option) and environment[key]:
            filled[option] = environment[key]
    return filled


def require_sdk(provider):
    """Import ``provider``'s backend module; raise MissingSdk when its SDK is not importable.

    Only the chosen provider's SDK is imported (inside the branch): each costs hundreds of
    milliseconds of start-up.
    """
    if provider == 'alicloud':
        from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import alicloud as backend
    elif provider == 'aws':
        from ansible_collections.oomguard.fleet.plugins.module_utils.cloud import aws as backend
    else:
        raise ValueError('unknown provider %r' % provider)
    if backend.SDK_IMPORT_ERROR:
        raise MissingSdk(backend.SDK_NAME, backend.SDK_IMPORT_ERROR)
    return backend


def build_backend(provider, params):
    """A backend for ``provider`` from module params; raises MissingSdk or CloudError."""
    backend = require_sdk(provider)
    region = params['region']
    delay = params.get('retry_delay') or 0.0
    retry = dict(retries=max(1, params.get('retries') or 1), retry_base=delay, retry_cap=20 * delay)
    if provider == 'alicloud':
        return backend.AlicloudBackend(region, params.get('endpoint_url'), backend.credentials_from(params),
                                       profile=params.get('profile'), ca_bundle=params.get('ca_bundle'), **retry)
    creds = {'aws_access_key_id': params.get('access_key'), 'aws_secret_access_key': params.get('secret_key'),
             'aws_session_token': params.get('security_token')}
    return backend.AwsBackend(region, params.get('endpoint_url'), creds, profile=params.get('profile'),
                              ca_bundle=params.get('ca_bundle'), **retry)
