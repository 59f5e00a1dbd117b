#!/usr/bin/env bash
# chaos.sh: the queue workers under faults, on loopback, bounded in time (ops/rendition_ops/chaos.py).
#
#   scripts/chaos.sh                    # 1,000 uploads via S3->SQS + 1,000 via RabbitMQ, 2 workers per queue
#   scripts/chaos.sh --short            # a few minutes (scripts/test.sh): 100 + 100 uploads, every fault once or more
#   scripts/chaos.sh --short --bin target/debug/rendition   # with a binary already built: nothing is built
#   scripts/chaos.sh --help             # every option (kill interval, outage length, deadline, ...)
#
# Without --bin it builds the binary (release; RENDITION_PROFILE=debug for a debug build). It
# brings RabbitMQ and the moto venv up with infra/local/services.sh, then runs
# `python3 -m rendition_ops.chaos` (ops/), which makes its own Python venv (boto3, pika, Pillow;
# pinned by ops/requirements.txt) under ${RENDITION_CACHE:-~/.cache/rendition}/ops-venv, starts
# its own moto server, and prints a block of `chaos:` lines. Exit 0 only if every invariant
# holds. Logs stay in target/chaos/<run id>/logs.
set -euo pipefail

# --bin PATH (relative to where this is called from): that binary, nothing built.
bin=
args=()
while (($#)); do
  case $1 in
    --bin | --bin=*)
      if [[ $1 == --bin ]]; then bin=${2-}; shift; else bin=${1#--bin=}; fi
      [[ -n $bin && -x $bin ]] || { echo "chaos: --bin ${bin:-(none)} is not an executable" >&2; exit 2; }
      bin=$(realpath "$bin")
      args+=(--bin "$bin")
      ;;
    *) args+=("$1") ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/ops${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1

for a in "${args[@]}"; do
  [[ $a == -h || $a == --help ]] && exec python3 -m rendition_ops.chaos --help
done
if [[ -n $bin ]]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || scripts/install-deps.sh --tests
else
  profile=${RENDITION_PROFILE:-release}
  target=${CARGO_TARGET_DIR:-target}
  scripts/install-deps.sh --tests
  case $profile in
    debug | dev) dir=debug; cargo build -p rendition-cli --bin rendition >&2 ;;
    *) dir=$profile; cargo build --profile "$profile" -p rendition-cli --bin rendition >&2 ;;
  esac
  args=(--bin "$target/$dir/rendition" "${args[@]}")
fi
# shellcheck disable=SC1090
. "$(infra/local/services.sh up | tail -n1)"
exec python3 -m rendition_ops.chaos "${args[@]}"
