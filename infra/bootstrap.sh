#!/usr/bin/env bash
# Creates (or reuses) the virtualenv with Herald's Python tools: moto's server,
# cargo-lambda, cfn-lint and the SAM CLI, pinned in infra/requirements.txt.
#
#   infra/bootstrap.sh            # venv at <repo>/.venv
#   HERALD_VENV=/x infra/bootstrap.sh
#
# A stamp inside the venv holds the sha256 of requirements.txt: when it matches
# and the venv's python runs, the script returns at once. HERALD_PYTHON picks the
# interpreter that creates the venv (default python3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HERALD_VENV:-$repo_root/.venv}"
python="${HERALD_PYTHON:-python3}"
requirements="$repo_root/infra/requirements.txt"
stamp="$venv/.herald-requirements.sha256"

# Quiet pip: no version nag, no root warning (old pips ignore unknown variables).
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

say() { echo "bootstrap: $*" >&2; }

# python, not sha256sum: the same on Linux and macOS.
want="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"

venv_runs() { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c '' 2>/dev/null; }
up_to_date() { venv_runs && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; }

if up_to_date; then
    say "$venv is up to date"
    exit 0
fi

# Parallel callers (test binaries, CI steps) wait for one install instead of racing.
if command -v flock >/dev/null 2>&1; then
    lock="${TMPDIR:-/tmp}/herald-bootstrap-$("$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:16])' "$venv").lock"
    exec 9>"$lock"
    flock 9
    if up_to_date; then
        say "$venv is up to date (installed by a parallel run)"
        exit 0
    fi
fi

started=$SECONDS
action="updated"

if ! venv_runs; then
    if [[ -e "$venv" ]]; then
        # Delete only what is recognisably a venv, never a directory named by mistake.
        if [[ -f "$venv/pyvenv.cfg" ]] || [[ -d "$venv" && -z "$(ls -A "$venv")" ]]; then
            rm -rf "$venv"
            action="recreated broken venv"
        else
            say "$venv exists and is not a virtualenv; refusing to replace it (set HERALD_VENV)"
            exit 1
        fi
    else
        action="created"
    fi
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # Debian without python3-venv has no ensurepip: use virtualenv from PyPI,
        # installed to a scratch directory (it ships its own pip).
        rm -rf "$venv"
        scratch="$(mktemp -d)"
        trap 'rm -rf "$scratch"' EXIT
        "$python" -m pip install --quiet --target "$scratch" virtualenv
        PYTHONPATH="$scratch" "$python" -m virtualenv --quiet "$venv"
    fi
fi

rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$requirements"
echo "$want" >"$stamp"

say "$action $venv from infra/requirements.txt in $((SECONDS - started))s"
