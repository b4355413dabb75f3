# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oom_score_adj and oom_rollback against real systemd (PID 1 in a podman container)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.oomguard.fleet.tests.harness import systemd_container as sc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = "oomtest.service"
DROPIN = "/etc/systemd/system/oomtest.service.d/zz-oomguard.conf"
UNIT_TEXT = "[Unit]\nDescription=holds memory at -1000\n[Service]\nExecStart=/bin/sleep infinity\nOOMScoreAdjust=-1000\n"


image = sc.image_fixture()


@pytest.fixture
def box(image):
    container = sc.SystemdContainer()
    container.start()
    try:
        container.install_collection(REPO)
        container.write_file("/etc/systemd/system/" + UNIT, UNIT_TEXT)
        container.exec("systemctl", "daemon-reload")
        container.exec("systemctl", "start", UNIT)
        assert container.show(UNIT, "OOMScoreAdjust") == "-1000"
        yield container
    finally:
        container.stop()
    assert sc.podman("container", "exists", container.name, check=False).returncode != 0


def journal_records(box):
    return [json.loads(line) for line in box.read_file("/var/lib/oomguard/journal.jsonl").splitlines()]


def reset_args(**extra):
    args = {"unit": UNIT, "value": 0, "persist": "systemd", "run_id": "oomguard-20261129T020000Z-1"}
    args.update(extra)
    return args


def test_reset_reload_restart_then_rollback_restores_minus_1000(box):
    rc, result = box.run_module("oom_score_adj", reset_args())
    assert rc == 0, result
    assert result["changed"] is True and result["daemon_reload"] is True
    assert result["dropins"] == [{"unit": UNIT, "path": DROPIN, "action": "created"}]
    assert box.show(UNIT, "OOMScoreAdjust") == "0"  # after daemon-reload, before any restart
    assert "OOMScoreAdjust=0" in box.read_file(DROPIN)
    assert box.exec("stat", "-c", "%a", "/var/lib/oomguard", "/var/lib/oomguard/journal.jsonl").stdout.split() == ["700", "600"]

    box.exec("systemctl", "restart", UNIT)
    assert box.show(UNIT, "OOMScoreAdjust") == "0"
    main_pid = box.show(UNIT, "MainPID")
    assert box.exec("cat", "/proc/%s/oom_score_adj" % main_pid).stdout.strip() == "0"

    rc, again = box.run_module("oom_score_adj", reset_args())
    assert rc == 0 and again["changed"] is False and again["daemon_reload"] is False

    rc, undo = box.run_module("oom_rollback", {"rollback_run_id": "oomguard-20261129T020000Z-1"})
    assert rc == 0, undo
    assert undo["changed"] is True and undo["daemon_reload"] is True
    assert undo["dropins"] == [{"unit": UNIT, "path": DROPIN, "action": "removed"}]
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"
    assert not box.path_exists(DROPIN) and not box.path_exists(os.path.dirname(DROPIN))
    box.exec("systemctl", "restart", UNIT)
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"

    rc, undo_again = box.run_module("oom_rollback", {})
    assert rc == 0 and undo_again["changed"] is False and undo_again["already_rolled_back"] is True
    ops = [(r["op"], r["state"]) for r in journal_records(box)]
    assert ops.count(("rollback-complete", "done")) == 1


def test_restart_option_restarts_the_unit_and_check_mode_touches_nothing(box):
    before_pid = box.show(UNIT, "MainPID")
    rc, preview = box.run_module("oom_score_adj", reset_args(restart=True, _ansible_check_mode=True, _ansible_diff=True))
    assert rc == 0 and preview["changed"] is True
    assert preview["diff"][0]["before"] == "" and "OOMScoreAdjust=0" in preview["diff"][0]["after"]
    assert not box.path_exists(DROPIN) and not box.path_exists("/var/lib/oomguard/journal.jsonl")
    assert box.show(UNIT, "MainPID") == before_pid

    rc, result = box.run_module("oom_score_adj", reset_args(restart=True))
    assert rc == 0 and result["restarted"] == [UNIT]
    assert box.show(UNIT, "MainPID") != before_pid
    assert box.show(UNIT, "OOMScoreAdjust") == "0"

    reset_pid = box.show(UNIT, "MainPID")
    rc, undo = box.run_module("oom_rollback", {"restart": True})
    assert rc == 0 and undo["restarted"] == [UNIT] and undo["daemon_reload"] is True
    assert box.show(UNIT, "MainPID") != reset_pid and box.show(UNIT, "ActiveState") == "active"
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and not box.path_exists(DROPIN)


