# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistence through systemd: which drop-in wins, the check after daemon-reload, the check after a
rollback, drop-ins of ours from older versions, someone else's file at our name, user managers."""

from __future__ import annotations

import importlib.util
import os

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import dropins
from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.module_utils import rollback_plan as rb
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

# The fake systemctl of test_oom_change.py: show answers from the drop-ins under a root, as systemd would.
_spec = importlib.util.spec_from_file_location("_oom_change_tests", os.path.join(os.path.dirname(__file__), "test_oom_change.py"))
_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tests)
Systemctl = _tests.Systemctl

UNIT = "app.service"
USER_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/evil.service\n"


@pytest.fixture
def host(tmp_path):
    proc = build_proc_tree(tmp_path / "proc", processes=[
        {"pid": 4242, "comm": "java", "oom_score_adj": -1000, "unit": UNIT},
        {"pid": 5000, "comm": "evil", "oom_score_adj": -1000, "cgroup": USER_CGROUP},
    ])
    return {"proc": proc, "root": str(tmp_path / "root"), "journal": str(tmp_path / "state" / "journal.jsonl")}


def put(root, path, text, mode=0o644):
    full = path if path.startswith(root + "/") else os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(full, mode)
    return full


def ours(host):
    return rem.dropin_path(rem.systemd_dir(host["root"]), UNIT)


def java(host):
    return rem.select_processes(host["proc"], pid=4242)[0]


def run(host, systemctl, value=0, run_id="run-1", force=False, systemd=True):
    the_plan = rem.plan(java(host), value, "systemd", host["root"], force=force)
    return the_plan, rem.apply(the_plan, jr.Journal(host["journal"], run_id), host["proc"], systemd, systemctl)


def roll_back(host, systemctl, run_id="run-1", systemd=True):
    records = jr.read_records(host["journal"])[0]
    the_plan = rb.plan_rollback(records, run_id, host["proc"])
    return the_plan, rem.apply(the_plan, jr.Journal(host["journal"], "undo-" + run_id), host["proc"], systemd, systemctl)


def adj(host, pid=4242):
    with open(os.path.join(host["proc"], str(pid), "oom_score_adj"), encoding="utf-8") as handle:
        return int(handle.read())


# --- which file wins -------------------------------------------------------------------------------

def test_our_name_sorts_after_what_admins_and_packages_use():
    names = ["override.conf", "50-oomguard.conf", "99-zzz.conf", "90-local.conf", "10-limits.conf", "Override.conf",
             rem.DROPIN_NAME]
    assert sorted(names)[-1] == rem.DROPIN_NAME == "zz-oomguard.conf"


def test_dropin_dir_names():
    assert dropins.dropin_dir_names("app.service") == ["app.service.d", "service.d"]
    assert dropins.dropin_dir_names("foo-bar-baz@x.service") == [
        "foo-bar-baz@x.service.d", "foo-bar-baz@.service.d", "foo-bar-.service.d", "foo-.service.d", "service.d"]


@pytest.mark.parametrize("text,unit,found", [
    ("[Service]\nOOMScoreAdjust=-1000\n", UNIT, -1000),
    ("[Service]\nOOMScoreAdjust = 5\nOOMScoreAdjust=7\n", UNIT, 7),
    ("[Service]\n# OOMScoreAdjust=-1000\n; OOMScoreAdjust=-1000\n", UNIT, None),
    ("[Unit]\nOOMScoreAdjust=-1000\n", UNIT, None),  # wrong section: systemd ignores it
    ("[Service]\nOOMScoreAdjust=\n", UNIT, ""),  # empty: back to the default
    ("[Service]\nOOMScoreAdjust=abc\n", UNIT, None),
    ("[Socket]\nOOMScoreAdjust=-900\n", "x.socket", -900),
    ("[Service]\nOOMScoreAdjust=-900\n", "x.socket", None),
    (None, UNIT, None),
])
def test_oom_setting(text, unit, found):
    assert dropins.oom_setting(text, unit) == found


@pytest.mark.parametrize("where", [
    "/etc/systemd/system/app.service.d/override.conf",  # what systemctl edit writes
    "/run/systemd/system/app.service.d/override.conf",
    "/usr/lib/systemd/system/app.service.d/99-vendor.conf",
    "/etc/systemd/system/app.service.d/50-oomguard.conf",
    "/usr/lib/systemd/system/service.d/99-all.conf",
])
def test_earlier_names_do_not_win(host, where):
    put(host["root"], where, "[Service]\nOOMScoreAdjust=-1000\n")
    assert dropins.predict(host["root"], UNIT, ours(host), 0) is None
    assert rem.plan(java(host), 0, "systemd", host["root"])["overridden"] == []


