# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safe-write primitive: every refusal and every cleanup branch. The unit tests run as root,
so a "foreign owner" is made with os.chown to uid 1000."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible_collections.oomguard.fleet.plugins.module_utils import safefile as sf

FOREIGN = 1000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to a foreign uid")


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def leftovers(directory):
    return sorted(name for name in os.listdir(str(directory)) if name.endswith(".tmp"))


# ensure_dir / check_dir

def test_ensure_dir_creates_missing_parents_with_the_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        assert sf.ensure_dir(str(tmp_path / "a" / "b"), 0o755) is True
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == 0o755 and mode(tmp_path / "a" / "b") == 0o755
    assert sf.ensure_dir(str(tmp_path / "a" / "b"), 0o700) is False
    assert mode(tmp_path / "a" / "b") == 0o755  # existing: never chmodded


def test_ensure_dir_leaves_an_existing_directory_mode_alone(tmp_path):
    (tmp_path / "d").mkdir()
    os.chmod(str(tmp_path / "d"), 0o751)
    assert sf.ensure_dir(str(tmp_path / "d"), 0o700) is False and mode(tmp_path / "d") == 0o751


def test_ensure_dir_refuses_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(sf.SafeFileError, match=r"link is a symlink \(to .*real\).*Replace it with a real directory"):
        sf.ensure_dir(str(tmp_path / "link"))


def test_ensure_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(sf.SafeFileError, match="is a file, not a directory; move it away"):
        sf.ensure_dir(str(tmp_path / "f"))


def test_ensure_dir_refuses_a_foreign_owner(tmp_path):
    (tmp_path / "d").mkdir()
    os.chown(str(tmp_path / "d"), FOREIGN, FOREIGN)
    with pytest.raises(sf.SafeFileError, match="owned by uid 1000, neither root nor .*chown root"):
        sf.ensure_dir(str(tmp_path / "d"))


@pytest.mark.parametrize("dir_mode,who", [(0o777, "group and others"), (0o770, "its group"), (0o757, "others")])
def test_ensure_dir_refuses_group_or_world_write_without_sticky(tmp_path, dir_mode, who):
    (tmp_path / "d").mkdir()
    os.chmod(str(tmp_path / "d"), dir_mode)
    with pytest.raises(sf.SafeFileError, match="writable by %s .*chmod go-w" % who):
        sf.ensure_dir(str(tmp_path / "d"))
    assert mode(tmp_path / "d") == dir_mode


def test_sticky_world_writable_is_allowed_unless_asked_and_never_chmodded(tmp_path):
    (tmp_path / "shared").mkdir()
    os.chmod(str(tmp_path / "shared"), 0o1777)
    assert sf.ensure_dir(str(tmp_path / "shared"), 0o700) is False
    assert mode(tmp_path / "shared") == 0o1777
    with pytest.raises(sf.SafeFileError, match="sticky bit or not"):
        sf.ensure_dir(str(tmp_path / "shared"), allow_sticky=False)
    assert mode(tmp_path / "shared") == 0o1777


def test_ensure_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(sf.SafeFileError, match="Failed to create the directory .*become: true"):
        sf.ensure_dir(str(tmp_path / "f" / "sub"))


def test_ensure_dir_made_by_someone_else_meanwhile_is_checked_not_claimed(tmp_path, monkeypatch):
    target = tmp_path / "race"

    def racing(path, mode):
        os.mkdir(path, 0o777)
        os.chmod(path, 0o777)
        raise FileExistsError(errno.EEXIST, "File exists", path)

    monkeypatch.setattr(sf, "_make_dir", racing)
    with pytest.raises(sf.SafeFileError, match="writable by group and others"):
        sf.ensure_dir(str(target))
    assert mode(target) == 0o777


def test_check_dir_of_a_missing_directory(tmp_path):
    with pytest.raises(sf.SafeFileError, match="Cannot inspect the directory .*No such file"):
        sf.check_dir(str(tmp_path / "missing"))


def test_ensure_dir_that_cannot_be_inspected(tmp_path, monkeypatch):
    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(sf.os, "lstat", denied)
    with pytest.raises(sf.SafeFileError, match="Cannot inspect the directory .*Permission denied"):
        sf.ensure_dir(str(tmp_path))


# open_nofollow

