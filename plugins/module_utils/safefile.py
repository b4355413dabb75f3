# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write files on a host without following symlinks or loosening permissions.

Private to the oomguard.fleet collection. Every file the collection writes on a host (the
journal and its lock, systemd drop-ins, the slab baseline) goes through this file:

``ensure_dir(path, mode=0o700, allow_sticky=True)``
    Create a missing directory (and missing parents) with ``mode``; check an existing one
    with ``lstat``. Refused: a symlink, a non-directory, an owner other than the effective
    uid or root, group or world write permission (allowed only with the sticky bit, as on
    ``/tmp``, and only when ``allow_sticky``). A directory this call did not create is never
    chmodded. Returns True when it created ``path``.
``check_dir(path, allow_sticky=True)``
    The same checks on an existing directory, creating nothing.
``open_nofollow(path, flags, mode=0o600)``
    ``os.open`` with ``O_NOFOLLOW | O_CLOEXEC``, then ``fstat``: refused are a symlink, a
    non-regular file, an owner other than the effective uid or root, a file group or world
    may write, and a file with more than one hard link. A file this call creates gets
    exactly ``mode`` (whatever the umask); a file it did not create is never chmodded.
``write_atomic(path, data, mode=0o644, dir_mode=0o755, keep_metadata=True, selinux_module=None, meta=None)``
    Replace ``path`` atomically: a temp file with an unpredictable name in the same
    directory (``O_CREAT | O_EXCL | O_NOFOLLOW``), write, fsync, mode and owner, rename,
    fsync of the directory; the temp file is removed on any failure. Refuses to replace a
    symlink or a non-regular file.
``read_meta(path)`` / ``restore_meta(path, meta)`` / ``make_symlink(path, target)``
    Journal and put back a file's mode, owner and symlink target.

Every refusal raises ``SafeFileError`` with a message saying what is wrong and what to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import os
import stat

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.pycompat import O_CLOEXEC, is_missing

GROUP_WORLD_WRITE = stat.S_IWGRP | stat.S_IWOTH


class SafeFileError(OomguardError):
    """A path the collection refuses to write, or a failed write; the message says what to do."""


def _why(exc):
    return getattr(exc, "strerror", None) or str(exc)


def _owner_ok(uid):
    return uid in (os.geteuid(), 0)


def _kind(st_mode):
    if stat.S_ISLNK(st_mode):
        return "symlink"
    if stat.S_ISDIR(st_mode):
        return "directory"
    if stat.S_ISREG(st_mode):
        return "file"
    return "special file"


def _owner_message(path, kind, uid):
    return ("%s %s is owned by uid %d, neither root nor the user this runs as (uid %d): another user could change it. "
            "Make it owned by root (chown root: %s) or choose another path." % (kind.capitalize(), path, uid, os.geteuid(), path))


