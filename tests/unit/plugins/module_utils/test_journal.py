# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import journal as jr


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_intent_and_outcome_are_appended_owner_only(tmp_path):
    path = str(tmp_path / "state" / "journal.jsonl")
    journal = jr.Journal(path, "run-1")
    rid = journal.intent("runtime", pid=5, old=-1000, new=0)
    journal.outcome(rid, "runtime", "done", pid=5)
    journal.mark("rollback-complete", rollback_of="run-0")
    records, bad = jr.read_records(path)
    assert bad == []
    assert [(r["op"], r["state"]) for r in records] == [("runtime", "intent"), ("runtime", "done"), ("rollback-complete", "done")]
    assert records[0]["id"] == records[1]["id"] and records[0]["old"] == -1000 and records[0]["run_id"] == "run-1"
    assert mode(path) == 0o600 and mode(os.path.dirname(path)) == 0o700


def test_existing_modes_nobody_else_can_write_are_left_alone(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    path = state / "journal.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    jr.Journal(str(path), "run-1").mark("note")
    assert mode(path) == 0o644 and mode(state) == 0o755


def test_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(jr.JournalError, match="Failed to create the journal directory .*: Failed to create the directory .*Not a directory"):
        jr.Journal(str(tmp_path / "file" / "sub" / "journal.jsonl"), "r").mark("note")


def test_journal_path_that_is_a_directory_is_a_clear_error(tmp_path):
    (tmp_path / "journal.jsonl").mkdir()
    with pytest.raises(jr.JournalError, match="Failed to open the journal .*journal.jsonl: Is a directory"):
        jr.Journal(str(tmp_path / "journal.jsonl"), "r").mark("note")
    with pytest.raises(jr.JournalError, match="Failed to read the journal: .* is a directory, not a regular file"):
        jr.read_records(str(tmp_path / "journal.jsonl"))


def test_write_failure_is_a_clear_error(tmp_path, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jr.os, "write", full)
    with pytest.raises(jr.JournalError, match="Failed to write the journal .*No space left"):
        jr.Journal(str(tmp_path / "j.jsonl"), "r").mark("note")


def test_torn_and_foreign_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"op": "runtime", "state": "intent", "run_id": "a"}\n[1, 2]\n\n{"op": "dropin", "sta')
    records, bad = jr.read_records(str(path))
    assert len(records) == 1 and bad == [2, 4]
    assert jr.read_records(str(tmp_path / "missing.jsonl")) == ([], [])


def test_run_queries():
    records = [
        {"run_id": "a", "op": "runtime", "state": "intent"},
        {"run_id": "a", "op": "runtime", "state": "done"},
        {"run_id": "b", "op": "dropin", "state": "intent"},
        {"run_id": "c", "op": "rollback-dropin", "state": "intent", "rollback_of": "b"},
        {"run_id": "c", "op": "rollback-complete", "state": "done", "rollback_of": "b"},
    ]
    assert jr.latest_change_run(records) == "b"
    assert jr.latest_change_run(records[3:]) is None
    assert [r["op"] for r in jr.change_intents(records, "a")] == ["runtime"]
    assert jr.rolled_back(records, "b") and not jr.rolled_back(records, "a")
    reused = records + [{"run_id": "b", "op": "runtime", "state": "intent", "pid": 9}]
    assert not jr.rolled_back(reused, "b")  # the id was used again after its rollback
    assert [r.get("pid") for r in jr.change_intents(reused, "b")] == [9]


def test_second_lock_fails_naming_the_holder(tmp_path):
    path = str(tmp_path / "state" / "journal.jsonl")
    first = jr.RunLock(path, "run-1", "remediate").acquire()
    try:
        assert mode(first.path) == 0o600
        with pytest.raises(jr.JournalError) as info:
            jr.RunLock(path, "run-2", "rollback of run-1").acquire()
        msg = str(info.value)
        assert "holds the lock" in msg and "pid %d" % os.getpid() in msg and "run-1" in msg and "(remediate)" in msg
    finally:
        first.release()
    with jr.RunLock(path, "run-2", "remediate") as again:
        assert again.path.endswith("/state/oomguard.lock")
    assert open(again.path, encoding="utf-8").read() == ""  # released: holder info cleared


def test_lock_held_by_a_silent_holder(tmp_path):
    (tmp_path / "oomguard.lock").write_text("garbage")
    fd = os.open(str(tmp_path / "oomguard.lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(jr.JournalError, match="holder unknown"):
            jr.RunLock(str(tmp_path / "journal.jsonl"), "r", "remediate").acquire()
    finally:
        os.close(fd)


def test_lock_failure_other_than_contention(tmp_path, monkeypatch):
    def broken(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(jr.fcntl, "flock", broken)
    with pytest.raises(jr.JournalError, match="Failed to lock .*No locks available"):
        jr.RunLock(str(tmp_path / "journal.jsonl"), "r", "remediate").acquire()


def collections_root():
    """The directory holding ansible_collections/, wherever the collection was copied to."""
    path = os.path.abspath(jr.__file__)
    for _level in range(6):
        path = os.path.dirname(path)
    return path


def test_crash_hook_kills_after_the_intent_is_on_disk(tmp_path):
    path = str(tmp_path / "j.jsonl")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([collections_root(), os.environ.get("PYTHONPATH", "")]))
    code = ("import sys\n"
            "from ansible_collections.oomguard.fleet.plugins.module_utils.journal import Journal\n"
            "j = Journal(sys.argv[1], 'run-x')\n"
            "j.intent('dropin', path='/x')\n"
            "j.intent('runtime', pid=1)\n"
            "print('survived')\n")
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=False,
                          env=dict(env, **{jr.CRASH_HOOK_ENV: "2"}))
    assert proc.returncode == -9 and "survived" not in proc.stdout
    records, _bad = jr.read_records(path)
    assert [r["op"] for r in records] == ["dropin", "runtime"]
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "k.jsonl")], capture_output=True, text=True, check=False,
                          env=dict(env, **{jr.CRASH_HOOK_ENV: "not-a-number"}))
    assert proc.returncode == 0 and "survived" in proc.stdout
    assert json.loads(open(str(tmp_path / "k.jsonl"), encoding="utf-8").readline())["state"] == "intent"


