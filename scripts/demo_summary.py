# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of scripts/demo.sh.

    demo_summary.py closed-port           a loopback TCP port nothing listens on
    demo_summary.py digest DIR            one hash over every file, link and mode under DIR
    demo_summary.py flagged REPORT        the hosts with flagged processes in a report, comma-separated
    demo_summary.py summary OUT RESETLOG  what the demo found: the worst hosts and why, what flag
                                          mode flagged, what the check-mode reset would change
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys

LEVELS = ("critical", "high", "medium", "low", "ok", "unknown")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def closed_port():
    for _attempt in range(20):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        check = socket.socket()
        check.settimeout(1)
        try:
            check.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return port
        finally:
            check.close()
    raise SystemExit("demo: found no closed loopback port")


def digest(top):
    sha = hashlib.sha256()
    for base, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(base, name)
            info = os.lstat(path)
            sha.update(("%s %o\n" % (os.path.relpath(path, top), info.st_mode)).encode("utf-8"))
            if os.path.islink(path):
                sha.update(os.readlink(path).encode("utf-8"))
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    sha.update(handle.read())
    return sha.hexdigest()


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def top_findings(host, count=2):
    findings = sorted(host.get("findings") or [], key=lambda f: SEVERITY_RANK.get(f.get("severity"), 9))
    return findings[:count]


def shorten(text, width=150):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def summary(out, reset_log):
    audit = load(os.path.join(out, "oomguard-report.json"))
    flag = load(os.path.join(out, "flag", "oomguard-report.json"))
    by_level = audit["totals"]["by_level"]
    lines = ["", "=" * 78, "What the demo found: %d hosts (%s)" % (
        audit["totals"]["hosts"], ", ".join("%s %d" % (level, by_level[level]) for level in LEVELS if by_level.get(level)))]
    hosts = audit["hosts"]  # worst first, as the report orders them
    worst = [h for h in hosts if h["level"] not in ("ok", "low")]
    lines.append("The worst hosts and why:")
    for host in worst:
        if host["level"] == "unknown":
            lines.append("  %-15s %-8s %s" % (host["host"], host["level"], shorten(host.get("reason") or "no result")))
            continue
        found = top_findings(host)
        lines.append("  %-15s %-8s %s" % (host["host"], host["level"], ", ".join(
            "%s/%s" % (f["id"], f["severity"]) for f in host.get("findings") or [])))
        for finding in found:
            lines.append("      %s: %s" % (finding["id"], shorten(finding["message"])))
    others = [h for h in hosts if h["level"] in ("ok", "low")]
    if others:
        lines.append("Fine for now: %s" % ", ".join("%s (%s%s)" % (h["host"], h["level"], "".join(
            ": " + f["id"] for f in top_findings(h, 1))) for h in others))
    lines.append("")
    lines.append("remediate.yml, flag mode (changes nothing): %d process(es) flagged" % flag["totals"]["flagged_processes"])
    for host in flag["hosts"]:
        for proc in host.get("flagged") or []:
            lines.append("  %-15s %s (pid %s, unit %s, oom_score_adj %s)" % (
                host["host"], proc["name"], proc["pid"], proc.get("unit") or "-", proc["oom_score_adj"]))
    would = []
    with open(reset_log, encoding="utf-8") as handle:
        current = None
        for line in handle:
            match = re.match(r"^(?:changed|ok): \[([^\]]+)\]", line)
            if match and current is not None:
                would.extend("  %-15s %s" % (match.group(1), item) for item in current)
                current = None
            match = re.match(r"^\+\+\+ after: (.*)$", line.rstrip("\n"))
            if match:
                current = (current or []) + [match.group(1)]
    lines.append("remediate.yml --check --diff, reset mode (snapshot waived, nothing written): %d change(s) it would make"
                 % len(would))
    lines.extend(would)
    lines.append("")
    lines.append("HTML report (open it in a browser): %s" % os.path.join(out, "oomguard-report.html"))
    lines.append("All report files: %s/oomguard-report.{json,csv,md,html,junit.xml}; flag mode's in %s/flag/" % (out, out))
    return "\n".join(lines)


def main(argv):
    if argv[:1] == ["closed-port"]:
        print(closed_port())
    elif argv[:1] == ["digest"] and len(argv) == 2:
        print(digest(argv[1]))
    elif argv[:1] == ["flagged"] and len(argv) == 2:
        hosts = [h["host"] for h in load(argv[1])["hosts"] if h.get("flagged")]
        if not hosts:
            raise SystemExit("demo: flag mode flagged no process in %s" % argv[1])
        print(",".join(hosts))
    elif argv[:1] == ["summary"] and len(argv) == 3:
        print(summary(argv[1], argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
