#!/usr/bin/env bash
# The audit on the local host, as `make demo` runs it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/artifacts/demo"
mkdir -p "$out"
export ANSIBLE_STDOUT_CALLBACK=default
exec "$top/.venv/bin/ansible-playbook" -i "$top/playbooks/inventory/localhost.yml" \
    "$top/playbooks/audit.yml" -e "oomguard_report_dir=$out"
