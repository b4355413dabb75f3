#!/usr/bin/env bash
# Run the unit tests and the role-level system tests under every other ansible-core the
# collection supports (meta/runtime.yml), each in its own pinned venv under .venv-compat/.
# Usage: scripts/compat.sh [VERSION ...]   (default: the versions in tests/compat/versions)
#        COMPAT_BUILD_ONLY=1 scripts/compat.sh VERSION ...   builds the venvs and runs nothing
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
python=${PYTHON:-python3}
if [ "$#" -gt 0 ]; then versions=("$@"); else mapfile -t versions < <(grep -v '^#' tests/compat/versions | grep .); fi

# The system tests that drive every role and action plugin through ansible-playbook.
system_tests=(tests/system/test_assess_role.py tests/system/test_snapshot_role.py tests/system/test_snapshot_batch.py
              tests/system/test_snapshot_metadata.py tests/system/test_remediate_role.py
              tests/system/test_remediate_playbook.py tests/system/test_report_role.py)

# Build the missing venvs side by side (downloads dominate), then test one version at a time.
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
build() {
    ensure_venv compat "$top/.venv-compat/$1" "$python" -r tests/compat/requirements.txt "ansible-core==$1"
}
mkdir -p "$top/.venv-compat"
pids=()
for version in "${versions[@]}"; do
    build "$version" > "$top/.venv-compat/$version.log" 2>&1 &
    pids+=("$!")
done
status=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "compat: building the venv of ansible-core ${versions[$i]} failed:" >&2
        cat "$top/.venv-compat/${versions[$i]}.log" >&2
        status=1
    fi
    rm -f "$top/.venv-compat/${versions[$i]}.log"
done
[ "$status" -eq 0 ] || exit "$status"
# COMPAT_BUILD_ONLY=1: only make the venvs (tests/system/test_target_pythons.py uses them as they are).
[ -z "${COMPAT_BUILD_ONLY:-}" ] || exit 0

export ANSIBLE_COLLECTIONS_PATH="$top/.build/collections" PYTHONPATH="$top/.build/collections"
for version in "${versions[@]}"; do
    venv="$top/.venv-compat/$version"
    got=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
    if [ "$got" != "$version" ]; then
        echo "compat: $venv has ansible-core $got, not $version" >&2
        exit 1
    fi
    echo "compat: ansible-core $version"
    "$venv/bin/python" -m pytest -p no:cacheprovider --import-mode=importlib -q tests/unit "${system_tests[@]}"
done
echo "compat: passed on ansible-core ${versions[*]}"
