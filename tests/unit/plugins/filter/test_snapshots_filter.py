# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oomguard_snapshots, built in module_utils/_contract.py and reached by the snapshot role through the
snapshot_result, snapshots_record and snapshots_failure filters."""

from __future__ import annotations

from ansible_collections.oomguard.fleet.plugins.filter.snapshots import FilterModule
from ansible_collections.oomguard.fleet.plugins.module_utils import _contract

FILTERS = FilterModule().filters()
INSTANCE = {'provider': 'alicloud', 'instance_id': 'i-bp1', 'region': 'cn-hangzhou', 'zone': 'cn-hangzhou-h', 'source': 'inventory'}
SNAP = {'snapshot_id': 's-1', 'disk_id': 'd-1', 'name': 'run-d-1', 'status': 'accomplished', 'progress': 100,
        'created_at': '2026-11-29T02:00:03Z'}


def host_result(**extra):
    result = {'failed': False, 'changed': True, 'status': 'ok', 'message': '1 snapshot: 1 accomplished', 'snapshots': [SNAP],
              'would_create': [], 'deleted': ['s-0'], 'would_delete': [], 'created': ['s-1'], 'progress': ['x']}
    result.update(extra)
    return result


def batch(*hosts_per_provider):
    return {'changed': False, 'results': [{'hosts': hosts, 'provider': 'p%d' % n} for n, hosts in enumerate(hosts_per_provider)]
            + [{'skipped': True}]}


def test_snapshot_result_finds_the_host_in_any_provider():
    web01, web02 = host_result(), host_result(status='failed', failed=True, msg='Failed to x')
    registered = batch({'web01': web01}, {'web02': web02})
    assert FILTERS['snapshot_result'](registered, 'web01') is web01
    assert FILTERS['snapshot_result'](registered, 'web02') is web02


def test_a_host_no_task_snapshotted_fails_saying_what_to_set():
    for registered in (batch({'web01': host_result()}), {'results': []}, {'skipped': True}):
        result = FILTERS['snapshot_result'](registered, 'web09')
        assert result['failed'] is True and result['status'] == 'failed' and result['snapshots'] == []
        assert result['msg'] == ('The cloud provider of web09 is unknown: instance_id and region came from inventory, so nothing '
                                 'was detected. Set oomguard_snapshot_provider to alicloud or aws.')


def test_record_of_a_snapshotted_host():
    record = FILTERS['snapshots_record'](host_result(), 'run-1', INSTANCE, False)
    assert record == {'schema': 1, 'run_id': 'run-1', 'status': 'ok', 'message': '1 snapshot: 1 accomplished',
                      'provider': 'alicloud', 'instance_id': 'i-bp1', 'region': 'cn-hangzhou', 'snapshots': [SNAP],
                      'check_mode': False, 'would_create': [], 'deleted': ['s-0']}


def test_record_of_a_failed_or_unfinished_host_says_failed_with_the_error():
    failed = FILTERS['snapshots_record'](host_result(status='failed', failed=True, msg='Failed to wait for x'), 'run-1', INSTANCE)
    assert failed['status'] == 'failed' and failed['message'] == 'Failed to wait for x'
    unfinished = FILTERS['snapshots_record'](host_result(status='progressing'), 'run-1', INSTANCE)
    assert unfinished['status'] == 'failed' and unfinished['message'] == '1 snapshot: 1 accomplished'
    unknown = FILTERS['snapshots_record'](FILTERS['snapshot_result']({'results': []}, 'web09'), 'run-1', {'provider': None})
    assert unknown['status'] == 'failed' and unknown['message'].startswith('The cloud provider of web09 is unknown')
    assert unknown['provider'] is None and unknown['instance_id'] is None


def test_record_in_check_mode_lists_what_would_be_created_and_deleted():
    result = host_result(snapshots=[], would_create=[{'disk_id': 'd-1', 'name': 'run-d-1'}], deleted=[], would_delete=['s-0'],
                         message='would create 1 snapshots')
    record = FILTERS['snapshots_record'](result, 'run-1', INSTANCE, True)
    assert record['check_mode'] is True and record['status'] == 'ok' and record['snapshots'] == []
    assert record['would_create'] == [{'disk_id': 'd-1', 'name': 'run-d-1'}] and record['deleted'] == ['s-0']


def test_record_of_a_host_with_snapshots_switched_off():
    assert FILTERS['snapshots_record'](None, 'run-1') == {
        'schema': 1, 'run_id': 'run-1', 'status': 'skipped', 'message': 'snapshots switched off (oomguard_snapshot_enabled: false)',
        'provider': None, 'instance_id': None, 'region': None, 'snapshots': []}


def test_failure_record_keeps_the_failed_tasks_message_and_what_was_identified():
    assert FILTERS['snapshots_failure']({'failed': True, 'msg': 'Failed to read instance metadata: x'}, 'run-1', {}) == {
        'schema': 1, 'run_id': 'run-1', 'status': 'failed', 'message': 'Failed to read instance metadata: x',
        'provider': None, 'instance_id': None, 'region': None, 'snapshots': []}
    record = FILTERS['snapshots_failure']({'failed': True}, 'run-1', INSTANCE)
    assert record['message'] == 'failed' and record['instance_id'] == 'i-bp1' and record['provider'] == 'alicloud'
    assert _contract.SNAPSHOTS_SCHEMA == record['schema'] == 1