@pytest.mark.parametrize("where", [
    "/etc/systemd/system/app.service.d/zzz-local.conf",
    "/run/systemd/system/app.service.d/zz-security.conf",
    "/usr/lib/systemd/system/app.service.d/~last.conf",
    "/usr/lib/systemd/system/service.d/zzzz.conf",
])
def test_a_later_name_wins_and_is_named(host, where):
    late = put(host["root"], where, "[Service]\nOOMScoreAdjust=-1000\n")
    assert dropins.predict(host["root"], UNIT, ours(host), 0) == {"file": late, "value": -1000}
    assert dropins.predict(host["root"], UNIT, ours(host), -1000) is None  # the same value: nothing lost
    the_plan = rem.plan(java(host), 0, "systemd", host["root"])
    assert the_plan["overridden"] == [{"unit": UNIT, "file": late, "value": -1000}]
    msg = rem.override_message(the_plan, host["root"])
    assert late in msg and "Nothing was changed" in msg and "set it to 0 there" in msg


def test_a_later_file_that_does_not_set_it_or_masks_itself_does_not_count(host):
    put(host["root"], "/etc/systemd/system/app.service.d/zzz-env.conf", "[Service]\nEnvironment=A=1\n")
    os.symlink("/dev/null", os.path.join(host["root"], "etc/systemd/system/app.service.d/zzzz-masked.conf"))
    assert dropins.predict(host["root"], UNIT, ours(host), 0) is None


def test_our_name_hidden_by_a_higher_priority_directory(host):
    hider = put(host["root"], "/etc/systemd/system.control/app.service.d/zz-oomguard.conf", "[Service]\nCPUWeight=5\n")
    assert dropins.predict(host["root"], UNIT, ours(host), 0) == {"file": hider, "value": None}
    the_plan = rem.plan(java(host), 0, "systemd", host["root"])
    assert "is hidden from systemd by %s" % hider in rem.override_message(the_plan, host["root"])


# --- the check after daemon-reload ------------------------------------------------------------------

def test_reset_takes_effect_with_an_override_conf_present(host):
    put(host["root"], "/etc/systemd/system/app.service.d/override.conf", "[Service]\nOOMScoreAdjust=-1000\n")
    systemctl = Systemctl(root=host["root"])
    _plan, outcome = run(host, systemctl)
    assert outcome["daemon_reload"] and adj(host) == 0
    assert dropins.parse_show(systemctl(["systemctl", "show", "--", UNIT])[1])["OOMScoreAdjust"] == "0"
    intent = jr.read_records(host["journal"])[0][0]
    assert intent["effective_before"] == "-1000" and intent["path"] == ours(host)


def test_a_file_systemd_reads_after_ours_fails_the_run_naming_it_before_runtime_changes(host):
    """What the directories do not show (here an alias's drop-in) is caught by systemctl show."""
    alias = put(host["root"], "/etc/systemd/system/web.service.d/zz-zz.conf", "[Service]\nOOMScoreAdjust=-1000\n")
    systemctl = Systemctl(root=host["root"], hidden=[alias])
    with pytest.raises(rem.RemediationError) as info:
        run(host, systemctl)
    msg = str(info.value)
    assert "systemd still gives app.service OOMScoreAdjust=-1000 after daemon-reload, set by %s" % alias in msg
    assert "The processes were not changed at runtime" in msg and "journalled" in msg
    assert info.value.partial["daemon_reload"] is True and [d["action"] for d in info.value.partial["dropins"]] == ["created"]
    assert adj(host) == -1000 and info.value.partial["processes"] == []


def test_the_unit_file_itself_is_named_when_no_dropin_sets_it(host):
    props = {"OOMScoreAdjust": "-1000", "DropInPaths": "/a.conf /b.conf", "FragmentPath": "/etc/systemd/system/app.service"}
    texts = {"/a.conf": "[Service]\nOOMScoreAdjust=5\n", "/b.conf": "[Service]\nNice=1\n"}
    assert dropins.setting_file(props, UNIT, texts.get) == "/a.conf"
    texts["/a.conf"] = ""
    assert dropins.setting_file(props, UNIT, texts.get) == "/etc/systemd/system/app.service"
    assert dropins.setting_file({}, UNIT, texts.get) is None


def test_a_unit_systemd_does_not_know_is_not_checked(host):
    systemctl = Systemctl(root=host["root"], load_state="not-found")
    _plan, outcome = run(host, systemctl)
    assert outcome["daemon_reload"] and adj(host) == 0


def test_a_failed_show_is_an_error(host):
    with pytest.raises(rem.RemediationError, match="Failed to run systemctl show"):
        run(host, Systemctl(root=host["root"], fail_on="show"))
    assert adj(host) == -1000


# --- rollback checks the value systemd gives -----------------------------------------------------------

