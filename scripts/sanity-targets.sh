#!/usr/bin/env bash
# ansible-test sanity's compile and import tests of the host-side modules and their module_utils
# on every target Python of the supported ansible-core versions, through pyenv's CPythons
# (~/.pyenv/versions/<version>/bin/python): 2.7 (CentOS 7, Alibaba Cloud Linux 2), 3.6 (RHEL 8's
# platform-python) and 3.7 with the ansible-test of the 2.16 release in tests/compat/versions (the
# pinned core's no longer knows them), in .venv-compat/ansible-test-<version> with virtualenv
# 16.7.12 (the newest whose "--version" that ansible-test reads; it makes the 2.7 venvs); 3.8+
# with the pinned core's ansible-test (.venv). make sanity covers the controller's 3.11.
# Usage: scripts/sanity-targets.sh [PYENV_VERSION ...]   (default: 2.7.18 3.6.15 3.7.16 3.8.18 3.9.18 3.10.13)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
pythons=("$@")
[ "${#pythons[@]}" -gt 0 ] || pythons=(2.7.18 3.6.15 3.7.16 3.8.18 3.9.18 3.10.13)
# Host-side code: what runs on the managed host's Python (the controller-side plugins need 3.10+).
files=(plugins/modules/oom_score_facts.py plugins/modules/slabinfo_facts.py plugins/modules/oom_score_adj.py
       plugins/modules/oom_rollback.py)
for name in _contract change_module dropins evidence journal oom_change oom_facts proc_reader procfs pycompat rollback_plan \
            safefile slabinfo; do
    files+=("plugins/module_utils/$name.py")
done

core=$(awk '$1 ~ /^2\.16\./ {v = $1} END {print v}' tests/compat/versions)
if [ -z "$core" ]; then
    echo "sanity-targets: tests/compat/versions lists no ansible-core 2.16 release" >&2
    exit 1
fi
old_venv="$top/.venv-compat/ansible-test-$core"
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
ensure_venv sanity-targets "$old_venv" "${PYTHON:-python3}" "ansible-core==$core" "virtualenv==16.7.12"
venv_of() {
    case "$1" in 2.7.*|3.6.*|3.7.*) echo "$old_venv" ;; *) echo "$top/.venv" ;; esac
}
for venv in "$old_venv" "$top/.venv"; do
    seed=("$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')")
    for version in "${pythons[@]}"; do
        if [ "$(venv_of "$version")" = "$venv" ]; then seed+=("${version%.*}"); fi
    done
    "$venv/bin/python" scripts/seed_ansible_test_pip.py "${seed[@]}"
done

for version in "${pythons[@]}"; do
    venv=$(venv_of "$version")
    bin="$HOME/.pyenv/versions/$version/bin"
    if [ ! -x "$bin/python" ]; then
        echo "sanity-targets: $bin/python is missing; install it with: pyenv install $version" >&2
        exit 1
    fi
    echo "sanity-targets: compile and import on Python $version ($("$venv/bin/ansible-test" --version))"
    # The interpreter's own directory first: ansible-test makes 3.x venvs with the python3.X it finds on PATH.
    PATH="$bin:$PATH" OOMGUARD_ANSIBLE_TEST_VENV="$venv" \
        OOMGUARD_ANSIBLE_TEST_DIR="/var/tmp/oomguard-ansible-test-targets-$(echo "$top" | sha256sum | cut -c1-12)" \
        OOMGUARD_ANSIBLE_TEST_PYTHON="--python ${version%.*} --python-interpreter $bin/python" \
        scripts/ansible-test.sh sanity --test compile --test import "${files[@]}"
done
echo "sanity-targets: passed on Python ${pythons[*]}"
