# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/remediate.yml and playbooks/rollback.yml, run by real ansible-playbook, against a
host whose systemd is real: a podman container with systemd as PID 1, reached through the local
connection with pipelining (SystemdContainer.ansible_host_vars). The -1000 process lives in a
fixture procfs inside the container (nothing here may lower a real oom_score_adj) and belongs to
a real unit of that systemd, so the drop-ins, daemon-reloads and OOMScoreAdjust values below are
the container's own."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from ansible_collections.oomguard.fleet.tests.harness import systemd_container as sc
from ansible_collections.oomguard.fleet.tests.harness.ansible_cli import VENV_BIN, base_env
from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import slabinfo_text, vendor_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = "app.service"
DROPIN = "/etc/systemd/system/app.service.d/zz-oomguard.conf"
UNIT_TEXT = "[Unit]\nDescription=holds memory at -1000\n[Service]\nExecStart=/bin/sleep infinity\nOOMScoreAdjust=-1000\n"
FIXTURE = "/srv/oomguard-fixture"
PROC = FIXTURE + "/proc"
JOURNAL = "/var/lib/oomguard/journal.jsonl"
BASELINE = "/var/lib/oomguard/slabinfo-baseline.json"
RUN_ID = "oomguard-20261129T030000Z-9090"
KEY_ID = "LTAI5tSystemdRoleKey01"
SECRET = "Systemd-Role-SECRET-never-printed"
REGION = "cn-hangzhou"


image = sc.image_fixture()


@pytest.fixture
def box(image, tmp_path):
    """The container with app.service running at OOMScoreAdjust=-1000 and a fixture procfs in
    which the unit's real main pid runs at -1000 and holds most of the memory."""
    container = sc.SystemdContainer("oomguard-role")
    container.start()
    try:
        container.write_file("/etc/systemd/system/" + UNIT, UNIT_TEXT)
        container.exec("systemctl", "daemon-reload")
        container.exec("systemctl", "start", UNIT)
        assert container.show(UNIT, "OOMScoreAdjust") == "-1000"
        main_pid = int(container.show(UNIT, "MainPID"))
        assert main_pid > 1
        java = {"pid": main_pid, "ppid": 1, "comm": "java", "oom_score_adj": -1000, "rss_kb": 6000000, "unit": UNIT,
                "cmdline": ["java", "-jar", "app.jar"]}
        local = tmp_path / "fixture"
        vendor_tree(local / "proc", extra=[java], meminfo={"MemTotal": 8000000, "MemAvailable": 400000},
                    slabinfo=slabinfo_text([{"name": "kmalloc-64", "num_slabs": 40}, {"name": "dentry", "num_slabs": 90}]))
        (local / "evidence").mkdir()
        container.copy_in(str(local), FIXTURE)
        container.main_pid = main_pid
        # What the kernel let systemd apply for OOMScoreAdjust=-1000 (-1000 needs CAP_SYS_RESOURCE).
        container.initial_adj = container.read_file("/proc/%d/oom_score_adj" % main_pid).strip()
        yield container
    finally:
        container.stop()
    assert sc.podman("container", "exists", container.name, check=False).returncode != 0


def inventory(tmp_path, box, **extra):
    host = dict(box.ansible_host_vars(tmp_path),
                oomguard_assess_proc_path=PROC, oomguard_assess_evidence_root=FIXTURE + "/evidence",
                oomguard_remediate_proc_path=PROC)
    host.update(extra)
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"children": {"fleet": {"hosts": {"box": host}}}}, "_meta": {}}))
    return path


