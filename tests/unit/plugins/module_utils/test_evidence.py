# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident evidence on fixture trees: the vendor's panic log, syslog files, pstore, kdump, journal."""

from __future__ import annotations

import datetime
import os
import time

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import evidence as ev

NOW = datetime.datetime(2026, 11, 29, 2, 0, 0, tzinfo=ev.UTC)
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "evidence")
SEED = os.path.join(FIXTURES, "vendor-vmcore-dmesg.txt")

# mm/oom_kill.c on >= 4.19: a warning, then the panic with a different text.
PSTORE_419 = (
    "Panic#1 Part1\n"
    "<4>[ 9120.100001] Out of memory and no killable processes...\n"
    "<0>[ 9120.100950] Kernel panic - not syncing: System is deadlocked on memory\n"
    "<4>[ 9120.101000] CPU: 0 PID: 812 Comm: java Not tainted 6.1.0-18-amd64 #1\n"
)
KERN_LOG_RFC3339 = (
    "2026-11-20T08:00:00.000001+00:00 web01 kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=java,pid=4242,uid=0\n"
    "2026-11-20T08:00:00.000002+00:00 web01 kernel: Out of memory: Killed process 4242 (java) total-vm:9000000kB, anon-rss:6000000kB\n"
    "2026-11-21T09:30:00.000000+01:00 web01 kernel: oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/system.slice/app.service\n"
    "2026-11-21T09:30:00.500000+01:00 web01 kernel: Memory cgroup out of memory: Killed process 5151 (node) total-vm:1kB\n"
    "2026-11-22T10:00:00.000000+00:00 web01 kernel: Out of memory: Killed process 4300 (java) total-vm:1kB\n"
    "2026-09-01T10:00:00.000000+00:00 web01 kernel: Out of memory: Killed process 1 (tooold) total-vm:1kB\n"
    "2026-11-22T10:00:01.000000+00:00 web01 systemd[1]: app.service: A process of this unit has been killed by the OOM killer.\n"
)
# Kernels before 4.19 (the vendor's 3.10): the memcg verdict and the kill are two lines.
MESSAGES_TRADITIONAL = (
    "Nov 25 03:00:00 web01 kernel: Memory cgroup out of memory: Kill process 999 (php-fpm) score 950 or sacrifice child\n"
    "Nov 25 03:00:00 web01 kernel: Killed process 999 (php-fpm) total-vm:1kB, anon-rss:1kB, file-rss:0kB\n"
    "Nov 26 04:00:00 web01 kernel: Out of memory: Kill process 1000 (java) score 900 or sacrifice child\n"
    "Nov 26 04:00:00 web01 kernel: Killed process 1000 (java) total-vm:1kB, anon-rss:1kB, file-rss:0kB\n"
)


