# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No module or action returns a top-level key that Ansible reads for its own purposes.

A module that returns ``skipped: [...]`` (non-empty) makes Ansible show the task as skipped,
``results`` is read as loop results, a non-zero ``rc`` fails the task, ``unreachable`` marks the
host unreachable, and so on. Every key in a module's RETURN documentation, and every key an
action plugin's ``run()`` puts into its result, is checked against the names ansible-core's
executor interprets (ansible/executor/task_result.py, ansible/executor/task_executor.py,
ansible/plugins/strategy, ansible/plugins/callback).
"""

from __future__ import annotations

import ast
import glob
import importlib
import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# Keys that ansible-core interprets in a task result, and where.
RESERVED = {
    "skipped": "TaskResult.is_skipped: a truthy value shows the task as skipped",
    "skip_reason": "written by the executor for skipped tasks; callbacks print it",
    "failed": "TaskResult.is_failed",
    "failed_when_result": "TaskResult.is_failed prefers it over 'failed'",
    "changed_when_result": "TaskExecutor: set when changed_when raised",
    "changed": "TaskResult.is_changed",
    "unreachable": "TaskResult.is_unreachable: the host is marked unreachable",
    "results": "TaskResult._loop_results: read as the results of a loop",
    "rc": "TaskExecutor: a non-zero rc without 'failed' fails the task",
    "attempts": "TaskExecutor: retries/until bookkeeping",
    "retries": "TaskExecutor: retries/until bookkeeping",
    "msg": "callbacks print it as the task's message",
    "warnings": "TaskExecutor: shown as warnings",
    "deprecations": "TaskExecutor: shown as deprecation warnings",
    "exception": "callbacks print it as a traceback",
    "diff": "callbacks print it in --diff mode",
    "invocation": "module arguments echoed back by AnsibleModule",
    "ansible_facts": "TaskExecutor: merged into the host's facts",
    "ansible_stats": "set_stats: merged into the play's custom stats",
    "add_host": "strategy: adds a host to the inventory",
    "add_group": "strategy: adds a host to a group",
    "ansible_job_id": "async: read as the job id",
    "started": "async: read by async_status polling",
    "finished": "async: read by async_status polling",
    "censored": "no_log: replaces the result",
    "stdout_lines": "callbacks derive it from stdout",
    "stderr_lines": "callbacks derive it from stderr",
    "module_stdout": "executor: raw output of a module that printed no JSON",
    "module_stderr": "executor: raw error output of a module",
    "parsed": "executor: marks an unparsable module result",
    "messages": "TaskExecutor: a list of (level, message) pairs shown by the executor",
    "item": "loop: the loop item",
    "ansible_loop_var": "loop: the name of the loop variable",
    "ansible_loop": "loop: extended loop information",
    "ansible_index_var": "loop: the name of the index variable",
}
# The keys whose Ansible meaning is exactly what the collection means by them.
INTENDED = {"changed", "failed", "msg", "warnings", "deprecations", "diff", "invocation", "ansible_facts"}
# Internal display hints an action may set on purpose.
INTENDED_INTERNAL = {"_ansible_verbose_override"}
# Keys one plugin sets for exactly Ansible's meaning, and why.
INTENDED_BY = {
    "oom_exposure.py": {"unreachable": "a host the facts module cannot reach is reported unreachable, in Ansible's terms"},
}


def clashes(keys, intended=()):
    return sorted(key for key in keys if (key in RESERVED and key not in INTENDED and key not in intended)
                  or (key.startswith("_ansible_") and key not in INTENDED_INTERNAL))


def module_names():
    return sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
                  if not os.path.basename(path).startswith("_"))


def action_paths():
    return sorted(glob.glob(os.path.join(REPO, "plugins", "action", "*.py")))


def return_keys(name):
    module = importlib.import_module("ansible_collections.oomguard.fleet.plugins.modules." + name)
    return sorted((yaml.safe_load(module.RETURN) or {}).keys())


def _returned_dict_keys(node):
    if isinstance(node, ast.Dict):
        return [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return []


# ActionModule methods whose returned dict is not the task's result (it is read by run() instead).
NOT_TASK_RESULTS = {("oom_exposure.py", "_gather"): "the facts module's result as gather_outcome() reads it"}


def action_result_keys(path):
    """String keys that ActionModule's methods put into what they return: ``result[...] = ``,
    ``result.update(key=...)``, and the keys of dict literals they return."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    keys = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ActionModule"):
        for func in (n for n in cls.body if isinstance(n, ast.FunctionDef)
                     and (os.path.basename(path), n.name) not in NOT_TASK_RESULTS):
            for node in ast.walk(func):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                                and target.value.id == "result" and isinstance(target.slice, ast.Constant)):
                            keys.add(target.slice.value)
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                      and isinstance(node.func.value, ast.Name) and node.func.value.id == "result"):
                    keys.update(kw.arg for kw in node.keywords if kw.arg)
                    for arg in node.args:
                        keys.update(_returned_dict_keys(arg))
                elif isinstance(node, ast.Return) and node.value is not None:
                    keys.update(_returned_dict_keys(node.value))
    return keys


def test_the_reserved_names_are_the_ones_ansible_core_reads():
    """The list above is checked against the installed ansible-core, so a new release that reads
    another key is noticed where it matters most."""
    import ansible.executor.task_executor as te
    import ansible.executor.task_result as tr

    mods = [tr, te]
    try:  # ansible-core 2.21 and later read the result keys in their task result model
        mods.append(importlib.import_module("ansible._internal._task"))
    except ImportError:
        pass
    sources = ""
    for mod in mods:
        with open(mod.__file__, encoding="utf-8") as handle:
            sources += handle.read()
    for key in ("skipped", "failed", "failed_when_result", "changed", "unreachable", "results", "rc", "ansible_facts",
                "warnings", "deprecations", "exception", "attempts", "retries", "messages"):
        # As a string, or (2.21 and later) as a field of the task result model.
        field = re.search(r"^\s+_?%s: .*dataclasses\.field\(" % key, sources, re.M)
        assert "'%s'" % key in sources or '"%s"' % key in sources or field, key


@pytest.mark.parametrize("name", module_names())
def test_module_return_keys_do_not_clash(name):
    keys = return_keys(name)
    assert keys, "%s documents no return value" % name
    bad = clashes(keys, INTENDED_BY.get(name + ".py", {}))
    assert not bad, "%s returns %s, which Ansible interprets: %s" % (name, bad, [RESERVED.get(k, "internal") for k in bad])


@pytest.mark.parametrize("path", action_paths(), ids=os.path.basename)
def test_action_result_keys_do_not_clash(path):
    keys = action_result_keys(path)
    assert keys, "no result keys found in %s: the scan no longer sees its run()" % path
    bad = clashes(keys, INTENDED_BY.get(os.path.basename(path), {}))
    assert not bad, "%s returns %s, which Ansible interprets: %s" % (path, bad, [RESERVED.get(k, "internal") for k in bad])


def test_the_check_catches_what_it_is_for():
    assert clashes(["skipped", "restored", "results", "rc", "_ansible_no_log", "msg", "ansible_facts"]) == [
        "_ansible_no_log", "rc", "results", "skipped"]
