#!/usr/bin/env bash
# Run ansible-test on a copy of the collection placed where ansible-test wants it
# (.../ansible_collections/oomguard/fleet). Usage: scripts/ansible-test.sh sanity|units [args]
# OOMGUARD_ANSIBLE_TEST_VENV: the venv whose ansible-test runs (default .venv);
# OOMGUARD_ANSIBLE_TEST_PYTHON: its Python options (default --venv --python 3.11; see scripts/sanity-targets.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout: inside a git work tree ansible-test lists files through git and would
# see none of the copy (it is ignored there).
dest="${OOMGUARD_ANSIBLE_TEST_DIR:-/var/tmp/oomguard-ansible-test-$(echo "$top" | sha256sum | cut -c1-12)}/ansible_collections/oomguard/fleet"
venv=${OOMGUARD_ANSIBLE_TEST_VENV:-$top/.venv}
"$venv/bin/python" "$top/scripts/seed_ansible_test_pip.py"
mkdir -p "$dest"
# Tracked and new (not ignored) files only, so build output never leaks into the run.
(cd "$top" && git ls-files -co --exclude-standard -z) |
    rsync -a --delete --from0 --files-from=- "$top/" "$dest/"
# rsync --delete only prunes within the listed set; drop files and symlinks that left the tree.
(cd "$dest" && find . \( -type f -o -type l \) ! -path './tests/output/*' -printf '%P\n' | sort) > "$dest.have"
(cd "$top" && git ls-files -co --exclude-standard | sort) > "$dest.want"
comm -23 "$dest.have" "$dest.want" | (cd "$dest" && xargs -r rm -f --)
rm -f "$dest.have" "$dest.want"
cd "$dest"
read -r -a python_options <<< "${OOMGUARD_ANSIBLE_TEST_PYTHON:---venv --python 3.11}"
PATH="$venv/bin:$PATH" exec ansible-test "$@" "${python_options[@]}" --color no