def test_fixture_process_at_minus_1000_reset_and_rolled_back_with_real_systemd(box):
    # A real -1000 process cannot exist without CAP_SYS_RESOURCE: the runtime half uses a fixture
    # procfs (writes land in its files) while the drop-in half talks to the real systemd.
    tree = "/tmp/fixture-proc/4242"
    box.exec("mkdir", "-p", tree)
    box.write_file(tree + "/stat", "4242 (java) S 1 4242 4242 0 -1 4194560 0 0 0 0 3 2 0 0 20 0 40 0 1500 0 0\n")
    box.write_file(tree + "/oom_score_adj", "-1000\n")
    box.write_file(tree + "/cgroup", "0::/system.slice/%s\n" % UNIT)
    box.write_file(tree + "/cmdline", "java\0-jar\0app.jar\0")
    rc, result = box.run_module("oom_score_adj", reset_args(unit=None, name="java", proc_path="/tmp/fixture-proc"))
    assert rc == 0, result
    assert result["changes"] == [{"pid": 4242, "name": "java", "unit": UNIT, "old": -1000, "new": 0,
                                  "persist": "systemd", "dropin": DROPIN}]
    assert box.read_file(tree + "/oom_score_adj").strip() == "0"
    assert box.show(UNIT, "OOMScoreAdjust") == "0"

    rc, undo = box.run_module("oom_rollback", {"proc_path": "/tmp/fixture-proc"})
    assert rc == 0, undo
    assert [(p["pid"], p["old"], p["new"]) for p in undo["restored"]] == [(4242, 0, -1000)]
    assert box.read_file(tree + "/oom_score_adj").strip() == "-1000"
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and not box.path_exists(DROPIN)


@pytest.mark.parametrize("crash_at", [1, 2])
def test_killed_after_journal_write_then_rollback_is_consistent(box, crash_at):
    tree = "/tmp/fixture-proc/4242"
    box.exec("mkdir", "-p", tree)
    box.write_file(tree + "/stat", "4242 (java) S 1 4242 4242 0 -1 4194560 0 0 0 0 3 2 0 0 20 0 40 0 1500 0 0\n")
    box.write_file(tree + "/oom_score_adj", "-1000\n")
    box.write_file(tree + "/cgroup", "0::/system.slice/%s\n" % UNIT)
    box.write_file(tree + "/cmdline", "java\0")
    rc, killed = box.run_module("oom_score_adj", reset_args(unit=None, name="java", proc_path="/tmp/fixture-proc"),
                                env={"OOMGUARD_TEST_CRASH_AFTER_INTENT": str(crash_at)})
    assert rc == -9 or rc == 137, killed  # SIGKILL: no result at all, like a play killed mid-task
    records = journal_records(box)
    assert records[-1]["state"] == "intent"  # the intent was fsynced, the change never reported
    assert box.read_file(tree + "/oom_score_adj").strip() == "-1000"  # runtime change never made
    assert box.path_exists(DROPIN) is (crash_at == 2)  # crash 2 happens after the drop-in was written

    rc, undo = box.run_module("oom_rollback", {"proc_path": "/tmp/fixture-proc"})
    assert rc == 0, undo  # the lock died with the killed process
    assert undo["changed"] is (crash_at == 2)
    assert not box.path_exists(DROPIN) and not box.path_exists(os.path.dirname(DROPIN))
    assert box.read_file(tree + "/oom_score_adj").strip() == "-1000"
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"
    rc, again = box.run_module("oom_rollback", {"proc_path": "/tmp/fixture-proc"})
    assert rc == 0 and again["changed"] is False


# --- persistence verified through systemd (another drop-in must not silently win) ---------------------

OURS = "/etc/systemd/system/oomtest.service.d/zz-oomguard.conf"


def reload_and_restart(box):
    box.exec("systemctl", "daemon-reload")
    box.exec("systemctl", "restart", UNIT)


def main_adj(box):
    return box.read_file("/proc/%s/oom_score_adj" % box.show(UNIT, "MainPID")).strip()


