# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process, the way Ansible would, and return its result.

    from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
    failed, result = run_module(oom_score_facts.main, {"proc_path": tree}, check_mode=True)
"""

from __future__ import annotations

import contextlib
import io
import json

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
except ImportError:  # ansible-core 2.16 to 2.18: modules read their arguments from basic._ANSIBLE_ARGS
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode("utf-8")
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


def run_module(main, args, check_mode=False):
    """(failed, result dict). Fails the test if the module printed no JSON or did not exit."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    out = io.StringIO()
    code = None
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        else:
            raise AssertionError("module main() returned without exit_json/fail_json")
    result = json.loads(out.getvalue())
    assert bool(result.get("failed")) == (code != 0), (code, result)
    return bool(result.get("failed")), result
