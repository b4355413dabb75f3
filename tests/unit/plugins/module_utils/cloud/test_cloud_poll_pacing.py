# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the wait looks again: the poll interval, or sooner when the progress says a snapshot ends first."""

from __future__ import annotations

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import PollPacer, SnapshotRun, poll_together


def snap(snap_id, progress, status='progressing'):
    return {'snapshot_id': snap_id, 'disk_id': 'd-' + snap_id, 'status': status, 'progress': progress}


def test_first_look_waits_the_whole_interval():
    assert PollPacer(5.0).delay([snap('s-1', 0)], now=0.0) == 5.0


def test_progress_rate_brings_the_next_look_forward():
    pacer = PollPacer(5.0)
    pacer.delay([snap('s-1', 0)], now=0.0)
    # 50% in 5 s: done in 5 s more, so the full interval.
    assert pacer.delay([snap('s-1', 50)], now=5.0) == pytest.approx(5.0)
    # 80% at 8 s: 10%/s, 2 s left.
    assert pacer.delay([snap('s-1', 80)], now=8.0) == pytest.approx(2.0)


def test_never_sooner_than_the_floor_nor_later_than_the_interval():
    pacer = PollPacer(5.0, floor=1.0)
    pacer.delay([snap('s-1', 0)], now=0.0)
    assert pacer.delay([snap('s-1', 99)], now=9.9) == 1.0
    slow = PollPacer(5.0)
    slow.delay([snap('s-2', 0)], now=0.0)
    assert slow.delay([snap('s-2', 1)], now=5.0) == 5.0


def test_a_short_interval_is_kept_as_it_is():
    pacer = PollPacer(0.25)
    pacer.delay([snap('s-1', 0)], now=0.0)
    assert pacer.delay([snap('s-1', 90)], now=0.5) == 0.25


def test_the_soonest_snapshot_decides_and_finished_ones_are_ignored():
    pacer = PollPacer(10.0)
    pacer.delay([snap('s-1', 0), snap('s-2', 0), snap('s-3', 0)], now=0.0)
    states = [snap('s-1', 20), snap('s-2', 60), snap('s-3', 100, status='accomplished')]
    assert pacer.delay(states, now=2.0) == pytest.approx(40 / 30.0)


def test_a_stalled_snapshot_waits_the_interval():
    pacer = PollPacer(5.0)
    pacer.delay([snap('s-1', 30)], now=0.0)
    assert pacer.delay([snap('s-1', 30)], now=5.0) == 5.0


class LinearBackend(object):
    """Snapshots that go 0 -> 100% in ``seconds`` on a fake clock; counts the polls."""
    provider = 'fake'

    def __init__(self, clock, seconds):
        self.clock = clock
        self.seconds = seconds
        self.polls = 0

    def describe_snapshots(self, snapshot_ids=None, **kwargs):
        self.polls += 1
        progress = min(100, int(100 * self.clock.now / self.seconds))
        status = 'accomplished' if progress >= 100 else 'progressing'
        return [dict(snap(i, progress, status), name=None, created_at=None) for i in snapshot_ids]


class FakeClock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def started_run(backend, clock, snap_ids, poll_interval=5.0):
    run = SnapshotRun(backend, {'instance_id': 'i-1', 'run_id': 'r', 'poll_interval': poll_interval, 'wait_timeout': 600},
                      clock=clock, sleep=clock.sleep)
    run.result['snapshots'] = [snap(i, 0) for i in snap_ids]
    return run


@pytest.mark.parametrize('shared', [True, False])
def test_the_wait_ends_about_when_the_snapshots_do(shared):
    clock = FakeClock()
    backend = LinearBackend(clock, seconds=8.0)
    run = started_run(backend, clock, ['s-1', 's-2'])
    if shared:
        assert poll_together([run], wait_timeout=600, poll_interval=5.0, clock=clock, sleep=clock.sleep) == {}
    else:
        run.wait()
    assert [s['status'] for s in run.result['snapshots']] == ['accomplished', 'accomplished']
    # Looks at 0 s, then at 5 s (62%: about 3 s left), then just after 8 s: done,
    # not at 10 s as a fixed 5 s poll would.
    assert clock.sleeps[0] == 5.0
    assert clock.sleeps[1] == pytest.approx(38 / 12.4)
    assert 8.0 <= clock.now < 8.5
    assert backend.polls == 3


def test_progress_is_reported_every_interval_while_waiting():
    clock = FakeClock()
    backend = LinearBackend(clock, seconds=60.0)
    run = started_run(backend, clock, ['s-1'], poll_interval=5.0)
    seen = []

    def progress(runs):
        seen.append((clock.now, [s['progress'] for r in runs for s in r.result['snapshots']]))

    assert poll_together([run], wait_timeout=600, poll_interval=5.0, clock=clock, sleep=clock.sleep,
                         progress=progress, progress_interval=15.0) == {}
    # Polls every 5 s of a 60 s snapshot; a report at the first poll at or after each 15 s
    # while something still progresses (the final states are the caller's to show).
    assert [t for t, dummy in seen] == [15.0, 30.0, 45.0]
    assert [p for dummy, p in seen] == [[25], [50], [75]]


def test_no_report_when_the_wait_is_shorter_than_the_interval():
    clock = FakeClock()
    run = started_run(LinearBackend(clock, seconds=8.0), clock, ['s-1'])
    seen = []
    poll_together([run], wait_timeout=600, poll_interval=5.0, clock=clock, sleep=clock.sleep, progress=seen.append,
                  progress_interval=15.0)
    assert seen == []
