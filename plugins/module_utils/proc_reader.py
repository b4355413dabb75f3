# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the files of /proc/<pid>: the one reader of the facts scan (``oom_facts``) and of the
oom_score_adj changes (``oom_change``, ``rollback_plan``).

Private to the oomguard.fleet collection. A failed read is one of two things the callers keep
apart: the process is gone (ESRCH, or ENOENT once its /proc/<pid> directory is gone), raised as
ProcessGone, or the file cannot be read while the process lives (a permission, ``hidepid``, a file
the kernel lacks), raised as the IOError/OSError it is. Parsing is ``procfs``'s.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.oomguard.fleet.plugins.module_utils import pycompat as pc
from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import (
    OOM_DISABLE,
    OOM_SCORE_ADJ_MIN,
    parse_int,
    parse_stat_row,
)

_OPEN_FLAGS = os.O_RDONLY | pc.O_CLOEXEC
# stat and oom_score_adj are far below this (stat: 52 numbers and a 15-byte comm).
_SMALL_READ = 4096


class ProcessGone(OomguardError, OSError):
    """The process exited: its /proc entry is gone, or the kernel answered ESRCH. An OSError with
    errno ESRCH, so that code which counts failed reads sees it as what it is, and one of the collection's errors."""

    def __init__(self, path):
        super(ProcessGone, self).__init__(errno.ESRCH, os.strerror(errno.ESRCH), path)


def read_bytes(path):
    """A whole file through raw os.read() calls: for procfs about half the cost of open()."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_small(path):
    """One read() of a small procfs file (stat, oom_score_adj): one open, one read, one close."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        return os.read(fd, _SMALL_READ)
    finally:
        os.close(fd)


def read_text(path):
    return read_bytes(path).decode("utf-8", "replace")


def is_gone(exc, base):
    """True when a failed read of a file of the process directory ``base`` means the process exited:
    ESRCH, or ENOENT once the directory is gone. A file absent or unreadable while the process lives
    is not "gone"."""
    code = getattr(exc, "errno", None)
    if code == errno.ESRCH:
        return True
    return code == errno.ENOENT and base is not None and not os.path.isdir(base)


def read_pid_file(base, name, small=False):
    """Bytes of ``<base>/<name>`` for the process directory ``base``; ProcessGone when the process exited."""
    path = base + "/" + name
    try:
        return read_small(path) if small else read_bytes(path)
    except (IOError, OSError) as exc:
        if is_gone(exc, base):
            raise ProcessGone(path)
        raise


def read_stat(base):
    """(comm, ppid, flags, rss_pages, starttime) of ``<base>/stat`` (procfs.parse_stat_row)."""
    path = base + "/stat"
    data = read_pid_file(base, "stat", small=True)
    if not data:  # the task was released between open() and read()
        raise ProcessGone(path)
    return parse_stat_row(data, path)


def read_adj(base):
    """(oom_score_adj, raw legacy oom_adj or None); a kernel with only the legacy ``oom_adj`` has its
    value mapped as the kernel maps it (-17, OOM_DISABLE, is OOM_SCORE_ADJ_MIN)."""
    try:
        data = read_pid_file(base, "oom_score_adj", small=True)
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOENT or not os.path.exists(base + "/oom_adj"):
            raise
    else:
        try:
            return int(data), None
        except ValueError:
            return parse_int(data.decode("utf-8", "replace"), base + "/oom_score_adj"), None
    path = base + "/oom_adj"
    legacy = parse_int(read_pid_file(base, "oom_adj").decode("utf-8", "replace"), path)
    if legacy == OOM_DISABLE:
        return OOM_SCORE_ADJ_MIN, legacy
    return int(legacy * 1000 / 17), legacy  # C division truncates toward zero
