#!/usr/bin/env bash
# Lints and tests the operations tools (ops/, the Python package rendition_ops behind
# scripts/{chaos,soak,e2e-bench,lambda-bench}.sh), without services: ruff check, then pytest
# (its S3 is a moto server of its own on a free loopback port).
#
# Tools pinned by ops/requirements-test.txt, installed from PyPI on first use into a venv at
# ${RENDITION_CACHE:-~/.cache/rendition}/ops-test-venv (ruff's configuration is ops/pyproject.toml).
# With --bin PATH (or RENDITION_BIN) the verification is also checked on the product's own
# output (`rendition run --local`); without, that one test is skipped.
#
# Prints pytest's own report (its closing line: "N passed in S s"), then a cargo-style
# `test result:` line for scripts/test.sh's summary (and one for ruff when it fails). Exits 1
# if either failed. No files are written under ops/ (no __pycache__, no pytest cache; ruff's
# cache is in target/).
#
# Usage:  scripts/test-ops.sh [--bin PATH]
# Env:    RENDITION_CACHE   cache dir (default ~/.cache/rendition)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

while (($#)); do
    case $1 in
        --bin)
            (($# >= 2)) || { echo "test-ops: --bin needs a path" >&2; exit 2; }
            RENDITION_BIN=$(realpath "$2")
            export RENDITION_BIN
            shift 2
            ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "test-ops: unknown argument $1" >&2; exit 2 ;;
    esac
done

CACHE_DIR="${RENDITION_CACHE:-${HOME:?HOME or RENDITION_CACHE must be set}/.cache/rendition}"
VENV="$CACHE_DIR/ops-test-venv"
REQUIREMENTS="$ROOT/ops/requirements-test.txt"

log() { printf '[test-ops] %s\n' "$*" >&2; }

FAILED=()
# result NAME PASSED FAILED SKIPPED: one line in cargo's format, for test.sh's summary.
result() {
    local verdict=ok
    (($3 == 0)) || verdict=FAILED
    printf 'test result: %s. %d passed; %d failed; %d ignored; 0 measured; 0 filtered out (%s)\n' "$verdict" "$2" "$3" "$4" "$1"
    (($3 == 0)) || FAILED+=("$1")
}

ensure_venv() {
    local stamp
    stamp="v1 $(python3 --version 2>&1) $(cat "$REQUIREMENTS" "$ROOT/ops/requirements.txt" | cksum)"
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/ops-test-venv.lock"
    flock -w 600 8 || { log "could not lock $CACHE_DIR/ops-test-venv.lock"; return 1; }
    if [[ -x $VENV/bin/python && "$(cat "$VENV/.rendition-stamp" 2>/dev/null)" == "$stamp" ]]; then
        return 0
    fi
    python3 -c 'import venv, ensurepip' 2>/dev/null || { log "python3's venv module is missing (apt-get install python3-venv)"; return 1; }
    log "creating $VENV (pinned by ops/requirements-test.txt)"
    rm -rf "$VENV"
    # Called in a condition, where `set -e` does not stop a failed step: each says so itself.
    python3 -m venv "$VENV" || return 1
    (cd "$ROOT/ops" && "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
        -r requirements-test.txt </dev/null >&2) || return 1
    printf '%s\n' "$stamp" >"$VENV/.rendition-stamp"
}

T0=$SECONDS
if ! command -v python3 >/dev/null || ! ensure_venv; then
    log "python3 with venv is needed (scripts/install-deps.sh --tests installs it)"
    result "ops pytest" 0 1 0
    exit 1
fi
export PYTHONDONTWRITEBYTECODE=1

# The lint counts as a test only when it fails (as test-clients.sh's type checks).
if (cd ops && "$VENV/bin/ruff" check --quiet .) >&2; then
    log "ruff check: clean"
else
    result "ops ruff check" 0 1 0
fi

rc=0
out=$(cd ops && "$VENV/bin/python" -m pytest 2>&1) || rc=$?
printf '%s\n' "$out"
# pytest's closing line: "==== 2 failed, 36 passed, 1 skipped, 1 error in 5.12s ====".
read -r passed failed skipped < <(printf '%s\n' "$out" | tail -n1 | tr -d '=,' | awk '{
    for (i = 2; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^(failed|errors?)$/) f += $(i-1); if ($i ~ /^skipped/) s += $(i-1) }
  } END { print p + 0, f + 0, s + 0 }')
# A failing run that counted no failure (e.g. nothing collected) is one.
((rc == 0 || failed > 0)) || failed=1
result "ops pytest" "$passed" "$failed" "$skipped"

if ((${#FAILED[@]})); then
    log "FAILED ($((SECONDS - T0)) s): ${FAILED[*]}"
    exit 1
fi
log "all passed ($((SECONDS - T0)) s)"
