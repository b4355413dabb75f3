# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import glob
import os

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import (
    REDACTED,
    ProcParseError,
    cgroup_unit,
    is_kernel_thread,
    meminfo_facts,
    parse_cgroup,
    parse_cmdline,
    parse_int,
    parse_meminfo,
    parse_slabinfo,
    parse_stat,
    parse_stat_row,
    parse_status,
    redact_args,
    unit_from_cgroup_path,
)
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import (
    meminfo_text,
    slabinfo_text,
    stat_line,
    status_text,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
LIVE = sorted(glob.glob(os.path.join(FIXTURES, "proc", "live-*")))


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as handle:
        return handle.read()


def live(*parts):
    assert LIVE, "no live capture under tests/unit/fixtures/proc"
    with open(os.path.join(LIVE[0], *parts), "rb") as handle:
        return handle.read()


# ---- stat -------------------------------------------------------------------------------

def test_stat_live_init_is_user_space():
    stat = parse_stat(live("1", "stat").decode())
    assert stat["pid"] == 1
    assert stat["ppid"] == 0
    assert stat["comm"] == "process_api"
    assert not is_kernel_thread(stat["flags"])
    assert stat["rss_pages"] > 0


def test_stat_live_kernel_thread_has_pf_kthread():
    stat = parse_stat(live("2", "stat").decode())
    assert stat["comm"] == "kthreadd"
    assert is_kernel_thread(stat["flags"])
    assert stat["rss_pages"] == 0


def test_stat_comm_with_spaces_and_parens():
    text = stat_line({"pid": 77, "ppid": 5, "comm": "a (b) c)", "rss_kb": 8}, page_size=4096)
    stat = parse_stat(text)
    assert stat["comm"] == "a (b) c)"
    assert stat["ppid"] == 5
    assert stat["rss_pages"] == 2


def test_stat_empty_comm():
    stat = parse_stat(stat_line({"pid": 9, "comm": ""}))
    assert stat["comm"] == ""
    assert stat["pid"] == 9


@pytest.mark.parametrize("text, needle", [
    ("1 process S 0 0", "no '(comm)'"),
    ("1 (x) S 0 0 0", "at least 24 fields"),
    ("1 (x) S zero " + " ".join(["0"] * 30), "non-numeric"),
    ("x (y) S " + " ".join(["0"] * 30), "non-numeric"),
])
def test_stat_malformed_names_file_and_line(text, needle):
    with pytest.raises(ProcParseError) as err:
        parse_stat(text, "/proc/1/stat")
    assert needle in str(err.value)
    assert str(err.value).startswith("/proc/1/stat line 1: ")
    assert err.value.path == "/proc/1/stat" and err.value.line_no == 1


@pytest.mark.parametrize("pid", ["1", "2"])
def test_stat_row_is_parse_stat_on_the_fields_the_collection_uses(pid):
    data = live(pid, "stat")
    stat = parse_stat(data.decode())
    assert parse_stat_row(data) == (stat["comm"], stat["ppid"], stat["flags"], stat["rss_pages"], stat["starttime"])
    assert stat["starttime"] == int(data[data.rfind(b")") + 2:].split()[19])


def test_stat_row_comm_with_spaces_and_parens():
    text = stat_line({"pid": 77, "ppid": 5, "comm": "a (b) c)", "rss_kb": 8, "flags": 0x40}, page_size=4096)
    assert parse_stat_row(text.encode()) == ("a (b) c)", 5, 0x40, 2, 1500)  # stat_line's start time is 1500


@pytest.mark.parametrize("text, needle", [
    ("1 process S 0 0", "no '(comm)'"),
    ("1 (x) S 0 0 0", "at least 24 fields"),
    ("1 (x) S zero " + " ".join(["0"] * 30), "non-numeric"),
])
def test_stat_row_malformed_says_what_parse_stat_says(text, needle):
    with pytest.raises(ProcParseError) as err:
        parse_stat_row(text.encode(), "/proc/1/stat")
    assert needle in str(err.value) and err.value.path == "/proc/1/stat"


# ---- status ------------------------------------------------------------------------------

def test_status_live():
    status = parse_status(live("1", "status").decode())
    assert status["name"] == "process_api"
    assert status["uid"] == 0 and status["ppid"] == 0
    assert status["vm_rss_kb"] > 0


def test_status_kernel_thread_has_no_rss():
    status = parse_status(live("2", "status").decode())
    assert status["vm_rss_kb"] is None
    assert status["name"] == "kthreadd"


def test_status_builder_uids_and_escaped_name():
    status = parse_status(status_text({"pid": 5, "comm": "a\\b", "uids": (1000, 0, 0, 0), "rss_kb": 12}))
    assert status["uid"] == 1000 and status["euid"] == 0
    assert status["name"] == "a\\b"
    assert status["vm_rss_kb"] == 12


def test_status_missing_uid_is_none():
    assert parse_status("Name:\tx\nPPid:\t1\n")["uid"] is None


@pytest.mark.parametrize("text, line_no", [
    ("Name:\tx\nUid:\tabc\t0\t0\t0\n", 2),
    ("Name:\tx\nUid:\n", 2),
    ("Name:\tx\nPPid:\t1\nno colon here\n", 3),
    ("VmRSS:\t kB\n", 1),
])
def test_status_malformed(text, line_no):
    with pytest.raises(ProcParseError) as err:
        parse_status(text, "/proc/9/status")
    assert err.value.line_no == line_no
    assert "/proc/9/status line %d" % line_no in str(err.value)


# ---- cgroup ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, unit", [
    ("0::/system.slice/ssh.service\n", "ssh.service"),
    ("0::/system.slice/docker-0123abcd.scope\n", "docker-0123abcd.scope"),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n", "user@1000.service"),
    ("0::/system.slice/postgresql@15-main.service/worker\n", "postgresql@15-main.service"),
    ("0::/init.scope\n", "init.scope"),
    ("0::/system.slice/_cpu.service\n", "cpu.service"),
    ("0::/\n", None),
    ("", None),
    # cgroup v1: the name=systemd hierarchy carries the unit
    ("12:memory:/system.slice/mysqld.service\n1:name=systemd:/system.slice/mysqld.service\n", "mysqld.service"),
    ("11:devices:/docker/0123\n1:name=systemd:/docker/0123\n", None),
    # hybrid: the unified line wins
    ("1:name=systemd:/system.slice/a.service\n0::/system.slice/a.service\n", "a.service"),
    # memory controller paths are not units
    ("4:memory:/system.slice/x.service\n0::/\n", None),
])
def test_cgroup_unit(text, unit):
    assert cgroup_unit(text) == unit


