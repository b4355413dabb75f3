# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every boolean, integer and float role variable works when given as text (``-e name=value``).

Generated from the four roles' meta/argument_specs.yml, so a new variable is checked without
anyone listing it. Role argument validation checks that ``"false"`` could be a boolean but
passes the text on; what counts is where the variable is used. Each use in the role's tasks
and vars must convert it, and each conversion is run here with the text and with the typed
value, which must behave the same:

- passed whole to a module or action option (``option: "{{ var }}"``): that option's argument
  spec converts it; checked with Ansible's ArgumentSpecValidator on the real spec;
- ``var | bool``, ``var | int`` or ``var | float`` in an expression: rendered with Ansible's templar;
- a keyword of one of the collection's filters (``require_snapshot=var``): the filter is called
  with the text, the typed value and the default, and must answer for the text as for the typed
  value, and differently from the default in at least one case (so the check is not vacuous).

Any other use (``when: var``, ``var and ...``) fails the test: say ``| bool`` / ``| int`` there.
tests/system/test_role_variables_cli.py runs real ``ansible-playbook -e name=value`` commands.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core 2.19 renders only text marked as a template
    from ansible.template import trust_as_template as _trusted
except ImportError:  # 2.16 - 2.18
    def _trusted(text):
        return text

from ansible_collections.oomguard.fleet.plugins.action import fleet_report, oom_exposure
from ansible_collections.oomguard.fleet.plugins.filter import remediate_role as remediate_filters
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.metadata import instance_facts_argument_spec
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import snapshot_argument_spec
from ansible_collections.oomguard.fleet.plugins.module_utils.change_module import remediation_argument_spec
from ansible_collections.oomguard.fleet.plugins.modules import oom_score_adj

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ("assess", "snapshot", "remediate", "report")
TYPES = ("bool", "int", "float")
CONDITIONS = ("when", "changed_when", "failed_when", "until")   # bare Jinja expressions
TASK_KEYWORDS = {"name", "when", "register", "loop", "loop_control", "run_once", "delegate_to", "delegate_facts", "become",
                 "changed_when", "failed_when", "ignore_errors", "check_mode", "block", "rescue", "always", "vars", "tags",
                 "no_log", "until", "retries", "delay", "environment", "notify", "args", "become_user", "any_errors_fatal"}


def _documented_spec(module):
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    return dict((name, dict((k, v) for k, v in opt.items() if k in ("type", "elements", "choices"))) for name, opt in options.items())


# The argument spec each module or action of the roles validates its options with.
MODULE_SPECS = {
    "oomguard.fleet.oom_exposure": lambda: oom_exposure.ARGUMENT_SPEC,
    "oomguard.fleet.fleet_report": lambda: fleet_report.ARGUMENT_SPEC,
    "oomguard.fleet.disk_snapshot": snapshot_argument_spec,
    "oomguard.fleet.cloud_instance_facts": instance_facts_argument_spec,
    # built in main() from the shared remediation spec and its own options (sanity keeps those equal to the docs)
    "oomguard.fleet.oom_score_adj": lambda: dict(_documented_spec(oom_score_adj), **remediation_argument_spec()),
}

# A host with two unkillable processes, with and without a snapshot from this run: the cases the
# remediate_plan filter's keywords change.
_FLAGGED = [{"pid": 4242, "name": "java", "unit": "app.service", "oom_score_adj": -1000, "rss_kb": 6000},
            {"pid": 77, "name": "adhoc", "unit": None, "oom_score_adj": -1000, "rss_kb": 10}]
_RUN = "oomguard-20261129T020000Z-4711"
FILTER_CASES = {
    "remediate_plan": [
        lambda **kw: remediate_filters.remediate_plan({"flagged": _FLAGGED}, run_id=_RUN, mode="reset",
                                                      snapshots={"status": "ok", "run_id": _RUN}, **kw),
        lambda **kw: remediate_filters.remediate_plan({"flagged": _FLAGGED}, run_id=_RUN, mode="reset", snapshots=None, **kw),
    ],
}


def _load(role, *parts):
    path = os.path.join(TOP, "roles", role, *parts)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def typed_variables():
    for role in ROLES:
        options = _load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
        for name, spec in sorted(options.items()):
            if spec.get("type") in TYPES:
                yield role, name, spec


def text_and_value(spec):
    """The text ``-e name=<text>`` passes, and the typed value it stands for (never the default)."""
    default = spec.get("default")
    if spec["type"] == "bool":
        value = not default
        return str(value).lower(), value
    if spec["type"] == "int":
        value = 1 if default != 1 else 2
        return str(value), value
    value = 7.5 if default != 7.5 else 8.5
    return str(value), value


def _tasks(items):
    for task in items or ():
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


_JINJA = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)


def _strings(value, bare=False):
    """The Jinja expressions in value: what is inside {{ }} and {% %}, or all of a bare condition."""
    if isinstance(value, str):
        if bare:
            yield value
        for match in _JINJA.finditer(value):
            yield match.group(1) if match.group(1) is not None else match.group(2)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, bare or key in CONDITIONS)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, bare)