# No symlink followed, no parent chmodded (the journal, its lock, their directory)

def test_lock_symlink_is_refused_and_its_target_untouched(tmp_path):
    (tmp_path / "precious").write_text("keep me\n")
    os.symlink(str(tmp_path / "precious"), str(tmp_path / "oomguard.lock"))
    with pytest.raises(jr.JournalError, match=r"oomguard.lock is a symlink \(to .*precious\)"):
        jr.RunLock(str(tmp_path / "journal.jsonl"), "r", "remediate").acquire()
    assert (tmp_path / "precious").read_text() == "keep me\n"


def test_journal_symlink_is_refused_and_its_target_untouched(tmp_path):
    (tmp_path / "precious").write_text("keep me\n")
    os.chmod(str(tmp_path / "precious"), 0o644)
    os.symlink(str(tmp_path / "precious"), str(tmp_path / "journal.jsonl"))
    with pytest.raises(jr.JournalError, match=r"journal.jsonl is a symlink \(to .*precious\).*Remove the symlink"):
        jr.Journal(str(tmp_path / "journal.jsonl"), "r").mark("note")
    assert (tmp_path / "precious").read_text() == "keep me\n" and mode(tmp_path / "precious") == 0o644
    with pytest.raises(jr.JournalError, match="is a symlink"):
        jr.read_records(str(tmp_path / "journal.jsonl"))


def test_journal_directory_symlink_is_refused_and_its_target_not_chmodded(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.chmod(str(tmp_path / "elsewhere"), 0o755)
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "state"))
    path = str(tmp_path / "state" / "journal.jsonl")
    with pytest.raises(jr.JournalError, match=r"state is a symlink \(to .*elsewhere\)"):
        jr.Journal(path, "r").mark("note")
    with pytest.raises(jr.JournalError, match="is a symlink"):
        jr.RunLock(path, "r", "remediate").acquire()
    assert mode(tmp_path / "elsewhere") == 0o755 and os.listdir(str(tmp_path / "elsewhere")) == []


