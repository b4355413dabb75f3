#!/usr/bin/env bash
# Prepare everything `make demo` and `make test` need, from a clean clone on Debian 12:
# missing Debian packages, the pinned virtualenv, and the collection on a collections path.
# Safe to run again: each step is skipped when already done.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
venv="$top/.venv"
profile="${1:-test}"

# Debian packages: the demo needs Python's venv and an SSH client (its unreachable host); the tests need the real parts
# (sshd for the namespace fleet, podman for real systemd, chromium for the HTML report,
# qemu and debootstrap for the panic lab's guest).
demo_pkgs=(python3-venv procps iproute2 openssh-client)
test_pkgs=(shellcheck podman runc debootstrap chromium tini openssh-server openssh-client
           iproute2 procps python3-venv git rsync systemd-journal-remote
           qemu-system-x86 qemu-utils cpio e2fsprogs)
if [ "$profile" = demo ]; then pkgs=("${demo_pkgs[@]}"); else pkgs=("${test_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing Debian packages: ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned virtualenv, rebuilt when requirements.txt changes. The demo needs only ansible-core
# and jmespath (at requirements.txt's pins); a venv made for the tests serves it as well.
python=${PYTHON:-python3}
# shellcheck source=scripts/venv.sh
. "$top/scripts/venv.sh"
if [ "$profile" != demo ]; then
    ensure_venv bootstrap "$venv" "$python" -r "$top/requirements.txt"
elif ! venv_current "$venv" -r "$top/requirements.txt"; then
    ensure_venv bootstrap "$venv" "$python" -c "$top/requirements.txt" ansible-core jmespath
fi

# The checkout itself on a collections path, as oomguard.fleet.
coll="$top/.build/collections/ansible_collections/oomguard"
mkdir -p "$coll"
ln -sfn "$top" "$coll/fleet"
