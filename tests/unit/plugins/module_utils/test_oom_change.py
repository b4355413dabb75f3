# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import errno
import os
import shutil

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import dropins
from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import proc_reader
from ansible_collections.oomguard.fleet.plugins.module_utils import procfs
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.module_utils import rollback_plan as rb
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree, kernel_thread

PROCS = [
    {"pid": 4242, "comm": "java", "oom_score_adj": -1000, "rss_kb": 600000, "unit": "app.service",
     "cmdline": ["java", "-Xmx6g", "-jar", "app.jar"]},
    {"pid": 4243, "comm": "java", "oom_score_adj": -1000, "rss_kb": 1000, "unit": "app.service"},
    {"pid": 77, "comm": "adhoc", "oom_score_adj": -1000},
    {"pid": 1799, "comm": "sshd", "oom_score_adj": -1000, "unit": "ssh.service"},
    {"pid": 90, "comm": "worker", "oom_score_adj": 0, "unit": "app.service"},
    kernel_thread(2, "kthreadd", ppid=0),
]


@pytest.fixture
def proc(tmp_path):
    return build_proc_tree(tmp_path / "proc", processes=PROCS)


def put(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)


def adj(proc_path, pid):
    with open(os.path.join(proc_path, str(pid), "oom_score_adj"), encoding="utf-8") as handle:
        return int(handle.read())


class Systemctl:
    """systemctl as the modules use it. daemon-reload and restart are recorded; ``show`` answers as systemd
    would from the drop-ins under ``root`` as of the last daemon-reload: the unit file's ``unit_value``, then
    the last OOMScoreAdjust= in file-name order. ``hidden`` adds drop-ins the prediction cannot see (such as
    an alias's), ``load_state`` stands for an unknown unit."""

    def __init__(self, fail_on=None, root=None, unit_value=-1000, hidden=(), load_state="loaded"):
        self.calls = []
        self.fail_on = fail_on
        self.root, self.unit_value, self.hidden, self.load_state = root, unit_value, list(hidden), load_state
        self.loaded = {}

    def _load(self, unit):
        by_name = dropins.dropin_files(self.root, unit) if self.root else {}
        paths = [by_name[name] for name in sorted(by_name)] + self.hidden
        value = self.unit_value
        for path in paths:
            found = dropins.oom_setting(dropins.read_file(path), unit)
            if found is not None:
                value = 0 if found == "" else found
        return "OOMScoreAdjust=%d\nDropInPaths=%s\nFragmentPath=/usr/lib/systemd/system/%s\nLoadState=%s\n" % (
            value, " ".join(paths), unit, self.load_state)

    def __call__(self, argv):
        self.calls.append(argv[1:])
        if self.fail_on and self.fail_on in argv:
            return 1, "", "Failed to %s: Access denied" % self.fail_on
        if argv[1] == "daemon-reload":
            self.loaded = {}
        if argv[1] == "show":
            unit = argv[-1]
            if unit not in self.loaded:
                self.loaded[unit] = self._load(unit)
            return 0, self.loaded[unit], ""
        return 0, "", ""

    def acts(self):
        return [call for call in self.calls if call[0] != "show"]


@pytest.mark.parametrize("value,problem", [(None, "value is required"), (-1001, "out of range"), (1001, "out of range"),
                                           (-1000, None), (1000, None), (0, None)])
def test_value_bounds(value, problem):
    found = procfs.oom_score_adj_error(value)
    assert (found is None) if problem is None else (problem in found and "-1000 (never OOM-kill)" in found)


def test_persistable_units():
    assert rem.persistable("app.service") and rem.persistable("x.socket")
    assert not rem.persistable("session-1.scope") and not rem.persistable(None) and not rem.persistable("user.slice")


def test_read_process(proc):
    java = rem.read_process(proc, 4242)
    assert java["name"] == "java" and java["unit"] == "app.service" and java["oom_score_adj"] == -1000
    assert java["cmdline"] == "java -Xmx6g -jar app.jar" and java["starttime"] == 1500 and not java["kthread"]
    assert rem.read_process(proc, 2)["kthread"] is True
    assert rem.read_process(proc, 31337) is None


