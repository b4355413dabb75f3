# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parsers for procfs files: text in, dicts out.

Every parser raises ProcParseError(path, line_no, msg) on input it cannot make sense of,
and nothing else, so callers can turn a malformed file into a message naming the file
and the line instead of a traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.oomguard.fleet.plugins.module_utils._contract import OomguardError

PF_KTHREAD = 0x00200000
# The kernel's bounds of /proc/<pid>/oom_score_adj (OOM_SCORE_ADJ_MIN: never OOM-killed) and the legacy
# /proc/<pid>/oom_adj value that means the same as OOM_SCORE_ADJ_MIN (OOM_DISABLE).
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
OOM_DISABLE = -17
REDACTED = "<redacted>"


class ProcParseError(OomguardError):
    """A procfs file that does not have the layout the kernel writes."""

    def __init__(self, path, line_no, msg):
        self.path = path
        self.line_no = line_no
        self.msg = msg
        if line_no:
            text = "%s line %d: %s" % (path, line_no, msg)
        else:
            text = "%s: %s" % (path, msg)
        super(ProcParseError, self).__init__(text)


def parse_int(text, path="<int>"):
    """A file that holds one integer, such as oom_score_adj or a sysctl."""
    value = text.strip()
    try:
        return int(value)
    except ValueError:
        raise ProcParseError(path, 1, "expected one integer, found %r" % value[:40])


def oom_score_adj_error(value):
    """Why ``value`` is not an oom_score_adj the kernel takes, or None."""
    if value is None:
        return "value is required: an integer from %d (never OOM-kill) to %d (kill first)" % (OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX)
    if not OOM_SCORE_ADJ_MIN <= value <= OOM_SCORE_ADJ_MAX:
        return ("value %d is out of range: oom_score_adj must be from %d (never OOM-kill) to %d "
                "(kill first); 0 is the kernel default" % (value, OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX))
    return None


def parse_stat(text, path="stat"):
    """/proc/<pid>/stat. The comm sits between the first '(' and the LAST ')' because a
    process may name itself with spaces and parentheses."""
    lparen = text.find("(")
    rparen = text.rfind(")")
    if lparen < 0 or rparen < lparen:
        raise ProcParseError(path, 1, "no '(comm)' field")
    fields = text[rparen + 2:].split()
    if len(fields) < 22:
        raise ProcParseError(path, 1, "expected at least 24 fields, found %d" % (len(fields) + 2))
    try:
        return {
            "pid": int(text[:lparen]),
            "comm": text[lparen + 1:rparen],
            "state": fields[0],
            "ppid": int(fields[1]),
            "flags": int(fields[6]),
            "num_threads": int(fields[17]),
            "starttime": int(fields[19]),
            "vsize": int(fields[20]),
            "rss_pages": int(fields[21]),
        }
    except ValueError as exc:
        raise ProcParseError(path, 1, "non-numeric field: %s" % exc)


def parse_stat_row(data, path="stat"):
    """(comm, ppid, flags, rss_pages, starttime) of /proc/<pid>/stat bytes: the fields of parse_stat the
    collection acts on, without building the whole dict, since the facts scan reads every process.
    ``starttime`` (field 22, clock ticks after boot) tells a pid apart from a later process that reuses it."""
    rparen = data.rfind(b")")
    fields = data[rparen + 2:].split(None, 22)
    try:
        return (data[data.index(b"(") + 1:rparen].decode("utf-8", "replace"), int(fields[1]), int(fields[6]),
                int(fields[21]), int(fields[19]))
    except (ValueError, IndexError):
        # Only for a malformed line: the full parser says what is wrong.
        parse_stat(data.decode("utf-8", "replace"), path)
        raise ProcParseError(path, 1, "cannot read the stat fields")


def is_kernel_thread(flags):
    return bool(flags & PF_KTHREAD)


def parse_status(text, path="status"):
    """/proc/<pid>/status: name, real/effective uid, ppid, VmRSS (kB, None for kernel threads)."""
    result = {"name": None, "uid": None, "euid": None, "ppid": None, "vm_rss_kb": None, "threads": None}
    for line_no, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(":")
        if not sep:
            raise ProcParseError(path, line_no, "expected 'Key:<tab>value'")
        value = value.strip()
        try:
            if key == "Name":
                result["name"] = value.replace("\\n", "\n").replace("\\\\", "\\")
            elif key == "Uid":
                uids = value.split()
                result["uid"] = int(uids[0])
                result["euid"] = int(uids[1]) if len(uids) > 1 else result["uid"]
            elif key == "PPid":
                result["ppid"] = int(value)
            elif key == "VmRSS":
                result["vm_rss_kb"] = int(value.split()[0])
            elif key == "Threads":
                result["threads"] = int(value)
        except (ValueError, IndexError):
            raise ProcParseError(path, line_no, "bad %s value %r" % (key, value[:40]))
    return result


_UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap", ".device", ".timer", ".automount", ".path", ".target")


def unit_from_cgroup_path(cgpath):
    """The systemd unit a cgroup path belongs to: the first component that is a unit and
    not a slice (what systemd's cg_path_get_unit returns), else None."""
    for part in cgpath.split("/"):
        if part.startswith("_"):
            part = part[1:]
        if part.endswith(_UNIT_SUFFIXES):
            return part
    return None


def parse_cgroup(text, path="cgroup"):
    """/proc/<pid>/cgroup (v1, v2 or hybrid) -> list of {id, controllers, path}."""
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not is_decimal(parts[0]):
            raise ProcParseError(path, line_no, "expected 'hierarchy-ID:controllers:path'")
        rows.append({"id": int(parts[0]), "controllers": parts[1], "path": parts[2]})
    return rows


def cgroup_unit(text, path="cgroup"):
    """The systemd unit of a process from its cgroup file, or None.

    The cgroup v2 line (``0::``) wins, then the v1 ``name=systemd`` hierarchy; other v1
    controllers are not managed by systemd and are ignored."""
    rows = parse_cgroup(text, path)
    for wanted in (lambda r: r["id"] == 0 and r["controllers"] == "", lambda r: r["controllers"] == "name=systemd"):
        for row in rows:
            if wanted(row):
                unit = unit_from_cgroup_path(row["path"])
                if unit:
                    return unit
    return None


_DECIMAL = re.compile(r"^[0-9]+$")


def is_decimal(text):
    """True for ASCII digits only: str.isdigit() also accepts characters such as U+00B2
    that int() refuses."""
    return bool(_DECIMAL.match(text))


_SECRET_WORD = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth)"
# Every pattern below runs in time linear in the argument: a name is matched only where one starts
# (a lookbehind, or an anchor) and no quantifier nests another, so a hostile command line of
# megabytes costs milliseconds, not hours.
_SECRET_WORD_RE = re.compile(_SECRET_WORD, re.IGNORECASE)
# --password=x, --db-token=x, token=x, PGPASSWORD=x, client_secret=x: the name, then = or :
_ASSIGN_HEAD = re.compile(r"[\w.-]*[=:]")
# --password x (value in the next argument); also "password:" as a word of a `key: value` text
_OPTION_WORD = re.compile(r"(?:-{0,2}|[{\[,]*[\"']?)([\w.-]*)[\"']?:?$")
_URL_CREDENTIALS = re.compile(r"(?<![\w+.-])([a-zA-Z][\w+.-]*://[^/\s:@]*):([^/\s@]*)@")
_HEADER_SECRET = re.compile(r"^((?:proxy-)?authorization:\s*(?:\w+\s+)?)(.+)$", re.IGNORECASE | re.DOTALL)
# Names that hold a secret only as a whole segment (api_key, X-Amz-Signature, sig=), not inside
# another word (keyboard, design).
_SECRET_SEGMENT = re.compile(r"(?:^|[-_.])(?:key|sig|signature|pw)$", re.IGNORECASE)
# key=value, key: value, "key": "value", key='value' anywhere inside an argument: URL queries
# (?api_key=...&), JSON (--config={"password":"x"}), YAML, mount options (-o user=a,password=b).
_INLINE_SECRET = re.compile(
    r"""(?P<key>(?P<q>["']?)(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*)(?P=q)\s*(?:=|:(?!//))\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"?|'[^']*'?|(?:[^\s&;"'}\],]|,(?!\s*["'\[{]|[\w.-]+\s*[=:]))+)""")
# Credentials recognisable by their shape wherever they stand.
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"hv[sbr]\.[A-Za-z0-9_-]{16,}"                  # HashiCorp Vault service, batch, recovery tokens
    r"|(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}"         # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"   # GitHub tokens
    r"|xox[abposre]-[A-Za-z0-9-]{8,}"              # Slack tokens
    r"|glpat-[A-Za-z0-9_-]{16,}"                    # GitLab personal access tokens
    r"|[sr]k_live_[A-Za-z0-9]{16,}"                 # Stripe secret keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JSON Web Tokens
    r")")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|digest|negotiate)(\s+)[^\s\"',;]+")