def playbook(tmp_path, name, inventory_path, *args, env=None):
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory_path), os.path.join(REPO, "playbooks", name),
           "-e", "oomguard_hosts=fleet", "-e", "oomguard_become=false"] + list(args)
    env = base_env(dict(env or {}, ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp")))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=300)
    # Kept beside the test's other files for reading after a failure.
    log = tmp_path / ("%02d-%s.log" % (len(list(tmp_path.glob("*.log"))) + 1, name))
    log.write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    return proc


def recap(proc, host="box"):
    """The host's counters from the PLAY RECAP: {'ok': n, 'changed': n, ...}."""
    match = re.search(r"^%s\s+:\s*(ok=.*)$" % re.escape(host), proc.stdout.rpartition("PLAY RECAP")[2], re.M)
    assert match, proc.stdout[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def fixture_adj(box):
    return int(box.read_file("%s/%d/oom_score_adj" % (PROC, box.main_pid)).strip())


def journal(box):
    return [json.loads(line) for line in box.read_file(JOURNAL).splitlines()]


def mtime(box, path):
    return box.exec("stat", "-c", "%Y.%y", path).stdout.strip()


def failure(proc):
    return proc.stdout[-5000:] + proc.stderr[-2000:]


def test_remediate_playbook_then_rollback_against_real_systemd(tmp_path, box):
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False, oomguard_remediate_require_snapshot=False)
    report_dir = tmp_path / "report"
    args = ("-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID, "-e", "oomguard_report_dir=%s" % report_dir)

    # Check mode with diff: the diff shows the drop-in, the container is left exactly as it was.
    proc = playbook(tmp_path, "remediate.yml", inv, *(args + ("--check", "--diff")))
    assert proc.returncode == 0, failure(proc)
    assert "+OOMScoreAdjust=0" in proc.stdout and DROPIN in proc.stdout
    assert recap(proc)["changed"] >= 1 and recap(proc)["failed"] == 0
    assert not box.path_exists(os.path.dirname(DROPIN)) and not box.path_exists("/var/lib/oomguard")
    assert fixture_adj(box) == -1000 and box.show(UNIT, "OOMScoreAdjust") == "-1000"

    # The real run: drop-in written, daemon-reload done (no restart), fixture value reset.
    proc = playbook(tmp_path, "remediate.yml", inv, *args)
    assert proc.returncode == 0, failure(proc)
    assert recap(proc)["changed"] >= 1 and recap(proc)["failed"] == 0
    assert "OOMScoreAdjust=0" in box.read_file(DROPIN)
    assert box.show(UNIT, "OOMScoreAdjust") == "0"
    assert box.show(UNIT, "MainPID") == str(box.main_pid)  # not restarted
    assert fixture_adj(box) == 0
    records = journal(box)
    assert {r["run_id"] for r in records} == {RUN_ID}
    assert {(r["op"], r["state"]) for r in records} >= {("dropin", "done"), ("runtime", "done")}
    # The assess role stored its slab baseline next to the journal, with the same privacy.
    assert box.exec("stat", "-c", "%a", "/var/lib/oomguard", JOURNAL, BASELINE).stdout.split() == ["700", "600", "600"]
    assert set(json.loads(box.read_file(BASELINE))["caches"]) == {"kmalloc-64", "dentry"}
    report = json.loads((report_dir / "oomguard-report.json").read_text())
    text = json.dumps(report)
    assert RUN_ID in text and DROPIN in text and str(box.main_pid) in text

    # Again: nothing left to change, nothing reported as changed, files untouched.
    dropin_mtime, journal_lines = mtime(box, DROPIN), len(records)
    proc = playbook(tmp_path, "remediate.yml", inv, *args)
    assert proc.returncode == 0, failure(proc)
    assert recap(proc)["changed"] == 0, proc.stdout[-4000:]
    assert mtime(box, DROPIN) == dropin_mtime and len(journal(box)) == journal_lines
    assert box.show(UNIT, "OOMScoreAdjust") == "0" and fixture_adj(box) == 0

    # The rollback in check mode with diff: shows the drop-in going away, touches nothing.
    proc = playbook(tmp_path, "rollback.yml", inv, "-e", "oomguard_rollback_run_id=" + RUN_ID, "--check", "--diff")
    assert proc.returncode == 0, failure(proc)
    assert recap(proc)["changed"] == 1 and "-OOMScoreAdjust=0" in proc.stdout
    assert "check mode, nothing changed; a real run would report: run %s: 1 value(s) restored" % RUN_ID in proc.stdout
    assert mtime(box, DROPIN) == dropin_mtime and len(journal(box)) == journal_lines
    assert box.show(UNIT, "OOMScoreAdjust") == "0" and fixture_adj(box) == 0

    # Rollback of the run: drop-in and its directory gone, daemon-reloaded, -1000 again.
    proc = playbook(tmp_path, "rollback.yml", inv, "-e", "oomguard_rollback_run_id=" + RUN_ID)
    assert proc.returncode == 0, failure(proc)
    assert recap(proc)["changed"] == 1
    assert "\"run %s: 1 value(s) restored, 1 drop-in(s) restored or removed, 0 not restored\"" % RUN_ID in proc.stdout
    assert not box.path_exists(DROPIN) and not box.path_exists(os.path.dirname(DROPIN))
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"
    assert fixture_adj(box) == -1000
    ops = [(r["op"], r["state"]) for r in journal(box)]
    assert ops[-1] == ("rollback-complete", "done") and ops.count(("rollback-complete", "done")) == 1

    # A second rollback finds the run rolled back and changes nothing.
    proc = playbook(tmp_path, "rollback.yml", inv, "-e", "oomguard_rollback_run_id=" + RUN_ID)
    assert proc.returncode == 0, failure(proc)
    assert recap(proc)["changed"] == 0 and "already rolled back" in proc.stdout
    assert len(journal(box)) == len(ops)


def test_snapshot_gate_refuses_without_a_snapshot_and_changes_nothing(tmp_path, box):
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False)
    proc = playbook(tmp_path, "remediate.yml", inv, "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID,
                    "-e", "oomguard_report_dir=%s" % (tmp_path / "report"))
    assert proc.returncode == 0, failure(proc)
    assert "oomguard_remediate_require_snapshot: false" in proc.stdout
    assert recap(proc)["changed"] == 0
    assert not box.path_exists(os.path.dirname(DROPIN)) and not box.path_exists(JOURNAL)
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and fixture_adj(box) == -1000
    report = json.loads((tmp_path / "report" / "oomguard-report.json").read_text())
    assert "oomguard_snapshots.status is 'skipped'" in json.dumps(report)


def test_snapshot_record_of_this_run_lets_the_reset_through(tmp_path, box):
    # The snapshot runs on the controller (delegated to localhost) against the ECS double on
    # loopback; the reset then runs in the container. Both halves of one play, one run id.
    with EcsDouble({KEY_ID: SECRET}, snapshot_seconds=0.3) as ecs:
        ecs.add_instance("i-box01", REGION, data_disks=1)
        inv = inventory(tmp_path, box, instance_id="i-box01", region=REGION, oomguard_snapshot_provider="alicloud",
                        oomguard_snapshot_endpoint_url=ecs.endpoint, oomguard_snapshot_poll_interval=0.2,
                        oomguard_snapshot_progress_interval=1, oomguard_snapshot_retry_delay=0.05)
        proc = playbook(tmp_path, "remediate.yml", inv, "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID,
                        "-e", "oomguard_report_dir=%s" % (tmp_path / "report"),
                        env={"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET})
        snapshots = [ecs.snapshots_of(disk) for disk in {s["SourceDiskId"] for s in ecs.snapshots.values()}]
    assert proc.returncode == 0, failure(proc)
    assert SECRET not in proc.stdout + proc.stderr
    assert len(snapshots) == 2 and all(len(per_disk) == 1 for per_disk in snapshots)  # system + data disk
    assert all(RUN_ID in per_disk[0]["SnapshotName"] for per_disk in snapshots)
    assert recap(proc)["failed"] == 0
    assert "OOMScoreAdjust=0" in box.read_file(DROPIN) and box.show(UNIT, "OOMScoreAdjust") == "0"
    assert fixture_adj(box) == 0 and {r["run_id"] for r in journal(box)} == {RUN_ID}
    assert not os.path.exists(DROPIN)  # the module ran in the container, not on the controller


def test_restart_through_the_role_and_the_rollback_playbook(tmp_path, box):
    # With the restart options the units really restart: systemd starts the new main process with
    # the drop-in's value (500: a raise, which the kernel allows here), and after the rollback with
    # the unit file's own -1000 (what the kernel lets systemd apply of it: box.initial_adj).
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False, oomguard_remediate_require_snapshot=False)
    proc = playbook(tmp_path, "remediate.yml", inv, "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID,
                    "-e", "oomguard_remediate_value=500", "-e", "oomguard_remediate_restart=true",
                    "-e", "oomguard_report_dir=%s" % (tmp_path / "report"))
    assert proc.returncode == 0, failure(proc)
    assert fixture_adj(box) == 500
    restarted_pid = box.show(UNIT, "MainPID")
    assert restarted_pid != str(box.main_pid) and box.show(UNIT, "ActiveState") == "active"
    assert box.exec("cat", "/proc/%s/oom_score_adj" % restarted_pid).stdout.strip() == "500"
    assert box.show(UNIT, "OOMScoreAdjust") == "500"

    proc = playbook(tmp_path, "rollback.yml", inv, "-e", "oomguard_rollback_restart=true")
    assert proc.returncode == 0, failure(proc)
    assert "run %s: 1 value(s) restored, 1 drop-in(s) restored or removed, 0 not restored" % RUN_ID in proc.stdout
    final_pid = box.show(UNIT, "MainPID")
    assert final_pid not in (restarted_pid, "0") and box.show(UNIT, "ActiveState") == "active"
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and not box.path_exists(DROPIN)
    assert box.exec("cat", "/proc/%s/oom_score_adj" % final_pid).stdout.strip() == box.initial_adj != "500"
    assert fixture_adj(box) == -1000


def test_a_drop_in_that_cannot_be_read_fails_the_host_and_changes_nothing(tmp_path, box):
    # A plain file where the unit's drop-in directory belongs: reading the drop-in fails on the
    # host before any change, the role fails the host and says nothing changed, the unit keeps -1000.
    box.write_file(os.path.dirname(DROPIN), "not a directory\n")
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False, oomguard_remediate_require_snapshot=False)
    proc = playbook(tmp_path, "remediate.yml", inv, "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID,
                    "-e", "oomguard_report_dir=%s" % (tmp_path / "report"))
    assert proc.returncode != 0
    assert recap(proc)["failed"] == 1
    assert "Failed to reset oom_score_adj on box" in proc.stdout
    assert "oomguard_rollback_run_id=" not in proc.stdout
    assert box.read_file(os.path.dirname(DROPIN)) == "not a directory\n"
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and fixture_adj(box) == -1000
    assert "Not a directory" in proc.stdout and not box.path_exists(JOURNAL)  # failed while reading, before any change
    assert "Not a directory. Nothing was changed on this host (no rollback needed)." in proc.stdout

    proc = playbook(tmp_path, "rollback.yml", inv, "-e", "oomguard_rollback_run_id=" + RUN_ID)
    assert proc.returncode == 0, failure(proc)
    assert recap(proc)["changed"] == 0
    # ansible-core 2.16 to 2.18 wrap warnings at 80 columns: at a space or after a hyphen.
    assert "records no change for run " + RUN_ID in re.sub(r"-\n", "-", proc.stderr).replace("\n", " ")
    assert box.read_file(os.path.dirname(DROPIN)) == "not a directory\n"
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and fixture_adj(box) == -1000


def test_inventory_variables_need_a_started_container(tmp_path):
    with pytest.raises(RuntimeError, match="start the container"):
        sc.SystemdContainer().ansible_host_vars(tmp_path)
    assert list(tmp_path.iterdir()) == []


HOLD_LOCK = """
import fcntl, json, os, sys, time
os.makedirs("/var/lib/oomguard", 0o700, exist_ok=True)
fd = os.open("/var/lib/oomguard/oomguard.lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, json.dumps({"pid": os.getpid(), "run_id": "oomguard-20261129T025900Z-1", "purpose": "remediate",
                         "since": "2026-11-29T02:59:00Z", "host": "box"}).encode())
open("/run/lock-held", "w").close()
time.sleep(int(sys.argv[1]))
"""


def test_a_second_run_on_a_locked_host_fails_it_and_changes_nothing(tmp_path, box):
    box.write_file("/tmp/hold_lock.py", HOLD_LOCK)
    sc.podman("exec", "-d", box.container_id, "python3", "/tmp/hold_lock.py", "120")
    box.exec("sh", "-c", "for i in $(seq 100); do [ -e /run/lock-held ] && exit 0; sleep 0.1; done; exit 1")
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False, oomguard_remediate_require_snapshot=False)
    proc = playbook(tmp_path, "remediate.yml", inv, "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID,
                    "-e", "oomguard_report_dir=%s" % (tmp_path / "report"))
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "Another oomguard run holds the lock /var/lib/oomguard/oomguard.lock" in proc.stdout
    assert "run oomguard-20261129T025900Z-1 (remediate)" in proc.stdout
    assert "Wait for it to finish, then run again. Nothing was changed on this host (no rollback needed)." in proc.stdout  # one full stop
    assert '"changed": false' in proc.stdout and '"changed": true' not in proc.stdout  # the module did nothing
    assert not box.path_exists(DROPIN) and not box.path_exists(JOURNAL)
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and fixture_adj(box) == -1000


def test_a_failed_daemon_reload_fails_the_host_and_the_rollback_undoes_the_drop_in(tmp_path, box):
    # systemctl in the container answers daemon-reload with an error: the drop-in is written and
    # journalled, the daemon-reload fails, the host fails with the rollback command, and
    # changed reports the drop-in. With systemctl back, rollback.yml removes it.
    box.exec("mv", "/usr/bin/systemctl", "/usr/bin/systemctl.real")
    box.write_file("/usr/bin/systemctl", "#!/bin/sh\nif [ \"$1\" = daemon-reload ]; then\n"
                   "  echo 'Failed to connect to bus: simulated' >&2\n  exit 1\nfi\nexec /usr/bin/systemctl.real \"$@\"\n")
    box.exec("chmod", "755", "/usr/bin/systemctl")
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False, oomguard_remediate_require_snapshot=False)
    proc = playbook(tmp_path, "remediate.yml", inv, "-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID,
                    "-e", "oomguard_report_dir=%s" % (tmp_path / "report"))
    box.exec("mv", "/usr/bin/systemctl.real", "/usr/bin/systemctl")
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "Failed to run systemctl daemon-reload: Failed to connect to bus: simulated" in proc.stdout
    assert "simulated. What was done is journalled; playbooks/rollback.yml with oomguard_rollback_run_id=%s undoes it." % RUN_ID in proc.stdout
    assert '"changed": true' in proc.stdout  # the drop-in was written
    assert "OOMScoreAdjust=0" in box.read_file(DROPIN) and fixture_adj(box) == -1000  # stopped before the runtime change
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000"  # systemd never reloaded

    proc = playbook(tmp_path, "rollback.yml", inv, "-e", "oomguard_rollback_run_id=" + RUN_ID)
    assert proc.returncode == 0, failure(proc)
    assert not box.path_exists(DROPIN) and not box.path_exists(os.path.dirname(DROPIN))
    assert box.show(UNIT, "OOMScoreAdjust") == "-1000" and fixture_adj(box) == -1000
    assert [(r["op"], r["state"]) for r in journal(box)][-1] == ("rollback-complete", "done")


