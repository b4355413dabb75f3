#!/usr/bin/env bash
# The Ansible community package built for the ansible-core of PYTHON (default: .venv's), for the real
# peers it bundles (amazon.aws.aws_ec2, ansible.posix's callbacks): the package that
# tests/inventory/ansible-packages names for that ansible-core minor, installed without dependencies
# into its own venv .venv-inventory/<package version>, made with PYTHON (ansible 13 and later require
# Python 3.12). The tests run its collections with PYTHON's ansible-core and boto3. Built once, then
# reused; concurrent callers wait for one build. Checks that the package's own ansible-core
# requirement admits the running ansible-core. Prints the collections directory to add to the
# collections path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$top/.venv/bin/python}
core=$("$python" -c 'from ansible.release import __version__; print(__version__)')
minor=$(echo "$core" | cut -d. -f1,2)
package=$(awk -v minor="$minor" '$1 == minor { print $2 }' "$top/tests/inventory/ansible-packages")
if [ -z "$package" ]; then
    echo "inventory-venv: tests/inventory/ansible-packages names no Ansible package for ansible-core $minor ($python)" >&2
    exit 1
fi
venv="$top/.venv-inventory/$package"
mkdir -p "$top/.venv-inventory"
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
(
    flock 9
    ensure_venv "inventory (ansible-core $core)" "$venv" "$python" --no-deps "ansible==$package" >&2
) 9> "$venv.lock"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$python" - "$site" "$package" "$core" <<'PY'
import sys
from importlib.metadata import distributions

from packaging.requirements import Requirement

site, package, core = sys.argv[1:]
found = [d for d in distributions(path=[site]) if d.metadata['Name'] == 'ansible']
if [d.version for d in found] != [package]:
    sys.exit('inventory-venv: %s holds ansible %s, not %s' % (site, [d.version for d in found], package))
wanted = [Requirement(r) for r in found[0].requires or () if Requirement(r).name == 'ansible-core']
if not wanted or not wanted[0].specifier.contains(core, prereleases=True):
    sys.exit('inventory-venv: ansible %s requires %s, not ansible-core %s'
             % (package, wanted[0] if wanted else 'no ansible-core', core))
PY
for plugin in amazon/aws/plugins/inventory/aws_ec2.py ansible/posix/plugins/callback/json.py \
        ansible/posix/plugins/callback/profile_tasks.py; do
    if [ ! -f "$site/ansible_collections/$plugin" ]; then
        echo "inventory-venv: $site holds no ansible_collections/$plugin" >&2
        exit 1
    fi
done
echo "$site"
