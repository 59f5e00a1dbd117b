#!/usr/bin/env bash
# Bring up / tear down the real services Rendition's tests run against, on loopback only:
#   - RabbitMQ at 127.0.0.1:5672 (guest/guest): reused if something already speaks AMQP there,
#     otherwise installed (apt) if missing and started detached.
#   - moto server (S3 + SQS) on a free 127.0.0.1 port, from a pinned venv in the cache dir.
#
# Usage:
#   infra/local/services.sh up            # start (or reuse); last stdout line = path of the env file
#   infra/local/services.sh down [--all]  # stop moto, remove env file; --all also stops RabbitMQ
#                                         # if (and only if) this script started it
#   infra/local/services.sh status        # what is up; exit 0 if everything is, 3 otherwise
#   infra/local/services.sh cargo-lambda  # install (or reuse) cargo-lambda, the Lambda Runtime API
#                                         # emulator; last stdout line = path of its binary
#
#   eval: . "$(infra/local/services.sh up | tail -n1)"
#
# Environment:
#   RENDITION_CACHE          cache dir (default ~/.cache/rendition): venv, logs, state, env file
#   RENDITION_SERVICES_ENV   env file path (default $RENDITION_CACHE/services.env)
#   RENDITION_RABBITMQ_TIMEOUT / RENDITION_MOTO_TIMEOUT  startup bounds in seconds (90 / 30)
#
# cargo-lambda comes from PyPI (`pip install --no-deps cargo-lambda==1.9.2`, seconds; building it
# with `cargo install` takes over 25 minutes, and --no-deps skips the 400 MB zig package, which only
# cross-compiling needs) into $RENDITION_CACHE/cargo-lambda-venv. Run it as
#   cargo-lambda lambda watch --only-lambda-apis -A 127.0.0.1 -P PORT
# in a folder holding a Cargo.toml (the repo root), then start a Lambda binary with
# AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/.rt (with the scheme: lambda_runtime 1.x refuses
# `127.0.0.1:PORT/.rt`) and invoke it with
# POST http://127.0.0.1:PORT/2015-03-31/functions/_/invocations.
#
# Never uses docker. Everything chatty goes to stderr; `up | tail -n1` returns promptly because
# background servers get their stdout/stderr redirected to log files and no inherited pipe fds.
set -euo pipefail

CACHE_DIR="${RENDITION_CACHE:-${HOME:?HOME or RENDITION_CACHE must be set}/.cache/rendition}"
ENV_FILE="${RENDITION_SERVICES_ENV:-$CACHE_DIR/services.env}"
STATE_FILE="$CACHE_DIR/services.state"
LOCK_FILE="$CACHE_DIR/services.lock"
VENV="$CACHE_DIR/moto-venv"
CARGO_LAMBDA_VENV="$CACHE_DIR/cargo-lambda-venv"
CARGO_LAMBDA_VERSION=1.9.2
MOTO_LOG="$CACHE_DIR/moto.log"
RABBIT_LOG="$CACHE_DIR/rabbitmq-start.log"

AMQP_HOST=127.0.0.1
AMQP_PORT=5672
RABBIT_TIMEOUT="${RENDITION_RABBITMQ_TIMEOUT:-90}"
MOTO_TIMEOUT="${RENDITION_MOTO_TIMEOUT:-30}"

MOTO_VERSION=5.2.5
MOTO_REQUIREMENTS=("moto[s3,sqs]==$MOTO_VERSION" "flask==3.1.3" "flask-cors==6.0.5")
# Full resolved set (pip freeze of the above, Python 3.11), used as constraints so the venv is
# reproducible: a new botocore release must not silently change moto's behaviour under us.
MOTO_CONSTRAINTS="blinker==1.9.0
boto3==1.44.5
botocore==1.44.5
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
cryptography==50.0.2
Flask==3.1.3
flask-cors==6.0.5
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
MarkupSafe==3.0.4
moto==5.2.5
py-partiql-parser==0.6.3
pycparser==3.12
python-dateutil==2.9.0.post0
PyYAML==6.0.3
requests==2.34.2
responses==0.26.3
s3transfer==0.19.3
six==1.17.0
urllib3==2.8.0
Werkzeug==3.1.9
xmltodict==1.0.4"
# Written into the venv last; a venv without a matching stamp is treated as broken/outdated.
VENV_STAMP="v1 ${MOTO_REQUIREMENTS[*]} $(printf '%s' "$MOTO_CONSTRAINTS" | cksum)"

