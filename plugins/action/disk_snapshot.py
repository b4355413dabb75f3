# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for oomguard.fleet.disk_snapshot.

Without ``instances`` it runs the module as it is. With ``instances`` (the role's one task per
provider) the batch has one driver: the options are checked and the run id made here, the batch
runner of module_utils/cloud/runner.py does the work, and its result, progress lines and timeout
message are the same wherever it ran:

- here, in this process (a local connection without become, as the role runs it): no module
  process is started, and the runner prints each snapshot's percent done every ``progress_interval``
  seconds. The cloud options the task's ``environment`` keyword sets are passed to it as options;
- else in the module on the delegate, in rounds of ``progress_interval`` seconds: the first round
  creates every snapshot and waits, the later ones wait for the hosts still waiting (finding this
  run's snapshots by its tag), and the states are printed after each round. So also when the cloud
  SDK is not importable here, or the task's environment sets a variable only a process can take.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import MissingSdk, options_from_environment, require_sdk
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import (
    batch_result,
    host_lines,
    merge,
    pending,
    prepare,
    run_batch,
    snapshot_argument_spec,
    time_out,
)
from ansible_collections.oomguard.fleet.plugins.plugin_utils.stdout_callback import human_callback

display = Display()

MODULE = 'oomguard.fleet.disk_snapshot'


def say(lines):
    """Progress lines, unless the stdout callback writes a JSON document."""
    if human_callback():
        for line in lines:
            display.display(line)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    # Injectable for tests.
    clock = staticmethod(time.monotonic)

    def _module(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        if not self._task.args.get('instances'):
            return self._module(dict(self._task.args), task_vars)
        dummy, params = self.validate_argument_spec(argument_spec=snapshot_argument_spec())
        problem = prepare(params)
        if problem:
            return {'failed': True, 'msg': problem}
        if params['wait'] and not self._task.check_mode:
            say(['disk_snapshot: snapshotting %d instances, progress every %d s' % (len(params['instances']), params['progress_interval'])])
        result = self._run_here(params)
        if result is None:
            result = self._run_in_rounds(params, task_vars)
        return result

    def _task_environment(self):
        """The task's ``environment`` keyword, templated, as one dict."""
        environment = {}
        self._compute_environment_string(environment)
        return dict((str(key), str(value)) for key, value in environment.items())

    def _run_here(self, params):
        """The batch in this process; None when it has to run in the module instead."""
        if self._connection.transport != 'local' or self._play_context.become:
            return None
        try:
            require_sdk(params['provider'])
        except MissingSdk as exc:
            display.vvv('disk_snapshot: %s is not importable by the controller\'s Python, running the module instead: %s'
                        % (exc.library, exc.import_error))
            return None
        here = options_from_environment(params, self._task_environment())
        if here is None:
            display.vvv('disk_snapshot: the task\'s environment sets more than the cloud options, running the module instead')
            return None
        result = run_batch(here, check_mode=self._task.check_mode, progress=say)
        say(host_lines(result['hosts']))
        return result

    def _run_in_rounds(self, params, task_vars):
        """The batch in the module: one run without waiting, or rounds of ``progress_interval`` seconds until
        every host is done or ``wait_timeout`` has passed."""
        spec = snapshot_argument_spec()
        args = dict((key, value) for key, value in params.items() if key in spec and value is not None)
        if not params['wait'] or self._task.check_mode:
            result = self._module(dict(args, wait=False), task_vars)
            if not result.get('failed') and 'hosts' in result:
                say(host_lines(result['hosts']))
            return result
        by_key = dict(((item['host'] or item['instance_id']), item) for item in params['instances'])
        interval = max(1, params['progress_interval'])
        wait_timeout = params['wait_timeout']
        start = self.clock()
        hosts, waiting = {}, sorted(by_key)
        while waiting:
            left = wait_timeout - (self.clock() - start)
            if hosts and left <= 0:
                timed_out = time_out(hosts, wait_timeout)
                say(host_lines(timed_out, waiting))
                hosts = timed_out
                break
            round_args = dict(args, instances=[by_key[key] for key in waiting], wait=True, on_timeout='return',
                              wait_timeout=int(max(1 if wait_timeout > 0 else 0, min(interval, left))))
            result = self._module(round_args, task_vars)
            if result.get('failed') or 'hosts' not in result:
                return result
            hosts = merge(hosts, result['hosts'])
            say(host_lines(hosts, waiting))
            waiting = pending(hosts)
        return batch_result(hosts, params)
