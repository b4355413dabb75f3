# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: wall and controller CPU time of each task (all hosts together), as JSON.

CPU is this process plus its reaped workers (one per host and task), so a task's figure
includes the Ansible work of running it on every host: templating, action plugins, SSH.

Enabled by tests/bench/bench_audit.py with ANSIBLE_CALLBACK_PLUGINS pointing here,
ANSIBLE_CALLBACKS_ENABLED=bench_task_timer and BENCH_TASK_TIMES=<output file>.
"""

from __future__ import annotations

import json
import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: bench_task_timer
    type: aggregate
    short_description: write each task's wall and controller CPU time to a JSON file
    description:
      - Benchmark helper for tests/bench/bench_audit.py; not part of the collection.
    requirements:
      - enable in configuration
'''


def _cpu():
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_task_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._times = []
        self._current = None

    def _close(self):
        if self._current is not None:
            name, start, cpu = self._current
            self._times.append({'task': name, 'seconds': round(time.monotonic() - start, 3),
                                'cpu': round(_cpu() - cpu, 3)})
            self._current = None

    def _open(self, name):
        self._close()
        self._current = (name, time.monotonic(), _cpu())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._open(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._open('handler: ' + task.get_name())

    def v2_playbook_on_play_start(self, play):
        self._close()

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get('BENCH_TASK_TIMES')
        if path:
            with open(path, 'w', encoding='utf-8') as handle:
                json.dump(self._times, handle)
