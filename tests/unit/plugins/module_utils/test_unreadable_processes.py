# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No false ``ok``: a process that could not be read (permission, hidepid, a file absent while
the process lives) makes the verdict ``unknown``; only a process that is gone is "vanished"."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import exposure as ex
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils import proc_reader
from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import DEFAULT_MEMINFO, vendor_tree

HALF = DEFAULT_MEMINFO["MemTotal"] // 2
JAVA = {"pid": 4242, "ppid": 1, "comm": "java", "rss_kb": HALF, "oom_score_adj": -1000, "unit": "app.service"}


def deny(monkeypatch, pid, name="stat", code=errno.EACCES):
    """Make reads of /proc/<pid>/<name> fail with ``code``, as hidepid=1 or a file mode does for a non-root reader."""
    suffix = os.sep + os.path.join(str(pid), name)
    for reader in ("read_small", "read_bytes"):
        real = getattr(proc_reader, reader)

        def failing(path, _real=real):
            if path.endswith(suffix):
                raise OSError(code, os.strerror(code), path)
            return _real(path)
        monkeypatch.setattr(proc_reader, reader, failing)


def samples(facts):
    return sorted((s["pid"], s["file"], s["error"]) for s in facts["errors"]["samples"])


# ------------------------------------------------------------------ facts: vanished means gone


def test_permission_denied_stat_is_unreadable_not_vanished(tmp_path, monkeypatch):
    deny(monkeypatch, 4242)
    facts = gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))
    assert facts["errors"]["count"] == 1
    assert facts["errors"]["unreadable_count"] == 1 and facts["errors"]["vanished_count"] == 0
    assert samples(facts) == [(4242, "stat", "permission denied")]
    assert facts["summary"]["unkillable_rss_kb"] < HALF  # the java process could not be counted


def test_eperm_from_hidepid_noaccess_is_permission_denied(tmp_path, monkeypatch):
    deny(monkeypatch, 4242, "oom_score_adj", errno.EPERM)
    facts = gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))
    assert samples(facts) == [(4242, "oom_score_adj", "permission denied")]
    assert facts["errors"]["unreadable_count"] == 1


def test_absent_file_of_a_live_process_is_not_vanished(tmp_path):
    tree = vendor_tree(tmp_path, extra=[dict(JAVA, missing=["stat"])])
    facts = gather_oom_facts(tree)
    assert samples(facts) == [(4242, "stat", "absent")]
    assert facts["errors"]["unreadable_count"] == 1 and facts["errors"]["vanished_count"] == 0


def test_absent_file_in_a_removed_pid_directory_is_vanished(tmp_path, monkeypatch):
    tree = vendor_tree(tmp_path, extra=[JAVA])
    real = proc_reader.read_small

    def exit_first(path):
        if path.endswith(os.sep + "4242" + os.sep + "stat"):
            shutil.rmtree(os.path.join(tree, "4242"))
        return real(path)
    monkeypatch.setattr(proc_reader, "read_small", exit_first)
    facts = gather_oom_facts(tree)
    assert samples(facts) == [(4242, "stat", "vanished")]
    assert facts["errors"]["vanished_count"] == 1 and facts["errors"]["unreadable_count"] == 0


def test_esrch_is_vanished_even_with_the_directory_present(tmp_path, monkeypatch):
    deny(monkeypatch, 4242, "stat", errno.ESRCH)
    facts = gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))
    assert samples(facts) == [(4242, "stat", "vanished")] and facts["errors"]["unreadable_count"] == 0


def test_unreadable_detail_file_of_a_returned_row(tmp_path, monkeypatch):
    deny(monkeypatch, 4242, "cmdline")
    facts = gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))
    assert samples(facts) == [(4242, "cmdline", "permission denied")] and facts["errors"]["unreadable_count"] == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_unprivileged_reader_of_a_mode_000_stat():
    # Root reads through file modes, so the scan runs in a child that dropped to nobody.
    top = tempfile.mkdtemp(prefix="oomguard-unreadable-")
    try:
        os.chmod(top, 0o755)
        tree = vendor_tree(os.path.join(top, "proc"), extra=[JAVA])
        os.chmod(os.path.join(tree, "4242", "stat"), 0)
        code = ("import json, os;"
                "from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts;"
                "from ansible_collections.oomguard.fleet.plugins.module_utils.exposure import assess;"
                "os.setgid(65534); os.setuid(65534);"
                "facts = gather_oom_facts(%r);"
                "print(json.dumps([facts['errors'], assess({'oom': facts})]))" % tree)
        root = os.path.abspath(oom_facts.__file__).rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=root))
        errors, verdict = json.loads(out.stdout)
        assert errors["unreadable_count"] == 1 and errors["samples"] == [{"pid": 4242, "file": "stat", "error": "permission denied"}]
        assert verdict["level"] == "unknown" and "become: true" in verdict["reason"]
    finally:
        shutil.rmtree(top)


