# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recorded hosts of tests/fixtures/hosts: build.py reproduces the committed trees, and
each host judges at the level its README row promises, for the reasons it names."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils.evidence import gather_evidence
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.slabinfo import gather_slabinfo_facts

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTS_DIR = os.path.join(TOP, "tests", "fixtures", "hosts")

# host -> (level, the findings as (rule, severity))
EXPECTED = {
    "healthy": ("ok", []),
    "vendor-example": ("low", [("PANIC001", "low")]),
    "vendor-java": ("critical", [("OOM001", "critical"), ("OOM002", "high"), ("PANIC001", "low")]),
    "slab-leak": ("high", [("SLAB001", "high")]),
    "panic-on-oom": ("high", [("VM001", "high")]),
    "sshd-child": ("medium", [("OOM002", "medium")]),
    "past-panic": ("critical", [("HIST001", "critical"), ("OOM001", "high"), ("OOM002", "high"), ("HIST002", "medium"),
                                ("PANIC002", "medium")]),
}


def tree_files(top):
    found = {}
    for base, dirs, files in os.walk(top):
        dirs.sort()
        for name in dirs + files:
            path = os.path.join(base, name)
            found[os.path.relpath(path, top)] = "link" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
    return found


def test_build_reproduces_the_committed_trees(tmp_path):
    subprocess.run([sys.executable, os.path.join(HOSTS_DIR, "build.py"), str(tmp_path)], check=True, capture_output=True)
    for host in EXPECTED:
        committed, built = os.path.join(HOSTS_DIR, host), str(tmp_path / host)
        assert tree_files(committed) == tree_files(built), host
        different = [path for path, kind in tree_files(built).items() if kind == "file"
                     and not filecmp.cmp(os.path.join(committed, path), os.path.join(built, path), shallow=False)]
        assert different == [], "%s: build.py writes other content for %s; run it and commit the trees" % (host, different)
    assert sorted(os.listdir(str(tmp_path))) == sorted(EXPECTED)


def test_the_inventory_lists_every_tree_and_one_unreachable_host():
    with open(os.path.join(HOSTS_DIR, "inventory.yml"), encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["hosts"]
    assert sorted(hosts) == sorted(list(EXPECTED) + ["unreachable"])
    trees = sorted(name for name in os.listdir(HOSTS_DIR)
                   if os.path.isdir(os.path.join(HOSTS_DIR, name)) and name != "__pycache__")
    assert trees == sorted(EXPECTED)
    assert hosts["unreachable"]["ansible_host"] == "127.0.0.1" and hosts["unreachable"]["ansible_connection"] == "ssh"


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_each_host_judges_at_its_level(host):
    root = os.path.join(HOSTS_DIR, host)
    proc = os.path.join(root, "proc")
    facts = {"oom": gather_oom_facts(proc, root=root), "slabinfo": gather_slabinfo_facts(proc),
             "oom_evidence": gather_evidence(root, since_days=0)}
    result = ex.assess(facts, host=host)
    level, findings = EXPECTED[host]
    assert (result["level"], [(f["id"], f["severity"]) for f in result["findings"]]) == (level, findings)
    assert facts["oom"]["errors"]["count"] == 0, facts["oom"]["errors"]