def test_rollback_gets_back_to_the_value_before_the_run(host):
    put(host["root"], "/etc/systemd/system/app.service.d/override.conf", "[Service]\nOOMScoreAdjust=-500\n")
    systemctl = Systemctl(root=host["root"])
    run(host, systemctl)
    _plan, outcome = roll_back(host, systemctl)
    assert outcome["warnings"] == [] and adj(host) == -1000 and not os.path.exists(ours(host))
    assert dropins.parse_show(systemctl(["systemctl", "show", "--", UNIT])[1])["OOMScoreAdjust"] == "-500"


def test_rollback_warns_when_another_file_changed_the_value_since(host):
    systemctl = Systemctl(root=host["root"])
    run(host, systemctl)
    later = put(host["root"], "/etc/systemd/system/app.service.d/override.conf", "[Service]\nOOMScoreAdjust=300\n")
    _plan, outcome = roll_back(host, systemctl)
    assert outcome["warnings"] == ["app.service now gets OOMScoreAdjust=300 from %s, not the -1000 systemd reported before "
                                   "the run: that file changed since the run and was left as it is" % later]


def test_rollback_fails_while_a_drop_in_of_another_run_still_decides(host):
    systemctl = Systemctl(root=host["root"])
    run(host, systemctl, value=0, run_id="run-1")
    # a later run left a drop-in of ours that systemd reads after the one run-1 wrote
    other = put(host["root"], "/etc/systemd/system/app.service.d/zzz-oomguard.conf", rem.dropin_content(500))
    with pytest.raises(rem.RemediationError) as info:
        roll_back(host, systemctl, "run-1")
    assert "app.service still gets OOMScoreAdjust=500 from %s, a drop-in of another oomguard run" % other in str(info.value)
    assert not os.path.exists(ours(host))
    assert jr.rolled_back(jr.read_records(host["journal"])[0], "run-1")  # its own changes are undone


def test_rollback_of_a_journal_without_effective_before(host):
    """Journals of earlier versions name 50-oomguard.conf and record no effective value: the rollback
    removes that file and only checks that no drop-in of ours still decides."""
    legacy = put(host["root"], "/etc/systemd/system/app.service.d/50-oomguard.conf", rem.dropin_content(0))
    journal = jr.Journal(host["journal"], "old-run")
    record = journal.intent("dropin", unit=UNIT, path=legacy, previous=None, content=rem.dropin_content(0), dir_created=True)
    journal.outcome(record, "dropin", "done", path=legacy)
    systemctl = Systemctl(root=host["root"])
    _plan, outcome = roll_back(host, systemctl, "old-run")
    assert [d["action"] for d in outcome["dropins"]] == ["removed"] and not os.path.exists(os.path.dirname(legacy))
    assert outcome["warnings"] == []


# --- drop-ins of ours from an earlier version ----------------------------------------------------------

def test_our_older_drop_in_is_replaced_and_the_rollback_puts_it_back(host):
    legacy = put(host["root"], "/etc/systemd/system/app.service.d/50-oomguard.conf", rem.dropin_content(300))
    systemctl = Systemctl(root=host["root"])
    the_plan, outcome = run(host, systemctl)
    assert [(d["path"], d["action"]) for d in outcome["dropins"]] == [(ours(host), "created"), (legacy, "removed")]
    assert not os.path.exists(legacy) and os.path.exists(ours(host))
    assert rem.contract_changes(the_plan, outcome, "systemd")[0]["dropin"] == ours(host)
    _plan, undo = roll_back(host, systemctl)
    assert sorted(d["action"] for d in undo["dropins"]) == ["removed", "restored"]
    with open(legacy, encoding="utf-8") as handle:
        assert handle.read() == rem.dropin_content(300)
    assert not os.path.exists(ours(host)) and undo["warnings"] == []


def test_a_foreign_file_named_like_our_older_drop_in_is_left_alone(host):
    legacy = put(host["root"], "/etc/systemd/system/app.service.d/50-oomguard.conf", "[Service]\nOOMScoreAdjust=-1000\n")
    the_plan = rem.plan(java(host), 0, "systemd", host["root"])
    assert [d["path"] for d in the_plan["dropins"]] == [ours(host)] and os.path.exists(legacy)


# --- someone else's file at our name ---------------------------------------------------------------

def test_a_file_we_did_not_write_is_not_overwritten(host):
    put(host["root"], ours(host), "[Service]\nEnvironment=SECRET=1\n", mode=0o600)
    with pytest.raises(rem.RemediationError) as info:
        rem.plan(java(host), 0, "systemd", host["root"])
    assert "%s already exists as a file that oomguard.fleet did not write" % ours(host) in str(info.value)
    assert "force: true" in str(info.value) and "oomguard_remediate_force" in str(info.value)