@pytest.mark.parametrize("where", [
    "/etc/systemd/system/oomtest.service.d/override.conf",  # what systemctl edit writes
    "/run/systemd/system/oomtest.service.d/override.conf",
    "/usr/lib/systemd/system/oomtest.service.d/99-vendor.conf",
])
def test_reset_takes_effect_over_an_admin_or_vendor_dropin_also_after_a_restart(box, where):
    box.write_file(where, "[Service]\nOOMScoreAdjust=-1000\n")
    reload_and_restart(box)
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and where in box.show(UNIT, "DropInPaths")

    rc, result = box.run_module("oom_score_adj", reset_args())
    assert rc == 0, result
    assert result["changed"] is True and result["daemon_reload"] is True
    assert result["dropins"] == [{"unit": UNIT, "path": OURS, "action": "created"}]
    assert box.show(UNIT, "OOMScoreAdjust") == "0"
    assert box.show(UNIT, "DropInPaths").split()[-1] == OURS  # systemd reads ours last
    box.exec("systemctl", "restart", UNIT)
    assert box.show(UNIT, "OOMScoreAdjust") == "0" and main_adj(box) == "0"

    rc, undo = box.run_module("oom_rollback", {})
    assert rc == 0, undo
    assert undo["changed"] is True and not box.path_exists(OURS) and "warnings" not in undo
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"  # the admin's or vendor's value again
    assert box.read_file(where) == "[Service]\nOOMScoreAdjust=-1000\n"


def test_a_dropin_read_after_ours_fails_the_host_naming_it_and_changes_nothing(box):
    late = "/etc/systemd/system/oomtest.service.d/zzz-local.conf"
    box.write_file(late, "[Service]\nOOMScoreAdjust=-1000\n")
    reload_and_restart(box)
    for check_mode in (True, False):
        rc, result = box.run_module("oom_score_adj", reset_args(_ansible_check_mode=check_mode))
        assert rc == 1 and result["failed"] is True and result["changed"] is False, result
        assert "%s sets OOMScoreAdjust=-1000 for %s" % (late, UNIT) in result["msg"]
        assert "Nothing was changed" in result["msg"]
    assert not box.path_exists(OURS) and not box.path_exists("/var/lib/oomguard/journal.jsonl")
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"


def test_what_only_systemd_knows_is_caught_after_daemon_reload(box):
    """A drop-in of an alias name applies to the unit (systemd 252 reads it, the directories of the unit's
    own name do not show it): systemctl show catches it after the daemon-reload, before any runtime change."""
    box.exec("ln", "-s", "/etc/systemd/system/" + UNIT, "/etc/systemd/system/oomalias.service")
    alias_dropin = "/etc/systemd/system/oomalias.service.d/zz-zz.conf"
    box.write_file(alias_dropin, "[Service]\nOOMScoreAdjust=-900\n")
    reload_and_restart(box)
    assert box.show(UNIT, "OOMScoreAdjust") == "-900"
    rc, result = box.run_module("oom_score_adj", reset_args())
    assert rc == 1, result
    assert "systemd still gives %s OOMScoreAdjust=-900 after daemon-reload, set by %s" % (UNIT, alias_dropin) in result["msg"]
    assert "The processes were not changed at runtime" in result["msg"]
    assert result["changed"] is True and result["daemon_reload"] is True  # our drop-in was written: journalled
    assert result["dropins"] == [{"unit": UNIT, "path": OURS, "action": "created"}]
    rc, undo = box.run_module("oom_rollback", {})
    assert rc == 0, undo
    assert not box.path_exists(OURS) and box.show(UNIT, "OOMScoreAdjust") == "-900"
    records = journal_records(box)
    assert [r["effective_before"] for r in records if r["op"] == "dropin" and r["state"] == "intent"] == ["-900"]


def test_an_older_version_dropin_is_replaced_and_both_runs_roll_back(box):
    legacy = "/etc/systemd/system/oomtest.service.d/50-oomguard.conf"
    old_text = "# Managed by oomguard.fleet (oom_score_adj module); playbooks/rollback.yml removes it.\n[Service]\nOOMScoreAdjust=300\n"
    box.write_file(legacy, old_text)
    # the journal of the run that wrote it, as an earlier version recorded it
    old_run = {"schema": 1, "run_id": "oomguard-20261101T000000Z-7", "id": "oomguard-20261101T000000Z-7/1/1", "op": "dropin",
               "state": "intent", "at": "2026-11-01T00:00:00Z", "unit": UNIT, "path": legacy, "previous": None,
               "content": old_text, "dir_created": True}
    box.exec("mkdir", "-p", "-m", "0700", "/var/lib/oomguard")
    box.write_file("/var/lib/oomguard/journal.jsonl", json.dumps(old_run) + "\n" + json.dumps(
        dict(old_run, state="done", path=legacy)) + "\n")
    box.exec("chmod", "0600", "/var/lib/oomguard/journal.jsonl")
    reload_and_restart(box)
    assert box.show(UNIT, "OOMScoreAdjust") == "300"

    rc, result = box.run_module("oom_score_adj", reset_args())
    assert rc == 0, result
    assert result["dropins"] == [{"unit": UNIT, "path": OURS, "action": "created"}, {"unit": UNIT, "path": legacy, "action": "removed"}]
    assert not box.path_exists(legacy) and box.show(UNIT, "OOMScoreAdjust") == "0"

    rc, undo = box.run_module("oom_rollback", {"rollback_run_id": "oomguard-20261129T020000Z-1"})
    assert rc == 0, undo
    assert box.read_file(legacy) == old_text and not box.path_exists(OURS) and box.show(UNIT, "OOMScoreAdjust") == "300"
    rc, undo_old = box.run_module("oom_rollback", {"rollback_run_id": "oomguard-20261101T000000Z-7"})
    assert rc == 0, undo_old
    assert undo_old["dropins"] == [{"unit": UNIT, "path": legacy, "action": "removed"}]
    assert not box.path_exists(os.path.dirname(legacy)) and box.show(UNIT, "OOMScoreAdjust") == "-1000"


