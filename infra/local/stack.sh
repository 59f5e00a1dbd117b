#!/usr/bin/env bash
# The whole Rendition stack on loopback, without Docker: RabbitMQ and moto (S3 + SQS) from
# infra/local/services.sh, a bucket with S3 -> SQS notifications, `rendition worker` and
# `rendition serve`.
#
# Usage:
#   infra/local/stack.sh up [--bin PATH] [--queue sqs|rabbitmq] [--bucket NAME] [--port PORT]
#                               start (or reuse); the last stdout line is the env file to source
#   infra/local/stack.sh put FILE [KEY]       upload FILE as KEY (default originals/<basename>)
#   infra/local/stack.sh rm KEY               delete a source (its derivatives go with it)
#   infra/local/stack.sh ls [PREFIX]          list the bucket's keys (under PREFIX)
#   infra/local/stack.sh wait KEY [SECONDS]   wait (default 60 s) for the manifest of the current
#                                             version of source KEY; prints the manifest's key
#   infra/local/stack.sh status               what is running; exit 0 if all of it is, 3 otherwise
#   infra/local/stack.sh down [--all]         stop worker and serve (they drain), remove the env
#                                             file; --all also runs `services.sh down --all`
#
#   . "$(infra/local/stack.sh up | tail -n1)"
#   infra/local/stack.sh put photo.jpg && infra/local/stack.sh wait originals/photo.jpg
#   curl -fsS -o thumb.webp "$RENDITION_STACK_SERVE$(target/release/rendition url originals/photo.jpg --preset thumb)"
#
# up: the binary is --bin, else target/release/rendition, else target/debug/rendition, else it is
# built (debug). --queue sqs (default): moto notifies the SQS queue of every put and delete under
# originals/ (DLQ with maxReceiveCount 3). --queue rabbitmq: the worker reads the
# rendition.uploads exchange instead; moto cannot publish to AMQP, so `put` and `rm` publish a
# MinIO-shaped event there themselves (pika, pinned, in a venv of its own). serve listens on
# 127.0.0.1:PORT (default 8080), the worker's /healthz /readyz /metrics on a free port. Running
# `up` again reuses what runs with the same settings and restarts what does not (e.g. a rebuilt
# binary). Logs, state and the env file are in ${RENDITION_CACHE:-~/.cache/rendition}.
#
# Env: RENDITION_CACHE, RENDITION_STACK_ENV (env file path), RENDITION_STACK_TIMEOUT (seconds the
# worker and serve may take to become ready, default 60).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVICES="$ROOT/infra/local/services.sh"
CACHE_DIR="${RENDITION_CACHE:-${HOME:?HOME or RENDITION_CACHE must be set}/.cache/rendition}"
ENV_FILE="${RENDITION_STACK_ENV:-$CACHE_DIR/stack.env}"
STATE_FILE="$CACHE_DIR/stack.state"
LOCK_FILE="$CACHE_DIR/stack.lock"
VENV="$CACHE_DIR/moto-venv"             # made by services.sh; has boto3
AMQP_VENV="$CACHE_DIR/stack-amqp-venv"  # pika, for --queue rabbitmq
PIKA_VERSION=1.4.4
TIMEOUT="${RENDITION_STACK_TIMEOUT:-60}"
REGION=us-east-1
# Short long-polls (sqs.wait_seconds is 20 s by default), so the worker notices SIGTERM
# and drains quickly on `down`.
SQS_WAIT=2
# worker.shutdown_grace_secs is 30 by default: give the drain that long, and a little more.
STOP_WAIT=40

# shellcheck source=infra/local/lib.sh disable=SC1091 # sourced by path; checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- small helpers

state() { read_kv "$STATE_FILE" "$1"; }

# fd 8, so it never clashes with services.sh's fd 9; every process we start gets 8>&-,
# or it would hold the lock after we exit.
lock() {
    mkdir -p "$CACHE_DIR"
    exec 8>"$LOCK_FILE"
    flock -w 600 8 || die "could not lock $LOCK_FILE within 600 s"
}

# HTTP status of GET url ("000" when nothing answers).
http_status() {
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true
    else
        "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
    fi
}

# Is PID a live `rendition <kind>` process (guards against pid reuse)?
is_rendition() { # pid kind
    local pid=${1-} kind=$2
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "rendition $kind "
}

