# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot every selected disk of one instance through a backend: plan, create, wait,
retain. Private to the oomguard.fleet collection; the module only maps options here."""

from __future__ import annotations

import threading
import time

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import new_run_id
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import build_backend, require_sdk
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import (
    CloudError,
    RUN_TAG_KEY,
    OWNER_TAG_KEY,
    OWNER_TAG_VALUE,
    STATUS_ACCOMPLISHED,
    STATUS_FAILED,
    STATUS_PROGRESSING,
    check_cloud_params,
    cloud_argument_spec,
    idempotency_token,
    plan_retention,
    progress_lines,
    render_template,
    select_disks,
    snapshot_tags,
    summarize,
    validate_snapshot_name,
    zone_as_region_problem,
)


def snapshot_argument_spec():
    """The options of disk_snapshot (its action plugin validates with the same spec)."""
    spec = cloud_argument_spec()
    spec.update(
        provider=dict(type='str', required=True, choices=['alicloud', 'aws']),
        region=dict(type='str'),
        instance_id=dict(type='str'),
        instances=dict(type='list', elements='dict', options=dict(
            host=dict(type='str'),
            instance_id=dict(type='str', required=True),
            region=dict(type='str'),
        )),
        concurrency=dict(type='int', default=16),
        progress_interval=dict(type='int', default=15),
        disks=dict(type='list', elements='str', default=['all']),
        name=dict(type='str', default='{run_id}-{disk_id}'),
        description=dict(type='str', default='oomguard.fleet snapshot of {disk_type} disk {disk_id} of {instance_id}, run {run_id}'),
        tags=dict(type='dict', default={}),
        run_id=dict(type='str'),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=1800),
        poll_interval=dict(type='float', default=5.0),
        on_timeout=dict(type='str', choices=['fail', 'return'], default='fail'),
        retention=dict(type='int', default=0),
    )
    return spec


def check_params(params):
    """A message for the first invalid combination of options, else None."""
    for key in ('wait_timeout', 'retention'):
        if params[key] < 0:
            return '%s must be 0 or more, got %d' % (key, params[key])
    if params['poll_interval'] <= 0:
        return 'poll_interval must be more than 0, got %s' % params['poll_interval']
    if params['concurrency'] < 1:
        return 'concurrency must be 1 or more, got %d' % params['concurrency']
    problem = check_cloud_params(params)
    if problem:
        return problem
    if bool(params['instance_id']) == (params['instances'] is not None):
        return 'give exactly one of instance_id and instances'
    if params['instance_id'] and not params['region']:
        return 'region is required with instance_id'
    problem = zone_as_region_problem(params['region'], 'region')
    if problem:
        return problem
    for entry in params['instances'] or []:
        if not (entry['region'] or params['region']):
            return 'instance %s has no region: set region on the entry or the region option' % entry['instance_id']
        problem = zone_as_region_problem(entry['region'], 'the region of instance %s' % entry['instance_id'])
        if problem:
            return problem
    return None


def prepare(params):
    """Check the options and give the run its id (when none was given); a message for the first problem, else None."""
    problem = check_params(params)
    if problem is None:
        params['run_id'] = params['run_id'] or new_run_id()
    return problem


class BackendCache(object):
    """One backend per region, shared by the threads (the SDK clients are thread-safe)."""

    def __init__(self, params):
        self.params = params
        self.lock = threading.Lock()
        self.backends = {}

    def __call__(self, request):
        with self.lock:
            if request['region'] not in self.backends:
                params = dict(self.params, region=request['region'])
                self.backends[request['region']] = build_backend(params['provider'], params)
            return self.backends[request['region']]


def batch_requests(params):
    """One request per entry of ``instances``, keyed by its host (or instance id)."""
    requests = []
    for entry in params['instances']:
        request = dict(params, instance_id=entry['instance_id'], region=entry['region'] or params['region'])
        request['key'] = entry['host'] or entry['instance_id']
        requests.append(request)
    return requests


def batch_result(hosts, params):
    """The result of a batch, however it ran: ``hosts`` is ``{key: result}``, each result with ``failed``."""
    failed = sorted(key for key, result in hosts.items() if result['failed'])
    return dict(changed=any(r.get('changed') for r in hosts.values()), run_id=params['run_id'], provider=params['provider'],
                hosts=hosts, failed_hosts=failed, message='%d instances, %d failed' % (len(hosts), len(failed)))


def host_lines(hosts, keys=None):
    """``<key>: <snapshot> (<disk>) <status> <n>%`` for each snapshot of each host (of ``keys`` when given), a
    ``<key>: FAILED: <msg>`` line for a failed host, and the message of a host without snapshots (check mode)."""
    lines = []
    for key in sorted(hosts if keys is None else keys):
        result = hosts[key]
        snapshots = result.get('snapshots') or []
        lines.extend('%s: %s' % (key, line) for line in progress_lines(snapshots))
        if result.get('failed'):
            lines.append('%s: FAILED: %s' % (key, result.get('msg')))
        elif not snapshots and result.get('message'):
            lines.append('%s: %s' % (key, result['message']))
    return lines


def timeout_cause(wait_timeout, snapshots):
    return 'still not accomplished after %s seconds (wait_timeout); states: %s' % (
        wait_timeout, '; '.join(progress_lines(snapshots)) or 'none listed yet')


def pending(hosts):
    """Keys of the hosts whose snapshots are still progressing (and not failed): the ones a later round waits for."""
    return sorted(key for key, result in hosts.items() if not result.get('failed') and result.get('status') == STATUS_PROGRESSING)


def merge(hosts, update):
    """Results of a round replace the hosts' earlier results, keeping what earlier rounds
    created and deleted (a later round only finds them); other hosts keep theirs."""
    merged = dict(hosts)
    for key, new in update.items():
        old = hosts.get(key) or {}
        new = dict(new)
        new['changed'] = bool(old.get('changed') or new.get('changed'))
        for field in ('created', 'deleted'):
            new[field] = list(old.get(field) or []) + [x for x in new.get(field) or [] if x not in (old.get(field) or [])]
        new['reused'] = [x for x in new.get('reused') or [] if x not in new['created']]
        merged[key] = new
    return merged


def time_out(hosts, wait_timeout):
    """Fail every host still progressing when the whole wait is over, as a run that timed out fails."""
    out = dict(hosts)
    for key in pending(hosts):
        result = dict(out[key])
        error = CloudError('wait for', 'snapshots of instance %s' % result.get('instance_id'),
                           timeout_cause(wait_timeout, result.get('snapshots') or []))
        result.update(failed=True, timed_out=True, status='failed', msg=str(error), message=str(error))
        out[key] = result
    return out


class SnapshotRunError(CloudError):
    """A CloudError that carries the partial result (snapshot ids and states so far)."""

    def __init__(self, verb, noun, cause, result):
        super().__init__(verb, noun, cause)
        self.result = result


def _public(snap):
    return {
        'snapshot_id': snap['snapshot_id'],
        'disk_id': snap['disk_id'],
        'name': snap.get('name'),
        'status': snap['status'],
        'progress': snap['progress'],
        'created_at': snap.get('created_at'),
    }


class PollPacer(object):
    """When to look again while waiting: after ``poll_interval`` seconds, or sooner when the
    progress seen so far says a snapshot ends before then (never sooner than ``floor``
    seconds, nor than ``poll_interval`` when that is shorter). So a long poll interval does
    not add most of itself to the wait after the last snapshot is done."""

    def __init__(self, poll_interval, floor=1.0):
        self.poll_interval = poll_interval
        self.floor = min(floor, poll_interval)
        self.first_seen = {}

    def delay(self, snapshots, now):
        """Seconds until the next poll, given the snapshots' latest states seen at ``now``."""
        soonest = self.poll_interval
        for snap in snapshots:
            if snap.get('status') != STATUS_PROGRESSING:
                continue
            progress = snap.get('progress') or 0
            seen_at, seen_progress = self.first_seen.setdefault(snap['snapshot_id'], (now, progress))
            if progress > seen_progress and now > seen_at:
                rate = (progress - seen_progress) / (now - seen_at)
                soonest = min(soonest, (100 - progress) / rate)
        return max(self.floor, soonest)


