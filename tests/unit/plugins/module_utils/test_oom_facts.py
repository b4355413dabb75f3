# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils import proc_reader
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import REDACTED, ProcParseError
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import (
    build_proc_tree,
    kernel_thread,
    vendor_tree,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
LIVE = sorted(glob.glob(os.path.join(FIXTURES, "proc", "live-*")))
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

CONTRACT_PROCESS_KEYS = {"pid", "ppid", "name", "uid", "oom_score_adj", "oom_adj_legacy", "oom_score", "rss_kb", "unit", "cmdline"}
CONTRACT_SUMMARY_KEYS = {"process_count", "kernel_thread_count", "unkillable_count", "unkillable_rss_kb", "killable_count",
                         "killable_rss_kb", "largest_killable", "returned_count"}


def by_pid(facts):
    return dict((p["pid"], p) for p in facts["processes"])


def test_vendor_example(tmp_path):
    facts = gather_oom_facts(vendor_tree(tmp_path))
    assert set(facts) == {"schema", "kernel", "page_size", "meminfo", "vm", "panic", "summary", "processes", "errors"}
    assert set(facts["summary"]) == CONTRACT_SUMMARY_KEYS
    summary = facts["summary"]
    assert summary["process_count"] == 3
    assert summary["kernel_thread_count"] == 2
    assert summary["unkillable_count"] == 2
    assert summary["unkillable_rss_kb"] == 980 + 504
    assert summary["killable_count"] == 1 and summary["killable_rss_kb"] == 12000
    assert summary["largest_killable"] == {"pid": 1, "name": "systemd", "rss_kb": 12000, "oom_score_adj": 0}
    rows = by_pid(facts)
    assert set(rows) == {1, 1799, 29219}
    assert summary["returned_count"] == 3
    sshd = rows[1799]
    assert set(sshd) == CONTRACT_PROCESS_KEYS
    assert sshd == {"pid": 1799, "ppid": 1, "name": "sshd", "uid": 0, "oom_score_adj": -1000, "oom_adj_legacy": None,
                    "oom_score": 0, "rss_kb": 980, "unit": "sshd.service", "cmdline": "/usr/sbin/sshd -D"}
    assert rows[29219]["unit"] == "systemd-udevd.service"
    assert rows[1]["unit"] == "init.scope"
    assert [p["pid"] for p in facts["processes"]] == [1, 1799, 29219]  # largest RSS first
    assert facts["kernel"] == "6.1.0-18-amd64"
    assert facts["vm"] == {"panic_on_oom": 0, "overcommit_memory": 0, "oom_kill_allocating_task": 0}
    assert facts["meminfo"]["mem_total_kb"] == 24000000 and facts["meminfo"]["lru_kb"] == 500000
    assert facts["errors"] == {"count": 0, "vanished_count": 0, "unreadable_count": 0, "hidepid": None, "samples": []}
    json.dumps(facts)


def test_default_selection_threshold_and_top_killable(tmp_path):
    procs = [{"pid": 100 + i, "comm": "w%d" % i, "rss_kb": 1000 * (i + 1)} for i in range(20)]
    procs += [
        {"pid": 50, "comm": "pinned", "oom_score_adj": -500, "rss_kb": 4},  # at the threshold: returned
        {"pid": 51, "comm": "mild", "oom_score_adj": -499, "rss_kb": 8},  # just above: not returned
        {"pid": 52, "comm": "java", "oom_score_adj": -1000, "rss_kb": 6 * 1024 * 1024},
    ]
    tree = build_proc_tree(tmp_path, procs)
    facts = gather_oom_facts(tree, top_killable=3)
    pids = [p["pid"] for p in facts["processes"]]
    assert pids == [52, 119, 118, 117, 50]
    assert facts["summary"]["process_count"] == 23
    assert facts["summary"]["returned_count"] == 5
    assert facts["summary"]["unkillable_rss_kb"] == 6 * 1024 * 1024
    assert facts["summary"]["largest_killable"]["pid"] == 119
    assert [p["pid"] for p in gather_oom_facts(tree, adj_threshold=-499, top_killable=0)["processes"]] == [52, 51, 50]
    assert len(gather_oom_facts(tree, all_processes=True)["processes"]) == 23


def test_legacy_oom_adj(tmp_path):
    tree = build_proc_tree(tmp_path, [
        {"pid": 10, "comm": "old-sshd", "oom_score_adj": None, "oom_adj": -17, "rss_kb": 40},
        {"pid": 11, "comm": "old-db", "oom_score_adj": None, "oom_adj": -16, "rss_kb": 80},
        {"pid": 12, "comm": "old-web", "oom_score_adj": None, "oom_adj": 15, "rss_kb": 20},
    ])
    facts = gather_oom_facts(tree, all_processes=True)
    rows = by_pid(facts)
    assert (rows[10]["oom_score_adj"], rows[10]["oom_adj_legacy"]) == (-1000, -17)
    assert (rows[11]["oom_score_adj"], rows[11]["oom_adj_legacy"]) == (-941, -16)
    assert (rows[12]["oom_score_adj"], rows[12]["oom_adj_legacy"]) == (882, 15)
    assert facts["summary"]["unkillable_count"] == 1 and facts["summary"]["unkillable_rss_kb"] == 40


def test_kernel_threads_by_flag_not_by_empty_cmdline(tmp_path):
    tree = build_proc_tree(tmp_path, [
        kernel_thread(2, "kthreadd", ppid=0),
        kernel_thread(7, "kworker/0:1"),
        # a user process with an empty cmdline (a zombie, or one that cleared argv) is still a process
        {"pid": 30, "comm": "zombie", "cmdline": b"", "state": "Z", "rss_kb": 0},
    ])
    facts = gather_oom_facts(tree, all_processes=True)
    assert facts["summary"]["kernel_thread_count"] == 2
    assert facts["summary"]["process_count"] == 1
    assert by_pid(facts)[30]["cmdline"] == ""


def test_comm_with_spaces_parens_and_secret_cmdline(tmp_path):
    tree = build_proc_tree(tmp_path, [
        {"pid": 40, "comm": "my (odd) name)", "rss_kb": 12, "cmdline": ["db", "--password=hunter2", "-p", "secret"]},
    ])
    row = gather_oom_facts(tree, cmdline_max=0)["processes"][0]
    assert row["name"] == "my (odd) name)"
    assert row["cmdline"] == "db --password=%s -p %s" % (REDACTED, REDACTED)


def test_absent_files_are_skipped_and_counted_as_unreadable(tmp_path):
    # A file missing while /proc/<pid> exists is not a process that exited: it is counted apart.
    tree = build_proc_tree(tmp_path, [
        {"pid": 1, "comm": "init", "rss_kb": 100},
        {"pid": 60, "comm": "no-stat", "missing": ["stat"]},
        {"pid": 61, "comm": "no-adj", "missing": ["oom_score_adj", "oom_adj"], "rss_kb": 10},
        {"pid": 62, "comm": "no-status", "missing": ["status"], "oom_score_adj": -1000, "rss_kb": 20},
    ])
    facts = gather_oom_facts(tree)
    assert facts["summary"]["process_count"] == 2  # 1 and 62 were scanned
    assert facts["summary"]["unkillable_count"] == 1
    assert [p["pid"] for p in facts["processes"]] == [1]
    assert facts["errors"]["count"] == 3
    assert facts["errors"]["unreadable_count"] == 3 and facts["errors"]["vanished_count"] == 0
    assert sorted((s["pid"], s["file"], s["error"]) for s in facts["errors"]["samples"]) == [
        (60, "stat", "absent"), (61, "oom_score_adj", "absent"), (62, "status", "absent")]


def test_vanished_pids_are_skipped_and_counted(tmp_path, monkeypatch):
    tree = build_proc_tree(tmp_path, [
        {"pid": 1, "comm": "init", "rss_kb": 100},
        {"pid": 61, "comm": "gone-mid", "rss_kb": 10},
        {"pid": 62, "comm": "gone-late", "oom_score_adj": -1000, "rss_kb": 20},
    ])
    real_small, real_text = proc_reader.read_small, proc_reader.read_text

    def exit_before(pid, name, real):
        def read(path):
            if path.endswith(os.sep + os.path.join(pid, name)):
                shutil.rmtree(os.path.join(tree, pid))
            return real(path)
        return read

    monkeypatch.setattr(proc_reader, "read_small", exit_before("61", "oom_score_adj", real_small))
    monkeypatch.setattr(proc_reader, "read_text", exit_before("62", "status", real_text))
    facts = gather_oom_facts(tree)
    assert facts["summary"]["process_count"] == 2  # 1 and 62 were scanned
    assert facts["summary"]["unkillable_count"] == 1
    assert [p["pid"] for p in facts["processes"]] == [1]
    assert facts["errors"]["count"] == 2 and facts["errors"]["vanished_count"] == 2
    assert facts["errors"]["unreadable_count"] == 0
    assert sorted((s["pid"], s["file"], s["error"]) for s in facts["errors"]["samples"]) == [
        (61, "oom_score_adj", "vanished"), (62, "status", "vanished")]


def test_pid_directory_gone_between_listdir_and_read(tmp_path, monkeypatch):
    tree = build_proc_tree(tmp_path, [{"pid": 1, "comm": "init"}, {"pid": 70, "comm": "short"}])
    real_list = oom_facts.list_pids

    def list_then_exit(path):
        pids = real_list(path)
        shutil.rmtree(os.path.join(path, "70"))
        return pids

    monkeypatch.setattr(oom_facts, "list_pids", list_then_exit)
    facts = gather_oom_facts(tree)
    assert facts["summary"]["process_count"] == 1
    assert facts["errors"]["samples"] == [{"pid": 70, "file": "stat", "error": "vanished"}]


def test_empty_stat_counts_as_vanished(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1, "comm": "init"}, {"pid": 72, "comm": "reaped"}])
    with open(os.path.join(tree, "72", "stat"), "w"):
        pass
    facts = gather_oom_facts(tree)
    assert facts["summary"]["process_count"] == 1
    assert facts["errors"]["samples"] == [{"pid": 72, "file": "stat", "error": "vanished"}]