def test_a_foreign_file_at_our_path_is_refused_then_taken_over_and_restored_with_mode_owner_and_symlink(box):
    box.exec("mkdir", "-p", os.path.dirname(OURS))
    box.write_file("/srv/shared.conf", "[Service]\nEnvironment=SECRET=1\n")
    box.exec("chown", "1000:1000", "/srv/shared.conf")
    box.exec("chmod", "0600", "/srv/shared.conf")
    box.exec("ln", "-s", "/srv/shared.conf", OURS)
    rc, result = box.run_module("oom_score_adj", reset_args())
    assert rc == 1 and "already exists as a symlink to /srv/shared.conf" in result["msg"] and "force: true" in result["msg"]
    rc, result = box.run_module("oom_score_adj", reset_args(force=True))
    assert rc == 0 and result["dropins"][0]["action"] == "taken over", result
    assert box.exec("stat", "-c", "%F %a %U", OURS).stdout.strip() == "regular file 644 root"
    assert box.exec("stat", "-c", "%a %u", "/srv/shared.conf").stdout.strip() == "600 1000"
    assert box.read_file("/srv/shared.conf") == "[Service]\nEnvironment=SECRET=1\n"  # never written through
    rc, undo = box.run_module("oom_rollback", {})
    assert rc == 0, undo
    assert box.exec("readlink", OURS).stdout.strip() == "/srv/shared.conf"
    assert box.exec("stat", "-c", "%a %u", "/srv/shared.conf").stdout.strip() == "600 1000"


def test_a_user_manager_gets_no_dropin_and_no_restart(box):
    tree = "/tmp/fixture-proc/5000"
    box.exec("mkdir", "-p", tree)
    box.write_file(tree + "/stat", "5000 (evil) S 1 5000 5000 0 -1 4194560 0 0 0 0 3 2 0 0 20 0 40 0 1500 0 0\n")
    box.write_file(tree + "/oom_score_adj", "-1000\n")
    box.write_file(tree + "/cgroup", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/evil.service\n")
    box.write_file(tree + "/cmdline", "evil\0")
    rc, result = box.run_module("oom_score_adj", reset_args(unit=None, name="evil", proc_path="/tmp/fixture-proc", restart=True))
    assert rc == 0, result
    assert result["dropins"] == [] and result["restarted"] == [] and result["daemon_reload"] is False
    assert "user manager user@1000.service (user unit evil.service)" in result["unpersisted"][0]["reason"]
    assert not box.path_exists("/etc/systemd/system/user@1000.service.d")
    assert box.read_file(tree + "/oom_score_adj").strip() == "0"


def test_rollback_warns_naming_a_file_that_changed_the_value_since_the_run(box):
    rc, result = box.run_module("oom_score_adj", reset_args())
    assert rc == 0, result
    override = "/etc/systemd/system/oomtest.service.d/override.conf"
    box.write_file(override, "[Service]\nOOMScoreAdjust=200\n")  # systemctl edit after the run
    box.exec("systemctl", "daemon-reload")
    assert box.show(UNIT, "OOMScoreAdjust") == "0"  # ours still wins
    rc, undo = box.run_module("oom_rollback", {})
    assert rc == 0 and undo["changed"] is True, undo
    assert box.show(UNIT, "OOMScoreAdjust") == "200" and not box.path_exists(OURS)
    warned = json.dumps(undo["warnings"])
    assert "oomtest.service now gets OOMScoreAdjust=200 from %s, not the -1000 systemd reported before the run" % override in warned
