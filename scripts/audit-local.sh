#!/usr/bin/env bash
# The audit of this machine (make audit-local): assess the local host and write its report.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/artifacts/audit-local"
mkdir -p "$out"
export ANSIBLE_STDOUT_CALLBACK=default
"$top/.venv/bin/ansible-playbook" -i "$top/playbooks/inventory/localhost.yml" \
    "$top/playbooks/audit.yml" -e "oomguard_report_dir=$out"
echo
echo "Report files:"
find "$out" -maxdepth 1 -type f -name 'oomguard-report*' -printf '  %p\n' | sort
echo "Figures per host (from oomguard-report.json):"
"$top/.venv/bin/python" - "$out/oomguard-report.json" <<'PY'
import json
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    report = json.load(handle)
for host in report["hosts"]:
    figures = host.get("figures") or {}
    print("  %s: level %s" % (host["host"], host["level"]))
    for key in sorted(figures):
        print("    %-22s %s" % (key, figures[key]))
    for finding in host.get("findings") or []:
        print("    %s %s: %s" % (finding["id"], finding["severity"], finding["message"]))
PY
echo "Markdown summary:"
sed 's/^/  /' "$out/oomguard-report.md"
