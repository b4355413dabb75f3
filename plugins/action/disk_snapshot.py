# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for oomguard.fleet.disk_snapshot.

With ``instances`` and ``wait: true`` it starts every snapshot first (one module run),
then waits in rounds of ``progress_interval`` seconds (one module run each, only for the
hosts still waiting) and prints each snapshot's percent done after every round, so a
long wait shows progress instead of silence. Otherwise it runs the module as it is.
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.oomguard.fleet.plugins.plugin_utils.snapshot_rounds import (
    failed_keys,
    merge,
    pending,
    progress_lines,
    time_out,
)

display = Display()

MODULE = 'oomguard.fleet.disk_snapshot'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _module(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

    def _show(self, hosts, keys=None):
        for line in progress_lines(hosts, keys):
            display.display(line)

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        args = dict(self._task.args)
        if not args.get('instances'):
            return self._module(args, task_vars)
        waiting_wanted = boolean(args.get('wait', True), strict=False) and not self._task.check_mode
        try:
            wait_timeout = int(args.get('wait_timeout', 1800))
            interval = max(1.0, float(args.get('progress_interval', 15)))
        except (TypeError, ValueError) as exc:
            return {'failed': True, 'msg': 'wait_timeout and progress_interval must be numbers: %s' % exc}
        start = time.monotonic()
        first = self._module(dict(args, wait=False), task_vars)
        if first.get('failed') or 'hosts' not in first:
            return first
        self._show(first['hosts'])
        if not waiting_wanted:
            return first
        hosts = first['hosts']
        changed = bool(first.get('changed'))
        by_key = dict(((item.get('host') or item['instance_id']), item) for item in args['instances'])
        while pending(hosts):
            left = wait_timeout - (time.monotonic() - start)
            if left <= 0:
                hosts = time_out(hosts, wait_timeout)
                self._show(hosts, [k for k in hosts if hosts[k].get('timed_out')])
                break
            waiting = pending(hosts)
            round_args = dict(args, instances=[by_key[k] for k in waiting], wait=True, on_timeout='return',
                              wait_timeout=int(max(1, min(interval, left))))
            result = self._module(round_args, task_vars)
            if result.get('failed') or 'hosts' not in result:
                return result
            changed = changed or bool(result.get('changed'))
            hosts = merge(hosts, result['hosts'])
            self._show(hosts, waiting)
        failed = failed_keys(hosts)
        return {'changed': changed, 'run_id': first.get('run_id'), 'provider': first.get('provider'), 'hosts': hosts,
                'failed_hosts': failed, 'message': '%d instances, %d failed' % (len(hosts), len(failed))}