class SnapshotRun(object):
    """One disk_snapshot call. ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(self, backend, request, check_mode=False, clock=time.monotonic, sleep=time.sleep):
        self.backend = backend
        self.req = request
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.result = {
            'changed': False,
            'provider': backend.provider,
            'instance_id': request['instance_id'],
            'region': request.get('region'),
            'run_id': request['run_id'],
            'disks': [],
            'snapshots': [],
            'created': [],
            'reused': [],
            'would_create': [],
            'deleted': [],
            'would_delete': [],
            'timed_out': False,
            'status': 'ok',
            'message': '',
            'progress': [],
        }

    def _fail(self, verb, noun, cause):
        self._finish()
        self.result['status'] = 'failed'
        raise SnapshotRunError(verb, noun, cause, self.result)

    def _finish(self):
        snaps = self.result['snapshots']
        self.result['progress'] = progress_lines(snaps)
        if self.check_mode and self.result['would_create']:
            self.result['status'] = 'ok'
            self.result['message'] = 'would create %d snapshots' % len(self.result['would_create'])
        else:
            self.result['status'], self.result['message'] = summarize(snaps)

    def _template_values(self, disk):
        return {
            'run_id': self.req['run_id'],
            'instance_id': self.req['instance_id'],
            'disk_id': disk['disk_id'],
            'disk_type': disk['type'],
            'device': disk.get('device') or '',
        }

    def plan(self):
        """Disks to snapshot, and this run's snapshots that already exist (by run tag)."""
        disks = select_disks(self.backend.list_disks(self.req['instance_id']), self.req['disks'])
        self.result['disks'] = disks
        existing = self.backend.describe_snapshots(instance_id=self.req['instance_id'], tags={RUN_TAG_KEY: self.req['run_id']})
        by_disk = {}
        for snap in existing:
            by_disk.setdefault(snap['disk_id'], snap)
        todo = []
        for disk in disks:
            values = self._template_values(disk)
            name = render_template(self.req['name'], values)
            problem = validate_snapshot_name(name)
            if problem:
                raise CloudError('render', 'snapshot name', problem + '; change the name option')
            todo.append({'disk': disk, 'name': name, 'description': render_template(self.req['description'], values),
                         'existing': by_disk.get(disk['disk_id'])})
        return todo

    def create(self, todo):
        tags = snapshot_tags(self.req['run_id'], self.req.get('tags'))
        for item in todo:
            disk_id = item['disk']['disk_id']
            if item['existing']:
                self.result['reused'].append(item['existing']['snapshot_id'])
                self.result['snapshots'].append(_public(item['existing']))
                continue
            if self.check_mode:
                self.result['would_create'].append({'disk_id': disk_id, 'name': item['name']})
                self.result['changed'] = True
                continue
            try:
                snap_id = self.backend.create_snapshot(disk_id, item['name'], item['description'], tags,
                                                       idempotency_token(self.req['run_id'], disk_id))
            except CloudError as exc:
                self._fail('create', 'snapshot of disk %s' % disk_id, exc.cause)
            self.result['changed'] = True
            self.result['created'].append(snap_id)
            self.result['snapshots'].append({'snapshot_id': snap_id, 'disk_id': disk_id, 'name': item['name'],
                                             'status': STATUS_PROGRESSING, 'progress': 0, 'created_at': None})

    def snapshot_ids(self):
        return [s['snapshot_id'] for s in self.result['snapshots']]

    def waiting(self):
        """Still worth polling: something progressing and nothing failed."""
        states = set(s['status'] for s in self.result['snapshots'])
        return STATUS_PROGRESSING in states and STATUS_FAILED not in states

    def refresh(self):
        ids = self.snapshot_ids()
        if ids:
            self.absorb(dict((s['snapshot_id'], s) for s in self.backend.describe_snapshots(snapshot_ids=ids)))

    def absorb(self, current):
        """Take the latest states from ``{snapshot_id: snapshot}``."""
        fresh = []
        for snap in self.result['snapshots']:
            seen = current.get(snap['snapshot_id'])
            # A just-created snapshot may not be listed yet (eventual consistency): keep it progressing.
            fresh.append(_public(seen) if seen else snap)
        self.result['snapshots'] = fresh

    def wait(self):
        deadline = self.clock() + self.req['wait_timeout']
        pacer = PollPacer(self.req['poll_interval'])
        while True:
            self.refresh()
            if not self.waiting():
                return
            now = self.clock()
            if now >= deadline:
                self.result['timed_out'] = True
                return
            self.sleep(max(0.0, min(pacer.delay(self.result['snapshots'], now), deadline - now)))

    def retain(self):
        keep = self.req.get('retention') or 0
        if not keep:
            return
        done_disks = set(s['disk_id'] for s in self.result['snapshots'] if s['status'] == STATUS_ACCOMPLISHED)
        if not done_disks:
            return
        ours = self.backend.describe_snapshots(instance_id=self.req['instance_id'], tags={OWNER_TAG_KEY: OWNER_TAG_VALUE})
        # Older snapshots go only once this run's snapshot of the same disk is safely accomplished.
        candidates = [s for s in ours if s['disk_id'] in done_disks]
        protect = [s['snapshot_id'] for s in self.result['snapshots']]
        for snap_id in plan_retention(candidates, keep, protect):
            if self.check_mode:
                self.result['would_delete'].append(snap_id)
                self.result['changed'] = True
                continue
            try:
                self.backend.delete_snapshot(snap_id)
            except CloudError as exc:
                self._fail('delete', 'old snapshot %s' % snap_id, exc.cause)
            self.result['deleted'].append(snap_id)
            self.result['changed'] = True

    def start(self):
        """Plan and create (or, in check mode, list what would be created)."""
        try:
            todo = self.plan()
        except CloudError as exc:
            self._fail(exc.verb, exc.noun, exc.cause)
        self.create(todo)

    def finish(self, poll_error=None):
        """Judge the states, apply retention, and return the result (raises SnapshotRunError on failure)."""
        if poll_error is not None:
            self._fail(poll_error.verb, poll_error.noun, poll_error.cause)
        failed = [s for s in self.result['snapshots'] if s['status'] == STATUS_FAILED]
        if failed:
            self._fail('create', 'snapshots of instance %s' % self.req['instance_id'],
                       'the cloud marked %s failed; states: %s' % (
                           ', '.join('%s (disk %s)' % (s['snapshot_id'], s['disk_id']) for s in failed),
                           '; '.join(progress_lines(self.result['snapshots']))))
        if self.result['timed_out'] and self.req.get('on_timeout', 'fail') == 'fail':
            self._fail('wait for', 'snapshots of instance %s' % self.req['instance_id'],
                       timeout_cause(self.req['wait_timeout'], self.result['snapshots']))
        try:
            self.retain()
        except CloudError as exc:
            self._fail(exc.verb, exc.noun, exc.cause)
        self._finish()
        return self.result

    def run(self):
        self.start()
        poll_error = None
        # Without waiting, the states are already known: reused snapshots were just described,
        # created ones are progressing at 0%.
        if self.req['wait'] and not self.check_mode:
            try:
                self.wait()
            except CloudError as exc:
                poll_error = exc
        return self.finish(poll_error)