def test_read_process_a_missing_or_broken_file_is_an_error_not_a_vanished_process(proc):
    """Only a process that is gone is "vanished"; a file missing from a directory that is still there, or
    one that does not parse, is an error naming the file."""
    os.unlink(os.path.join(proc, "77", "oom_score_adj"))
    with pytest.raises(rem.RemediationError, match=r"Failed to read .*/77/oom_score_adj: No such file"):
        rem.read_process(proc, 77)
    with open(os.path.join(proc, "90", "stat"), "w", encoding="utf-8") as handle:
        handle.write("garbage without comm\n")
    with pytest.raises(rem.RemediationError, match=r"Failed to parse .*/90/stat"):
        rem.read_process(proc, 90)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_a_permission_error_is_an_error_that_says_become(proc, monkeypatch, code):
    real_read = proc_reader.read_small

    def hidepid(path):
        if path.endswith("4242/stat"):
            raise PermissionError(code, os.strerror(code), path)
        return real_read(path)

    monkeypatch.setattr(proc_reader, "read_small", hidepid)
    for call in (lambda: rem.read_process(proc, 4242), lambda: rem.select_processes(proc, name="java"),
                 lambda: rem.select_listed(proc, [{"pid": 4242, "name": "java"}])):
        with pytest.raises(rem.RemediationError, match=r"4242/stat: .*run the task with become: true"):
            call()


def test_esrch_and_a_vanished_directory_are_gone(proc, monkeypatch):
    for name in ("read_small", "read_bytes"):
        real_read = getattr(proc_reader, name)

        def exited(path, _real=real_read):
            if "/4242/" in path:
                raise ProcessLookupError(errno.ESRCH, "No such process", path)
            return _real(path)
        monkeypatch.setattr(proc_reader, name, exited)
    assert rem.read_process(proc, 4242) is None
    shutil.rmtree(os.path.join(proc, "77"))
    assert rem.read_process(proc, 77) is None


def test_selectors_combine(proc, monkeypatch):
    def pids(**kw):
        return [p["pid"] for p in rem.select_processes(proc, **kw)[0]]

    assert pids(name="java") == [4242, 4243]
    assert pids(unit="app.service") == [90, 4242, 4243]
    assert pids(unit="app.service", name="worker") == [90]
    assert pids(cmdline=r"-Xmx\d+g") == [4242]
    assert pids(pid=77) == [77] and pids(pid=77, name="java") == [] and pids(pid=2) == []
    shutil.rmtree(os.path.join(proc, "4243"))
    real_listdir = os.listdir
    monkeypatch.setattr(rem.os, "listdir", lambda path: real_listdir(path) + ["555"])  # listed, then gone: counted
    found, vanished = rem.select_processes(proc, name="java")
    assert [p["pid"] for p in found] == [4242] and vanished == 1
    found, vanished = rem.select_processes(proc, cmdline="java")
    assert [p["pid"] for p in found] == [4242] and vanished == 1
    assert rem.select_processes(proc)[1] == 1  # no selector: read in full, still counted


def test_plan_runtime_dropins_and_unpersisted(proc, tmp_path):
    sysdir = str(tmp_path / "root")
    procs = rem.select_processes(proc, cmdline="java|adhoc")[0]
    the_plan = rem.plan(procs, 0, "systemd", sysdir)
    assert [(i["pid"], i["old"], i["new"]) for i in the_plan["runtime"]] == [(77, -1000, 0), (4242, -1000, 0), (4243, -1000, 0)]
    assert [d["unit"] for d in the_plan["dropins"]] == ["app.service"]
    assert the_plan["dropins"][0]["previous"] is None and "OOMScoreAdjust=0\n" in the_plan["dropins"][0]["content"]
    assert [u["pid"] for u in the_plan["unpersisted"]] == [77]
    assert rem.plan(procs, 0, "none", sysdir)["dropins"] == [] and rem.plan(procs, 0, "none", sysdir)["unpersisted"] == []
    diffs = rem.plan_diff(the_plan)
    assert diffs[0]["before"] == "" and diffs[0]["before_header"].endswith("app.service.d/zz-oomguard.conf")
    assert diffs[1] == {"before_header": "pid 77 (adhoc) oom_score_adj", "after_header": "pid 77 (adhoc) oom_score_adj",
                        "before": "-1000\n", "after": "0\n"}


def test_plan_is_empty_when_everything_is_in_place(proc, tmp_path):
    sysdir = str(tmp_path / "root")
    put(rem.dropin_path(rem.systemd_dir(sysdir), "app.service"), rem.dropin_content(0))
    procs = rem.select_processes(proc, name="worker")[0]
    the_plan = rem.plan(procs, 0, "systemd", sysdir)
    assert the_plan["runtime"] == [] and the_plan["dropins"] == [] and [u["pid"] for u in the_plan["unchanged"]] == [90]