def test_force_takes_it_over_and_rollback_restores_content_mode_and_owner(host):
    path = put(host["root"], ours(host), "[Service]\nEnvironment=SECRET=1\n", mode=0o600)
    os.chown(path, 1000, 1000)
    systemctl = Systemctl(root=host["root"])
    the_plan, outcome = run(host, systemctl, force=True)
    assert outcome["dropins"][0]["action"] == "taken over"
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o644)
    intent = jr.read_records(host["journal"])[0][0]
    assert intent["previous_meta"] == {"type": "file", "mode": 0o600, "uid": 1000, "gid": 1000, "target": None}
    roll_back(host, systemctl)
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o600)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "[Service]\nEnvironment=SECRET=1\n"


def test_force_on_a_symlink_replaces_the_link_not_its_target_and_rollback_restores_the_link(host, tmp_path):
    target = tmp_path / "shared.conf"
    target.write_text("[Service]\nNice=5\n")
    os.makedirs(os.path.dirname(ours(host)))
    os.symlink(str(target), ours(host))
    with pytest.raises(rem.RemediationError, match="already exists as a symlink to %s" % target):
        rem.plan(java(host), 0, "systemd", host["root"])
    systemctl = Systemctl(root=host["root"])
    run(host, systemctl, force=True)
    assert not os.path.islink(ours(host)) and target.read_text() == "[Service]\nNice=5\n"
    roll_back(host, systemctl)
    assert os.path.islink(ours(host)) and os.readlink(ours(host)) == str(target)
    assert target.read_text() == "[Service]\nNice=5\n"


def test_a_directory_at_our_name_is_refused_even_with_force(host):
    os.makedirs(ours(host))
    with pytest.raises(rem.RemediationError, match="is a directory, not a drop-in file"):
        rem.plan(java(host), 0, "systemd", host["root"], force=True)


def test_our_own_file_is_updated_without_force(host):
    put(host["root"], ours(host), rem.dropin_content(500))
    the_plan = rem.plan(java(host), 0, "systemd", host["root"])
    assert [d["action"] for d in the_plan["dropins"]] == ["updated"]


def test_rollback_leaves_a_symlink_someone_put_there_after_the_run(host, tmp_path):
    systemctl = Systemctl(root=host["root"])
    run(host, systemctl)
    os.unlink(ours(host))
    os.symlink(str(tmp_path / "elsewhere.conf"), ours(host))
    the_plan, _outcome = roll_back(host, systemctl)
    assert the_plan["dropins"] == [] and "changed by someone else" in the_plan["not_restored"][0]["reason"]
    assert os.path.islink(ours(host))


# --- user managers --------------------------------------------------------------------------------------

def test_a_process_under_a_user_manager_is_not_persisted_at_system_level(host):
    evil = rem.select_processes(host["proc"], pid=5000)[0]
    assert evil[0]["unit"] == "user@1000.service" and evil[0]["user_manager"] == "user@1000.service"
    assert evil[0]["user_unit"] == "evil.service"
    the_plan = rem.plan(evil, 0, "systemd", host["root"])
    assert the_plan["dropins"] == [] and the_plan["units"] == [] and [r["pid"] for r in the_plan["runtime"]] == [5000]
    reason = the_plan["unpersisted"][0]["reason"]
    assert "user manager user@1000.service (user unit evil.service)" in reason and "systemctl --user edit" in reason


def test_a_user_manager_is_never_written_for_or_restarted(host):
    assert not rem.persistable("user@1000.service") and rem.persistable("user-sessions.service")
    assert rem.plan([], 0, "systemd", host["root"], unit="user@1000.service")["dropins"] == []
    assert rem.restartable(["app.service", "user@0.service", "app.service", "user@1000.service"]) == ["app.service"]
    evil = rem.select_processes(host["proc"], pid=5000)[0]
    systemctl = Systemctl(root=host["root"])
    outcome = rem.apply(rem.plan(evil, 0, "systemd", host["root"]), jr.Journal(host["journal"], "r"), host["proc"], True,
                        systemctl, restart=True)
    assert systemctl.acts() == [] and outcome["restarted"] == [] and adj(host, 5000) == 0
    assert not os.path.exists(os.path.join(host["root"], "etc"))


def test_user_manager_of_cgroup_lines():
    assert rem.user_manager(USER_CGROUP) == ("user@1000.service", "evil.service")
    assert rem.user_manager("0::/user.slice/user-1000.slice/user@1000.service/init.scope\n") == ("user@1000.service", "init.scope")
    assert rem.user_manager("1:name=systemd:/user.slice/user-0.slice/user@0.service/app.slice/x.service\n") == (
        "user@0.service", "x.service")
    assert rem.user_manager("0::/system.slice/app.service\n") is None and rem.user_manager("garbage") is None