def _failed_result(request, exc):
    return {'failed': True, 'msg': str(exc), 'changed': False, 'status': 'failed', 'message': str(exc),
            'instance_id': request['instance_id'], 'region': request.get('region'), 'run_id': request['run_id'],
            'snapshots': [], 'progress': [], 'created': [], 'reused': [], 'would_create': [], 'deleted': [],
            'would_delete': [], 'timed_out': False, 'disks': [], 'provider': request.get('provider')}


def poll_together(runs, wait_timeout, poll_interval, clock=time.monotonic, sleep=time.sleep, chunk=100, progress=None,
                  progress_interval=15.0):
    """Wait for many runs with one DescribeSnapshots per backend and ``chunk`` ids per poll,
    instead of one per instance. Returns ``{id(run): CloudError}`` for runs whose poll failed.
    ``progress(runs)``, when given, is called with the runs still waiting every ``progress_interval`` seconds
    (not after the last poll: the caller has the final states)."""
    deadline = clock() + wait_timeout
    reported = clock()
    errors = {}
    pacer = PollPacer(poll_interval)
    waiting = [run for run in runs if run.waiting()]
    while waiting:
        by_backend = {}
        for run in waiting:
            by_backend.setdefault(id(run.backend), []).append(run)
        for group in by_backend.values():
            ids = [snap_id for run in group for snap_id in run.snapshot_ids()]
            try:
                current = {}
                for start in range(0, len(ids), chunk):
                    for snap in group[0].backend.describe_snapshots(snapshot_ids=ids[start:start + chunk]):
                        current[snap['snapshot_id']] = snap
            except CloudError as exc:
                for run in group:
                    errors[id(run)] = exc
                continue
            for run in group:
                run.absorb(current)
        waiting = [run for run in waiting if id(run) not in errors and run.waiting()]
        if not waiting:
            break  # no sleep after the last snapshot is done
        if progress is not None and clock() - reported >= progress_interval:
            reported = clock()
            progress(waiting)
        now = clock()
        if now >= deadline:
            for run in waiting:
                run.result['timed_out'] = True
            break
        polled = [snap for run in waiting for snap in run.result['snapshots']]
        sleep(max(0.0, min(pacer.delay(polled, now), deadline - now)))
    return errors