def test_unit_selector_writes_the_dropin_without_a_process(proc, tmp_path):
    the_plan = rem.plan([], 0, "systemd", str(tmp_path / "root"), unit="stopped.service")
    assert [d["unit"] for d in the_plan["dropins"]] == ["stopped.service"]
    assert rem.plan([], 0, "systemd", str(tmp_path / "root"), unit="x.scope")["dropins"] == []


def test_apply_journals_before_each_change_and_runs_systemctl(proc, tmp_path):
    journal = jr.Journal(str(tmp_path / "state" / "journal.jsonl"), "run-1")
    procs = rem.select_processes(proc, name="java")[0]
    the_plan = rem.plan(procs, 0, "systemd", str(tmp_path / "root"))
    systemctl = Systemctl(root=str(tmp_path / "root"))
    outcome = rem.apply(the_plan, journal, proc, True, systemctl, restart=True)
    assert systemctl.acts() == [["daemon-reload"], ["restart", "app.service"]]
    assert outcome["daemon_reload"] and outcome["restarted"] == ["app.service"]
    assert adj(proc, 4242) == 0 and adj(proc, 4243) == 0
    records = jr.read_records(journal.path)[0]
    expected = [("dropin", "intent"), ("dropin", "done"), ("runtime", "intent"), ("runtime", "done"),
                ("runtime", "intent"), ("runtime", "done")]
    assert [(r["op"], r["state"]) for r in records] == expected
    assert records[0]["previous"] is None and records[0]["dir_created"] is True
    rows = rem.contract_changes(the_plan, outcome, "systemd")
    assert rows[0] == {"pid": 4242, "name": "java", "unit": "app.service", "old": -1000, "new": 0, "persist": "systemd",
                       "dropin": the_plan["dropins"][0]["path"]}


def test_apply_without_systemd_never_calls_systemctl(proc, tmp_path):
    journal = jr.Journal(str(tmp_path / "j.jsonl"), "run-1")
    procs = rem.select_processes(proc, pid=4242)[0]
    systemctl = Systemctl()
    outcome = rem.apply(rem.plan(procs, 0, "systemd", str(tmp_path / "root")), journal, proc, False, systemctl, restart=True)
    assert systemctl.calls == [] and outcome["daemon_reload"] is False and outcome["restarted"] == []


def test_failed_daemon_reload_keeps_the_partial_outcome(proc, tmp_path):
    journal = jr.Journal(str(tmp_path / "j.jsonl"), "run-1")
    procs = rem.select_processes(proc, pid=4242)[0]
    with pytest.raises(rem.RemediationError, match="Failed to run systemctl daemon-reload: Failed to daemon-reload") as info:
        rem.apply(rem.plan(procs, 0, "systemd", str(tmp_path / "root")), journal, proc, True, Systemctl("daemon-reload"))
    assert [d["unit"] for d in info.value.partial["dropins"]] == ["app.service"]
    assert adj(proc, 4242) == -1000


def test_process_gone_or_pid_reused_between_plan_and_write(proc, tmp_path):
    journal = jr.Journal(str(tmp_path / "j.jsonl"), "run-1")
    procs = rem.select_processes(proc, name="java")[0]
    the_plan = rem.plan(procs, 0, "none", str(tmp_path / "root"))
    shutil.rmtree(os.path.join(proc, "4242"))
    build_proc_tree(proc, processes=[{"pid": 4243, "comm": "java", "oom_score_adj": -1000}])
    with open(os.path.join(proc, "4243", "stat"), encoding="utf-8") as handle:
        stat = handle.read()
    with open(os.path.join(proc, "4243", "stat"), "w", encoding="utf-8") as handle:
        handle.write(stat.replace(" 1500 ", " 9999 "))  # a new process that got the same pid
    outcome = rem.apply(the_plan, journal, proc, False, Systemctl())
    assert [v["pid"] for v in outcome["vanished"]] == [4242, 4243] and outcome["processes"] == []
    assert adj(proc, 4243) == -1000
    records = jr.read_records(journal.path)[0]
    assert [r["state"] for r in records] == ["intent", "vanished", "intent", "vanished"]


@pytest.mark.parametrize("error,status", [(PermissionError(errno.EACCES, "Permission denied"), "refused"),
                                          (ProcessLookupError(errno.ESRCH, "No such process"), "vanished"),
                                          (OSError(errno.ESRCH, "No such process"), "vanished")])
