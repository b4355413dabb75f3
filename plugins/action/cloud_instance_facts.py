# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for oomguard.fleet.cloud_instance_facts (docs in plugins/modules/cloud_instance_facts.py).

When instance_id and region are given (from inventory), the identity is known on the
controller: it is returned without connecting to the host. Otherwise the module runs on
the host and asks the metadata service.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.metadata import (
    check_instance_facts_params,
    from_inventory,
    instance_facts_argument_spec,
)

MODULE = 'oomguard.fleet.cloud_instance_facts'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        dummy, params = self.validate_argument_spec(argument_spec=instance_facts_argument_spec())
        problem = check_instance_facts_params(params)
        if problem:
            return {'failed': True, 'msg': problem}
        try:
            identity = from_inventory(params['provider'], params['instance_id'], params['region'], params['zone'])
        except CloudError as exc:
            return {'failed': True, 'msg': str(exc)}
        if identity is None:
            return self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars)
        identity['source'] = 'inventory'
        return {'changed': False, 'ansible_facts': {'cloud_instance': identity}}