# ---------------------------------------------------------------- binary

resolve_bin() { # requested (may be empty) -> absolute path
    local bin=${1-}
    if [[ -n $bin ]]; then
        [[ -x $bin ]] || die "--bin $bin is not an executable file"
    elif [[ -x $ROOT/target/release/rendition ]]; then
        bin=$ROOT/target/release/rendition
    elif [[ -x $ROOT/target/debug/rendition ]]; then
        bin=$ROOT/target/debug/rendition
    else
        log "no built binary; cargo build -p rendition-cli --bin rendition (debug)"
        (cd "$ROOT" && cargo build -p rendition-cli --bin rendition >&2 8>&-)
        bin=$ROOT/target/debug/rendition
    fi
    (cd "$(dirname "$bin")" && printf '%s/%s\n' "$PWD" "$(basename "$bin")")
}

# ---------------------------------------------------------------- AWS calls (boto3 from moto's venv)

# aws_py COMMAND ARGS...: the S3/SQS side, against $S3_ENDPOINT with the test credentials.
aws_py() {
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=$REGION \
        AWS_EC2_METADATA_DISABLED=true STACK_ENDPOINT=$S3_ENDPOINT STACK_BUCKET=$BUCKET \
        "$VENV/bin/python" - "$@" <<'PY'
import json, mimetypes, os, sys, time
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket = os.environ["STACK_ENDPOINT"], os.environ["STACK_BUCKET"]
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5})
s3 = boto3.client("s3", endpoint_url=endpoint, config=cfg)
sqs = boto3.client("sqs", endpoint_url=endpoint, config=cfg)
cmd, args = sys.argv[1], sys.argv[2:]

def err(msg):
    print(f"[stack] ERROR: {msg}", file=sys.stderr)
    sys.exit(1)

def keys(prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]

if cmd == "setup":  # QUEUE_NAME MODE -> prints the queue URL
    name, mode = args
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    if mode == "sqs":
        conf = {"QueueConfigurations": [{
            "Id": "rendition-originals",
            "QueueArn": arn,
            "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "originals/"}]}},
        }]}
    else:  # rabbitmq: `put`/`rm` announce uploads on the exchange; nothing should pile up in SQS
        conf = {}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=conf)
    print(f"[stack] bucket {bucket}; queue {url} (DLQ {dlq}, maxReceiveCount 3); "
          f"notifications: {'originals/ -> SQS' if conf else 'none (rabbitmq mode)'}", file=sys.stderr)
    print(url)

elif cmd == "put":  # FILE KEY -> prints size and ETag
    path, key = args
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f, ContentType=ctype)
    head = s3.head_object(Bucket=bucket, Key=key)
    print(head["ContentLength"], head["ETag"].strip('"'))

elif cmd == "rm":  # KEY
    s3.delete_object(Bucket=bucket, Key=args[0])

elif cmd == "ls":  # [PREFIX]
    for k in keys(args[0] if args else ""):
        print(k)

elif cmd == "wait":  # KEY SECONDS SOURCE_PREFIX DERIVED_PREFIX
    key, seconds, src_prefix, derived_prefix = args[0], float(args[1]), args[2], args[3]
    if not key.startswith(src_prefix):
        err(f"{key} is not under {src_prefix}")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        err(f"no source s3://{bucket}/{key}")
    versions = {v.strip('"') for v in (head.get("VersionId"), head.get("ETag")) if v and v != "null"}
    folder = f"{derived_prefix}{key[len(src_prefix):]}/"
    deadline, seen = time.monotonic() + seconds, set()
    while True:
        for k in keys(folder):
            if not k.endswith("/manifest.json") or k in seen:
                continue
            seen.add(k)
            m = json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
            if m.get("source", {}).get("version", "").strip('"') in versions:
                print(k)
                sys.exit(0)
        if time.monotonic() > deadline:
            err(f"no manifest for the current version of {key} under {folder} after {seconds:g} s "
                f"(older manifests: {len(seen)}); see the worker log")
        time.sleep(0.25)
else:
    err(f"unknown helper command {cmd}")
PY
}

# ---------------------------------------------------------------- AMQP (rabbitmq mode)