def test_kernel_answers_on_write(proc, monkeypatch, error, status):
    item = {"pid": 4242, "starttime": 1500, "new": 0}
    real_open = open

    def kernel(path, mode="r", **kw):
        if "w" in mode:
            raise error
        return real_open(path, mode, **kw)

    monkeypatch.setattr(rem, "open", kernel, raising=False)
    assert rem.set_runtime(proc, item) == status


def test_unexpected_write_error_propagates(proc, monkeypatch):
    real_open = open

    def kernel(path, mode="r", **kw):
        if "w" in mode:
            raise OSError(errno.EIO, "I/O error")
        return real_open(path, mode, **kw)

    monkeypatch.setattr(rem, "open", kernel, raising=False)
    with pytest.raises(OSError, match="I/O error"):
        rem.set_runtime(proc, {"pid": 4242, "starttime": 1500, "new": 0})


def test_refusal_message_names_the_capability(proc):
    with open(os.path.join(proc, "self", "status"), encoding="utf-8") as handle:
        assert "CapBnd" in handle.read()
    msg = rem.refusal_message(4242, "java", 0, -1000, proc)
    assert "EACCES" in msg and "CAP_SYS_RESOURCE, which this module lacks" in msg and "from 0 to -1000" in msg
    with open(os.path.join(proc, "4242", "status"), "a", encoding="utf-8") as handle:
        handle.write("CapEff:\t000001ffffffffff\n")
    assert rem.has_cap_sys_resource(proc) is True  # /proc/self -> 4242 in this tree
    assert "which this module has" in rem.refusal_message(4242, "java", 0, -1000, proc)


def test_restore_file(tmp_path):
    path = str(tmp_path / "etc" / "a.service.d" / "50-oomguard.conf")
    put(path, "x\n")
    rem.put_dropin(path, "old\n", remove_dir=True)
    assert open(path, encoding="utf-8").read() == "old\n"
    with open(os.path.join(os.path.dirname(path), "10-other.conf"), "w", encoding="utf-8") as handle:
        handle.write("[Service]\n")
    rem.put_dropin(path, None, remove_dir=True)
    assert not os.path.exists(path) and os.path.isdir(os.path.dirname(path))  # someone else's drop-in stays
    os.unlink(os.path.join(os.path.dirname(path), "10-other.conf"))
    rem.put_dropin(path, None, remove_dir=True)
    assert not os.path.exists(os.path.dirname(path))


def test_rollback_restores_newest_first_and_is_idempotent(proc, tmp_path):
    sysdir = str(tmp_path / "root")
    path = rem.dropin_path(rem.systemd_dir(sysdir), "app.service")
    put(path, "[Service]\nOOMScoreAdjust=-1000\n")  # the admin's own file at our name
    journal = jr.Journal(str(tmp_path / "j.jsonl"), "run-1")
    for value in (500, 0):  # two changes of the same pid and file in one run
        procs = rem.select_processes(proc, pid=4242)[0]
        rem.apply(rem.plan(procs, value, "systemd", sysdir, force=True), journal, proc, False, Systemctl())
    assert adj(proc, 4242) == 0
    records = jr.read_records(journal.path)[0]
    assert rb.resolve_run(records, None) == "run-1" and rb.resolve_run(records, "other") == "other"
    the_plan = rb.plan_rollback(records, "run-1", proc)
    assert [(r["old"], r["new"]) for r in the_plan["runtime"]] == [(0, 500), (500, -1000)]
    diffs = rem.plan_diff(the_plan)
    assert diffs[0]["after"] == rem.dropin_content(500) and diffs[-1]["after"] == "-1000\n"
    undo = jr.Journal(journal.path, "run-2")
    outcome = rem.apply(the_plan, undo, proc, True, Systemctl(root=sysdir))
    assert adj(proc, 4242) == -1000 and open(path, encoding="utf-8").read() == "[Service]\nOOMScoreAdjust=-1000\n"
    assert outcome["daemon_reload"] and [d["action"] for d in outcome["dropins"]] == ["restored", "restored"]
    records = jr.read_records(journal.path)[0]
    assert rb.plan_rollback(records, "run-1", proc)["already"] is True
    assert rb.plan_rollback(records, None, proc)["runtime"] == []