def _symlink_target(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _check_dir_stat(path, st, allow_sticky):
    if stat.S_ISLNK(st.st_mode):
        raise SafeFileError(
            "The directory %s is a symlink (to %s); symlinks are not followed for files written as root. "
            "Replace it with a real directory, or point the path at the directory itself." % (path, _symlink_target(path)))
    if not stat.S_ISDIR(st.st_mode):
        raise SafeFileError("%s is a %s, not a directory; move it away or choose another path." % (path, _kind(st.st_mode)))
    if not _owner_ok(st.st_uid):
        raise SafeFileError(_owner_message(path, "directory", st.st_uid))
    if st.st_mode & GROUP_WORLD_WRITE:
        if not (allow_sticky and st.st_mode & stat.S_ISVTX):
            raise SafeFileError(
                "The directory %s is writable by %s (mode %04o)%s: another user could replace files in it. "
                "Remove that permission (chmod go-w %s) or choose another path."
                % (path, "group and others" if st.st_mode & GROUP_WORLD_WRITE == GROUP_WORLD_WRITE
                   else ("its group" if st.st_mode & stat.S_IWGRP else "others"), stat.S_IMODE(st.st_mode),
                   "" if allow_sticky else " and holds state others must not be able to touch, sticky bit or not",
                   path))


def check_dir(path, allow_sticky=True):
    """Check an existing directory (lstat); raise SafeFileError when it is unsafe to write in."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise SafeFileError("Cannot inspect the directory %s: %s." % (path, _why(exc)))
    _check_dir_stat(path, st, allow_sticky)


def _make_dir(path, mode):
    """mkdir ``path`` and give it exactly ``mode`` through a descriptor (never via a path that may
    have been swapped for a symlink since)."""
    os.mkdir(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def ensure_dir(path, mode=0o700, allow_sticky=True):
    """Make sure ``path`` is a directory safe to write in; True when this call created it.

    Missing directories (and missing parents) are created with ``mode``. An existing
    directory is lstat-checked (see ``check_dir``) and never chmodded."""
    path = os.path.abspath(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # ENOTDIR: a parent is a file; mkdir says so below
            raise SafeFileError("Cannot inspect the directory %s: %s." % (path, _why(exc)))
        st = None
    if st is not None:
        _check_dir_stat(path, st, allow_sticky)
        return False
    parent = os.path.dirname(path)
    if parent != path and not os.path.lexists(parent):
        ensure_dir(parent, mode, allow_sticky)
    try:
        _make_dir(path, mode)
    except OSError as exc:
        if exc.errno == errno.EEXIST:  # made by someone else meanwhile: not ours, check it like any other
            check_dir(path, allow_sticky)
            return False
        raise SafeFileError("Failed to create the directory %s: %s; run with become: true or choose another path."
                            % (path, _why(exc)))
    check_dir(path, allow_sticky)
    return True


def _check_file_stat(path, st, writing):
    if not stat.S_ISREG(st.st_mode):
        raise SafeFileError("%s is a %s, not a regular file; move it away or choose another path." % (path, _kind(st.st_mode)))
    if not _owner_ok(st.st_uid):
        raise SafeFileError(_owner_message(path, "file", st.st_uid))
    if st.st_mode & GROUP_WORLD_WRITE:
        raise SafeFileError("The file %s is writable by group or others (mode %04o): its content cannot be trusted. "
                            "Check it, then remove that permission (chmod go-w %s)." % (path, stat.S_IMODE(st.st_mode), path))
    if writing and st.st_nlink > 1:
        raise SafeFileError("The file %s has %d hard links: writing it would change another file too. "
                            "Replace it with a file of its own (cp then mv) or remove it." % (path, st.st_nlink))


def open_nofollow(path, flags, mode=0o600):
    """``os.open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode)`` that refuses what ``_check_file_stat`` refuses.

    With ``O_CREAT`` a new file gets exactly ``mode``; an existing file keeps its mode."""
    flags |= os.O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a FIFO planted at path must not hang the open
    created = False
    try:
        if flags & os.O_CREAT:
            try:
                fd = os.open(path, flags | os.O_EXCL, mode)
                created = True
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                fd = os.open(path, flags & ~os.O_CREAT, mode)
        else:
            fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise SafeFileError("%s is a symlink (to %s); symlinks are not followed for files written as root. "
                                "Remove the symlink (the collection creates the file itself) or choose another path."
                                % (path, _symlink_target(path)))
        raise
    try:
        st = os.fstat(fd)
        if created:
            os.fchmod(fd, mode)
        else:
            _check_file_stat(path, st, flags & (os.O_WRONLY | os.O_RDWR))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lstat_or_none(path):
    """``os.lstat(path)``, or None when nothing is there."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if is_missing(exc):
            return None
        raise