amqp_venv_ok() {
    [[ -x $AMQP_VENV/bin/python && "$(cat "$AMQP_VENV/.rendition-stamp" 2>/dev/null)" == "v1 pika==$PIKA_VERSION" ]] &&
        "$AMQP_VENV/bin/python" -c 'import pika' 2>/dev/null
}

ensure_amqp_venv() {
    if amqp_venv_ok; then return 0; fi
    command -v python3 >/dev/null || die "python3 is needed for the AMQP publisher"
    log "creating $AMQP_VENV (pika==$PIKA_VERSION)"
    rm -rf "$AMQP_VENV"
    python3 -m venv "$AMQP_VENV" >&2
    "$AMQP_VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
        "pika==$PIKA_VERSION" >&2 </dev/null
    printf 'v1 pika==%s\n' "$PIKA_VERSION" >"$AMQP_VENV/.rendition-stamp"
    amqp_venv_ok || die "the AMQP venv at $AMQP_VENV is broken right after creation"
}

# publish_event EVENT_NAME KEY SIZE ETAG: what MinIO's AMQP target would send.
publish_event() {
    "$AMQP_VENV/bin/python" - "$AMQP_URL" "$BUCKET" "$@" <<'PY'
import datetime, json, sys, urllib.parse
import pika

url, bucket, event, key, size, etag = sys.argv[1:]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
body = json.dumps({
    "EventName": event,
    "Key": f"{bucket}/{key}",
    "Records": [{
        "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": now,
        "eventName": event, "userIdentity": {"principalId": "rendition-stack"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "Config",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": urllib.parse.quote_plus(key), "size": int(size), "eTag": etag,
                       "contentType": "image/jpeg", "sequencer": "0"},
        },
    }],
})
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
# mandatory: an event nothing is bound to receive fails loudly instead of vanishing.
ch.basic_publish("rendition.uploads", "uploads", body,
                 pika.BasicProperties(content_type="application/json", delivery_mode=2), mandatory=True)
conn.close()
print(f"[stack] published {event} for {key} on rendition.uploads", file=sys.stderr)
PY
}

# ---------------------------------------------------------------- processes

# launch NAME LOG CMD...: runs CMD in the repository root in the background, detached from our
# stdio and lock, under a small bash that records CMD's exit status (so `down` can tell a clean
# drain from a crash). Sets LAUNCHED_PID (CMD itself; signals go there) and LAUNCHED_WRAPPER.
launch() {
    local name=$1 logf=$2 pidf="$CACHE_DIR/stack-$1.pid" rcf="$CACHE_DIR/stack-$1.rc" i
    shift 2
    rm -f "$pidf" "$rcf"
    # shellcheck disable=SC2016 # expanded by the inner bash
    WD=$ROOT PIDF=$pidf RCF=$rcf nohup bash -c \
        'cd "$WD" || exit 1; "$@" & echo $! >"$PIDF.tmp" && mv -f "$PIDF.tmp" "$PIDF"; wait $!; echo $? >"$RCF"' \
        rendition-stack "$@" >"$logf" 2>&1 </dev/null 8>&- &
    LAUNCHED_WRAPPER=$!
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidf ]] && break
        sleep 0.05
    done
    LAUNCHED_PID=$(cat "$pidf" 2>/dev/null) || die "$name did not start (see $logf)"
}

# wait_ready NAME PID URL LOG WANT: polls URL until it answers WANT ("any" = any HTTP status).
wait_ready() {
    local name=$1 pid=$2 url=$3 logf=$4 want=$5 code deadline=$((SECONDS + TIMEOUT))
    while :; do
        code=$(http_status "$url")
        if [[ $want == any && $code != 000 ]] || [[ $code == "$want" ]]; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready; last log lines ($logf):"
            tail -n 20 "$logf" >&2 || true
            die "$name failed to start (infra/local/stack.sh down stops what did start)"
        fi
        if ((SECONDS >= deadline)); then
            log "$name not ready after ${TIMEOUT}s ($url answered $code); last log lines ($logf):"
            tail -n 20 "$logf" >&2 || true
            die "$name not ready (infra/local/stack.sh down stops what did start)"
        fi
        sleep 0.2
    done
}