# ------------------------------------------------------------------ facts: hidepid=invisible


def _mountinfo(tree, options):
    with open(os.path.join(tree, "self", "mountinfo"), "w") as handle:
        handle.write("22 1 0:5 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
        handle.write("25 22 0:21 / %s rw,nosuid,nodev,noexec,relatime shared:12 - proc proc %s\n" % (tree, options))


@pytest.mark.parametrize("options, hidden", [
    ("rw,hidepid=invisible", "invisible"),
    ("rw,hidepid=2", "2"),
    ("rw,hidepid=noaccess", None),  # pids are listed; their reads fail and are counted
    ("rw", None),
    ("rw,hidepid=invisible,gid=4242", None),  # a member of the gid= group sees every process
])
def test_hidepid_invisible_is_reported_for_an_unprivileged_reader(tmp_path, monkeypatch, options, hidden):
    tree = vendor_tree(tmp_path)
    _mountinfo(tree, options)
    monkeypatch.setattr(oom_facts.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(oom_facts.os, "getgroups", lambda: [1000, 4242])
    monkeypatch.setattr(oom_facts.os, "getegid", lambda: 1000)
    assert gather_oom_facts(tree)["errors"]["hidepid"] == hidden


def test_hidepid_does_not_hide_from_root(tmp_path, monkeypatch):
    tree = vendor_tree(tmp_path)
    _mountinfo(tree, "rw,hidepid=invisible")
    monkeypatch.setattr(oom_facts.os, "geteuid", lambda: 0)
    assert gather_oom_facts(tree)["errors"]["hidepid"] is None


def test_unreadable_mountinfo_is_no_hidepid(tmp_path):
    assert gather_oom_facts(vendor_tree(tmp_path))["errors"]["hidepid"] is None


# ------------------------------------------------------------------ verdict


def test_unreadable_process_makes_the_verdict_unknown_with_the_fix(tmp_path, monkeypatch):
    deny(monkeypatch, 4242)
    verdict = ex.assess({"oom": gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))}, host="web01")
    assert verdict["level"] == "unknown"
    assert verdict["reason"] == (
        "1 process(es) could not be read (pid 4242 stat: permission denied); the memory they hold is not counted, "
        "so the verdict could be too low: run the task with become: true")
    assert verdict["summary"].startswith("web01: unknown (1 process(es) could not be read")


def test_findings_of_the_readable_processes_are_kept(tmp_path, monkeypatch):
    deny(monkeypatch, 29219)  # systemd-udevd unreadable, the java at -1000 readable
    verdict = ex.assess({"oom": gather_oom_facts(vendor_tree(tmp_path, extra=[JAVA]))}, host="web01")
    assert verdict["level"] == "unknown"
    assert ("OOM001", "critical") in [(f["id"], f["severity"]) for f in verdict["findings"]]
    assert [f["pid"] for f in verdict["flagged"]] == [4242]
    assert "OOM001/critical" in verdict["summary"]


def test_vanished_processes_keep_the_verdict(tmp_path):
    oom = gather_oom_facts(vendor_tree(tmp_path))
    oom["errors"] = {"count": 3, "vanished_count": 3, "unreadable_count": 0, "hidepid": None,
                     "samples": [{"pid": 7, "file": "stat", "error": "vanished"}]}
    assert ex.assess({"oom": oom})["level"] == "ok"


def test_facts_without_the_error_breakdown_are_judged_by_their_samples(tmp_path):
    oom = gather_oom_facts(vendor_tree(tmp_path))
    oom["errors"] = {"count": 2, "samples": [{"pid": 7, "file": "stat", "error": "vanished"},
                                             {"pid": 8, "file": "stat", "error": "permission denied"}]}
    verdict = ex.assess({"oom": oom})
    assert verdict["level"] == "unknown" and "pid 8 stat: permission denied" in verdict["reason"]
    oom["errors"]["samples"].pop()
    assert ex.assess({"oom": oom})["level"] == "ok"


def test_hidepid_makes_the_verdict_unknown(tmp_path):
    oom = gather_oom_facts(vendor_tree(tmp_path))
    oom["errors"]["hidepid"] = "invisible"
    verdict = ex.assess({"oom": oom})
    assert verdict["level"] == "unknown"
    assert "hidepid=invisible" in verdict["reason"] and "become: true" in verdict["reason"]


def test_many_unreadable_processes_name_a_few(tmp_path):
    oom = gather_oom_facts(vendor_tree(tmp_path))
    oom["errors"] = {"count": 40, "vanished_count": 2, "unreadable_count": 38, "hidepid": None,
                     "samples": [{"pid": p, "file": "stat", "error": "permission denied"} for p in range(10, 20)]}
    reason = ex.assess({"oom": oom})["reason"]
    assert reason.startswith("38 process(es) could not be read (pid 10 stat: permission denied, ")
    assert "pid 12 stat" in reason and "pid 13 stat" not in reason and ", ...)" in reason