def test_another_drop_in_that_would_win_fails_the_host_naming_it_and_override_conf_does_not(tmp_path, box):
    """remediate.yml never reports a reset that systemd would not keep: a drop-in read after ours fails the
    host naming the file (nothing changed); systemctl edit's override.conf loses to ours, also after a restart."""
    late = "/etc/systemd/system/app.service.d/zzz-local.conf"
    box.write_file(late, "[Service]\nOOMScoreAdjust=-1000\n")
    box.exec("systemctl", "daemon-reload")
    inv = inventory(tmp_path, box, oomguard_snapshot_enabled=False, oomguard_remediate_require_snapshot=False)
    args = ("-e", "oomguard_remediate_mode=reset", "-e", "oomguard_run_id=" + RUN_ID, "-e", "oomguard_report_dir=%s" % (tmp_path / "report"))
    proc = playbook(tmp_path, "remediate.yml", inv, *args)
    assert proc.returncode != 0 and recap(proc)["failed"] == 1
    assert "%s sets OOMScoreAdjust=-1000 for %s" % (late, UNIT) in proc.stdout
    assert "Nothing was changed on this host (no rollback needed)." in proc.stdout
    assert not box.path_exists(DROPIN) and not box.path_exists(JOURNAL) and fixture_adj(box) == -1000

    box.exec("mv", late, "/etc/systemd/system/app.service.d/override.conf")
    box.exec("systemctl", "daemon-reload")
    proc = playbook(tmp_path, "remediate.yml", inv, *args)
    assert proc.returncode == 0, failure(proc)
    assert box.show(UNIT, "OOMScoreAdjust") == "0" and fixture_adj(box) == 0
    box.exec("systemctl", "restart", UNIT)
    assert box.show(UNIT, "OOMScoreAdjust") == "0"
    assert box.read_file("/proc/%s/oom_score_adj" % box.show(UNIT, "MainPID")).strip() == "0"