def run_many(make_backend, requests, check_mode=False, concurrency=16, sleep=time.sleep, clock=time.monotonic, progress=None,
             progress_interval=15.0):
    """Snapshot many instances: start them all on a thread pool, wait for all of them with a shared
    poll, then judge and retain each on the pool. A host's failure never stops the others.
    ``progress(runs)``, when given, is called with the started runs once they are started, then
    with the runs still waiting every ``progress_interval`` seconds of the wait.

    ``make_backend(request)`` returns the (shared, thread-safe) backend for a request.
    Returns ``{key: result}`` where each result has ``failed`` and, when failed, ``msg``.
    """
    from concurrent.futures import ThreadPoolExecutor

    results = {}
    started = []

    def start(request):
        try:
            run = SnapshotRun(make_backend(request), request, check_mode=check_mode, sleep=sleep, clock=clock)
            run.start()
            return run
        except SnapshotRunError as exc:
            results[request['key']] = dict(exc.result, failed=True, msg=str(exc))
        except CloudError as exc:
            results[request['key']] = _failed_result(request, exc)
        return None

    def finish(pair):
        run, error = pair
        try:
            result = run.finish(error)
            result['failed'] = False
        except SnapshotRunError as exc:
            result = dict(exc.result, failed=True, msg=str(exc))
        results[run.req['key']] = result

    workers = max(1, min(concurrency, len(requests) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        started = [run for run in pool.map(start, requests) if run is not None]
        errors = {}
        if started and not check_mode and requests[0]['wait']:
            if progress is not None:
                progress(started)
            errors = poll_together(started, requests[0]['wait_timeout'], requests[0]['poll_interval'], clock=clock, sleep=sleep,
                                   progress=progress, progress_interval=progress_interval)
        list(pool.map(finish, [(run, errors.get(id(run))) for run in started]))
    return dict((r['key'], results[r['key']]) for r in requests)


def run_batch(params, check_mode=False, progress=None, sleep=time.sleep, clock=time.monotonic):
    """Snapshot every instance of ``params['instances']`` (options checked by ``prepare``) and return the batch result.

    The one runner of a batch, in the module's process or the action plugin's. ``progress(lines)``, when given,
    gets the ``host_lines`` of the started runs, then of the waiting ones every ``progress_interval`` seconds.
    Raises MissingSdk when the provider's SDK is not importable; a host's cloud error fails that host only.
    """
    require_sdk(params['provider'])
    report = None
    if progress is not None:
        def report(runs):
            progress(host_lines(dict((run.req['key'], run.result) for run in runs)))
    hosts = run_many(BackendCache(params), batch_requests(params), check_mode=check_mode, concurrency=params['concurrency'],
                     sleep=sleep, clock=clock, progress=report, progress_interval=max(1, params['progress_interval']))
    return batch_result(hosts, params)