def read_meta(path):
    """lstat facts to journal before changing ``path``: None when absent, else
    {type: file|symlink|directory|special file, mode, uid, gid, target (symlink only, else None)}."""
    st = _lstat_or_none(path)
    if st is None:
        return None
    return {"type": _kind(st.st_mode), "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "target": os.readlink(path) if stat.S_ISLNK(st.st_mode) else None}


def restore_meta(path, meta):
    """Put back the mode and owner of a regular file (``meta`` from ``read_meta``), without following a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise SafeFileError("Failed to restore the mode and owner of %s: %s." % (path, _why(exc)))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SafeFileError("%s is no longer a regular file; its mode and owner were not restored." % path)
        os.fchown(fd, meta["uid"], meta["gid"])
        os.fchmod(fd, meta["mode"])
    except OSError as exc:
        raise SafeFileError("Failed to restore the mode and owner of %s: %s; run with become: true." % (path, _why(exc)))
    finally:
        os.close(fd)


def _temp_name(path):
    return os.path.join(os.path.dirname(path), ".%s.%s.tmp" % (os.path.basename(path), binascii.hexlify(os.urandom(8)).decode("ascii")))


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing(path, what):
    """lstat of the file about to be replaced (None when absent); refuse a symlink or a non-regular file."""
    st = _lstat_or_none(path)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise SafeFileError("%s is a symlink (to %s); it is not replaced. Remove the symlink, or point the path at the "
                            "file it names, then run again." % (path, _symlink_target(path)))
    if not stat.S_ISREG(st.st_mode) and what == "file":
        raise SafeFileError("%s is a %s, not a regular file; move it away or choose another path." % (path, _kind(st.st_mode)))
    return st


def _selinux_context(module, path, existing):
    if module is None or not module.selinux_enabled():
        return None
    return module.selinux_context(path) if existing is not None else module.selinux_default_context(path)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_atomic(path, data, mode=0o644, dir_mode=0o755, keep_metadata=True, selinux_module=None, meta=None):
    """Atomically replace (or create) ``path`` with ``data`` (bytes, or text written as UTF-8).

    Mode and owner: ``meta`` (from ``read_meta``) when given; else, when replacing a file and
    ``keep_metadata``, the replaced file's; else ``mode`` and the effective uid. With
    ``selinux_module`` (an AnsibleModule) the temp file gets the SELinux context of the file it
    replaces, or the policy default for ``path``, before the rename."""
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    path = os.path.abspath(path)
    ensure_dir(os.path.dirname(path), dir_mode)
    try:
        existing = _existing(path, "file")
    except OSError as exc:
        raise SafeFileError("Failed to inspect %s: %s." % (path, _why(exc)))
    tmp = _temp_name(path)
    fd = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC, 0o600)
        _write_all(fd, data)
        os.fsync(fd)
        if meta is not None and meta.get("type") == "file":
            owner, new_mode = (meta["uid"], meta["gid"]), meta["mode"]
        elif existing is not None and keep_metadata:
            owner, new_mode = (existing.st_uid, existing.st_gid), stat.S_IMODE(existing.st_mode)
        else:
            owner, new_mode = None, mode
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, owner[0], owner[1])
        os.fchmod(fd, new_mode)
        os.close(fd)
        fd = None
        context = _selinux_context(selinux_module, path, existing)
        if context is not None:
            selinux_module.set_context_if_different(tmp, context, False)
        os.rename(tmp, path)
        tmp = None
        fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise SafeFileError("Failed to write %s: %s; run with become: true, or free space on its file system."
                            % (path, _why(exc)))
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def make_symlink(path, target, dir_mode=0o755):
    """Atomically make ``path`` a symlink to ``target`` (restoring a journalled symlink).
    Refuses to replace a directory or special file."""
    path = os.path.abspath(path)
    ensure_dir(os.path.dirname(path), dir_mode)
    tmp = _temp_name(path)
    try:
        existing = os.lstat(path)
    except OSError as exc:
        if not is_missing(exc):
            raise
        existing = None
    if existing is not None and not (stat.S_ISREG(existing.st_mode) or stat.S_ISLNK(existing.st_mode)):
        raise SafeFileError("%s is a %s; it is not replaced by a symlink. Move it away, then run again." % (path, _kind(existing.st_mode)))
    try:
        os.symlink(target, tmp)
        os.rename(tmp, path)
        tmp = None
        fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise SafeFileError("Failed to make %s a symlink to %s: %s." % (path, target, _why(exc)))
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
