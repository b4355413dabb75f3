#!/usr/bin/env bash
# Run the unit tests and the role-level system tests under every other ansible-core the
# collection supports (meta/runtime.yml), each in its own pinned venv under .venv-compat/,
# made with the controller Python named beside the version in tests/compat/versions
# (default: $PYTHON or python3). The newest version listed there (the last line) also runs
# the whole stack: ansible-test sanity, ansible-lint and the molecule scenarios but `lab`.
# Usage: scripts/compat.sh [VERSION ...]   (default: the versions in tests/compat/versions)
#        COMPAT_BUILD_ONLY=1 scripts/compat.sh VERSION ...   builds the venvs and runs nothing
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
default_python=${PYTHON:-python3}
# tests/compat/versions: "VERSION [PYTHON]" per line; PYTHON may start with ~/.
declare -A controller=()
listed=()
while read -r version py _; do
    case "$version" in ''|'#'*) continue ;; esac
    listed+=("$version")
    controller[$version]=${py:+${py/#\~\//$HOME/}}
done < tests/compat/versions
newest=${listed[${#listed[@]}-1]}
if [ "$#" -gt 0 ]; then versions=("$@"); else versions=("${listed[@]}"); fi
python_of() {
    local py=${controller[$1]:-}
    echo "${py:-$default_python}"
}

# The system tests that drive every role and action plugin through ansible-playbook. Those with the real
# peers (amazon.aws.aws_ec2, ansible.posix) take them from the Ansible package built for each core.
system_tests=(tests/system/test_assess_role.py tests/system/test_snapshot_role.py tests/system/test_snapshot_batch.py
              tests/system/test_snapshot_metadata.py tests/system/test_remediate_role.py
              tests/system/test_remediate_playbook.py tests/system/test_report_role.py tests/system/test_fact_injection.py
              tests/system/test_inventory_sources.py)
# The versions between the oldest and the newest run the unit tests and these (the roles' outputs
# and the real peers of their own Ansible package); COMPAT_FULL=1 runs every list above on them too.
middle_tests=(tests/system/test_fact_injection.py tests/system/test_inventory_sources.py)
oldest=${listed[0]}

# Build the missing venvs side by side (downloads dominate), then test one version at a time.
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
build() {
    local venv="$top/.venv-compat/$1" python
    python=$(python_of "$1")
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3,))' 2>/dev/null; then
        echo "compat: the controller Python of ansible-core $1 ($python) does not run; install it or" \
             "name another in tests/compat/versions" >&2
        return 1
    fi
    # A venv made by another Python than the one named now is made again.
    if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version)')" != \
            "$("$python" -c 'import sys; print(sys.version)')" ]; then
        rm -rf "$venv"
    fi
    if [ "$1" = "$newest" ]; then
        # The whole stack: the main pins (requirements.txt) with this ansible-core instead.
        grep -v '^ansible-core==' requirements.txt > ".venv-compat/requirements-$1.txt"
        ensure_venv compat "$venv" "$python" -r ".venv-compat/requirements-$1.txt" "ansible-core==$1"
    else
        ensure_venv compat "$venv" "$python" -r tests/compat/requirements.txt "ansible-core==$1"
    fi
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
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false

# The rest of the stack under the newest ansible-core, each step timed.
stack() {
    local venv=$1 version=$2 py scenario start log
    py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    start=$SECONDS
    echo "compat: ansible-core $version: ansible-test sanity on Python $py"
    OOMGUARD_ANSIBLE_TEST_VENV="$venv" OOMGUARD_ANSIBLE_TEST_PYTHON="--venv --python $py" \
        OOMGUARD_ANSIBLE_TEST_DIR="/var/tmp/oomguard-ansible-test-compat-$(echo "$top" | sha256sum | cut -c1-12)" \
        scripts/ansible-test.sh sanity
    echo "compat: ansible-core $version: sanity took $((SECONDS - start)) s"
    start=$SECONDS
    PATH="$venv/bin:$PATH" ansible-lint --profile production --offline
    echo "compat: ansible-core $version: ansible-lint took $((SECONDS - start)) s"
    # The lab scenario (a real VM, minutes) stays with the pinned core (make lab, make molecule).
    for scenario in default fleet; do
        start=$SECONDS
        log="$top/.venv-compat/molecule-$scenario.log"
        # Deprecation warnings on (the scenarios switch them off): none may come from the collection.
        (cd extensions && PATH="$venv/bin:$PATH" ANSIBLE_DEPRECATION_WARNINGS=true molecule test -s "$scenario") 2>&1 | tee "$log"
        if grep -q 'DEPRECATION WARNING' "$log"; then
            echo "compat: ansible-core $version: molecule $scenario printed deprecation warnings (above, in $log)" >&2
            return 1
        fi
        echo "compat: ansible-core $version: molecule $scenario took $((SECONDS - start)) s"
    done
}

for version in "${versions[@]}"; do
    venv="$top/.venv-compat/$version"
    got=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
    if [ "$got" != "$version" ]; then
        echo "compat: $venv has ansible-core $got, not $version" >&2
        exit 1
    fi
    echo "compat: ansible-core $version"
    start=$SECONDS
    if [ "$version" = "$newest" ]; then
        # Fact injection off here, at its default (on) everywhere else: the roles work either way.
        ANSIBLE_INJECT_FACT_VARS=false "$venv/bin/python" -m pytest -p no:cacheprovider --import-mode=importlib -q -rs \
            tests/unit "${system_tests[@]}"
        echo "compat: ansible-core $version: unit and system tests took $((SECONDS - start)) s"
        stack "$venv" "$version"
    elif [ "$version" = "$oldest" ] || [ -n "${COMPAT_FULL:-}" ]; then
        "$venv/bin/python" -m pytest -p no:cacheprovider --import-mode=importlib -q -rs tests/unit "${system_tests[@]}"
        echo "compat: ansible-core $version: unit and system tests took $((SECONDS - start)) s"
    else
        "$venv/bin/python" -m pytest -p no:cacheprovider --import-mode=importlib -q -rs tests/unit "${middle_tests[@]}"
        echo "compat: ansible-core $version: unit tests, fact injection and the real peers took $((SECONDS - start)) s"
    fi
done
echo "compat: passed on ansible-core ${versions[*]}"
