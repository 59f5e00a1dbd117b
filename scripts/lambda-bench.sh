#!/usr/bin/env bash
# lambda-bench.sh: latency of the Lambda's on-demand miss path, warm and cold (p50, p99).
#
#   scripts/lambda-bench.sh                        # 50 warm + 20 cold misses per source
#   scripts/lambda-bench.sh --warm 20 --cold 5     # a quicker check
#   scripts/lambda-bench.sh --help                 # every option of rendition_ops.lambda_bench
#
# Builds `rendition` (for `url` and `render`) and `rendition-lambda` (release;
# RENDITION_PROFILE=debug for debug builds), fetches the photos (scripts/fetch-photos.sh),
# makes sure the moto venv (infra/local/services.sh up) and cargo-lambda's Runtime API
# emulator (infra/local/services.sh cargo-lambda) are there, then runs
# `python3 -m rendition_ops.lambda_bench` (ops/; the venv of ops/requirements.txt, its own moto
# server and emulators on loopback). Prints a block of `lambda:` lines. Exit 0 unless something fails
# (a miss not answered with a WebP, a derivative not stored).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/ops${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1

profile=${RENDITION_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
# The production images preload jemalloc (infra/aws/Dockerfile); so does this bench by default.
scripts/install-deps.sh --jemalloc
case $profile in
  debug | dev)
    dir=debug
    cargo build -p rendition-cli --bin rendition >&2
    cargo build -p rendition-lambda >&2
    ;;
  *)
    dir=$profile
    cargo build --profile "$profile" -p rendition-cli --bin rendition >&2
    cargo build --profile "$profile" -p rendition-lambda >&2
    ;;
esac
photos=$(scripts/fetch-photos.sh | tail -n1)
infra/local/services.sh up >/dev/null   # the moto venv (this bench starts its own moto server)
cargo_lambda=$(infra/local/services.sh cargo-lambda | tail -n1)
exec python3 -m rendition_ops.lambda_bench --bin "$target/$dir/rendition" --lambda-bin "$target/$dir/rendition-lambda" \
  --cargo-lambda "$cargo_lambda" --photos "$photos" "$@"