# An Authorization header inside a longer text: the credentials after the scheme.
_HEADER_ANYWHERE = re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*(?:[A-Za-z-]+\s+)?)([^\s\"',;]+)")
_AUTH_SCHEMES = ("bearer", "basic", "digest", "negotiate")
# Short options whose value is a secret, attached or in the next argument (mysql -p, openssl -k,
# sshpass -p). curl's -k takes no value; its next argument (a URL) only loses its display.
_SHORT_SECRET_OPTIONS = ("-p", "-k")
_URL = re.compile(r"^[A-Za-z][\w+.-]*://")
_SHORT_FLAG = re.compile(r"^-[A-Za-z]$")  # mysql -p -h db: -p prompts, -h is the next option
_USER_PASS_OPTIONS = ("-u", "--user", "--proxy-user")
# A word of an argument that holds spaces: a quoted string stays one word.
_WORDS = re.compile(r"""\s+|(?:[^\s'"]|'[^']*'?|"(?:[^"\\]|\\.)*"?)+""")


def _is_secret_name(name):
    return bool(_SECRET_WORD_RE.search(name) or _SECRET_SEGMENT.search(name))


def _secret_assignment(arg):
    """``--password=``, ``token:``: the head of an argument whose whole value is a secret, else None."""
    match = _ASSIGN_HEAD.match(arg)
    if match and match.end() < len(arg) and _SECRET_WORD_RE.search(match.group()):
        return match.group()
    return None


def _secret_option(arg):
    """An option or key whose value is the next word: ``--password``, ``password:``, ``{"password":``."""
    match = _OPTION_WORD.match(arg)
    return bool(match and _SECRET_WORD_RE.search(match.group(1)))


def _redact_inline(match):
    value = match.group("value")
    if not _is_secret_name(match.group("name")) or value == REDACTED or value.lower() in _AUTH_SCHEMES:
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return match.group("key") + quote + REDACTED + (quote if quote and len(value) > 1 and value.endswith(quote) else "")


def _redact_text(text):
    """What can be redacted without looking at the neighbouring arguments."""
    # The tests on characters skip the patterns that cannot match (most words of a command line).
    if "@" in text:
        text = _URL_CREDENTIALS.sub(r"\1:" + REDACTED + "@", text)
    if ":" in text or "=" in text:
        text = _HEADER_ANYWHERE.sub(r"\1" + REDACTED, text)
        text = _INLINE_SECRET.sub(_redact_inline, text)
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    if " " in text or "\t" in text:
        text = _AUTH_SCHEME.sub(r"\1\2" + REDACTED, text)
    return text


class _Redactor:
    """Walks the words of a command line in order: an option may take its secret from the next word."""

    def __init__(self):
        self.redact_next = False
        self.next_may_be_url = False
        self.user_pass_next = False

    def word(self, arg):
        if self.redact_next:
            self.redact_next = False
            if arg.lower() in _AUTH_SCHEMES:  # Authorization: Bearer <token>: the scheme stays, the token goes
                self.redact_next = True
                return arg
            if not arg.startswith("--") and not _SHORT_FLAG.match(arg) and not (self.next_may_be_url and _URL.match(arg)):
                # a long option next means the flag took no value; curl -k is followed by its URL
                return REDACTED
        if self.user_pass_next:
            self.user_pass_next = False
            if ":" in arg:
                return arg.split(":", 1)[0] + ":" + REDACTED
        if len(arg) > 1 and arg[0] in "'\"":  # a quoted word of a shell string: what is inside
            inner = arg[1:-1] if arg.endswith(arg[0]) else arg[1:]
            return arg[0] + self.argument(inner) + arg[len(inner) + 1:]
        head = _secret_assignment(arg)
        if head:
            return head + REDACTED
        match = _HEADER_SECRET.match(arg)
        if match:
            return match.group(1) + REDACTED
        arg = _redact_text(arg)
        secret_option = arg in _SHORT_SECRET_OPTIONS or _secret_option(arg) or arg.lower() in _AUTH_SCHEMES
        if len(arg) > 2 and arg[:2] in _SHORT_SECRET_OPTIONS and not arg.startswith("--"):
            # mysql -psecretpw: the value is attached. When the whole word also reads like a
            # secret option (-password), the next argument may be its value: redact both.
            arg = arg[:2] + REDACTED
        elif arg in _USER_PASS_OPTIONS:
            self.user_pass_next = True
        self.redact_next = bool(secret_option)
        self.next_may_be_url = arg == "-k"
        return arg

    def argument(self, arg):
        """One argv element; one that holds spaces (sh -c "mysql -pX ...") is redacted word by word."""
        match = _HEADER_SECRET.match(arg)
        if match:
            return match.group(1) + REDACTED
        if not any(c.isspace() for c in arg):
            return self.word(arg)
        arg = _redact_text(arg)  # what spans words: headers, quoted JSON values
        words = _WORDS.findall(arg)
        if "".join(words) != arg:  # pragma: no cover - the pattern matches every character
            words = re.split(r"(\s+)", arg)
        return "".join(w if w.isspace() else self.word(w) for w in words)


def redact_args(args):
    """Replace secrets in an argv list; returns a new list."""
    redactor = _Redactor()
    return [redactor.argument(arg) for arg in args]


def parse_cmdline(data, max_len=256):
    """/proc/<pid>/cmdline (NUL separated bytes) -> one redacted, truncated string.

    Each argument is redacted whole (JSON values, headers, URL queries, token shapes) and, when
    it holds spaces (``sh -c "..."``, or a process such as sshd or postgres that rewrote its
    argv into one string), word by word. Empty for kernel threads and zombies."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    args = data.split("\0")
    while args and args[-1] == "":
        args.pop()
    if max_len:
        # Only the arguments that can show up after truncation are redacted (plus one, for an
        # option whose secret is the next argument); the rest is cut anyway.
        length = 0
        for index, arg in enumerate(args):
            length += len(arg) + 1
            if length > max_len:
                args = args[:index + 2]
                break
    text = " ".join(redact_args(args))
    if max_len and len(text) > max_len:
        text = text[:max(max_len - 3, 0)] + "..."
    return text


_MEMINFO_MAP = (
    ("mem_total_kb", "MemTotal"),
    ("mem_available_kb", "MemAvailable"),
    ("mem_free_kb", "MemFree"),
    ("swap_total_kb", "SwapTotal"),
    ("swap_free_kb", "SwapFree"),
    ("slab_kb", "Slab"),
    ("sreclaimable_kb", "SReclaimable"),
    ("sunreclaim_kb", "SUnreclaim"),
)


def parse_meminfo(text, path="meminfo"):
    """/proc/meminfo -> {field: kB} with the raw field names (HugePages_* are counts)."""
    values = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not key or not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != "kB"):
            raise ProcParseError(path, line_no, "expected 'Field: <number> [kB]'")
        try:
            values[key] = int(parts[0])
        except ValueError:
            raise ProcParseError(path, line_no, "non-numeric value %r" % parts[0][:40])
    if "MemTotal" not in values:
        raise ProcParseError(path, None, "no MemTotal line")
    return values


def meminfo_facts(values):
    """The contract's meminfo dict from parse_meminfo() output; absent fields are None."""
    facts = dict((name, values.get(field)) for name, field in _MEMINFO_MAP)
    if "Active" in values and "Inactive" in values:
        facts["lru_kb"] = values["Active"] + values["Inactive"]
    else:
        parts = [values.get(k) for k in ("Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)")]
        facts["lru_kb"] = sum(parts) if None not in parts else None
    return facts


_SLAB_INT_COLUMNS = ("active_objs", "num_objs", "objsize", "objperslab", "pagesperslab")
SLABINFO_VERSIONS = ("2.0", "2.1")


def parse_slabinfo(text, page_size=4096, path="slabinfo"):
    """/proc/slabinfo 2.0, 2.1 or '2.1 (statistics)', SLAB or SLUB ->
    {version, statistics, caches: [...]}; each cache has the raw columns plus size_kb
    (num_slabs * pagesperslab * page size) and active_kb (active_objs * objsize)."""
    lines = text.splitlines()
    if not lines:
        raise ProcParseError(path, 1, "empty file")
    match = re.match(r"^slabinfo - version: (\d+\.\d+)( \(statistics\))?\s*$", lines[0])
    if not match:
        raise ProcParseError(path, 1, "expected 'slabinfo - version: <n>' header")
    version = match.group(1)
    if version not in SLABINFO_VERSIONS:
        raise ProcParseError(path, 1, "unsupported slabinfo version %s (supported: %s)" % (version, ", ".join(SLABINFO_VERSIONS)))
    caches = []
    for line_no, line in enumerate(lines[1:], 2):
        if not line.strip() or line.startswith("#"):
            continue
        segments = line.split(" : ")
        head = segments[0].split()
        if len(head) < 6:
            raise ProcParseError(path, line_no, "expected '<name> <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>'")
        slabdata = [s.split() for s in segments[1:] if s.split()[:1] == ["slabdata"]]
        if len(slabdata) != 1 or len(slabdata[0]) < 3:
            raise ProcParseError(path, line_no, "missing ': slabdata <active_slabs> <num_slabs> <sharedavail>'")
        try:
            cache = {"name": " ".join(head[:-5])}
            for key, value in zip(_SLAB_INT_COLUMNS, head[-5:]):
                cache[key] = int(value)
            cache["active_slabs"] = int(slabdata[0][1])
            cache["num_slabs"] = int(slabdata[0][2])
        except ValueError as exc:
            raise ProcParseError(path, line_no, "non-numeric column: %s" % exc)
        cache["size_kb"] = cache["num_slabs"] * cache["pagesperslab"] * page_size // 1024
        cache["active_kb"] = cache["active_objs"] * cache["objsize"] // 1024
        caches.append(cache)
    return {"version": version, "statistics": bool(match.group(2)), "caches": caches}
