# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/harness/procfs_fixtures.py: one procfs tree per scenario host, with the values a rollback must restore."""

from __future__ import annotations

import json

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.tests.harness.procfs_fixtures import build, main

JAVA = {"pid": 4242, "comm": "java", "oom_score_adj": -1000, "rss_kb": 6000000, "unit": "app.service"}


def test_each_host_gets_its_tree_an_empty_evidence_root_and_its_initial_values(tmp_path):
    made = build(str(tmp_path), {"node01": {"processes": [JAVA], "meminfo": {"MemTotal": 8000000}}, "node03": {}})
    assert made["node01"]["4242"] == -1000 and "4242" not in made["node03"]
    assert made["node03"] == {"1": 0, "2": 0, "3578": 0, "1799": -1000, "29219": -1000}
    assert json.loads((tmp_path / "node01" / "initial.json").read_text()) == made["node01"]
    assert list((tmp_path / "node01" / "evidence").iterdir()) == []
    facts = gather_oom_facts(proc_path=str(tmp_path / "node01" / "proc"))
    assert facts["meminfo"]["mem_total_kb"] == 8000000
    assert [p["name"] for p in facts["processes"] if p["oom_score_adj"] == -1000][0] == "java"


def test_a_second_build_starts_the_tree_afresh(tmp_path):
    build(str(tmp_path), {"node01": {"processes": [JAVA]}})
    (tmp_path / "node01" / "proc" / "4242" / "oom_score_adj").write_text("0\n")
    assert build(str(tmp_path), {"node01": {"processes": [JAVA]}})["node01"]["4242"] == -1000


@pytest.mark.parametrize("spec", ['{"../x": {}}', '{".hidden": {}}', '["node01"]', 'not json'])
def test_a_bad_spec_is_refused(tmp_path, capsys, spec):
    assert main(["--dest", str(tmp_path), "--spec", spec]) == 2
    assert "procfs_fixtures.py: error: " in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
