#!/usr/bin/env bash
# The venv .venv-inventory holds the pinned Ansible community package (tests/inventory/requirements.txt)
# for its dynamic inventory plugins, without dependencies: the tests load amazon.aws.aws_ec2 from it
# with .venv's ansible-core and boto3. Prints the collections directory to add to the collections path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
ensure_venv inventory "$top/.venv-inventory" "$python" --no-deps -r "$top/tests/inventory/requirements.txt" >&2
site=$("$top/.venv-inventory/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -f "$site/ansible_collections/amazon/aws/plugins/inventory/aws_ec2.py" ]; then
    echo "inventory-venv: $site holds no amazon.aws collection" >&2
    exit 1
fi
echo "$site"