def test_rollback_leaves_what_others_changed_and_skips_gone_processes(proc, tmp_path):
    sysdir = str(tmp_path / "root")
    journal = jr.Journal(str(tmp_path / "j.jsonl"), "run-1")
    procs = rem.select_processes(proc, name="java")[0]
    rem.apply(rem.plan(procs, 0, "systemd", sysdir), journal, proc, False, Systemctl())
    put(rem.dropin_path(rem.systemd_dir(sysdir), "app.service"), "[Service]\nOOMScoreAdjust=100\n")
    with open(os.path.join(proc, "4243", "oom_score_adj"), "w", encoding="utf-8") as handle:
        handle.write("300\n")
    build_proc_tree(proc, processes=[{"pid": 77, "comm": "adhoc", "oom_score_adj": 0}])
    shutil.rmtree(os.path.join(proc, "4242"))
    records = jr.read_records(journal.path)[0]
    the_plan = rb.plan_rollback(records, "run-1", proc)
    reasons = sorted(s["reason"] for s in the_plan["not_restored"])
    assert the_plan["runtime"] == [] and the_plan["dropins"] == [] and len(reasons) == 3
    assert "changed by someone else" in reasons[0] and "neither the journalled old -1000 nor new 0" in reasons[1]
    assert "process exited" in reasons[2]


def test_refused_rollback_is_not_marked_complete(proc, tmp_path, monkeypatch):
    journal = jr.Journal(str(tmp_path / "j.jsonl"), "run-1")
    procs = rem.select_processes(proc, pid=4242)[0]
    rem.apply(rem.plan(procs, 0, "none", str(tmp_path / "root")), journal, proc, False, Systemctl())
    records = jr.read_records(journal.path)[0]
    monkeypatch.setattr(rem, "set_runtime", lambda proc_path, item: "refused")
    outcome = rem.apply(rb.plan_rollback(records, "run-1", proc), jr.Journal(journal.path, "run-2"), proc, False, Systemctl())
    assert [r["pid"] for r in outcome["refused"]] == [4242]
    records = jr.read_records(journal.path)[0]
    assert not jr.rolled_back(records, "run-1") and records[-1]["state"] == "refused"


def test_rollback_of_an_empty_journal():
    assert rb.plan_rollback([], None, "/proc") == {"run_id": None, "already": False, "dropins": [], "runtime": [], "not_restored": [],
                                                   "rollback_of": None, "value": None, "units": [], "dropin_units": []}


@pytest.mark.parametrize("unit", ["../../x.service", "app", "app.service/../x.service", "a b.service", ".service",
                                  "app.unknown", "x" * 250 + ".service", "app.service\n", ""])
def test_invalid_unit_names(unit):
    assert "is not a valid systemd unit name" in rem.unit_name_error(unit)


@pytest.mark.parametrize("unit", [None, "app.service", "getty@tty1.service", "getty@.service", "dev-sda1.swap",
                                  "systemd-fsck@dev-disk-by\\x2duuid-1.service", "a:b_c.d-e.socket", "x" * 247 + ".service"])
def test_valid_unit_names(unit):
    assert rem.unit_name_error(unit) is None


def test_catastrophic_cmdline_regex_is_bounded(proc):
    """(a+)+$ against 40 a's and a '!' takes 2^40 steps in Python's re; the bound ends it."""
    build_proc_tree(proc, processes=[{"pid": 500, "comm": "evil", "oom_score_adj": 0, "cmdline": ["a" * 40 + "!"]}])
    import time

    start = time.monotonic()
    with pytest.raises(rem.RemediationError, match=r"did not finish matching .* within 0.5 seconds.*backtracks catastrophically"):
        rem.select_processes(proc, cmdline=r"(a+)+$", match_seconds=0.5)
    assert time.monotonic() - start < 5
    found = rem.select_processes(proc, cmdline=r"^a+!$", match_seconds=0.5)[0]
    assert [p["pid"] for p in found] == [500]


def test_bounded_matches_many_texts():
    import re

    texts = ["x%d" % i for i in range(100000)]  # more than one pipe buffer of answers
    flags = rem.bounded_matches(re.compile(r"7$"), texts)
    assert len(flags) == 100000 and sum(flags) == 10000 and rem.bounded_matches(re.compile("x"), []) == []


def test_remediation_errors_are_the_collections_errors(proc):
    from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError

    with pytest.raises(OomguardError, match="not a valid regular expression"):
        rem.select_processes(proc, cmdline="(")
