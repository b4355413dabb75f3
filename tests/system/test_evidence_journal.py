# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident evidence through the real journalctl, on a real journal file with two boots.

The journal file is written by systemd-journal-remote from the journal export format, so
journalctl reads a genuine on-disk journal, not a text stand-in.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import evidence as ev

JOURNALCTL = shutil.which("journalctl")
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"

pytestmark = pytest.mark.skipif(JOURNALCTL is None, reason="journalctl is not installed (no systemd on this host)")

BOOT_A = "0123456789abcdef0123456789abcdef"
BOOT_B = "fedcba9876543210fedcba9876543210"


def export_entry(message, when, boot, transport="kernel"):
    micros = int(when.timestamp() * 1000000)
    return ("__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n_TRANSPORT=%s\n"
            "SYSLOG_IDENTIFIER=kernel\nPRIORITY=3\n_HOSTNAME=web01\nMESSAGE=%s\n\n"
            % (micros, 1000000, boot, transport, message))


def run_command(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=dict(os.environ, LC_ALL="C"), check=False)
    return out.returncode, out.stdout, out.stderr


def make_journal(root, entries):
    journal_dir = root / "var" / "log" / "journal"
    journal_dir.mkdir(parents=True)
    export = root / "kernel.export"
    export.write_text("".join(entries))
    assert os.path.exists(JOURNAL_REMOTE), "systemd-journal-remote is missing: run make bootstrap"
    subprocess.run([JOURNAL_REMOTE, "-o", str(journal_dir / "remote.journal"), str(export)], check=True,
                   capture_output=True, timeout=60)
    return journal_dir


def test_real_journal_across_two_boots(tmp_path):
    now = datetime.datetime.now(ev.UTC).replace(microsecond=0)
    day = datetime.timedelta(days=1)
    make_journal(tmp_path, [
        export_entry("Out of memory: Killed process 100 (tooold) total-vm:1kB", now - 40 * day, BOOT_A),
        export_entry("Out of memory: Killed process 4242 (java) total-vm:9000000kB, anon-rss:6000000kB",
                     now - 5 * day, BOOT_A),
        export_entry("Out of memory and no killable processes...", now - 5 * day + datetime.timedelta(seconds=1), BOOT_A),
        export_entry("Memory cgroup out of memory: Killed process 5151 (node) total-vm:1kB", now - 2 * day, BOOT_B),
        export_entry("Out of memory: Killed process 999 (fromuserspace) total-vm:1kB", now - day, BOOT_B,
                     transport="stdout"),
    ])
    result = ev.gather_evidence(str(tmp_path), now=now, run_command=run_command, journalctl=JOURNALCTL)
    journal = [s for s in result["sources"] if s["name"] == "journal"][0]
    assert journal["read"] is True, journal
    assert journal["reason"] is None and journal["persistent"] is True
    kills = result["oom_kills"]
    # both boots are read; the 40-day-old kill is outside the window; a non-kernel line is not evidence
    assert sorted(v["name"] for v in kills["victims"]) == ["java", "node"]
    assert kills["count"] == 2 and kills["memcg_count"] == 1
    assert kills["newest_at"] == ev.iso(now - 2 * day)
    assert result["panics"]["count"] == 1 and result["panics"]["no_killable_count"] == 1
    assert result["panics"]["newest_at"] == ev.iso(now - 5 * day + datetime.timedelta(seconds=1))


def test_real_journalctl_on_the_live_root():
    result = ev.gather_evidence("/", run_command=run_command, journalctl=JOURNALCTL, since_days=1)
    journal = [s for s in result["sources"] if s["name"] == "journal"][0]
    # Whatever this host keeps, journalctl accepts the arguments: either it read, or it said why not.
    assert journal["read"] is True or journal["reason"].startswith("journalctl exited"), journal
    if journal["read"]:
        assert journal["bytes"] <= ev.DEFAULT_MAX_BYTES