def test_open_nofollow_creates_with_the_exact_mode(tmp_path):
    old = os.umask(0o077)
    try:
        fd = sf.open_nofollow(str(tmp_path / "f"), os.O_WRONLY | os.O_CREAT, 0o640)
    finally:
        os.umask(old)
    os.close(fd)
    assert mode(tmp_path / "f") == 0o640


def test_open_nofollow_never_chmods_an_existing_file(tmp_path):
    (tmp_path / "f").write_text("keep")
    os.chmod(str(tmp_path / "f"), 0o644)
    fd = sf.open_nofollow(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    assert mode(tmp_path / "f") == 0o644 and (tmp_path / "f").read_text() == "keep"


@pytest.mark.parametrize("flags", [os.O_RDWR | os.O_CREAT, os.O_RDONLY])
def test_open_nofollow_refuses_a_symlink_and_leaves_the_target(tmp_path, flags):
    (tmp_path / "target").write_text("precious")
    os.chmod(str(tmp_path / "target"), 0o644)
    os.symlink(str(tmp_path / "target"), str(tmp_path / "link"))
    with pytest.raises(sf.SafeFileError, match=r"link is a symlink \(to .*target\).*Remove the symlink"):
        sf.open_nofollow(str(tmp_path / "link"), flags, 0o600)
    assert (tmp_path / "target").read_text() == "precious" and mode(tmp_path / "target") == 0o644


def test_open_nofollow_refuses_a_dangling_symlink_without_creating_its_target(tmp_path):
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "link"))
    with pytest.raises(sf.SafeFileError, match="is a symlink"):
        sf.open_nofollow(str(tmp_path / "link"), os.O_WRONLY | os.O_CREAT, 0o600)
    assert not os.path.exists(str(tmp_path / "nowhere"))


def test_open_nofollow_refuses_a_foreign_owner(tmp_path):
    (tmp_path / "f").write_text("x")
    os.chown(str(tmp_path / "f"), FOREIGN, FOREIGN)
    with pytest.raises(sf.SafeFileError, match="File .* is owned by uid 1000"):
        sf.open_nofollow(str(tmp_path / "f"), os.O_RDONLY)


def test_open_nofollow_refuses_a_group_or_world_writable_file(tmp_path):
    (tmp_path / "f").write_text("x")
    os.chmod(str(tmp_path / "f"), 0o666)
    with pytest.raises(sf.SafeFileError, match=r"writable by group or others \(mode 0666\).*chmod go-w"):
        sf.open_nofollow(str(tmp_path / "f"), os.O_RDONLY)
    assert mode(tmp_path / "f") == 0o666


def test_open_nofollow_refuses_a_hard_link_for_writing_only(tmp_path):
    (tmp_path / "f").write_text("x")
    os.link(str(tmp_path / "f"), str(tmp_path / "g"))
    with pytest.raises(sf.SafeFileError, match="has 2 hard links"):
        sf.open_nofollow(str(tmp_path / "g"), os.O_WRONLY | os.O_APPEND)
    os.close(sf.open_nofollow(str(tmp_path / "g"), os.O_RDONLY))