def test_cgroup_live_capture():
    rows = parse_cgroup(live("1", "cgroup").decode())
    assert {"id": 0, "controllers": "", "path": "/"} in rows
    assert cgroup_unit(live("1", "cgroup").decode()) is None


def test_unit_from_cgroup_path_skips_slices():
    assert unit_from_cgroup_path("/system.slice/system-getty.slice/getty@tty1.service") == "getty@tty1.service"
    assert unit_from_cgroup_path("/machine.slice") is None


@pytest.mark.parametrize("text", ["0:/\n", "x::/a\n", "0::/\ngarbage\n", "\u00b2::/a\n"])
def test_cgroup_malformed(text):
    with pytest.raises(ProcParseError) as err:
        cgroup_unit(text, "/proc/3/cgroup")
    assert "hierarchy-ID:controllers:path" in str(err.value)
    assert err.value.line_no == text.count("\n")


# ---- cmdline -----------------------------------------------------------------------------

def argv(*args):
    return b"".join(a.encode() + b"\0" for a in args)


@pytest.mark.parametrize("args, expected", [
    (("mysqld", "--password=hunter2"), "mysqld --password=" + REDACTED),
    (("app", "--password", "hunter2", "--port", "80"), "app --password %s --port 80" % REDACTED),
    (("app", "--db-passwd", "hunter2"), "app --db-passwd " + REDACTED),
    (("worker", "token=abc123"), "worker token=" + REDACTED),
    (("env", "PGPASSWORD=abc", "psql"), "env PGPASSWORD=%s psql" % REDACTED),
    (("svc", "--api-key=K", "--client_secret=S"), "svc --api-key=%s --client_secret=%s" % (REDACTED, REDACTED)),
    (("mysql", "-u", "root", "-p", "hunter2"), "mysql -u root -p " + REDACTED),
    (("mysql", "-phunter2"), "mysql -p" + REDACTED),
    (("mysql", "-psecretpw", "db"), "mysql -p%s %s" % (REDACTED, REDACTED)),
    (("mysql", "-pmytoken1"), "mysql -p" + REDACTED),
    (("tool", "-password", "hunter2"), "tool -p%s %s" % (REDACTED, REDACTED)),
    (("curl", "-u", "bob:hunter2", "https://x"), "curl -u bob:%s https://x" % REDACTED),
    (("curl", "-H", "Authorization: Bearer abc.def"), "curl -H Authorization: Bearer " + REDACTED),
    (("rsync", "rsync://bob:hunter2@host/mod"), "rsync rsync://bob:%s@host/mod" % REDACTED),
    (("java", "-Ddb.url=postgres://app:s3cr3t@db:5432/x"), "java -Ddb.url=postgres://app:%s@db:5432/x" % REDACTED),
    (("nginx", "-g", "daemon off;"), "nginx -g daemon off;"),
    (("sleep", "10"), "sleep 10"),
])
def test_cmdline_redaction(args, expected):
    out = parse_cmdline(argv(*args), max_len=0)
    assert out == expected
    assert "hunter2" not in out and "s3cr3t" not in out


