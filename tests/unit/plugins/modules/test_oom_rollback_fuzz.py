# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fuzz: whatever happened to the journal (lines torn, glued, duplicated, reordered, lines of
other runs interleaved), oom_rollback never reports success unless every change of the run is
undone on the fixture host (procfs tree and drop-in directory)."""

from __future__ import annotations

import os
import tempfile
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr
from ansible_collections.oomguard.fleet.plugins.module_utils import oom_change as rem
from ansible_collections.oomguard.fleet.plugins.modules import oom_rollback
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

RUN = "oomguard-20261129T020000Z-1"
BEFORE = "oomguard-20261129T010000Z-2"
AFTER = "oomguard-20261129T030000Z-3"
OURS = [4242, 4243, 77]  # the run's processes: two in app.service, one without a unit
THEIRS = [1799, 90]      # the other runs' processes: other units
PROCS = [
    {"pid": 4242, "comm": "java", "oom_score_adj": -1000, "unit": "app.service"},
    {"pid": 4243, "comm": "java", "oom_score_adj": -1000, "unit": "app.service"},
    {"pid": 77, "comm": "adhoc", "oom_score_adj": -1000},
    {"pid": 1799, "comm": "sshd", "oom_score_adj": -1000, "unit": "ssh.service"},
    {"pid": 90, "comm": "worker", "oom_score_adj": -1000, "unit": "db.service"},
]
ADMIN_DROPIN = "[Service]\nOOMScoreAdjust=-1000\n"


class NoSystemctl:
    def __call__(self, argv):
        raise AssertionError("systemctl must not run for a fixture root: %r" % (argv,))


def adj(proc, pid):
    with open(os.path.join(proc, str(pid), "oom_score_adj"), encoding="utf-8") as handle:
        return int(handle.read())


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def change(proc, sysdir, journal, pids, value):
    procs = [p for p in rem.select_processes(proc)[0] if p["pid"] in pids]
    rem.apply(rem.plan(procs, value, "systemd", sysdir), journal, proc, False, NoSystemctl())


def make_host(base, values, admin_dropin, other_before, other_after):
    """Run the real remediation on a fixture host; return (host args, what the run's state was before)."""
    proc = build_proc_tree(os.path.join(base, "proc"), processes=[dict(p) for p in PROCS])
    root = os.path.join(base, "root")
    sysdir = rem.systemd_dir(root)
    path = os.path.join(base, "state", "journal.jsonl")
    app_dropin = rem.dropin_path(sysdir, "app.service")
    if admin_dropin:
        os.makedirs(os.path.dirname(app_dropin))
        with open(app_dropin, "w", encoding="utf-8") as handle:
            handle.write(ADMIN_DROPIN)
    if other_before:
        change(proc, sysdir, jr.Journal(path, BEFORE), THEIRS, 0)
    before = {"adj": dict((pid, adj(proc, pid)) for pid in OURS), "dropin": read(app_dropin)}
    ours = jr.Journal(path, RUN)  # one module process: its record ids count on from one value to the next
    for value in values:
        change(proc, sysdir, ours, OURS, value)
    if other_after:
        change(proc, sysdir, jr.Journal(path, AFTER), THEIRS, 500)
    return {"proc_path": proc, "root": root, "journal": path}, before, app_dropin


def foreign_line(kind, pid):
    record = jr.encode_record({"run_id": "oomguard-20261129T040000Z-4", "id": "oomguard-20261129T040000Z-4/9/1",
                               "op": "runtime", "state": "intent", "at": "2026-11-29T04:00:00Z", "pid": pid,
                               "starttime": 1500, "name": "sshd", "old": -1000, "new": 0})
    return record if kind == "whole" else record[:max(1, len(record) * kind // 10)]


OPS = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 60), st.integers(1, 400)),
    st.tuples(st.just("duplicate"), st.integers(0, 60), st.integers(0, 60)),
    st.tuples(st.just("move"), st.integers(0, 60), st.integers(0, 60)),
    st.tuples(st.just("glue"), st.integers(0, 60), st.just(0)),
    st.tuples(st.just("foreign"), st.integers(0, 60), st.sampled_from(["whole", 1, 3, 5, 8])),
)


def mutate(lines, ops):
    lines = list(lines)
    for op, index, arg in ops:
        if not lines:
            break
        i = index % len(lines)
        if op == "truncate":
            lines[i] = lines[i][:max(1, arg % max(1, len(lines[i])))]
        elif op == "duplicate":
            lines.insert(arg % (len(lines) + 1), lines[i])
        elif op == "move":
            line = lines.pop(i)
            lines.insert(arg % (len(lines) + 1), line)
        elif op == "glue" and i + 1 < len(lines):
            lines[i:i + 2] = [lines[i] + lines[i + 1]]
        elif op == "foreign":
            lines.insert(i, foreign_line(arg, THEIRS[0]))
    return lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.sampled_from([[0], [500, 0], [0, 500], [-500]]), admin_dropin=st.booleans(),
       other_before=st.booleans(), other_after=st.booleans(), named=st.booleans(),
       ops=st.lists(OPS, max_size=6))
def test_rollback_never_reports_success_unless_every_change_is_undone(values, admin_dropin, other_before, other_after,
                                                                      named, ops):
    with tempfile.TemporaryDirectory() as base, mock.patch("os.fsync"):  # durability is not under test here; speed is
        host, before, app_dropin = make_host(base, values, admin_dropin, other_before, other_after)
        with open(host["journal"], encoding="utf-8") as handle:
            lines = handle.read().split("\n")[:-1]
        with open(host["journal"], "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in mutate(lines, ops)))
        args = dict(host, rollback_run_id=RUN) if named else dict(host)
        failed, result = run_module(oom_rollback.main, args)
        if failed:
            return
        assert result["rollback_of"] == RUN or not named
        if result["rollback_of"] != RUN:  # not named, and the newest readable run is another one
            return
        after = {"adj": dict((pid, adj(host["proc_path"], pid)) for pid in OURS), "dropin": read(app_dropin)}
        assert after == before, (ops, result)
        if not ops:
            assert result["changed"] and result["journal_damaged_lines"] == []


def test_an_undamaged_journal_rolls_back():
    """The fuzz above is not vacuous: without damage the rollback succeeds and restores everything."""
    with tempfile.TemporaryDirectory() as base:
        host, before, app_dropin = make_host(base, [500, 0], True, True, True)
        failed, result = run_module(oom_rollback.main, dict(host, rollback_run_id=RUN))
        assert not failed and result["changed"]
        assert {"adj": dict((pid, adj(host["proc_path"], pid)) for pid in OURS), "dropin": read(app_dropin)} == before
        assert before == {"adj": {4242: -1000, 4243: -1000, 77: -1000}, "dropin": ADMIN_DROPIN}