def test_open_nofollow_refuses_a_directory_or_fifo(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(sf.SafeFileError, match="is a directory, not a regular file"):
        sf.open_nofollow(str(tmp_path / "d"), os.O_RDONLY)
    os.mkfifo(str(tmp_path / "p"))
    with pytest.raises(sf.SafeFileError, match="is a special file, not a regular file"):
        sf.open_nofollow(str(tmp_path / "p"), os.O_RDONLY)  # and does not hang


def test_open_nofollow_passes_other_errors_on(tmp_path):
    with pytest.raises(FileNotFoundError):
        sf.open_nofollow(str(tmp_path / "missing"), os.O_RDONLY)


# write_atomic

def test_write_atomic_creates_with_mode_and_parents(tmp_path):
    path = tmp_path / "etc" / "a.d" / "f.conf"
    sf.write_atomic(str(path), "text\n", mode=0o640, dir_mode=0o750)
    assert path.read_text() == "text\n" and mode(path) == 0o640 and mode(path.parent) == 0o750
    sf.write_atomic(str(path), b"bytes\n")
    assert path.read_bytes() == b"bytes\n" and mode(path) == 0o640  # replaced: its mode kept
    assert leftovers(path.parent) == []


def test_write_atomic_keeps_mode_and_owner_of_the_replaced_file(tmp_path):
    path = tmp_path / "f.conf"
    path.write_text("Environment=SECRET=1\n")
    os.chmod(str(path), 0o600)
    os.chown(str(path), FOREIGN, FOREIGN)
    sf.write_atomic(str(path), "new\n", mode=0o644)
    st = os.lstat(str(path))
    assert path.read_text() == "new\n" and stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (FOREIGN, FOREIGN)
    sf.write_atomic(str(path), "again\n", mode=0o644, keep_metadata=False)
    st = os.lstat(str(path))
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.geteuid()


def test_write_atomic_refuses_to_replace_a_symlink(tmp_path):
    (tmp_path / "target").write_text("precious")
    os.symlink(str(tmp_path / "target"), str(tmp_path / "link"))
    with pytest.raises(sf.SafeFileError, match=r"link is a symlink \(to .*target\); it is not replaced"):
        sf.write_atomic(str(tmp_path / "link"), "x")
    assert (tmp_path / "target").read_text() == "precious" and os.path.islink(str(tmp_path / "link"))
    assert leftovers(tmp_path) == []


def test_write_atomic_refuses_a_directory_at_the_path(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(sf.SafeFileError, match="is a directory, not a regular file"):
        sf.write_atomic(str(tmp_path / "d"), "x")


def test_write_atomic_in_a_sticky_shared_directory_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    sf.write_atomic(str(shared / "f"), "x", mode=0o600, dir_mode=0o700)
    assert mode(shared) == 0o1777 and mode(shared / "f") == 0o600


def test_write_atomic_refuses_an_unsafe_directory(tmp_path):
    (tmp_path / "open").mkdir()
    os.chmod(str(tmp_path / "open"), 0o777)
    with pytest.raises(sf.SafeFileError, match="writable by group and others"):
        sf.write_atomic(str(tmp_path / "open" / "f"), "x")
    assert os.listdir(str(tmp_path / "open")) == []


@pytest.mark.parametrize("step", ["write", "fsync", "fchmod", "rename"])
def test_write_atomic_removes_its_temp_file_on_any_failure(tmp_path, monkeypatch, step):
    path = tmp_path / "f"
    path.write_text("old\n")

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.os, step, broken)
    with pytest.raises(sf.SafeFileError, match="Failed to write .*No space left on device"):
        sf.write_atomic(str(path), "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n" and leftovers(tmp_path) == []


def test_write_atomic_cleanup_survives_a_failing_unlink(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(sf.os, "rename", broken)
    monkeypatch.setattr(sf.os, "unlink", broken)
    with pytest.raises(sf.SafeFileError, match="I/O error"):
        sf.write_atomic(str(tmp_path / "f"), "x")


def test_write_atomic_writes_everything_on_short_writes(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(sf.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    sf.write_atomic(str(tmp_path / "f"), "0123456789")
    assert (tmp_path / "f").read_text() == "0123456789"


def test_write_atomic_inspect_failure(tmp_path, monkeypatch):
    real_lstat = os.lstat

    def lstat(path):
        if str(path).endswith("/f"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_lstat(path)

    monkeypatch.setattr(sf.os, "lstat", lstat)
    with pytest.raises(sf.SafeFileError, match="Failed to inspect .*Permission denied"):
        sf.write_atomic(str(tmp_path / "f"), "x")


class FakeSelinuxModule:
    def __init__(self, enabled=True):
        self.enabled = enabled
        self.calls = []

    def selinux_enabled(self):
        return self.enabled

    def selinux_context(self, path):
        self.calls.append(("context", path))
        return ["system_u", "object_r", "systemd_unit_file_t", "s0"]

    def selinux_default_context(self, path):
        self.calls.append(("default", path))
        return ["system_u", "object_r", "etc_t", "s0"]

    def set_context_if_different(self, path, context, changed):
        assert os.path.basename(path).endswith(".tmp") and os.path.exists(path)  # on the temp file, before the rename
        self.calls.append(("set", context[2]))
        return True


def test_write_atomic_labels_the_temp_file_like_the_file_it_replaces(tmp_path):
    path = str(tmp_path / "f")
    module = FakeSelinuxModule()
    sf.write_atomic(path, "new", selinux_module=module)
    assert module.calls == [("default", path), ("set", "etc_t")]
    module.calls = []
    sf.write_atomic(path, "again", selinux_module=module)
    assert module.calls == [("context", path), ("set", "systemd_unit_file_t")]
    disabled = FakeSelinuxModule(enabled=False)
    sf.write_atomic(path, "off", selinux_module=disabled)
    assert disabled.calls == []


# read_meta / restore_meta / make_symlink

def test_meta_round_trip_of_a_foreign_private_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("Environment=SECRET=1\n")
    os.chmod(str(path), 0o600)
    os.chown(str(path), FOREIGN, FOREIGN)
    meta = sf.read_meta(str(path))
    assert meta == {"type": "file", "mode": 0o600, "uid": FOREIGN, "gid": FOREIGN, "target": None}
    sf.write_atomic(str(path), "ours\n", keep_metadata=False)
    assert mode(path) == 0o644
    sf.restore_meta(str(path), meta)
    assert mode(path) == 0o600 and os.lstat(str(path)).st_uid == FOREIGN
    path.unlink()
    sf.write_atomic(str(path), "Environment=SECRET=1\n", meta=meta)
    assert mode(path) == 0o600 and os.lstat(str(path)).st_uid == FOREIGN
    assert sf.read_meta(str(tmp_path / "missing")) is None


def test_symlink_meta_and_restore(tmp_path):
    (tmp_path / "shared.conf").write_text("[Service]\n")
    os.symlink("shared.conf", str(tmp_path / "f"))
    meta = sf.read_meta(str(tmp_path / "f"))
    assert meta["type"] == "symlink" and meta["target"] == "shared.conf"
    os.unlink(str(tmp_path / "f"))
    (tmp_path / "f").write_text("ours")
    sf.make_symlink(str(tmp_path / "f"), meta["target"])
    assert os.readlink(str(tmp_path / "f")) == "shared.conf" and leftovers(tmp_path) == []
    sf.make_symlink(str(tmp_path / "new"), "shared.conf")
    assert os.readlink(str(tmp_path / "new")) == "shared.conf"


def test_make_symlink_refuses_a_directory_and_cleans_up(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    with pytest.raises(sf.SafeFileError, match="is a directory; it is not replaced by a symlink"):
        sf.make_symlink(str(tmp_path / "d"), "x")

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(sf.os, "rename", broken)
    with pytest.raises(sf.SafeFileError, match="Failed to make .* a symlink to x: I/O error"):
        sf.make_symlink(str(tmp_path / "f"), "x")
    monkeypatch.undo()
    assert leftovers(tmp_path) == [] and not os.path.lexists(str(tmp_path / "f"))


def test_restore_meta_refusals(tmp_path, monkeypatch):
    meta = {"type": "file", "mode": 0o600, "uid": 0, "gid": 0, "target": None}
    with pytest.raises(sf.SafeFileError, match="Failed to restore the mode and owner of .*No such file"):
        sf.restore_meta(str(tmp_path / "missing"), meta)
    (tmp_path / "target").write_text("x")
    os.symlink(str(tmp_path / "target"), str(tmp_path / "link"))
    with pytest.raises(sf.SafeFileError, match="Failed to restore"):
        sf.restore_meta(str(tmp_path / "link"), meta)
    (tmp_path / "d").mkdir()
    with pytest.raises(sf.SafeFileError, match="no longer a regular file"):
        sf.restore_meta(str(tmp_path / "d"), meta)

    def denied(*args):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(sf.os, "fchown", denied)
    with pytest.raises(sf.SafeFileError, match="Operation not permitted; run with become: true"):
        sf.restore_meta(str(tmp_path / "target"), meta)


def test_a_symlink_gone_before_it_is_read_is_still_refused(tmp_path, monkeypatch):
    os.symlink(str(tmp_path / "x"), str(tmp_path / "link"))

    def gone(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    monkeypatch.setattr(sf.os, "readlink", gone)
    with pytest.raises(sf.SafeFileError, match=r"link is a symlink \(to \?\)"):
        sf.write_atomic(str(tmp_path / "link"), "x")


def test_ensure_dir_made_by_someone_else_meanwhile_that_is_fine_is_not_claimed(tmp_path, monkeypatch):
    def racing(path, mode):
        os.mkdir(path, 0o755)
        raise FileExistsError(errno.EEXIST, "File exists", path)

    monkeypatch.setattr(sf, "_make_dir", racing)
    assert sf.ensure_dir(str(tmp_path / "race"), 0o700) is False and mode(tmp_path / "race") == 0o755