# signal_stop NAME (worker|serve): SIGTERM to it, if it is running (it stops intake and drains).
signal_stop() {
    local pid
    pid=$(state "${1^^}_PID")
    if is_rendition "$pid" "$1"; then
        log "$1: SIGTERM to pid $pid; waiting for it to drain"
        kill -TERM "$pid" 2>/dev/null || true
    fi
}

# await_stop NAME: waits for a signalled process to exit (SIGKILL after STOP_WAIT s) and
# reports its exit status; a non-zero one (also from an earlier crash) sets STOP_FAILED.
await_stop() {
    local name=$1 pid wrapper rcf="$CACHE_DIR/stack-$1.rc" i
    pid=$(state "${name^^}_PID")
    wrapper=$(state "${name^^}_WRAPPER")
    set_state "${name^^}_PID" ""
    set_state "${name^^}_WRAPPER" ""
    [[ -n $pid ]] || return 0
    for ((i = 0; i < STOP_WAIT * 5; i++)); do
        is_rendition "$pid" "$name" || break
        sleep 0.2
    done
    if is_rendition "$pid" "$name"; then
        log "$name: pid $pid still running after ${STOP_WAIT}s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # The wrapper writes the exit status right after its child is gone.
    for ((i = 0; i < 50; i++)); do
        [[ -s $rcf ]] && break
        if [[ -z $wrapper ]] || ! kill -0 "$wrapper" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if ! [[ -s $rcf ]]; then
        log "$name: pid $pid is gone (exit status unknown)"
    elif [[ $(cat "$rcf") == 0 ]]; then
        log "$name: exited 0"
    else
        log "$name: exited with status $(cat "$rcf") (see $CACHE_DIR/stack-$name.log)"
        STOP_FAILED=1
    fi
}