def test_other_read_errors_are_counted_with_their_reason(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1, "comm": "init"}, {"pid": 71, "comm": "odd", "missing": ["stat"]}])
    os.mkdir(os.path.join(tree, "71", "stat"))
    facts = gather_oom_facts(tree)
    assert facts["errors"]["samples"] == [{"pid": 71, "file": "stat", "error": "Is a directory"}]


def test_missing_cgroup_file_means_no_unit(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 5, "comm": "x", "missing": ["cgroup"]}])
    facts = gather_oom_facts(tree)
    assert facts["processes"][0]["unit"] is None and facts["errors"]["count"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_permission_denied_is_counted():
    # Root reads through file modes, so the scan runs in a child that dropped to nobody.
    top = tempfile.mkdtemp(prefix="oomguard-eacces-")
    try:
        os.chmod(top, 0o755)
        tree = build_proc_tree(os.path.join(top, "proc"), [{"pid": 1, "comm": "init"}, {"pid": 80, "comm": "secret", "rss_kb": 10}])
        os.chmod(os.path.join(tree, "80", "oom_score_adj"), 0)
        # Import first: the interpreter's own files may not be readable by nobody.
        code = ("import json, os;"
                "from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts;"
                "os.setgid(65534); os.setuid(65534);"
                "print(json.dumps(gather_oom_facts(%r)))" % tree)
        # The directory that holds ansible_collections/, wherever the runner put it.
        root = os.path.abspath(oom_facts.__file__).rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]
        env = dict(os.environ, PYTHONPATH=root)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        facts = json.loads(out.stdout)
        assert facts["errors"] == {"count": 1, "vanished_count": 0, "unreadable_count": 1, "hidepid": None,
                                   "samples": [{"pid": 80, "file": "oom_score_adj", "error": "permission denied"}]}
        assert facts["summary"]["process_count"] == 1
    finally:
        shutil.rmtree(top)


