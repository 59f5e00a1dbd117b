#!/usr/bin/env bash
# e2e-bench.sh: the worker end to end (RabbitMQ + S3 on moto) against the raw render rate
# (`rendition run --local --once`) at the same parallelism, on the real photos.
#
#   scripts/e2e-bench.sh                    # N=100 uploads of JPEGs, then of PNGs; 2 runs per side
#   scripts/e2e-bench.sh 50 --formats jpeg  # a quicker check
#   scripts/e2e-bench.sh --scale-out        # scale-out: 200 JPEG jobs on one queue, 1 worker (c=1),
#                                           # 1 worker (c=2), 2 workers (c=1 each); 2 runs each
#   scripts/e2e-bench.sh 100 --help         # every option of rendition_ops.e2e_bench
#
# Builds the binary (release; RENDITION_PROFILE=debug for a debug build), fetches the photos
# (scripts/fetch-photos.sh), brings RabbitMQ and the moto venv up with
# infra/local/services.sh, then runs `python3 -m rendition_ops.e2e_bench` (ops/; the venv of
# ops/requirements.txt, its own moto server). Prints a block of `e2e:` lines: N, img/s raw,
# img/s e2e, the ratio e2e/raw (target >= 0.9), CPU per image, load averages; with
# --scale-out jobs/s of each fleet and 2 workers / 1 worker (target >= 1.85). Results also in
# target/e2e-bench/<run>/results.json. Exit 0 whatever the ratio; non-zero only on errors
# (missing manifests, a worker crash).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/ops${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1

# N, when given, is the number of uploads (default 100; 200 with --scale-out).
renders=()
if [[ ${1-} =~ ^[0-9]+$ ]]; then
  renders=(--renders "$1")
  shift
fi
profile=${RENDITION_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
# The production images preload jemalloc (infra/aws/Dockerfile); so does this bench by default.
scripts/install-deps.sh --jemalloc
case $profile in
  debug | dev) dir=debug; cargo build -p rendition-cli --bin rendition >&2 ;;
  *) dir=$profile; cargo build --profile "$profile" -p rendition-cli --bin rendition >&2 ;;
esac
photos=$(scripts/fetch-photos.sh | tail -n1)
# shellcheck disable=SC1090
. "$(infra/local/services.sh up | tail -n1)"
exec python3 -m rendition_ops.e2e_bench --bin "$target/$dir/rendition" --photos "$photos" "${renders[@]}" "$@"