def test_cmdline_rewritten_argv_is_split_before_redaction():
    out = parse_cmdline(b"postgres: app --password=hunter2 idle\0\0\0", max_len=0)
    assert out == "postgres: app --password=%s idle" % REDACTED


def test_cmdline_live_sshd_style_kept():
    text = "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"
    assert parse_cmdline(text.encode()) == text


def test_cmdline_truncated_after_redaction():
    out = parse_cmdline(argv("app", "--password=" + "x" * 300), max_len=20)
    assert len(out) == 20 and out.endswith("...")
    assert "xxx" not in out
    assert out.startswith("app --password=<r")


def test_cmdline_kernel_thread_and_invalid_utf8():
    assert parse_cmdline(b"") == ""
    assert parse_cmdline(live("2", "cmdline")) == ""
    assert parse_cmdline(b"caf\xe9\0") == "caf\ufffd"


def test_redact_args_trailing_secret_option():
    assert redact_args(["app", "--password"]) == ["app", "--password"]


def test_redact_args_flag_followed_by_long_option_keeps_it():
    assert redact_args(["api", "--auth-required", "--port", "80"]) == ["api", "--auth-required", "--port", "80"]
    assert redact_args(["api", "--auth-required", "--token=x"]) == ["api", "--auth-required", "--token=" + REDACTED]


# ---- meminfo -----------------------------------------------------------------------------

def test_meminfo_live():
    values = parse_meminfo(live("meminfo").decode())
    facts = meminfo_facts(values)
    assert facts["mem_total_kb"] == values["MemTotal"] > 0
    assert facts["lru_kb"] == values["Active"] + values["Inactive"]
    assert facts["sunreclaim_kb"] == values["SUnreclaim"]
    assert "HugePages_Total" in values


def test_meminfo_old_kernel_without_memavailable_and_totals():
    text = meminfo_text({"MemTotal": 1000})
    text = "".join(line for line in text.splitlines(True)
                   if not line.startswith(("MemAvailable", "Active:", "Inactive:", "SUnreclaim")))
    facts = meminfo_facts(parse_meminfo(text))
    assert facts["mem_available_kb"] is None and facts["sunreclaim_kb"] is None
    assert facts["lru_kb"] == 150000 + 10000 + 150000 + 190000


def test_meminfo_without_any_lru_lines():
    assert meminfo_facts(parse_meminfo("MemTotal: 10 kB\n"))["lru_kb"] is None