# shellcheck source=infra/local/lib.sh disable=SC1091 # sourced by path; checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- small helpers

lock() {
    mkdir -p "$CACHE_DIR"
    exec 9>"$LOCK_FILE"
    if ! flock -w 600 9; then die "could not lock $LOCK_FILE within 600 s"; fi
}

# Run as root (directly, or via sudo when available).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_install() {
    local pkg
    local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    for pkg in "$@"; do
        if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]'; then
            log "apt-get update (no candidate for $pkg yet)"
            as_root "${apt[@]}" update >&2
            break
        fi
    done
    log "apt-get install $*"
    if ! as_root "${apt[@]}" install -y --no-install-recommends "$@" >&2 </dev/null; then
        log "install failed; retrying after apt-get update"
        as_root "${apt[@]}" update >&2
        as_root "${apt[@]}" install -y --no-install-recommends "$@" >&2 </dev/null
    fi
}

# Does an AMQP 0-9-1 broker answer at host:port? (send the protocol header, expect a method frame)
amqp_answering() { # host port
    local first
    first=$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3
        head -c 1 <&3 | od -An -tx1' "$1" "$2" 2>/dev/null) || return 1
    [[ ${first// /} == 01 ]]
}

http_ok() { # url
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
    else
        "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
    fi
}

# Is PID a live moto_server process (guards against pid reuse)?
is_moto_pid() { # pid
    local pid=${1-}
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'moto_server'
}

moto_healthy() { # pid port
    [[ ${2-} =~ ^[0-9]+$ ]] && is_moto_pid "$1" && http_ok "http://127.0.0.1:$2/moto-api/"
}

stop_pid() { # pid
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- RabbitMQ

rabbit_bin() { # name -> path
    if command -v "$1" 2>/dev/null; then return 0; fi
    if [[ -x /usr/sbin/$1 ]]; then echo "/usr/sbin/$1"; return 0; fi
    return 1
}

ensure_rabbitmq() {
    if amqp_answering "$AMQP_HOST" "$AMQP_PORT"; then
        log "RabbitMQ: already answering at $AMQP_HOST:$AMQP_PORT; using it"
        return 0
    fi
    if tcp_listening "$AMQP_HOST" "$AMQP_PORT"; then
        die "something listens on $AMQP_HOST:$AMQP_PORT but does not speak AMQP"
    fi

    local server ctl
    if ! server=$(rabbit_bin rabbitmq-server); then
        apt_install rabbitmq-server
        server=$(rabbit_bin rabbitmq-server) || die "rabbitmq-server still not found after install"
        # On machines where apt starts services itself, it may be up already.
        if amqp_answering "$AMQP_HOST" "$AMQP_PORT"; then
            log "RabbitMQ: started by the package install; using it"
            return 0
        fi
    fi
    ctl=$(rabbit_bin rabbitmqctl) || die "rabbitmqctl not found"

    local deadline=$((SECONDS + RABBIT_TIMEOUT)) remaining
    # A node may already be running (booting, or bound elsewhere): don't start a second one.
    if as_root "$ctl" -q ping >/dev/null 2>&1 </dev/null 9>&-; then
        log "RabbitMQ: a node is running but not answering at $AMQP_HOST:$AMQP_PORT yet; waiting"
    else
        log "RabbitMQ: starting (loopback only; log $RABBIT_LOG)"
        as_root env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 \
            "$server" -detached >>"$RABBIT_LOG" 2>&1 </dev/null 9>&-
        set_state RABBITMQ_STARTED_BY_SCRIPT 1
    fi

    # await_startup fails at once (rc 69) until the node exists: retry until the deadline.
    while :; do
        remaining=$((deadline - SECONDS))
        ((remaining > 0)) || die "RabbitMQ did not start within ${RABBIT_TIMEOUT}s (see $RABBIT_LOG, /var/log/rabbitmq/)"
        if as_root timeout "$remaining" "$ctl" -q await_startup --timeout "$remaining" \
            >>"$RABBIT_LOG" 2>&1 </dev/null 9>&-; then
            break
        fi
        sleep 1
    done
    while ! amqp_answering "$AMQP_HOST" "$AMQP_PORT"; do
        ((SECONDS < deadline)) || die "RabbitMQ node is up but $AMQP_HOST:$AMQP_PORT does not answer AMQP"
        sleep 0.5
    done
    log "RabbitMQ: up at $AMQP_HOST:$AMQP_PORT"
}

# ---------------------------------------------------------------- moto

find_python() {
    local c
    for c in python3 /usr/bin/python3; do
        if command -v "$c" >/dev/null 2>&1 &&
            "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [[ -x $VENV/bin/python && -x $VENV/bin/moto_server ]] || return 1
    [[ "$(cat "$VENV/.rendition-stamp" 2>/dev/null)" == "$VENV_STAMP" ]] || return 1
    "$VENV/bin/python" -c "
import sys, moto, flask, flask_cors
sys.exit(moto.__version__ != '$MOTO_VERSION')" >/dev/null 2>&1
}

ensure_venv() {
    if venv_ok; then return 0; fi
    local py
    if ! py=$(find_python); then
        apt_install python3-venv
        py=$(find_python) || die "no python3 with the venv module found"
    fi
    log "moto: creating venv $VENV with $py (moto $MOTO_VERSION)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" >&2
    printf '%s\n' "$MOTO_CONSTRAINTS" >"$VENV/constraints.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
        -c "$VENV/constraints.txt" "${MOTO_REQUIREMENTS[@]}" >&2 </dev/null
    printf '%s\n' "$VENV_STAMP" >"$VENV/.rendition-stamp"
    venv_ok || die "moto venv at $VENV is broken right after creation"
}

# Sets MOTO_PID / MOTO_PORT.
start_moto() {
    local attempt pid port deadline t0
    for attempt in 1 2 3; do
        t0=${EPOCHREALTIME/[.,]/}
        port=$(free_port)
        log "moto: starting on 127.0.0.1:$port (log $MOTO_LOG)"
        nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        deadline=$((SECONDS + MOTO_TIMEOUT))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            if http_ok "http://127.0.0.1:$port/moto-api/"; then
                MOTO_PID=$pid MOTO_PORT=$port
                log "moto: up (pid $pid) after $(((${EPOCHREALTIME/[.,]/} - t0) / 1000)) ms"
                return 0
            fi
            sleep 0.2
        done
        log "moto: attempt $attempt failed; last log lines:"
        tail -n 5 "$MOTO_LOG" >&2 || true
        is_moto_pid "$pid" && stop_pid "$pid"
    done
    die "moto server did not come up (see $MOTO_LOG)"
}

ensure_moto() {
    local pid port
    # 1. what the env file says, 2. what the state file says (env file may have been removed).
    pid=$(read_kv "$ENV_FILE" RENDITION_TEST_MOTO_PID)
    port=$(read_kv "$ENV_FILE" RENDITION_TEST_MOTO_PORT)
    if ! moto_healthy "$pid" "$port"; then
        pid=$(read_kv "$STATE_FILE" MOTO_PID)
        port=$(read_kv "$STATE_FILE" MOTO_PORT)
    fi
    if moto_healthy "$pid" "$port"; then
        log "moto: reusing pid $pid on 127.0.0.1:$port"
        MOTO_PID=$pid MOTO_PORT=$port
        return 0
    fi
    # A recorded moto that is alive but not answering is stuck: stop it.
    if is_moto_pid "$pid"; then
        log "moto: pid $pid is not answering; stopping it"
        stop_pid "$pid"
    fi
    ensure_venv
    start_moto
    set_state MOTO_PID "$MOTO_PID"
    set_state MOTO_PORT "$MOTO_PORT"
}

write_env_file() {
    local tmp endpoint="http://127.0.0.1:$MOTO_PORT"
    mkdir -p "$(dirname "$ENV_FILE")"
    tmp=$(mktemp "$ENV_FILE.XXXXXX")
    cat >"$tmp" <<EOF
# Written by infra/local/services.sh up; source it.
export RENDITION_TEST_AMQP_URL=amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/%2f
export RENDITION_TEST_S3_ENDPOINT=$endpoint
export RENDITION_TEST_SQS_ENDPOINT=$endpoint
export RENDITION_TEST_MOTO_PID=$MOTO_PID
export RENDITION_TEST_MOTO_PORT=$MOTO_PORT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
EOF
    mv -f "$tmp" "$ENV_FILE"
    set_state ENV_FILE "$ENV_FILE"
}

# ---------------------------------------------------------------- cargo-lambda

cargo_lambda_ok() {
    [[ -x $CARGO_LAMBDA_VENV/bin/cargo-lambda ]] || return 1
    [[ "$(cat "$CARGO_LAMBDA_VENV/.rendition-stamp" 2>/dev/null)" == "v1 $CARGO_LAMBDA_VERSION" ]] || return 1
    "$CARGO_LAMBDA_VENV/bin/cargo-lambda" lambda --version 2>/dev/null | grep -qF "$CARGO_LAMBDA_VERSION"
}

ensure_cargo_lambda() {
    if cargo_lambda_ok; then return 0; fi
    local py
    if ! py=$(find_python); then
        apt_install python3-venv
        py=$(find_python) || die "no python3 with the venv module found"
    fi
    log "cargo-lambda: creating venv $CARGO_LAMBDA_VENV with $py (cargo-lambda $CARGO_LAMBDA_VERSION)"
    rm -rf "$CARGO_LAMBDA_VENV"
    "$py" -m venv "$CARGO_LAMBDA_VENV" >&2
    "$CARGO_LAMBDA_VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
        --progress-bar off -q --no-deps "cargo-lambda==$CARGO_LAMBDA_VERSION" >&2 </dev/null
    printf 'v1 %s\n' "$CARGO_LAMBDA_VERSION" >"$CARGO_LAMBDA_VENV/.rendition-stamp"
    cargo_lambda_ok || die "cargo-lambda at $CARGO_LAMBDA_VENV is broken right after install"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    lock
    ensure_rabbitmq
    ensure_moto
    write_env_file
}

cmd_down() {
    local all=0 arg pid recorded
    for arg in "$@"; do
        case $arg in
            --all) all=1 ;;
            *) die "down: unknown argument $arg" ;;
        esac
    done
    lock
    for pid in "$(read_kv "$STATE_FILE" MOTO_PID)" "$(read_kv "$ENV_FILE" RENDITION_TEST_MOTO_PID)"; do
        if is_moto_pid "$pid"; then
            log "moto: stopping pid $pid"
            stop_pid "$pid"
        fi
    done
    recorded=$(read_kv "$STATE_FILE" ENV_FILE)
    rm -f "$ENV_FILE" ${recorded:+"$recorded"}
    if [[ -f $STATE_FILE ]]; then
        set_state MOTO_PID ""
        set_state MOTO_PORT ""
        set_state ENV_FILE ""
    fi
    if ((all)); then
        if [[ $(read_kv "$STATE_FILE" RABBITMQ_STARTED_BY_SCRIPT) == 1 ]]; then
            log "RabbitMQ: shutting down (this script started it)"
            as_root "$(rabbit_bin rabbitmqctl)" -q shutdown >&2 </dev/null 9>&-
            set_state RABBITMQ_STARTED_BY_SCRIPT ""
        else
            log "RabbitMQ: not started by this script; leaving it running"
        fi
    fi
    log "down"
}

cmd_status() {
    local ok=0 pid port ours
    ours=$(read_kv "$STATE_FILE" RABBITMQ_STARTED_BY_SCRIPT)
    if amqp_answering "$AMQP_HOST" "$AMQP_PORT"; then
        echo "rabbitmq: up at amqp://$AMQP_HOST:$AMQP_PORT (started by this script: $([[ $ours == 1 ]] && echo yes || echo no))"
    else
        echo "rabbitmq: down"
        ok=3
    fi
    pid=$(read_kv "$STATE_FILE" MOTO_PID)
    port=$(read_kv "$STATE_FILE" MOTO_PORT)
    if moto_healthy "$pid" "$port"; then
        echo "moto:     up at http://127.0.0.1:$port (pid $pid)"
    elif is_moto_pid "$pid"; then
        echo "moto:     NOT answering (pid $pid, port $port)"
        ok=3
    else
        echo "moto:     down"
        ok=3
    fi
    if [[ -f $ENV_FILE ]]; then echo "env file: $ENV_FILE"; else echo "env file: none ($ENV_FILE)"; fi
    return "$ok"
}

main() {
    local cmd=${1-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up)
            [[ $# -eq 0 ]] || die "up takes no arguments"
            cmd_up >&2
            printf '%s\n' "$ENV_FILE"
            ;;
        down) cmd_down "$@" >&2 ;;
        status) cmd_status ;;
        cargo-lambda)
            [[ $# -eq 0 ]] || die "cargo-lambda takes no arguments"
            { lock; ensure_cargo_lambda; } >&2
            printf '%s\n' "$CARGO_LAMBDA_VENV/bin/cargo-lambda"
            ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
