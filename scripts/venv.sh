# shellcheck shell=bash
# Sourced by bootstrap.sh and compat.sh: one way to make a pinned virtualenv.
#
#   ensure_venv LABEL VENV PYTHON PIP_ARG...
#
# Creates VENV with PYTHON and pip-installs PIP_ARG... into it, unless the venv exists and was
# made from the same arguments and the same contents of the files among them (the stamp in
# VENV/.requirements.sha256). Says so, prefixed with LABEL, when it builds. Returns non-zero when
# a step fails, whatever the caller's errexit, and then writes no stamp.

venv_want() {
    local arg
    { printf '%s\n' "$@"; for arg in "$@"; do if [ -f "$arg" ]; then cat "$arg"; fi; done; } | sha256sum | cut -d' ' -f1
}

# venv_current VENV PIP_ARG...: true when VENV was made by ensure_venv from these arguments.
venv_current() {
    local venv=$1
    shift
    [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$(venv_want "$@")" ]
}

ensure_venv() {
    local label=$1 venv=$2 python=$3
    shift 3
    local want
    want=$(venv_want "$@")
    if venv_current "$venv" "$@"; then
        return 0
    fi
    echo "$label: creating $venv from $*"
    "$python" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install -q --upgrade pip || return 1
    "$venv/bin/python" -m pip install -q "$@" || return 1
    echo "$want" > "$venv/.requirements.sha256"
}
