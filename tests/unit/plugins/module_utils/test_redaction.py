# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command-line redaction: a secret planted in any common shape, as separate arguments, inside
one argument (sh -c "..."), quoted or not, at any truncation, never comes out; and the facts
leave the command line out when asked."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.oomguard.fleet.plugins.module_utils.oom_facts import gather_oom_facts
from ansible_collections.oomguard.fleet.plugins.module_utils.procfs import REDACTED, parse_cmdline
from ansible_collections.oomguard.fleet.plugins.modules import oom_score_facts
from ansible_collections.oomguard.fleet.tests.unit.module_runner import run_module
from ansible_collections.oomguard.fleet.tests.unit.procfs_tree import build_proc_tree

MARK = "QX7"  # every planted secret starts with it; the bystander words never hold a capital Q

# Each shape: the argv elements that carry the secret {s}. Token shapes carry their own prefix.
SHAPES = [
    ["--password={s}"], ["--password", "{s}"], ["--db-passwd", "{s}"], ["PGPASSWORD={s}"], ["token={s}"],
    ["-p{s}"], ["-p", "{s}"], ["-k", "{s}"], ["-k{s}"], ["-u", "root:{s}"], ["--user", "bob:{s}"],
    ["mysql://app:{s}@db:3306/x"], ["-Ddb.url=postgres://app:{s}@db/x"],
    ["--config={{\"password\":\"{s}\"}}"], ["--config={{\"db\": {{\"password\": \"{s}\", \"port\": 5432}}}}"],
    ["--config", "{{\"api_key\": \"{s}\"}}"], ["{{\"client_secret\":\"{s}\"}}"],
    ["password: {s}"], ["password:", "{s}"], ["db_password={s}"], ["-o", "user=a,password={s},ro"],
    ["https://api.example.com/v1?api_key={s}&page=2"], ["https://h/x?foo=1&access_token={s}"],
    ["https://s3.example.com/b/o?X-Amz-Signature={s}&X-Amz-Date=1"], ["http://h/?key={s}"],
    ["hvs.{s}AAAAAAAAAAAAAAAAAAAA"], ["--token", "hvs.{s}AAAAAAAAAAAAAAAAAAAA"], ["VAULT_TOKEN=hvs.{s}AAAAAAAAAAAAAA"],
    ["-H", "X-Vault-Token: hvs.{s}AAAAAAAAAAAAAAAAAAAA"],
    ["AKIA{s16}"], ["--access-key-id", "AKIA{s16}"],
    ["ghp_{s}AAAAAAAAAAAAAAAAAAAAAAAA"], ["https://ghp_{s}AAAAAAAAAAAAAAAAAAAAAAAA@github.com/o/r.git"],
    ["xoxb-{s}-1234567890"], ["xoxp-{s}-12345"],
    ["-H", "Authorization: Bearer {s}"], ["--header", "Authorization: token {s}"], ["Authorization:", "Bearer", "{s}"],
    ["-H", "Authorization: Basic {s}"], ["Bearer", "{s}"], ["--oauth2-bearer", "{s}"],
]