@pytest.mark.parametrize("dir_mode", [0o777, 0o775, 0o1777])
def test_group_or_world_writable_journal_directory_is_refused_not_chmodded(tmp_path, dir_mode):
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(str(state), dir_mode)
    with pytest.raises(jr.JournalError, match="writable by .*chmod go-w"):
        jr.Journal(str(state / "journal.jsonl"), "r").mark("note")
    with pytest.raises(jr.JournalError, match="writable by"):
        jr.RunLock(str(state / "journal.jsonl"), "r", "remediate").acquire()
    assert mode(state) == dir_mode and os.listdir(str(state)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_journal_directory_or_file_of_another_user_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(str(state), 1000, 1000)
    with pytest.raises(jr.JournalError, match="owned by uid 1000"):
        jr.Journal(str(state / "journal.jsonl"), "r").mark("note")
    os.chown(str(state), 0, 0)
    (state / "journal.jsonl").write_text("")
    os.chown(str(state / "journal.jsonl"), 1000, 1000)
    with pytest.raises(jr.JournalError, match="owned by uid 1000"):
        jr.Journal(str(state / "journal.jsonl"), "r").mark("note")
    with pytest.raises(jr.JournalError, match="owned by uid 1000"):
        jr.read_records(str(state / "journal.jsonl"))


def test_journal_writable_by_others_is_refused_not_chmodded(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text("")
    os.chmod(str(path), 0o666)
    with pytest.raises(jr.JournalError, match="writable by group or others"):
        jr.Journal(str(path), "r").mark("note")
    with pytest.raises(jr.JournalError, match="writable by group or others"):
        jr.read_records(str(path))
    assert mode(path) == 0o666


# A torn tail, and which unreadable lines may hold a change of a run

def test_a_record_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"run_id": "a", "op": "dropin", "sta')  # a crash mid-write: no newline
    os.chmod(str(path), 0o600)
    jr.Journal(str(path), "b").intent("dropin", path="/etc/x.conf")
    records, bad = jr.read_records(str(path))
    assert [r["run_id"] for r in records] == ["b"] and bad == [1]
    jr.Journal(str(path), "b").mark("note")
    assert path.read_bytes().count(b"\n") == 3  # the newline ending the torn line, then one per record


def test_lines_start_with_their_run_id():
    line = jr.encode_record({"op": "dropin", "run_id": "r-1", "at": "T", "id": "r-1/5/1"})
    assert line.startswith('{"run_id": "r-1", "at": "T", "id"') and json.loads(line)["op"] == "dropin"
    assert jr.encode_record({"run_id": "r"}) == '{"run_id": "r"}'
    assert jr.encode_record({"op": "x"}) == '{"op": "x"}'


def test_invalid_utf8_is_a_bad_line_not_a_crash(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"run_id": "a", "op": "note"}\n\xff\xfe garbage\n{"run_id": "b", "op": "note"}\n')
    records, bad = jr.read_records(str(path))
    assert [r["run_id"] for r in records] == ["a", "b"] and bad == [2]


def journal_of(lines):
    return {"records": [], "lines": [], "bad": [{"line": n, "text": t} for n, t in lines]}


def test_bad_lines_that_may_hold_a_change_of_a_run():
    record = jr.encode_record({"run_id": "run-1", "id": "run-1/1/1", "op": "dropin", "state": "intent", "path": "/x"})
    other = jr.encode_record({"run_id": "run-2", "id": "run-2/1/1", "op": "runtime", "state": "intent"})
    legacy = json.dumps({"run_id": "run-1", "id": "run-1/1/1", "op": "dropin", "state": "intent", "at": "T"}, sort_keys=True)
    journal = journal_of([
        (1, record[:30]),             # names run-1, cut after its run id
        (2, other[:30]),              # names run-2 only
        (3, record[:8]),              # cut before a run id could start: could be anyone's
        (4, other[:25] + record),     # run-2's torn line glued to run-1's whole record (a journal of an earlier version)
        (5, legacy[:40]),             # the key order of earlier versions: the run id comes last, so this names no run
        (6, "[1, 2]"),                # not a record at all
        (7, record[:15]),             # the run id cut to "run-": run-1's or run-2's
        (8, other[:17]),              # the run id cut to "run-2": not run-1's, nor other's
        (9, '{"run_id": "bad\\u12'),  # an escape cut short: a partial id no run here starts with
        (10, '{"run_id": ["x"]}  x'),  # not a string where the run id goes
        (11, '{"run_id": "\\ud800"} x'),  # a complete (if odd) id of another run
    ])
    assert jr.bad_lines_of(journal, "run-1") == [1, 3, 4, 5, 6, 7, 10]
    assert jr.bad_lines_of(journal, "run-2") == [2, 3, 4, 5, 6, 7, 8, 10]
    assert jr.bad_lines_of(journal, "other") == [3, 5, 6, 10]
    assert jr.bad_lines_of(journal, None) == list(range(1, 12))
    assert jr.bad_lines_of(journal_of([(1, '{"run_id": "a\\qb"} x')]), "other") == [1]  # an escape JSON lacks


def intents(*specs):
    """(line, id, at[, extra]) -> a journal of change intents of run R."""
    journal = {"records": [], "lines": [], "bad": []}
    for spec in specs:
        line, record_id, at = spec[:3]
        record = dict(spec[3] if len(spec) > 3 else {}, run_id="R", id=record_id, op="runtime", state="intent", at=at)
        journal["records"].append(record)
        journal["lines"].append(line)
    return journal


def test_changes_of_a_run_out_of_order():
    assert jr.disordered_lines_of(intents((1, "R/5/1", "T1"), (2, "R/5/2", "T1"), (3, "R/9/1", "T2")), "R") == []
    assert jr.disordered_lines_of(intents((1, "R/5/2", "T1"), (2, "R/5/1", "T1")), "R") == [2]  # swapped
    assert jr.disordered_lines_of(intents((1, "R/5/1", "T2"), (2, "R/6/1", "T1")), "R") == [2]  # earlier time
    assert jr.disordered_lines_of(intents((1, "R/5/1", "T1"), (2, "R/5/2", "T1"), (3, "R/5/1", "T1")), "R") == []  # exact copy
    assert jr.disordered_lines_of(intents((1, "R/5/1", "T1", {"old": 1}), (2, "R/5/1", "T1", {"old": 2})), "R") == [2]
    assert jr.disordered_lines_of(intents((1, "R/x/1", "T1"), (2, "S/5/1", "T1"), (3, 7, "T1")), "R") == [1, 2, 3]
    # the same pid in a later module run of the same run id starts again at 1, at a later time
    assert jr.disordered_lines_of(intents((1, "R/5/1", "T1"), (2, "R/5/2", "T1"), (3, "R/5/1", "T2", {"pid": 9})), "R") == []
    other = intents((1, "R/5/2", "T1"), (2, "R/5/1", "T1"))
    other["records"][1]["run_id"] = "S"
    assert jr.disordered_lines_of(other, "R") == []


def test_damage_message_names_the_lines_and_what_to_do():
    assert jr.damage_message("/j", "R", True, [], []) is None
    msg = jr.damage_message("/j", "R", True, [4, 7], [9])
    assert "line(s) 4, 7 cannot be read and may hold a change of run R" in msg and "line(s) 9 hold changes of run R out of order" in msg
    assert "changed nothing" in msg and "sed -n '4p' /j" in msg and "rollback_run_id" not in msg
    assert "the newest run (R, as far" in jr.damage_message("/j", "R", False, [4], []) and "rollback_run_id" in jr.damage_message("/j", "R", False, [4], [])
    assert "a run (the readable lines record no change)" in jr.damage_message("/j", None, False, [1], [])


def test_journal_that_cannot_be_opened_or_read_says_become(tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    path.write_text("")

    def denied(*args):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(jr.sf, "open_nofollow", denied)
    with pytest.raises(jr.JournalError, match="Failed to read the journal .*Permission denied \\(run with become: true\\)"):
        jr.read_records(str(path))
    monkeypatch.undo()

    class Unreadable:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            raise OSError(errno.EIO, "Input/output error")

    def fdopen(fd, mode):
        os.close(fd)
        return Unreadable()

    monkeypatch.setattr(jr.os, "fdopen", fdopen)
    with pytest.raises(jr.JournalError, match="Failed to read the journal .*Input/output error \\(run with become: true\\)"):
        jr.read_records(str(path))