# stop_all: both drain at once.
stop_all() {
    signal_stop worker
    signal_stop serve
    await_stop worker
    await_stop serve
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local bin="" queue=sqs port=8080 arg services_env amqp_url qurl fingerprint wport
    BUCKET=photos
    while (($#)); do
        arg=$1
        case $arg in
            --bin | --queue | --bucket | --port)
                (($# >= 2)) || die "$arg needs a value"
                case $arg in
                    --bin) bin=$2 ;;
                    --queue) queue=$2 ;;
                    --bucket) BUCKET=$2 ;;
                    --port) port=$2 ;;
                esac
                shift 2
                ;;
            *) die "up: unknown argument $arg" ;;
        esac
    done
    [[ $queue == sqs || $queue == rabbitmq ]] || die "--queue must be sqs or rabbitmq"
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "--port must be a port number"; fi
    [[ $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "--bucket $BUCKET is not a valid bucket name"
    bin=$(resolve_bin "$bin")

    lock
    services_env=$("$SERVICES" up 8>&- | tail -n1)
    S3_ENDPOINT=$(read_kv "$services_env" RENDITION_TEST_S3_ENDPOINT)
    amqp_url=$(read_kv "$services_env" RENDITION_TEST_AMQP_URL)
    [[ -n $S3_ENDPOINT && -n $amqp_url ]] || die "services.sh wrote no endpoints into $services_env"
    qurl=$(aws_py setup "$BUCKET-uploads" "$queue")
    if [[ $queue == rabbitmq ]]; then ensure_amqp_venv; fi

    # Same binary (and build), settings and services as what runs: keep it running.
    fingerprint="bin=$bin@$(stat -c %Y "$bin")|queue=$queue|bucket=$BUCKET|port=$port|s3=$S3_ENDPOINT|sqs=$qurl|amqp=$amqp_url"
    if [[ $(state FINGERPRINT) == "$fingerprint" ]] &&
        is_rendition "$(state WORKER_PID)" worker && is_rendition "$(state SERVE_PID)" serve &&
        [[ $(http_status "http://$(state WORKER_HTTP_ADDR)/readyz") == 200 ]] &&
        [[ $(http_status "http://127.0.0.1:$port/") != 000 ]]; then
        log "worker (pid $(state WORKER_PID)) and serve (pid $(state SERVE_PID)) already up with these settings; reusing them"
        write_env "$bin" "$queue" "$port" "$qurl" "$amqp_url" "$(state WORKER_HTTP_ADDR)"
        return 0
    fi
    if [[ -n $(state WORKER_PID)$(state SERVE_PID) ]]; then
        log "settings, binary or services changed (or a process died): restarting"
        STOP_FAILED=0
        stop_all
    fi
    if tcp_listening 127.0.0.1 "$port"; then
        die "127.0.0.1:$port is taken by another program; pick another with --port"
    fi

    wport=$(free_port)
    local -a vars=(
        RENDITION__S3__BUCKET="$BUCKET"
        RENDITION__S3__ENDPOINT="$S3_ENDPOINT"
        RENDITION__S3__FORCE_PATH_STYLE=true
        RENDITION__S3__REGION="$REGION"
        RENDITION__SQS__QUEUE_URL="$qurl"
        RENDITION__SQS__ENDPOINT="$S3_ENDPOINT"
        RENDITION__SQS__REGION="$REGION"
        RENDITION__SQS__WAIT_SECONDS="$SQS_WAIT"
        RENDITION__RABBITMQ__URL="$amqp_url"
        RENDITION__WORKER__HTTP_ADDR="127.0.0.1:$wport"
        RENDITION__LOG__FORMAT=json
        AWS_ACCESS_KEY_ID=test
        AWS_SECRET_ACCESS_KEY=test
        AWS_REGION="$REGION"
        AWS_EC2_METADATA_DISABLED=true
    )
    set_state FINGERPRINT ""
    log "worker: $bin worker --queue $queue (ops on 127.0.0.1:$wport; log $CACHE_DIR/stack-worker.log)"
    launch worker "$CACHE_DIR/stack-worker.log" env "${vars[@]}" "$bin" worker --queue "$queue"
    set_state WORKER_PID "$LAUNCHED_PID"
    set_state WORKER_WRAPPER "$LAUNCHED_WRAPPER"
    set_state WORKER_HTTP_ADDR "127.0.0.1:$wport"
    log "serve: $bin serve --addr 127.0.0.1:$port (log $CACHE_DIR/stack-serve.log)"
    launch serve "$CACHE_DIR/stack-serve.log" env "${vars[@]}" "$bin" serve --addr "127.0.0.1:$port"
    set_state SERVE_PID "$LAUNCHED_PID"
    set_state SERVE_WRAPPER "$LAUNCHED_WRAPPER"

    wait_ready worker "$(state WORKER_PID)" "http://127.0.0.1:$wport/readyz" "$CACHE_DIR/stack-worker.log" 200
    wait_ready serve "$(state SERVE_PID)" "http://127.0.0.1:$port/" "$CACHE_DIR/stack-serve.log" any
    set_state FINGERPRINT "$fingerprint"
    log "worker up (pid $(state WORKER_PID)): http://127.0.0.1:$wport/readyz /metrics"
    log "serve up (pid $(state SERVE_PID)): http://127.0.0.1:$port"
    write_env "$bin" "$queue" "$port" "$qurl" "$amqp_url" "127.0.0.1:$wport"
}

write_env() { # bin queue port queue_url amqp_url worker_http_addr
    local tmp
    mkdir -p "$(dirname "$ENV_FILE")"
    tmp=$(mktemp "$ENV_FILE.XXXXXX")
    cat >"$tmp" <<EOF
# Written by infra/local/stack.sh up; source it. The worker and serve run with these settings.
export RENDITION__S3__BUCKET=$BUCKET
export RENDITION__S3__ENDPOINT=$S3_ENDPOINT
export RENDITION__S3__FORCE_PATH_STYLE=true
export RENDITION__S3__REGION=$REGION
export RENDITION__SQS__QUEUE_URL=$4
export RENDITION__SQS__ENDPOINT=$S3_ENDPOINT
export RENDITION__SQS__REGION=$REGION
export RENDITION__SQS__WAIT_SECONDS=$SQS_WAIT
export RENDITION__RABBITMQ__URL=$5
export RENDITION__WORKER__HTTP_ADDR=$6
export RENDITION__LOG__FORMAT=json
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=$REGION
export AWS_DEFAULT_REGION=$REGION
export AWS_EC2_METADATA_DISABLED=true
export RENDITION_STACK_SERVE=http://127.0.0.1:$3
export RENDITION_STACK_METRICS=http://$6/metrics
export RENDITION_STACK_QUEUE=$2
export RENDITION_STACK_BIN=$1
EOF
    mv -f "$tmp" "$ENV_FILE"
    set_state ENV_FILE "$ENV_FILE"
}

# For put/rm/ls/wait: the settings of the running stack.
load_stack() {
    [[ -f $ENV_FILE ]] || die "the stack is not up ($ENV_FILE missing): run infra/local/stack.sh up"
    BUCKET=$(read_kv "$ENV_FILE" RENDITION__S3__BUCKET)
    S3_ENDPOINT=$(read_kv "$ENV_FILE" RENDITION__S3__ENDPOINT)
    AMQP_URL=$(read_kv "$ENV_FILE" RENDITION__RABBITMQ__URL)
    STACK_QUEUE=$(read_kv "$ENV_FILE" RENDITION_STACK_QUEUE)
    [[ -x $VENV/bin/python ]] || die "no moto venv at $VENV: run infra/local/stack.sh up"
}

cmd_put() {
    (($# >= 1 && $# <= 2)) || die "usage: stack.sh put FILE [KEY]"
    local file=$1 key=${2:-originals/$(basename "$1")} out
    [[ -f $file ]] || die "no such file: $file"
    [[ $key == originals/* ]] || log "note: $key is not under originals/, so no worker will see it"
    load_stack
    out=$(aws_py put "$file" "$key")
    log "put s3://$BUCKET/$key (${out% *} bytes, ETag ${out#* })"
    if [[ $STACK_QUEUE == rabbitmq && $key == originals/* ]]; then
        publish_event s3:ObjectCreated:Put "$key" "${out% *}" "${out#* }"
    fi
}

cmd_rm() {
    (($# == 1)) || die "usage: stack.sh rm KEY"
    load_stack
    aws_py rm "$1"
    log "deleted s3://$BUCKET/$1"
    if [[ $STACK_QUEUE == rabbitmq && $1 == originals/* ]]; then
        publish_event s3:ObjectRemoved:Delete "$1" 0 ""
    fi
}

cmd_ls() {
    (($# <= 1)) || die "usage: stack.sh ls [PREFIX]"
    load_stack
    aws_py ls "$@"
}

cmd_wait() {
    (($# >= 1 && $# <= 2)) || die "usage: stack.sh wait KEY [SECONDS]"
    local seconds=${2:-60}
    [[ $seconds =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number"
    load_stack
    aws_py wait "$1" "$seconds" originals/ derived/
}

cmd_down() {
    local all=0 arg
    for arg in "$@"; do
        case $arg in
            --all) all=1 ;;
            *) die "down: unknown argument $arg" ;;
        esac
    done
    lock
    STOP_FAILED=0
    stop_all
    rm -f "$ENV_FILE" "$(state ENV_FILE)"
    if [[ -f $STATE_FILE ]]; then
        set_state ENV_FILE ""
        set_state FINGERPRINT ""
        set_state WORKER_HTTP_ADDR ""
    fi
    if ((all)); then "$SERVICES" down --all 8>&-; fi
    log "down"
    return "$STOP_FAILED"
}

cmd_status() {
    local ok=0 pid addr
    "$SERVICES" status || ok=3
    pid=$(state WORKER_PID)
    addr=$(state WORKER_HTTP_ADDR)
    if is_rendition "$pid" worker; then
        echo "worker:   pid $pid, http://$addr (/readyz: $(http_status "http://$addr/readyz")), log $CACHE_DIR/stack-worker.log"
    else
        echo "worker:   down"
        ok=3
    fi
    pid=$(state SERVE_PID)
    if is_rendition "$pid" serve; then
        echo "serve:    pid $pid, $(read_kv "$ENV_FILE" RENDITION_STACK_SERVE), log $CACHE_DIR/stack-serve.log"
    else
        echo "serve:    down"
        ok=3
    fi
    if [[ -f $ENV_FILE ]]; then echo "stack env: $ENV_FILE"; else echo "stack env: none ($ENV_FILE)"; fi
    return "$ok"
}

main() {
    local cmd=${1-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up)
            cmd_up "$@" >&2
            printf '%s\n' "$ENV_FILE"
            ;;
        put) cmd_put "$@" ;;
        rm) cmd_rm "$@" ;;
        ls) cmd_ls "$@" ;;
        wait) cmd_wait "$@" ;;
        down) cmd_down "$@" >&2 ;;
        status) cmd_status ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