def test_malformed_stat_names_file_and_line(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1, "comm": "init"}])
    with open(os.path.join(tree, "1", "stat"), "w") as handle:
        handle.write("1 (init) S 0 x\n")
    with pytest.raises(ProcParseError) as err:
        gather_oom_facts(tree)
    assert str(err.value).startswith(os.path.join(tree, "1", "stat") + " line 1: ")


def test_malformed_oom_score_adj(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1, "comm": "init"}])
    with open(os.path.join(tree, "1", "oom_score_adj"), "w") as handle:
        handle.write("minus a thousand\n")
    with pytest.raises(ProcParseError) as err:
        gather_oom_facts(tree)
    assert "1/oom_score_adj line 1: expected one integer" in str(err.value)


def test_malformed_sysctl(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1}], vm={"panic_on_oom": "yes"})
    with pytest.raises(ProcParseError) as err:
        gather_oom_facts(tree)
    assert "sys/vm/panic_on_oom line 1" in str(err.value)


def test_missing_sysctls_and_osrelease_are_null(tmp_path):
    tree = build_proc_tree(tmp_path, [{"pid": 1}], vm={"panic_on_oom": None, "oom_kill_allocating_task": None},
                           osrelease=None)
    facts = gather_oom_facts(tree)
    assert facts["vm"] == {"panic_on_oom": None, "overcommit_memory": 0, "oom_kill_allocating_task": None}
    assert facts["kernel"] is None


def test_not_a_procfs(tmp_path):
    with pytest.raises(ProcParseError) as err:
        gather_oom_facts(str(tmp_path / "nowhere"))
    assert "meminfo: cannot read" in str(err.value) and "proc_path" in str(err.value)


def test_list_pids_error(tmp_path):
    with pytest.raises(ProcParseError) as err:
        oom_facts.list_pids(str(tmp_path / "absent"))
    assert "cannot list" in str(err.value)


def test_empty_tree_has_no_largest_killable(tmp_path):
    facts = gather_oom_facts(build_proc_tree(tmp_path, []))
    assert facts["summary"]["largest_killable"] is None
    assert facts["summary"]["process_count"] == 0 and facts["processes"] == []


def test_live_capture():
    assert LIVE
    facts = gather_oom_facts(LIVE[0], all_processes=True)
    rows = by_pid(facts)
    assert facts["kernel"] == os.path.basename(LIVE[0])[len("live-"):]
    assert facts["summary"]["kernel_thread_count"] == 2  # kthreadd and a kworker
    assert set(rows) == {1, 6105, 20427}
    assert rows[20427]["oom_score_adj"] == 300 and rows[20427]["name"] == "bash"
    with open(os.path.join(LIVE[0], "1", "stat")) as handle:
        assert rows[1]["rss_kb"] == int(handle.read().rsplit(")", 1)[1].split()[21]) * PAGE_KB
    # statm was captured a moment later, from the same running process
    with open(os.path.join(LIVE[0], "1", "statm")) as handle:
        assert rows[1]["rss_kb"] == pytest.approx(int(handle.read().split()[1]) * PAGE_KB, rel=0.05)
    assert rows[1]["cmdline"].startswith("/process_api --firecracker-init")
    assert len(rows[1]["cmdline"]) <= 256
