# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for oomguard.fleet.disk_snapshot.

With ``instances`` on the controller (a local connection without become, as the role
runs it), the snapshots are made in this process, with the module's own code: one
process polls every instance and prints each snapshot's percent done every
``progress_interval`` seconds. No module process is started, which saves its start-up.
When the cloud SDK is not importable here, or the task is delegated elsewhere (a bastion),
it runs the module in rounds of ``progress_interval`` seconds instead: the first round
creates every snapshot and waits, the later ones wait for the hosts still waiting, and the
states are printed after each round. Without ``instances`` it runs the module as it is.
"""

from __future__ import annotations

import os
import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import MissingSdk
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError, progress_lines as snapshot_lines
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import (
    BackendCache,
    batch_requests,
    batch_result,
    check_params,
    new_run_id,
    run_many,
    snapshot_argument_spec,
)
from ansible_collections.oomguard.fleet.plugins.plugin_utils.output import human_callback
from ansible_collections.oomguard.fleet.plugins.plugin_utils.snapshot_rounds import (
    failed_keys,
    merge,
    pending,
    progress_lines,
    time_out,
)

display = Display()


def say(line):
    """A progress line, unless the stdout callback writes a JSON document."""
    if human_callback():
        display.display(line)


MODULE = 'oomguard.fleet.disk_snapshot'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _module(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

    def _show(self, hosts, keys=None):
        for line in progress_lines(hosts, keys):
            say(line)

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        args = dict(self._task.args)
        if not args.get('instances'):
            return self._module(args, task_vars)
        if self._connection.transport == 'local' and not self._play_context.become:
            result = self._run_here()
            if result is not None:
                return result
        return self._run_in_rounds(args, task_vars)

    def _show_runs(self, runs):
        for run in sorted(runs, key=lambda run: run.req['key']):
            for line in snapshot_lines(run.result['snapshots']):
                say('%s: %s' % (run.req['key'], line))

    def _run_here(self):
        """The batch in this process; None when the SDK is not importable here (run the module then)."""
        dummy, params = self.validate_argument_spec(argument_spec=snapshot_argument_spec())
        problem = check_params(params)
        if problem:
            return {'failed': True, 'msg': problem}
        params['run_id'] = params['run_id'] or new_run_id()
        requests = batch_requests(params)
        backends = BackendCache(params)
        # The task's environment keyword reaches the SDKs' credential chains as it would reach a module.
        environment = {}
        self._compute_environment_string(environment)
        saved = dict(os.environ)
        os.environ.update((str(k), str(v)) for k, v in environment.items())
        try:
            try:
                backends(requests[0])
            except MissingSdk as exc:
                display.vvv('disk_snapshot: %s is not importable by the controller\'s Python, running the module instead: %s'
                            % (exc.library, exc.import_error))
                return None
            except CloudError:
                pass  # each host reports it from run_many, as the module would
            if params['wait'] and not self._task.check_mode:
                say('disk_snapshot: snapshotting %d instances, progress every %d s' % (len(requests), params['progress_interval']))
            hosts = run_many(backends, requests, check_mode=self._task.check_mode, concurrency=params['concurrency'],
                             progress=self._show_runs, progress_interval=max(1, params['progress_interval']))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self._show(hosts)
        return batch_result(hosts, params)

    def _run_in_rounds(self, args, task_vars):
        if not boolean(args.get('wait', True), strict=False) or self._task.check_mode:
            result = self._module(dict(args, wait=False), task_vars)
            if not result.get('failed') and 'hosts' in result:
                self._show(result['hosts'])
            return result
        try:
            wait_timeout = int(args.get('wait_timeout', 1800))
            interval = max(1.0, float(args.get('progress_interval', 15)))
        except (TypeError, ValueError) as exc:
            return {'failed': True, 'msg': 'wait_timeout and progress_interval must be numbers: %s' % exc}
        by_key = dict(((item.get('host') or item['instance_id']), item) for item in args['instances'])
        say('disk_snapshot: snapshotting %d instances, progress every %d s' % (len(by_key), interval))
        # The first round creates the snapshots and waits up to one interval: one module run
        # less than creating and waiting apart. Later rounds only wait, for the hosts still waiting.
        start = time.monotonic()
        hosts, changed, waiting = {}, False, sorted(by_key)
        while True:
            left = wait_timeout - (time.monotonic() - start)
            if hosts and left <= 0:
                hosts = time_out(hosts, wait_timeout)
                self._show(hosts, [k for k in hosts if hosts[k].get('timed_out')])
                break
            round_args = dict(args, instances=[by_key[k] for k in waiting], wait=True, on_timeout='return',
                              wait_timeout=int(max(1 if wait_timeout > 0 else 0, min(interval, left))))
            result = self._module(round_args, task_vars)
            if result.get('failed') or 'hosts' not in result:
                return result
            # Every round works on the first round's run id (made by the module when none was given).
            args['run_id'] = result.get('run_id') or args.get('run_id')
            changed = changed or bool(result.get('changed'))
            hosts = merge(hosts, result['hosts'])
            self._show(hosts, waiting)
            waiting = pending(hosts)
            if not waiting:
                break
        failed = failed_keys(hosts)
        return {'changed': changed, 'run_id': args.get('run_id'), 'provider': args.get('provider'), 'hosts': hosts,
                'failed_hosts': failed, 'message': '%d instances, %d failed' % (len(hosts), len(failed))}
