"""Pure parts of the cloud snapshot code: selection, templates, names, retention, retries, summaries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import (
    CloudError,
    OWNER_TAG_KEY,
    OWNER_TAG_VALUE,
    backoff_delays,
    call_with_retries,
    check_cloud_params,
    idempotency_token,
    parse_progress,
    plan_retention,
    progress_lines,
    region_of_zone,
    render_template,
    select_disks,
    snapshot_tags,
    summarize,
    validate_snapshot_name,
    zone_as_region_problem,
)

DISKS = [
    {'disk_id': 'd-sys', 'type': 'system', 'device': '/dev/xvda', 'size_gb': 40},
    {'disk_id': 'd-data1', 'type': 'data', 'device': '/dev/xvdb', 'size_gb': 100},
    {'disk_id': 'd-data2', 'type': 'data', 'device': '/dev/xvdc', 'size_gb': 100},
]


@pytest.mark.parametrize('selectors,expected', [
    (['all'], ['d-sys', 'd-data1', 'd-data2']),
    (None, ['d-sys', 'd-data1', 'd-data2']),
    (['system'], ['d-sys']),
    (['data'], ['d-data1', 'd-data2']),
    (['d-data2'], ['d-data2']),
    (['system', 'd-data2'], ['d-sys', 'd-data2']),
    (['d-data2', 'data'], ['d-data1', 'd-data2']),
])
def test_select_disks(selectors, expected):
    assert [d['disk_id'] for d in select_disks(DISKS, selectors)] == expected


def test_select_unknown_disk_names_what_is_attached():
    with pytest.raises(CloudError) as err:
        select_disks(DISKS, ['d-nope', 'system'])
    assert str(err.value) == 'Failed to select disks: disk ids d-nope are not attached to the instance (attached: d-data1, d-data2, d-sys)'


def test_render_template():
    values = {'run_id': 'r1', 'disk_id': 'd-1'}
    assert render_template('{run_id}-{disk_id}', values) == 'r1-d-1'
    assert render_template('plain', values) == 'plain'
    with pytest.raises(CloudError) as err:
        render_template('{host}', values)
    assert 'unknown field {host}; known fields: {disk_id}, {run_id}' in str(err.value)


@pytest.mark.parametrize('name,problem', [
    ('ok-name', None),
    ('x', 'must be 2 to 128 characters long'),
    ('y' * 129, 'must be 2 to 128 characters long'),
    ('auto-backup', 'may not start with "auto"'),
    ('AUTOx', 'may not start with "auto"'),
    ('http://x', 'may not start with http:// or https://'),
    ('https://x', 'may not start with http:// or https://'),
])
def test_validate_snapshot_name(name, problem):
    result = validate_snapshot_name(name)
    if problem is None:
        assert result is None
    else:
        assert problem in result


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=50))
def test_idempotency_token_is_short_ascii_and_stable(run_id, disk_id):
    token = idempotency_token(run_id, disk_id)
    assert len(token) <= 64 and token.isascii()
    assert token == idempotency_token(run_id, disk_id)
    assert token != idempotency_token(run_id + 'x', disk_id)


def test_snapshot_tags_ours_win():
    tags = snapshot_tags('r1', {OWNER_TAG_KEY: 'someone-else', 'team': 'db'})
    assert tags == {OWNER_TAG_KEY: OWNER_TAG_VALUE, 'oomguard:run-id': 'r1', 'team': 'db'}


@pytest.mark.parametrize('value,expected', [('40%', 40), ('100%', 100), ('7', 7), (55, 55), (None, 0), ('', 0),
                                            ('garbage', 0), ('150%', 100), ('-3', 0), ('12.7%', 12)])
def test_parse_progress(value, expected):
    assert parse_progress(value) == expected


def snapshot(snap_id, disk, created, ours=True, run=None):
    tags = {OWNER_TAG_KEY: OWNER_TAG_VALUE} if ours else {'team': 'x'}
    if run:
        tags['oomguard:run-id'] = run
    return {'snapshot_id': snap_id, 'disk_id': disk, 'created_at': created, 'tags': tags}


def test_retention_keeps_newest_of_ours_per_disk_and_never_others():
    snaps = [
        snapshot('s-1', 'd-a', '2026-01-01T00:00:00Z'),
        snapshot('s-2', 'd-a', '2026-01-02T00:00:00Z'),
        snapshot('s-3', 'd-a', '2026-01-03T00:00:00Z'),
        snapshot('s-foreign-old', 'd-a', '2025-01-01T00:00:00Z', ours=False),
        snapshot('s-9', 'd-b', '2026-01-01T00:00:00Z'),
    ]
    assert plan_retention(snaps, 2) == ['s-1']
    assert plan_retention(snaps, 1) == ['s-2', 's-1']
    assert plan_retention(snaps, 0) == []
    assert plan_retention(snaps, 5) == []


def test_retention_never_deletes_this_runs_snapshot_even_if_clock_says_older():
    snaps = [snapshot('s-new-run', 'd-a', None), snapshot('s-old', 'd-a', '2026-01-03T00:00:00Z')]
    assert plan_retention(snaps, 1, protect_ids=['s-new-run']) == ['s-old']


@given(st.lists(st.tuples(st.sampled_from(['d-a', 'd-b']), st.integers(0, 10 ** 6), st.booleans()), max_size=30),
       st.integers(0, 5))
def test_retention_properties(rows, keep):
    snaps = [snapshot('s-%d' % n, disk, '%010d' % stamp, ours=mine) for n, (disk, stamp, mine) in enumerate(rows)]
    doomed = set(plan_retention(snaps, keep))
    by_id = dict((s['snapshot_id'], s) for s in snaps)
    assert all(by_id[s]['tags'].get(OWNER_TAG_KEY) == OWNER_TAG_VALUE for s in doomed)
    for disk in ('d-a', 'd-b'):
        mine = [s for s in snaps if s['disk_id'] == disk and s['tags'].get(OWNER_TAG_KEY)]
        kept = [s for s in mine if s['snapshot_id'] not in doomed]
        assert len(kept) == (len(mine) if keep == 0 else min(keep, len(mine)))
        if keep and kept and doomed:
            newest_doomed = max((s['created_at'] for s in mine if s['snapshot_id'] in doomed), default=None)
            if newest_doomed is not None:
                assert min(s['created_at'] for s in kept) >= newest_doomed


def test_backoff_delays_grow_and_stay_capped():
    delays = backoff_delays(8, 1.0, 10.0, rng=random.Random(1))
    assert len(delays) == 7
    for n, delay in enumerate(delays):
        ceiling = min(10.0, 2 ** n)
        assert ceiling / 2 <= delay <= ceiling


class Flaky(Exception):
    pass


def test_call_with_retries_retries_retryable_errors_then_succeeds():
    calls, sleeps = [], []

    def func():
        calls.append(1)
        if len(calls) < 3:
            raise Flaky()
        return 'done'
    result, retries = call_with_retries(func, lambda exc: 1.0 if isinstance(exc, Flaky) else None, attempts=5,
                                        base=1.0, cap=8.0, sleep=sleeps.append, rng=random.Random(0))
    assert (result, retries, len(calls), len(sleeps)) == ('done', 2, 3, 2)


def test_call_with_retries_longer_waits_for_slow_codes():
    sleeps_fast, sleeps_slow = [], []
    for factor, sleeps in ((1.0, sleeps_fast), (4.0, sleeps_slow)):
        state = []

        def func():
            state.append(1)
            if len(state) < 3:
                raise Flaky()
            return 1
        call_with_retries(func, lambda exc, f=factor: f, attempts=5, base=1.0, cap=8.0, sleep=sleeps.append, rng=random.Random(7))
    assert [s * 4 for s in sleeps_fast] == pytest.approx(sleeps_slow)


def test_call_with_retries_gives_up_and_reraises():
    sleeps = []

    def func():
        raise Flaky('always')
    with pytest.raises(Flaky):
        call_with_retries(func, lambda exc: 1.0, attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2


def test_call_with_retries_does_not_retry_other_errors():
    sleeps = []

    def func():
        raise ValueError('bad request')
    with pytest.raises(ValueError):
        call_with_retries(func, lambda exc: None, attempts=5, sleep=sleeps.append)
    assert sleeps == []


def test_summarize_and_progress_lines():
    snaps = [{'snapshot_id': 's-1', 'disk_id': 'd-1', 'status': 'accomplished', 'progress': 100},
             {'snapshot_id': 's-2', 'disk_id': 'd-2', 'status': 'progressing', 'progress': 40}]
    assert summarize(snaps) == ('progressing', '2 snapshots: 1 accomplished, 1 progressing')
    assert summarize(snaps[:1]) == ('ok', '1 snapshot: 1 accomplished')
    assert summarize(snaps + [dict(snaps[1], status='failed')])[0] == 'failed'
    assert summarize([]) == ('ok', 'no disks selected')
    assert progress_lines(snaps) == ['s-1 (d-1): accomplished 100%', 's-2 (d-2): progressing 40%']


@pytest.mark.parametrize('value,region', [
    ('cn-hangzhou-h', 'cn-hangzhou'), ('cn-beijing-a', 'cn-beijing'), ('cn-shanghai-finance-1z', 'cn-shanghai-finance-1'),
    ('ap-southeast-1a', 'ap-southeast-1'), ('us-east-1a', 'us-east-1'), ('us-gov-west-1b', 'us-gov-west-1'),
    ('cn-hangzhou', None), ('ap-southeast-1', None), ('us-east-1', None), ('cn-north-1', None), ('us-gov-west-1', None),
    ('cn-shanghai-finance-1', None), ('', None), (None, None), ('a', None),
])
def test_region_of_zone(value, region):
    assert region_of_zone(value) == region


def test_zone_as_region_problem_names_value_and_region():
    assert zone_as_region_problem('us-east-1', 'region') is None
    assert zone_as_region_problem('us-east-1c', 'region') == (
        "region is 'us-east-1c', which is a zone id, not a region id; set it to the region 'us-east-1' "
        "(the zone id without its last letter)")


@pytest.mark.parametrize('params,message', [
    ({}, None),
    ({'profile': 'ops'}, None),
    ({'access_key': 'AK', 'secret_key': 'SK'}, None),
    ({'profile': 'ops', 'access_key': 'AK'},
     'profile and access_key/secret_key/security_token are mutually exclusive: name a profile, or give the keys, not both'),
    ({'profile': 'ops', 'security_token': 'T'},
     'profile and access_key/secret_key/security_token are mutually exclusive: name a profile, or give the keys, not both'),
    ({'ca_bundle': '/nonexistent/ca.pem'},
     'ca_bundle /nonexistent/ca.pem is not a file; give the path of a PEM file with the CA certificates to trust'),
    ({'ca_bundle': __file__}, None),
])
def test_check_cloud_params(params, message):
    assert check_cloud_params(params) == message
