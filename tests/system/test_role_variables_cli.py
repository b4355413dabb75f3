# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role variables given on the command line (``-e name=value``, so as text) through real ansible-playbook.

tests/unit/test_role_variables.py checks every boolean and integer variable of the four roles
where the role uses it; these runs show the same end to end, starting with the snapshot waiver
that the refusal message tells users to set.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.oomguard.fleet.tests.system.test_remediate_role import ADHOC, JAVA, PLAY, adj, changes, dropin, host, playbook

RUN_ID = "oomguard-20261129T020000Z-4711"


@pytest.fixture
def nosnap(tmp_path):
    """One host with two flagged unkillable processes and no snapshot."""
    name, hostvars = host(tmp_path, "nosnap", [JAVA, ADHOC])
    (tmp_path / "inventory.json").write_text(json.dumps(
        {"all": {"hosts": {name: hostvars}, "vars": {"oomguard_run_id": RUN_ID, "out_dir": str(tmp_path / "out")}}}))
    (tmp_path / "out").mkdir()
    (tmp_path / "play.yml").write_text(PLAY)
    return tmp_path


def test_snapshot_waiver_from_the_command_line_works(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset",
                    "-e", "oomguard_remediate_require_snapshot=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = changes(nosnap, "nosnap")
    assert result["status"] == "changed", result
    assert adj(nosnap, "nosnap") == 0 and adj(nosnap, "nosnap", 4343) == 0
    assert dropin(nosnap, "nosnap").exists()


def test_without_the_waiver_the_host_is_refused(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = changes(nosnap, "nosnap")
    assert result["status"] == "refused" and "oomguard_remediate_require_snapshot: false" in result["reason"]
    assert adj(nosnap, "nosnap") == -1000


def test_every_remediate_number_and_switch_as_text(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=no",
                    "-e", "oomguard_remediate_value=5", "-e", "oomguard_remediate_max_changes=2", "-e", "oomguard_remediate_persist=false",
                    "-e", "oomguard_remediate_restart=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert changes(nosnap, "nosnap")["status"] == "changed"
    assert adj(nosnap, "nosnap") == 5 and adj(nosnap, "nosnap", 4343) == 5
    assert not dropin(nosnap, "nosnap").exists()     # persist=false


def test_cap_from_the_command_line_refuses(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=false",
                    "-e", "oomguard_remediate_max_changes=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = changes(nosnap, "nosnap")
    assert result["status"] == "refused" and "more than oomguard_remediate_max_changes (1)" in result["reason"]
    assert adj(nosnap, "nosnap") == -1000


def test_text_that_is_no_boolean_stops_with_the_variable_named(nosnap):
    proc = playbook(nosnap, nosnap / "play.yml", "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_remediate_require_snapshot=maybe")
    assert proc.returncode != 0
    assert "oomguard_remediate_require_snapshot" in proc.stdout + proc.stderr
    assert adj(nosnap, "nosnap") == -1000
