# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pycompat: the Python 2 stand-ins behave as the Python 3 names they replace.

Python 2 itself runs them in tests/system/test_target_pythons.py; here the fallbacks run on Python 3."""

from __future__ import annotations

import datetime
import errno
import os

from ansible_collections.oomguard.fleet.plugins.module_utils import pycompat as pc


def test_utc_stand_in_is_utc():
    stand_in = datetime.datetime(2026, 12, 2, 14, 0, 5, tzinfo=pc.Utc())
    real = datetime.datetime(2026, 12, 2, 14, 0, 5, tzinfo=datetime.timezone.utc)
    assert stand_in == real and stand_in.utcoffset() == datetime.timedelta(0) and stand_in.tzname() == "UTC"
    assert stand_in.strftime("%Y-%m-%dT%H:%M:%SZ") == "2026-12-02T14:00:05Z"
    assert datetime.datetime.fromtimestamp(0, pc.Utc()) == datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    assert pc.UTC is datetime.timezone.utc


def test_string_types_are_text_not_bytes():
    assert isinstance("run/1", pc.STRING_TYPES) and not isinstance(b"run/1", pc.STRING_TYPES)
    assert not isinstance(1, pc.STRING_TYPES)


def test_host_side_module_utils_do_not_import_six():
    """ansible-core 2.21's sanity (pylint ansible-bad-import-from) refuses six's names: pycompat has them."""
    here = os.path.dirname(os.path.abspath(pc.__file__))
    offenders = []
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), encoding="utf-8") as handle:
                if "module_utils.six import" in handle.read():
                    offenders.append(name)
    assert offenders == []


def test_utc_now_is_aware_and_current():
    now = pc.utc_now()
    assert now.tzinfo is not None and abs((now - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 5


def test_o_cloexec_stand_in_is_linux_value():
    assert pc.LINUX_O_CLOEXEC == os.O_CLOEXEC == pc.O_CLOEXEC


def test_pread_pwrite_without_the_os_functions(tmp_path, monkeypatch):
    fd = os.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert pc.pwrite(fd, b"hello world", 0) == 11
        assert pc.pread(fd, 5, 6) == b"world"
        monkeypatch.delattr(os, "pread")
        monkeypatch.delattr(os, "pwrite")
        assert pc.pwrite(fd, b"HELLO", 0) == 5
        assert pc.pread(fd, 4, 7) == b"orld" and pc.pread(fd, 5, 0) == b"HELLO"
    finally:
        os.close(fd)


def test_is_missing_reads_errno(tmp_path):
    try:
        open(str(tmp_path / "absent"))
    except IOError as exc:
        assert pc.is_missing(exc)
    assert not pc.is_missing(OSError(errno.EACCES, "denied")) and not pc.is_missing(ValueError("x"))


def test_open_text_reads_and_writes_utf8(tmp_path):
    with pc.open_text(str(tmp_path / "t"), "w") as handle:
        handle.write(u"OOMScoreAdjust=-1000 \u2713\n")
    with open(str(tmp_path / "t"), "rb") as handle:
        assert handle.read() == u"OOMScoreAdjust=-1000 \u2713\n".encode("utf-8")
    (tmp_path / "bad").write_bytes(b"\xff\n")
    with pc.open_text(str(tmp_path / "bad"), errors="replace") as handle:
        assert handle.read() == u"\ufffd\n"
