# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stdout callback named ``json`` for the tests: writes one JSON document of every task
result when the play ends, as ansible.posix.json does (that collection is not installed
here). Anything else printed to stdout during the run makes the document unparseable."""

from __future__ import annotations

DOCUMENTATION = """
name: json
type: stdout
short_description: One JSON document of every task result, for tests
description:
  - Writes every task result as one JSON document when the playbook ends.
"""

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = []

    def _keep(self, result, status):
        self.results.append({"host": result._host.get_name(), "task": result._task.get_name(), "status": status,
                             "result": self._convert_host_result(result)})

    @staticmethod
    def _convert_host_result(result):
        return json.loads(json.dumps(result._result, default=str))

    def v2_runner_on_ok(self, result):
        self._keep(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._keep(result, "failed")

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps({"results": self.results}))
