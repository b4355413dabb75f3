# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the host-side code needs that Python 2.7 lacks, the same on Python 3.

Private to the oomguard.fleet collection. The modules run on the managed host's own Python:
on CentOS 7 and Alibaba Cloud Linux 2 that is 2.7 (managed up to ansible-core 2.16), on RHEL 8
3.6. Python 2 has no ``datetime.timezone``, ``time.monotonic``, ``os.O_CLOEXEC``, ``os.pread``
or ``os.pwrite``, no ``FileNotFoundError`` family (its ``open()`` raises ``IOError``, which is not
an ``OSError`` there: catch both and look at ``errno``) and no ``encoding=`` for ``open()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import io
import os
import time


class Utc(datetime.tzinfo):
    """UTC for Python 2, which has no ``datetime.timezone``."""

    def utcoffset(self, dt):
        return datetime.timedelta(0)

    def dst(self, dt):
        return datetime.timedelta(0)

    def tzname(self, dt):
        return "UTC"


UTC = datetime.timezone.utc if hasattr(datetime, "timezone") else Utc()
# Text of either kind: (unicode, str) on Python 2, (str,) in effect on Python 3. Not six's
# string_types: ansible-core 2.21's sanity (pylint ansible-bad-import-from) refuses that import.
STRING_TYPES = (type(u""), type(""))
# Linux's value where the os module does not name it (Python 2).
LINUX_O_CLOEXEC = 0o2000000
O_CLOEXEC = getattr(os, "O_CLOEXEC", LINUX_O_CLOEXEC)
monotonic = getattr(time, "monotonic", time.time)


def utc_now():
    """The current time as an aware datetime in UTC."""
    return datetime.datetime.now(UTC)


def errno_of(exc):
    return getattr(exc, "errno", None)


def is_missing(exc):
    """True for what Python 3 raises as FileNotFoundError."""
    return errno_of(exc) == errno.ENOENT


def open_text(path, mode="r", errors="strict"):
    """``open(path, mode, encoding="utf-8")`` on Python 2 and 3 (io.open): reads give text, writes take text."""
    return io.open(path, mode, encoding="utf-8", errors=errors)


def pread(fd, size, offset):
    """``os.pread`` where Python has it; else seek and read (moves the file offset; the callers
    write with O_APPEND or seek again before writing)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def pwrite(fd, data, offset):
    """``os.pwrite`` where Python has it; else seek and write."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, data)