bystander = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-=./:_", min_size=1, max_size=12)
secret_body = st.text(alphabet="ABCDEFGHIJKLMNOPRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=24)


def plant(shape, body):
    secret = MARK + body
    s16 = (MARK + body.upper() + "A" * 16)[:16]
    return [part.format(s=secret, s16=s16) for part in shape]


def quote(words, style):
    if style == "none":
        return " ".join(words)
    return " ".join(style + w + style if " " in w or "{" in w else w for w in words)


def encode(argv):
    return b"".join(a.encode() + b"\0" for a in argv)


@settings(max_examples=600, deadline=None)
@given(shape=st.sampled_from(SHAPES), body=secret_body, before=st.lists(bystander, max_size=4),
       after=st.lists(bystander, max_size=3), form=st.sampled_from(["argv", "sh -c", "rewritten"]),
       style=st.sampled_from(["none", "'", '"']), max_len=st.integers(min_value=0, max_value=200))
def test_a_planted_secret_never_comes_out(shape, body, before, after, form, style, max_len):
    words = ["prog"] + before + plant(shape, body) + after
    if form == "argv":
        data = encode(words)
    elif form == "sh -c":  # one argv element holds the whole command
        data = encode(["/bin/sh", "-c", quote(words, style)])
    else:  # a process that rewrote its argv into one string (as sshd and postgres do)
        data = quote(words, "none").encode() + b"\0\0"
    out = parse_cmdline(data, max_len)
    assert MARK not in out and "QX" not in out, (words, out)
    full = parse_cmdline(data, 0)
    assert MARK not in full and REDACTED in full, (words, full)


@pytest.mark.parametrize("argv, expected", [
    (["sh", "-c", "mysql -uroot -pSEKRET -h db app"], "sh -c mysql -uroot -p%s -h db app" % REDACTED),
    (["app", '--config={"password":"hunter2","user":"x"}'], 'app --config={"password":"%s","user":"x"}' % REDACTED),
    (["curl", "https://h/x?api_key=SEKRET&page=2"], "curl https://h/x?api_key=%s&page=2" % REDACTED),
    (["openssl", "enc", "-k", "SEKRET"], "openssl enc -k " + REDACTED),
    (["curl", "-k", "https://h/x"], "curl -k https://h/x"),
    (["vault", "login", "hvs.CAESIJlWh0Kt1aSEKRET12345"], "vault login " + REDACTED),
    (["aws", "AKIAIOSFODNN7EXAMPLE"], "aws " + REDACTED),
    (["sh", "-c", "curl -H 'Authorization: Bearer SEKRET' https://x"],
     "sh -c curl -H 'Authorization: Bearer %s' https://x" % REDACTED),
    (["app", "--opts", "a=1,password=SEKRET,b=2"], "app --opts a=1,password=%s,b=2" % REDACTED),
    (["java", "-jar", "app.jar", "--spring.datasource.url=jdbc:x", "--port=8080", "--keyboard=us"],
     "java -jar app.jar --spring.datasource.url=jdbc:x --port=8080 --keyboard=us"),
    (["nginx: worker process"], "nginx: worker process"),
    (["mysql", "-p", "-h", "db"], "mysql -p -h db"),  # -p alone prompts; -h is the next option
])
def test_shapes_from_the_review(argv, expected):
    assert parse_cmdline(encode(argv), 0) == expected


# ------------------------------------------------------------------ the command line only when asked


def tree_with_secret(tmp_path):
    return build_proc_tree(tmp_path, [
        {"pid": 1, "comm": "init", "rss_kb": 100},
        {"pid": 4242, "comm": "java", "rss_kb": 900, "oom_score_adj": -1000, "cmdline": ["java", "-Dsecret=SEKRET"]},
    ])


def test_return_cmdline_false_leaves_the_key_null_and_reads_no_cmdline(tmp_path, monkeypatch):
    tree = tree_with_secret(tmp_path)
    import os
    os.chmod(os.path.join(tree, "4242", "cmdline"), 0)  # never opened: no error either (root aside)
    facts = gather_oom_facts(tree, return_cmdline=False)
    assert [p["cmdline"] for p in facts["processes"]] == [None, None]
    assert facts["errors"]["count"] == 0
    assert gather_oom_facts(tree)["processes"][0]["cmdline"] == "java -Dsecret=" + REDACTED


def test_module_option_return_cmdline(tmp_path):
    tree = tree_with_secret(tmp_path)
    failed, result = run_module(oom_score_facts.main, {"proc_path": tree, "return_cmdline": False})
    assert not failed and all(p["cmdline"] is None for p in result["ansible_facts"]["oom"]["processes"])
    failed, result = run_module(oom_score_facts.main, {"proc_path": tree})
    assert not failed and result["ansible_facts"]["oom"]["processes"][0]["cmdline"] == "java -Dsecret=" + REDACTED


# ------------------------------------------------------------------ a hostile command line costs little


@pytest.mark.parametrize("data", [
    b"x" * 200000 + b"\0",                              # one long word: no name is tried at every offset
    b"a://" + b"x" * 200000 + b"\0",                    # a scheme and no '@'
    b"token" * 40000 + b"!\0",                          # a secret word over and over, then no '='
    b"--" + b"password" * 25000 + b"x\0",               # an option word that never ends right
    b"a=," * 60000 + b"\0",
    b"sh\0-c\0" + b"'a " * 60000 + b"\0",               # unbalanced quotes in a shell string
    (b"eyJ" + b"a" * 10 + b".") * 10000 + b"\0",
    b"http://u:" * 20000 + b"\0",
])
def test_redaction_time_is_linear_in_the_command_line(data):
    # Before the patterns were anchored, the first of these took minutes (quadratic in the length).
    started = time.monotonic()
    out = parse_cmdline(data, 256)
    assert len(out) <= 256 and time.monotonic() - started < 5