@pytest.mark.parametrize("text, line_no, needle", [
    ("MemTotal: 10 kB\nBogus line\n", 2, "expected"),
    ("MemTotal: 10 kB\nMemFree: ten kB\n", 2, "non-numeric"),
    ("MemTotal: 10 MB\n", 1, "expected"),
    ("MemTotal:\n", 1, "expected"),
    ("MemFree: 10 kB\n", None, "no MemTotal"),
])
def test_meminfo_malformed(text, line_no, needle):
    with pytest.raises(ProcParseError) as err:
        parse_meminfo(text, "/proc/meminfo")
    assert err.value.line_no == line_no
    assert needle in str(err.value) and "/proc/meminfo" in str(err.value)


# ---- slabinfo ----------------------------------------------------------------------------

def test_slabinfo_live_slub_2_1():
    parsed = parse_slabinfo(live("slabinfo").decode(), page_size=4096)
    assert parsed["version"] == "2.1" and not parsed["statistics"]
    assert len(parsed["caches"]) > 50
    dentry = [c for c in parsed["caches"] if c["name"] == "dentry"][0]
    assert dentry["size_kb"] == dentry["num_slabs"] * dentry["pagesperslab"] * 4
    assert dentry["active_kb"] == dentry["active_objs"] * dentry["objsize"] // 1024


def test_slabinfo_slab_statistics():
    parsed = parse_slabinfo(fixture("slabinfo", "slab-2.1-statistics.txt"), page_size=4096)
    assert parsed["version"] == "2.1" and parsed["statistics"]
    by_name = dict((c["name"], c) for c in parsed["caches"])
    assert set(by_name) == {"nfs_direct_cache", "ext4_inode_cache", "dentry", "size-64", "task_struct"}
    assert by_name["task_struct"]["size_kb"] == 147 * 2 * 4
    assert by_name["ext4_inode_cache"]["active_slabs"] == 16346
    assert by_name["size-64"]["active_kb"] == 902311 * 64 // 1024


def test_slabinfo_2_0():
    parsed = parse_slabinfo(fixture("slabinfo", "slab-2.0.txt"), page_size=4096)
    assert parsed["version"] == "2.0"
    by_name = dict((c["name"], c) for c in parsed["caches"])
    assert by_name["size-131072(DMA)"]["pagesperslab"] == 32
    assert by_name["size-4096"]["size_kb"] == 122 * 4


def test_slabinfo_builder_statistics_round_trip():
    text = slabinfo_text([{"name": "kmalloc-64", "num_slabs": 100, "objperslab": 64}], statistics=True)
    parsed = parse_slabinfo(text, page_size=4096)
    assert parsed["statistics"]
    assert parsed["caches"][0]["num_objs"] == 6400 and parsed["caches"][0]["size_kb"] == 400


def test_slabinfo_unsupported_version():
    with pytest.raises(ProcParseError) as err:
        parse_slabinfo(fixture("slabinfo", "slab-1.1.txt"), path="/proc/slabinfo")
    assert "unsupported slabinfo version 1.1" in str(err.value)
    assert err.value.line_no == 1


@pytest.mark.parametrize("text, line_no, needle", [
    ("", 1, "empty"),
    ("not slabinfo\n", 1, "header"),
    ("slabinfo - version: 2.1\n# h\ndentry 1 2 3\n", 3, "expected '<name>"),
    ("slabinfo - version: 2.1\n# h\ndentry 1 2 3 4 5 : tunables 0 0 0\n", 3, "slabdata"),
    ("slabinfo - version: 2.1\n# h\ndentry 1 2 x 4 5 : tunables 0 0 0 : slabdata 1 1 0\n", 3, "non-numeric"),
    ("slabinfo - version: 2.1\n# h\ndentry 1 2 3 4 5 : tunables 0 0 0 : slabdata 1 y 0\n", 3, "non-numeric"),
])
def test_slabinfo_malformed(text, line_no, needle):
    with pytest.raises(ProcParseError) as err:
        parse_slabinfo(text, path="/proc/slabinfo")
    assert err.value.line_no == line_no
    assert needle in str(err.value)
    assert str(err.value).startswith("/proc/slabinfo line %d: " % line_no)


# ---- single integers ---------------------------------------------------------------------