def uses(role, name):
    """Every use of ``name`` in the role's tasks and vars, classified: (kind, detail...) or ("raw", text)."""
    found = []
    word = re.compile(r"\b%s\b" % re.escape(name))
    whole = re.compile(r"^\s*\{\{\s*%s\s*\}\}\s*$" % re.escape(name))
    converted = re.compile(r"\b%s\s*\|\s*(bool|int|float)\b" % re.escape(name))
    keyword = re.compile(r"\b(\w+)\s*=\s*%s\b(?!\s*\|)" % re.escape(name))
    texts = []
    for task in _tasks(_load(role, "tasks", "main.yml")):
        modules = [key for key in task if key not in TASK_KEYWORDS]
        module = modules[0] if len(modules) == 1 else None
        args = task.get(module) if module else None
        for option, value in (args.items() if isinstance(args, dict) else ()):
            if module in ("ansible.builtin.set_fact", "set_fact"):   # a fact keeps whatever it is given
                texts.extend(_strings(value))
            elif isinstance(value, str) and whole.match(value):
                found.append(("module", module, option))
            else:
                texts.extend(_strings(value))
        texts.extend(_strings(dict((k, v) for k, v in task.items() if k != module and k not in ("block", "rescue", "always"))))
    texts.extend(_strings(_load(role, "vars", "main.yml") or {}))
    for text in texts:
        for match in word.finditer(text):
            tail = text[match.start():]
            head = text[:match.start()]
            if converted.match(tail):
                found.append(("jinja", converted.match(tail).group(1)))
                continue
            kw = keyword.search(head + tail[:len(name)])
            calls = re.findall(r"oomguard\.fleet\.(\w+)\(", head)
            if kw and kw.end() == match.end() and calls:
                found.append(("filter", calls[-1], kw.group(1)))
                continue
            found.append(("raw", text.strip()))
    return found


CASES = list(typed_variables())


def test_every_role_has_typed_variables():
    assert set(role for role, dummy, dummy2 in CASES) == set(ROLES)


@pytest.mark.parametrize("role,name,spec", CASES, ids=["%s" % c[1] for c in CASES])
def test_variable_given_as_text_behaves_as_its_value(role, name, spec):
    text, value = text_and_value(spec)
    found = uses(role, name)
    assert found, "%s is declared in roles/%s/meta/argument_specs.yml but the role never uses it" % (name, role)
    raw = [use[1] for use in found if use[0] == "raw"]
    assert not raw, ("roles/%s uses %s without converting it (-e %s=%s arrives as text): %r; write %s | %s there"
                     % (role, name, name, text, raw, name, spec["type"]))
    for use in found:
        kind = use[0]
        if kind == "module":
            module, option = use[1], use[2]
            assert module in MODULE_SPECS, "no argument spec known for %s (add it to MODULE_SPECS)" % module
            option_spec = MODULE_SPECS[module]()[option]
            assert option_spec.get("type", "str") == spec["type"], "%s goes to %s option %s of type %s, not %s" % (
                name, module, option, option_spec.get("type", "str"), spec["type"])
            validated = ArgumentSpecValidator({option: dict(option_spec, required=False, default=None)}).validate({option: text})
            assert not validated.error_messages, validated.error_messages
            assert validated.validated_parameters[option] == value and type(validated.validated_parameters[option]) is type(value)
        elif kind == "jinja":
            assert use[1] == spec["type"], "%s is converted with | %s, but it is a %s" % (name, use[1], spec["type"])
            templar = Templar(loader=DataLoader(), variables={name: text})
            rendered = templar.template(_trusted("{{ %s | %s }}" % (name, use[1])))
            assert rendered == value and type(rendered) is type(value)
        else:
            dummy, filter_name, keyword = use
            assert filter_name in FILTER_CASES, "no cases for filter %s (add them to FILTER_CASES)" % filter_name
            differs = False
            for case in FILTER_CASES[filter_name]:
                from_text = case(**{keyword: text})
                assert from_text == case(**{keyword: value}), (name, text)
                differs = differs or from_text != case(**{keyword: spec.get("default")})
            assert differs, "no case of %s shows what %s=%s changes; add one to FILTER_CASES" % (filter_name, keyword, text)


def test_the_classifier_catches_an_unconverted_use(tmp_path, monkeypatch):
    """The audit itself: a bare use in a condition or an expression is reported."""
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "vars").mkdir()
    (role / "tasks" / "main.yml").write_text(
        "- name: A\n  oomguard.fleet.oom_exposure:\n    display: '{{ demo_flag }}'\n  when: demo_flag\n"
        "- name: B\n  ansible.builtin.set_fact:\n    x: '{{ demo_flag | bool }}'\n"
        "- name: C\n  ansible.builtin.set_fact:\n    y: \"{{ {} | oomguard.fleet.remediate_plan(require_snapshot=demo_flag) }}\"\n")
    (role / "vars" / "main.yml").write_text("z: '{{ demo_flag and 1 }}'\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["TOP"]), "TOP", str(tmp_path))
    assert sorted(uses("demo", "demo_flag")) == sorted([
        ("module", "oomguard.fleet.oom_exposure", "display"), ("raw", "demo_flag"), ("jinja", "bool"),
        ("filter", "remediate_plan", "require_snapshot"), ("raw", "demo_flag and 1")])
