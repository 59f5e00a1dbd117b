#!/usr/bin/env bash
# Tests the URL client libraries against clients/vectors.json (written and kept current by
# the Rust test tests/integration/vectors.rs):
#
#   clients/python       pytest, then mypy --strict, in a venv at
#                        ${RENDITION_CACHE:-~/.cache/rendition}/venv-clients (tools pinned by
#                        clients/python/requirements-test.txt, installed from PyPI on first use)
#   clients/typescript   node --test (node 18+, no packages), then tsc --noEmit of the
#                        declarations (typescript pinned in its package.json, installed with npm
#                        into ${RENDITION_CACHE:-~/.cache/rendition}/clients-node on first use)
#
# Prints one cargo-style `test result:` line per suite (and per failed type check), which
# scripts/test.sh's closing summary counts. Every step runs; exits 1 if any failed. No files
# are written under clients/ (no __pycache__, no pytest or mypy caches).
#
# Usage:  scripts/test-clients.sh
# Env:    RENDITION_CACHE   cache dir (default ~/.cache/rendition)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CACHE_DIR="${RENDITION_CACHE:-${HOME:?HOME or RENDITION_CACHE must be set}/.cache/rendition}"
VENV="$CACHE_DIR/venv-clients"
REQUIREMENTS="$ROOT/clients/python/requirements-test.txt"
NODE_DIR="$CACHE_DIR/clients-node"
TS_VERSION=$(node -p 'require("./clients/typescript/package.json").devDependencies.typescript' 2>/dev/null || echo 5.9.3)

log() { printf '[test-clients] %s\n' "$*" >&2; }

FAILED=()
# result NAME PASSED FAILED: one line in cargo's format, for test.sh's summary.
result() {
    local verdict=ok
    (($3 == 0)) || verdict=FAILED
    printf 'test result: %s. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out (%s)\n' "$verdict" "$2" "$3" "$1"
    (($3 == 0)) || FAILED+=("$1")
}

# ---------------------------------------------------------------- python

ensure_venv() {
    local stamp
    stamp="v1 $(python3 --version 2>&1) $(cksum <"$REQUIREMENTS")"
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/venv-clients.lock"
    flock -w 600 8 || { log "could not lock $CACHE_DIR/venv-clients.lock"; return 1; }
    if [[ -x $VENV/bin/python && "$(cat "$VENV/.rendition-stamp" 2>/dev/null)" == "$stamp" ]]; then
        return 0
    fi
    python3 -c 'import venv, ensurepip' 2>/dev/null || { log "python3's venv module is missing (apt-get install python3-venv)"; return 1; }
    log "creating $VENV (pytest and mypy pinned by clients/python/requirements-test.txt)"
    rm -rf "$VENV"
    # Called in a condition, where `set -e` does not stop a failed step: each says so itself.
    python3 -m venv "$VENV" || return 1
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
        -r "$REQUIREMENTS" </dev/null >&2 || return 1
    printf '%s\n' "$stamp" >"$VENV/.rendition-stamp"
}

python_suite() {
    if ! command -v python3 >/dev/null || ! ensure_venv; then
        log "python3 with venv is needed (scripts/install-deps.sh --tests installs it)"
        result "clients/python pytest" 0 1
        return
    fi
    local out rc=0 passed failed
    out=$(cd clients/python && PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -p no:cacheprovider 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    # pytest's last line: "2 failed, 366 passed, 1 error in 0.52s".
    read -r passed failed < <(printf '%s\n' "$out" | tail -n1 | awk '{
        for (i = 2; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^(failed|error)/) f += $(i-1) }
      } END { print p + 0, f + 0 }')
    # A failing run that counted no failure (e.g. nothing collected) is one.
    ((rc == 0 || failed > 0)) || failed=1
    result "clients/python pytest" "$passed" "$failed"
    if ! (cd clients/python && "$VENV/bin/python" -m mypy --strict --cache-dir "$CACHE_DIR/mypy-clients" >&2); then
        result "clients/python mypy --strict" 0 1
    fi
}

# ---------------------------------------------------------------- typescript

ensure_tsc() {
    local have
    have=$(cd / && node -p "require(process.argv[1] + '/node_modules/typescript/package.json').version" "$NODE_DIR" 2>/dev/null || true)
    [[ $have == "$TS_VERSION" ]] && return 0
    command -v npm >/dev/null || { log "npm is needed for tsc (scripts/install-deps.sh --tests installs it)"; return 1; }
    log "installing typescript@$TS_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR" || return 1
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact "typescript@$TS_VERSION" >&2
}

typescript_suite() {
    if ! command -v node >/dev/null || (($(node -p 'process.versions.node.split(".")[0]') < 18)); then
        log "node 18 or later is needed (scripts/install-deps.sh --tests installs it)"
        result "clients/typescript node --test" 0 1
        return
    fi
    local out rc=0 passed failed
    out=$(node --test clients/typescript/test/*.test.js 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -vE '^\s*(ok [0-9]+ - |---$|\.\.\.$|duration_ms|type: )' >&2 || true
    passed=$(printf '%s\n' "$out" | sed -n 's/^# pass \([0-9]*\)$/\1/p' | tail -n1)
    failed=$(printf '%s\n' "$out" | sed -n 's/^# fail \([0-9]*\)$/\1/p' | tail -n1)
    [[ -n $passed && -n $failed ]] || { passed=${passed:-0}; failed=1; }
    ((rc == 0 || failed > 0)) || failed=1
    result "clients/typescript node --test" "$passed" "$failed"
    if ! ensure_tsc || ! "$NODE_DIR/node_modules/.bin/tsc" -p clients/typescript/tsconfig.json >&2; then
        result "clients/typescript tsc --noEmit" 0 1
    fi
}

T0=$SECONDS
python_suite
typescript_suite
if ((${#FAILED[@]})); then
    log "FAILED ($((SECONDS - T0)) s): ${FAILED[*]}"
    exit 1
fi
log "all passed ($((SECONDS - T0)) s)"