def test_parse_int():
    assert parse_int(" -1000\n") == -1000
    with pytest.raises(ProcParseError) as err:
        parse_int("abc\n", "/proc/1/oom_score_adj")
    assert str(err.value) == "/proc/1/oom_score_adj line 1: expected one integer, found 'abc'"


def test_error_without_line():
    assert str(ProcParseError("/x", None, "gone")) == "/x: gone"


# ---- properties: arbitrary text gives a result or ProcParseError, nothing else -----------

TEXT_PARSERS = [parse_stat, parse_status, parse_cgroup, cgroup_unit, parse_meminfo, parse_slabinfo, parse_int]


@pytest.mark.parametrize("parser", TEXT_PARSERS, ids=lambda f: f.__name__)
@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_parsers_total_on_arbitrary_text(parser, text):
    try:
        parser(text)
    except ProcParseError as exc:
        assert str(exc)


line_parts = st.sampled_from(["slabinfo - version: 2.1", "slabinfo - version: 2.0 (statistics)", "# name", " : ",
                              "tunables", "slabdata", "globalstat", "kB", ":", "(", ")", "\t", " ", "\n", "0", "-1",
                              "99999999999999999999", "MemTotal", "Uid", "0::/", "name=systemd", "a.service"])


@pytest.mark.parametrize("parser", TEXT_PARSERS, ids=lambda f: f.__name__)
@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(line_parts, st.text(max_size=5)), max_size=40))
def test_parsers_total_on_near_valid_text(parser, parts):
    try:
        parser("".join(parts))
    except ProcParseError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), max_len=st.integers(min_value=0, max_value=300))
def test_cmdline_total_and_bounded(data, max_len):
    out = parse_cmdline(data, max_len)
    assert isinstance(out, str)
    if max_len:
        assert len(out) <= max(max_len, 3)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=20),
       form=st.sampled_from(["--password={s}", "--password\0{s}", "token={s}", "-p\0{s}", "https://u:{s}@h/x"]))
def test_secret_never_leaks(secret, form):
    data = ("prog\0" + form.format(s=secret) + "\0").encode()
    assert secret not in parse_cmdline(data, 0)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=20),
       prefix=st.lists(st.text(alphabet="abc -", min_size=1, max_size=12), max_size=5),
       form=st.sampled_from([["--password", "{s}"], ["-p", "{s}"], ["--token={s}"], ["x://u:{s}@h"]]),
       max_len=st.integers(min_value=1, max_value=80))
def test_secret_never_leaks_at_any_truncation(secret, prefix, form, max_len):
    assume(not any(secret in arg for arg in prefix))  # a bystander argument may not carry the secret
    args = ["prog"] + prefix + [part.format(s=secret) for part in form] + ["tail"]
    data = b"".join(a.encode() + b"\0" for a in args)
    full = parse_cmdline(data, 0)
    assert secret not in full and REDACTED in full
    # truncation only ever cuts the fully redacted text
    expected = full if len(full) <= max_len else full[:max(max_len - 3, 0)] + "..."
    assert parse_cmdline(data, max_len) == expected


# ---- the fixture builder writes what this kernel writes ----------------------------------

def test_builder_layouts_match_the_live_capture():
    live_stat = live("1", "stat").decode()
    built_stat = stat_line({"pid": 1, "ppid": 0, "comm": "process_api", "rss_kb": 4})
    assert len(built_stat.split()) == len(live_stat.split())
    assert built_stat.endswith("\n") and live_stat.endswith("\n")
    live_keys = [line.split(":", 1)[0] for line in live("1", "status").decode().splitlines()]
    built_keys = [line.split(":", 1)[0] for line in status_text({"pid": 1, "rss_kb": 4}).splitlines()]
    assert [key for key in live_keys if key in built_keys] == built_keys
    live_mem = [line.split(":", 1)[0] for line in live("meminfo").decode().splitlines()]
    built_mem = [line.split(":", 1)[0] for line in meminfo_text().splitlines()]
    assert [key for key in live_mem if key in built_mem] == built_mem
    assert live("slabinfo").decode().splitlines()[1] == slabinfo_text([]).splitlines()[1]
