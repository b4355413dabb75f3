# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime
import os
import re

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import _contract as c

UTC = datetime.timezone.utc


def test_levels_are_the_severities_then_unknown():
    assert c.LEVELS == ("ok", "low", "medium", "high", "critical", "unknown")
    assert c.SEVERITY_LEVELS + (c.UNKNOWN,) == c.LEVELS


def test_unknown_ranks_above_critical():
    ranks = [c.level_rank(level) for level in c.LEVELS]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert c.level_rank("unknown") > c.level_rank("critical")


@pytest.mark.parametrize("bad", ["severe", None, 3])
def test_level_rank_refuses_what_is_no_level(bad):
    with pytest.raises(ValueError, match="level must be one of ok, low, medium, high, critical, unknown"):
        c.level_rank(bad)


def test_worst_level():
    assert c.worst_level([]) == "ok"
    assert c.worst_level(["low", "high", "medium"]) == "high"
    assert c.worst_level(["critical", "unknown", "low"]) == "unknown"


@pytest.mark.parametrize("level, fail_on, tripped", [
    ("critical", "none", False), ("critical", "never", False), ("critical", None, False),
    ("unknown", "none", False), ("unknown", "critical", True), ("unknown", "low", True),
    ("high", "high", True), ("critical", "high", True), ("medium", "high", False), ("ok", "low", False),
])
def test_gate(level, fail_on, tripped):
    assert c.gate_tripped(level, fail_on) is tripped


def test_unknown_can_be_let_through():
    assert c.gate_tripped("unknown", "low", unknown_fails=False) is False
    assert c.gate_tripped("critical", "low", unknown_fails=False) is True


def test_the_old_word_for_no_gate_reads_as_the_new_one():
    assert c.normalize_gate("never") == c.NO_GATE == "none"
    assert c.normalize_gate(None) == "none"
    assert c.normalize_gate("high") == "high"
    with pytest.raises(ValueError, match="fail_on must be one of none, low, medium, high, critical, never, got 'ok'"):
        c.normalize_gate("ok")


def test_times_round_trip():
    stamp = datetime.datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC)
    assert c.format_time(stamp) == "2026-11-29T02:00:00Z"
    assert c.parse_time("2026-11-29T02:00:00Z") == stamp
    assert c.parse_time("2026-11-29T03:00:00+01:00") == stamp
    assert c.parse_time("2026-11-29T02:00:00") == stamp
    other = datetime.datetime(2026, 11, 29, 3, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert c.format_time(other) == "2026-11-29T02:00:00Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", c.format_time())
    assert c.utc_now().microsecond == 0 and c.utc_now().tzinfo is not None


@pytest.mark.parametrize("bad", [None, "", "yesterday", 17, "0001-01-01T00:00:00+01:00"])
def test_parse_time_none_for_what_is_no_time(bad):
    assert c.parse_time(bad) is None


def test_run_id_shape():
    when = datetime.datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC)
    assert c.new_run_id(when, 4711) == "oomguard-20261129T020000Z-4711"
    assert c.new_run_id(when, 7) == "oomguard-20261129T020000Z-0007"
    ids = set(c.new_run_id() for attempt in range(50))
    assert all(re.match(r"^oomguard-\d{8}T\d{6}Z-\d{4}$", run_id) for run_id in ids)
    assert len(ids) > 1


def test_error_base():
    assert issubclass(c.OomguardError, Exception)


def test_result_payload_has_every_key():
    payload = c.result_payload("web01", "run-1", "2026-11-29T02:00:00Z", exposure={"level": "ok"})
    assert tuple(sorted(payload)) == tuple(sorted(c.RESULT_KEYS))
    assert payload["schema"] == c.RESULT_SCHEMA == 1
    assert payload["snapshots"] is None and payload["changes"] is None and payload["exposure"] == {"level": "ok"}


def test_write_result_file_mode_text_and_refusal(tmp_path):
    results = tmp_path / "results"
    path = c.write_result_file(str(results), "web/1", c.result_payload("web/1", exposure={"summary": "x \ud800"}))
    assert path == c.result_file_path(str(results), "web/1")
    text = open(path, encoding="utf-8").read()
    assert "\ufffd" in text and text.endswith("}\n") and '\n  "exposure"' in text
    assert oct(os.stat(path).st_mode & 0o777) == "0o640" and oct(os.stat(str(results)).st_mode & 0o777) == "0o750"
    os.chmod(str(results), 0o777)
    with pytest.raises(c.ResultFileError, match="writable by group and others") as info:
        c.write_result_file(str(results), "web01", {})
    assert isinstance(info.value, c.OomguardError) and "become" not in str(info.value)
    assert os.listdir(str(results)) == [os.path.basename(path)]


def _collection_modules():
    plugins = os.path.join(os.path.dirname(c.__file__), os.pardir)
    for kind in ("module_utils", "module_utils/cloud", "plugin_utils", "action", "filter", "modules"):
        for name in sorted(os.listdir(os.path.join(plugins, kind))):
            if name.endswith(".py") and name != "__init__.py":
                yield "ansible_collections.oomguard.fleet.plugins.%s.%s" % (kind.replace("/", "."), name[:-3])


def _controller_available():
    try:
        import ansible.constants  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        return False
    return True


def test_every_error_of_the_collection_derives_from_the_one_base():
    import importlib
    import inspect

    errors = {}
    for dotted in _collection_modules():
        try:
            module = importlib.import_module(dotted)
        except ImportError:
            # ansible-test units runs without ansible-core's controller side: there, and only
            # there, a controller-only plugin module cannot be imported and is left out.
            if _controller_available():
                raise
            continue
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == dotted:
                errors["%s.%s" % (dotted.rsplit(".", 1)[1], name)] = value
    assert len(errors) >= 10, sorted(errors)
    assert [name for name, cls in sorted(errors.items()) if not issubclass(cls, c.OomguardError)] == []
