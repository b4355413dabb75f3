"""Bookkeeping of the disk_snapshot action plugin's waiting rounds."""

from __future__ import annotations

from ansible_collections.oomguard.fleet.plugins.plugin_utils.snapshot_rounds import failed_keys, merge, pending, progress_lines, time_out


def host(status, failed=False, progress=None, **extra):
    result = {'status': status, 'failed': failed, 'instance_id': 'i-' + status, 'changed': False,
              'progress': progress if progress is not None else ['s-1 (d-1): %s 40%%' % status], 'created': [], 'deleted': []}
    result.update(extra)
    return result


def test_pending_skips_done_and_failed():
    hosts = {'a': host('progressing'), 'b': host('ok'), 'c': host('failed', failed=True), 'd': host('progressing')}
    assert pending(hosts) == ['a', 'd']
    assert failed_keys(hosts) == ['c']


def test_merge_keeps_what_earlier_rounds_created():
    hosts = {'a': host('progressing', changed=True, created=['s-1']), 'b': host('ok')}
    merged = merge(hosts, {'a': host('ok', reused=['s-1'], deleted=['s-0'])})
    assert merged['a']['status'] == 'ok'
    assert merged['a']['changed'] is True
    assert merged['a']['created'] == ['s-1'] and merged['a']['reused'] == []
    assert merged['a']['deleted'] == ['s-0']
    assert merged['b'] is hosts['b']


def test_progress_lines_prefix_hosts_and_show_failures_and_messages():
    hosts = {'b': host('progressing'), 'a': host('failed', failed=True, msg='Failed to x'),
             'c': host('ok', progress=[], message='would create 2 snapshots')}
    assert progress_lines(hosts) == ['a: s-1 (d-1): failed 40%', 'a: FAILED: Failed to x', 'b: s-1 (d-1): progressing 40%',
                                     'c: would create 2 snapshots']
    assert progress_lines(hosts, ['b']) == ['b: s-1 (d-1): progressing 40%']


def test_time_out_fails_only_pending_hosts_with_their_states():
    hosts = time_out({'a': host('progressing'), 'b': host('ok')}, 30)
    assert hosts['a']['failed'] is True and hosts['a']['timed_out'] is True and hosts['a']['status'] == 'failed'
    assert hosts['a']['msg'] == ('Failed to wait for snapshots of instance i-progressing: still not accomplished after 30 seconds '
                                 '(wait_timeout); states: s-1 (d-1): progressing 40%')
    assert hosts['b']['failed'] is False