def write(path, text, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    stamp = (mtime or NOW).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def seed_text():
    with open(SEED) as handle:
        return handle.read()


class FakeJournal:
    """Stands in for AnsibleModule.run_command; records the argv it was given."""

    def __init__(self, rc=0, out="", err=""):
        self.rc, self.out, self.err, self.calls = rc, out, err, []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.rc, self.out, self.err


def source(result, name):
    return [s for s in result["sources"] if s["name"] == name][0]


# ------------------------------------------------------------------ the vendor's log


def test_vendor_seed_in_kdump_is_one_no_killable_panic(tmp_path):
    write(str(tmp_path / "var/crash/127.0.0.1-2026-11-28-03:04:05/vmcore-dmesg.txt"), seed_text())
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    panics = result["panics"]
    assert panics["count"] == 1
    assert panics["no_killable_count"] == 1 and panics["deadlocked_count"] == 0
    assert panics["events"][0]["kinds"] == ["no_killable"]
    assert "Kernel panic - not syncing: Out of memory and no killable processes" in panics["events"][0]["line"]
    # the crash directory's name dates the crash (local time of the host)
    expected = datetime.datetime.fromtimestamp(time.mktime((2026, 11, 28, 3, 4, 5, 0, 0, -1)), ev.UTC)
    assert panics["newest_at"] == ev.iso(expected)
    kdump = source(result, "kdump")
    assert kdump["read"] and kdump["files"] == 1 and kdump["events"] == 1
    assert kdump["bytes"] == os.path.getsize(SEED)
    assert result["oom_kills"]["count"] == 0


def test_debian_kdump_tools_layout_and_mtime_fallback(tmp_path):
    write(str(tmp_path / "var/crash/202611270102/dmesg.202611270102"), seed_text())
    write(str(tmp_path / "var/crash/unnamed/vmcore-dmesg.txt"), PSTORE_419, mtime=NOW - datetime.timedelta(days=3))
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert result["panics"]["count"] == 2
    assert result["panics"]["deadlocked_count"] == 1
    assert source(result, "kdump")["files"] == 2
    assert source(result, "kdump")["path"] == str(tmp_path / "var" / "crash")
    assert result["panics"]["events"][-1]["at"] == ev.iso(NOW - datetime.timedelta(days=3))


def test_pstore_419_warning_and_panic_are_one_incident(tmp_path):
    write(str(tmp_path / "sys/fs/pstore/dmesg-ramoops-0"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=5))
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    panics = result["panics"]
    assert panics["count"] == 1
    assert panics["events"][0]["kinds"] == ["deadlocked", "no_killable"]
    assert panics["no_killable_count"] == 1 and panics["deadlocked_count"] == 1
    assert panics["newest_at"] == "2026-11-28T21:00:00Z"


def test_same_crash_in_pstore_and_kdump_counts_once(tmp_path):
    write(str(tmp_path / "sys/fs/pstore/dmesg-efi-1"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=5))
    write(str(tmp_path / "var/crash/x/vmcore-dmesg.txt"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=4))
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert result["panics"]["count"] == 1
    assert result["panics"]["events"][0]["sources"] == ["kdump", "pstore"]


def test_pstore_archived_by_systemd_is_read(tmp_path):
    # systemd-pstore.service empties /sys/fs/pstore at boot into one directory per crash.
    crash = tmp_path / "var/lib/systemd/pstore/1764363600"
    write(str(crash / "dmesg.txt"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=5))
    write(str(crash / "dmesg-efi-176436360001"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=5))
    (tmp_path / "sys/fs/pstore").mkdir(parents=True)
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert source(result, "pstore")["reason"] == "empty"
    archived = source(result, "systemd-pstore")
    assert archived["read"] and archived["files"] == 1  # dmesg.txt, not its raw parts as well
    assert result["panics"]["count"] == 1 and result["panics"]["no_killable_count"] == 1
    assert result["panics"]["events"][0]["sources"] == ["systemd-pstore"]


def test_systemd_pstore_raw_parts_without_reassembly(tmp_path):
    archive = tmp_path / "var/lib/systemd/pstore"
    write(str(archive / "17643636/dmesg-efi-1"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=5))
    write(str(archive / "17643636/notes.json"), "{}", mtime=NOW - datetime.timedelta(hours=5))
    write(str(archive / "dmesg-ramoops-0"), PSTORE_419, mtime=NOW - datetime.timedelta(hours=5))
    assert ev.systemd_pstore_files(str(archive)) == [str(archive / "dmesg-ramoops-0"), str(archive / "17643636/dmesg-efi-1")]
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert result["panics"]["count"] == 1  # the same crash twice is one incident


def test_panic_on_oom_panic_is_recorded(tmp_path):
    text = "<0>[  77.1] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled\n"
    write(str(tmp_path / "sys/fs/pstore/dmesg-ramoops-1"), text)
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert result["panics"]["panic_on_oom_count"] == 1 and result["panics"]["no_killable_count"] == 0


# ------------------------------------------------------------------ syslog files


def test_kern_log_kills_victims_memcg_and_window(tmp_path):
    write(str(tmp_path / "var/log/kern.log"), KERN_LOG_RFC3339)
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    kills = result["oom_kills"]
    assert kills["count"] == 3  # the September kill is outside the 30 days
    assert kills["memcg_count"] == 1
    assert kills["newest_at"] == "2026-11-22T10:00:00Z"
    assert kills["victims"][0] == {"name": "java", "count": 2, "newest_at": "2026-11-22T10:00:00Z", "pids": [4300, 4242]}
    node = [e for e in kills["events"] if e["name"] == "node"][0]
    assert node["memcg"] is True and node["at"] == "2026-11-21T08:30:00Z"  # +01:00 converted to UTC
    assert [e["memcg"] for e in kills["events"] if e["name"] == "java"] == [False, False]
    assert source(result, "kern.log")["read"] is True
    assert source(result, "messages")["reason"] == "absent"
    assert result["panics"]["count"] == 0


def test_traditional_syslog_two_line_kills_and_year(tmp_path):
    write(str(tmp_path / "var/log/messages"), MESSAGES_TRADITIONAL)
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    kills = result["oom_kills"]
    assert kills["count"] == 2
    assert kills["memcg_count"] == 1
    by_name = dict((e["name"], e) for e in kills["events"])
    assert by_name["php-fpm"]["memcg"] is True and by_name["java"]["memcg"] is False
    assert by_name["java"]["at"].startswith("2026-11-2")


def test_traditional_syslog_from_last_year_in_january(tmp_path):
    january = datetime.datetime(2027, 1, 2, tzinfo=ev.UTC)
    write(str(tmp_path / "var/log/messages"), "Dec 31 23:00:00 h kernel: Killed process 5 (x) total-vm:1kB\n", mtime=january)
    result = ev.gather_evidence(str(tmp_path), now=january)
    assert result["oom_kills"]["newest_at"].startswith("2026-12-31")


def test_rotated_file_is_read_and_old_files_are_skipped(tmp_path):
    write(str(tmp_path / "var/log/kern.log"), "")
    write(str(tmp_path / "var/log/kern.log.1"), KERN_LOG_RFC3339, mtime=NOW - datetime.timedelta(days=6))
    write(str(tmp_path / "var/log/messages.1"), MESSAGES_TRADITIONAL, mtime=NOW - datetime.timedelta(days=40))
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert source(result, "kern.log")["files"] == 2
    assert source(result, "kern.log")["path"] == str(tmp_path / "var" / "log" / "kern.log")
    assert result["oom_kills"]["count"] == 3
    messages = source(result, "messages")
    assert messages["read"] is False and "not written in the window" in messages["reason"]


def test_since_days_zero_means_no_time_bound(tmp_path):
    write(str(tmp_path / "var/log/kern.log"), KERN_LOG_RFC3339)
    result = ev.gather_evidence(str(tmp_path), since_days=0, now=NOW)
    assert result["oom_kills"]["count"] == 4
    assert result["since"] is None


def test_bytes_bound_reads_only_the_newest_tail(tmp_path):
    filler = "2026-11-28T00:00:00+00:00 web01 kernel: usb 1-1: new device\n" * 2000
    newest = "2026-11-28T12:00:00+00:00 web01 kernel: Out of memory: Killed process 77 (newest) total-vm:1kB\n"
    oldest = "2026-11-27T12:00:00+00:00 web01 kernel: Out of memory: Killed process 76 (oldest) total-vm:1kB\n"
    write(str(tmp_path / "var/log/kern.log"), oldest + filler + newest)
    result = ev.gather_evidence(str(tmp_path), max_bytes=4096, now=NOW)
    kern = source(result, "kern.log")
    assert kern["truncated"] is True and 0 < kern["bytes"] <= 4096
    assert [v["name"] for v in result["oom_kills"]["victims"]] == ["newest"]
    assert result["bytes_read"] == kern["bytes"]


def test_unreadable_file_is_a_reason_not_an_error(tmp_path, monkeypatch):
    write(str(tmp_path / "var/log/kern.log"), KERN_LOG_RFC3339)

    def denied(path, max_bytes):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(ev, "read_tail", denied)
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    kern = source(result, "kern.log")
    assert kern["read"] is False
    assert "Permission denied; run with become: true" in kern["reason"]


def test_victims_and_events_are_bounded(tmp_path):
    lines = "".join("2026-11-28T%02d:%02d:00+00:00 h kernel: Out of memory: Killed process %d (p%d) total-vm:1kB\n"
                    % (i // 60, i % 60, 1000 + i, i) for i in range(30))
    write(str(tmp_path / "var/log/kern.log"), lines)
    result = ev.gather_evidence(str(tmp_path), now=NOW, max_victims=3, max_events=4)
    assert result["oom_kills"]["count"] == 30
    assert len(result["oom_kills"]["victims"]) == 3
    assert len(result["oom_kills"]["events"]) == 4
    assert result["oom_kills"]["events"][0]["name"] == "p29"


# ------------------------------------------------------------------ journal


JOURNAL_OUT = (
    "2026-11-20T08:00:00+0000 web01 kernel: Out of memory: Killed process 4242 (java) total-vm:9000000kB\n"
    "2026-11-27T08:00:00+0000 web01 kernel: Out of memory and no killable processes...\n"
)


def test_journal_across_boots_and_dedup_with_kern_log(tmp_path):
    (tmp_path / "var/log/journal").mkdir(parents=True)
    write(str(tmp_path / "var/log/kern.log"), KERN_LOG_RFC3339)
    journal = FakeJournal(out=JOURNAL_OUT)
    result = ev.gather_evidence(str(tmp_path), now=NOW, run_command=journal, journalctl="/usr/bin/journalctl")
    argv = journal.calls[0]
    assert argv[0] == "/usr/bin/journalctl" and "_TRANSPORT=kernel" in argv
    assert "-k" not in argv and "-b" not in argv  # every boot, not just this one
    assert "--since=2026-10-30 02:00:00 UTC" in argv
    assert "--directory=%s" % (tmp_path / "var/log/journal") in argv
    record = source(result, "journal")
    assert record["read"] and record["persistent"] and record["reason"] is None
    assert record["events"] == 2
    # the 4242 kill is in both the journal and kern.log: counted once, with both sources
    kills = result["oom_kills"]
    assert kills["count"] == 3
    java = [e for e in kills["events"] if e["pid"] == 4242][0]
    assert java["sources"] == ["journal", "kern.log"]
    assert result["panics"]["count"] == 1 and result["panics"]["newest_at"] == "2026-11-27T08:00:00Z"


def test_journal_on_live_root_without_persistent_dir(tmp_path, monkeypatch):
    journal = FakeJournal(out=JOURNAL_OUT)
    monkeypatch.setattr(ev.os.path, "isdir", lambda path: False)
    result = ev.gather_evidence("/", now=NOW, run_command=journal, journalctl="/bin/journalctl")
    record = source(result, "journal")
    assert not [a for a in journal.calls[0] if a.startswith("--directory")]
    assert record["read"] is True and record["persistent"] is False
    assert "only the current boot" in record["reason"]


@pytest.mark.parametrize("setup, journalctl, reason", [
    ("persistent", None, "journalctl not found"),
    ("none", "/usr/bin/journalctl", "no persistent journal under"),
    ("failing", "/usr/bin/journalctl", "journalctl exited 1: No journal files were found."),
])
def test_journal_unavailable_reasons(tmp_path, setup, journalctl, reason):
    if setup != "none":
        (tmp_path / "var/log/journal").mkdir(parents=True)
    journal = FakeJournal(rc=1 if setup == "failing" else 0, err="No journal files were found.\n")
    result = ev.gather_evidence(str(tmp_path), now=NOW, run_command=journal, journalctl=journalctl)
    record = source(result, "journal")
    assert record["read"] is False and reason in record["reason"]


def test_journal_output_is_bounded(tmp_path):
    (tmp_path / "var/log/journal").mkdir(parents=True)
    out = "2026-11-28T00:00:00+0000 h kernel: noise\n" * 500 + JOURNAL_OUT
    journal = FakeJournal(out=out)
    result = ev.gather_evidence(str(tmp_path), now=NOW, run_command=journal, journalctl="j", max_bytes=1000)
    record = source(result, "journal")
    assert record["truncated"] and record["bytes"] <= 1000
    assert "--lines=10" in journal.calls[0]
    assert result["oom_kills"]["count"] == 1


def test_empty_root_reads_nothing_and_says_why(tmp_path):
    (tmp_path / "var/crash").mkdir(parents=True)
    result = ev.gather_evidence(str(tmp_path), now=NOW)
    assert [s["read"] for s in result["sources"]] == [False] * 6
    reasons = dict((s["name"], s["reason"]) for s in result["sources"])
    assert reasons == {"journal": "journalctl not found", "kern.log": "absent", "messages": "absent",
                       "pstore": "absent", "systemd-pstore": "absent", "kdump": "empty"}
    assert result["oom_kills"]["count"] == 0 and result["panics"]["count"] == 0
    assert result["bytes_read"] == 0


# ------------------------------------------------------------------ parsers


@pytest.mark.parametrize("line, expected", [
    ("2026-11-28T10:00:00Z h k: x", "2026-11-28T10:00:00Z"),
    ("2026-11-28T10:00:00.123+02:00 h k: x", "2026-11-28T08:00:00Z"),
    ("2026-11-28T10:00:00-0530 h k: x", "2026-11-28T15:30:00Z"),
    ("2026-11-28 10:00:00 h k: x", "2026-11-28T10:00:00Z"),
    ("2026-13-28T10:00:00Z h", None),
    ("Nov 28 10:00:00 h", None),
])
def test_parse_iso_prefix(line, expected):
    assert ev.iso(ev.parse_iso_prefix(line)) == expected


@pytest.mark.parametrize("line", ["Foo 28 10:00:00 h kernel: x", "Feb 30 10:00:00 h kernel: x", "garbage"])
def test_parse_traditional_rejects(line):
    assert ev.parse_traditional_prefix(line, 2026) is None


def test_crash_time_rejects_impossible_dates():
    assert ev.crash_time("/var/crash/127.0.0.1-2026-13-40-99:99:99/vmcore-dmesg.txt") is None
    assert ev.crash_time("/var/crash/nodate/vmcore-dmesg.txt") is None
