"""The options check the module and the action plugin share (module_utils/cloud/runner.py), and the module's diff."""

from __future__ import annotations

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import check_params
from ansible_collections.oomguard.fleet.plugins.modules import disk_snapshot


def params(**overrides):
    base = dict(wait_timeout=10, retention=0, poll_interval=1.0, concurrency=4, instance_id='i-1', instances=None, region='r')
    base.update(overrides)
    return base


@pytest.mark.parametrize('overrides,message', [
    ({}, None),
    ({'wait_timeout': -1}, 'wait_timeout must be 0 or more, got -1'),
    ({'retention': -2}, 'retention must be 0 or more, got -2'),
    ({'poll_interval': 0}, 'poll_interval must be more than 0, got 0'),
    ({'concurrency': 0}, 'concurrency must be 1 or more, got 0'),
    ({'instance_id': None}, 'give exactly one of instance_id and instances'),
    ({'instances': [{'instance_id': 'i-2', 'region': None, 'host': None}]}, 'give exactly one of instance_id and instances'),
    ({'region': None}, 'region is required with instance_id'),
    ({'instance_id': None, 'region': None, 'instances': [{'instance_id': 'i-2', 'region': None, 'host': None}]},
     'instance i-2 has no region: set region on the entry or the region option'),
    ({'instance_id': None, 'region': None, 'instances': [{'instance_id': 'i-2', 'region': 'x', 'host': None}]}, None),
    ({'region': 'cn-hangzhou-h'},
     "region is 'cn-hangzhou-h', which is a zone id, not a region id; set it to the region 'cn-hangzhou' "
     "(the zone id without its last letter)"),
    ({'instance_id': None, 'region': 'us-east-1', 'instances': [{'instance_id': 'i-2', 'region': 'us-east-1a', 'host': None}]},
     "the region of instance i-2 is 'us-east-1a', which is a zone id, not a region id; set it to the region 'us-east-1' "
     "(the zone id without its last letter)"),
])
def test_check_params(overrides, message):
    assert check_params(params(**overrides)) == message


def test_diff():
    result = {'reused': ['s-1'], 'deleted': ['s-0'], 'would_delete': [], 'created': ['s-2'], 'would_create': [{'disk_id': 'd-9'}]}
    assert disk_snapshot.diff_of(result) == {'before': {'snapshots': ['s-0', 's-1']},
                                             'after': {'snapshots': ['(new snapshot of d-9)', 's-1', 's-2']}}
