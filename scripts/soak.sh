#!/usr/bin/env bash
# soak.sh: one RabbitMQ worker, N renders (default 2000), memory / fds / threads per job.
#
#   scripts/soak.sh             # 2,000 renders
#   scripts/soak.sh 300         # a quick check
#   scripts/soak.sh 2000 --allocator glibc   # glibc's malloc instead of the images' jemalloc
#   scripts/soak.sh 2000 --help # every option of rendition_ops.soak (window, sources, tolerance, ...)
#
# Builds the binary (release; RENDITION_PROFILE=debug for a debug build), brings RabbitMQ and
# the moto venv up with infra/local/services.sh, then runs `python3 -m rendition_ops.soak` (ops/;
# its own venv pinned by ops/requirements.txt under ${RENDITION_CACHE:-~/.cache/rendition}/ops-venv,
# its own moto server). Prints a
# block of `soak:` lines; exit non-zero if the median RSS of the last 100 jobs exceeds the
# first 100's by more than 10 %, or the median fd / thread count of the last 100 exceeds the
# largest seen during the first 100.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/ops${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1

n=2000
if [[ ${1-} =~ ^[0-9]+$ ]]; then n=$1; shift; fi
profile=${RENDITION_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
# The production images preload jemalloc (infra/aws/Dockerfile); so does the soak by default.
scripts/install-deps.sh --jemalloc
case $profile in
  debug | dev) dir=debug; cargo build -p rendition-cli --bin rendition >&2 ;;
  *) dir=$profile; cargo build --profile "$profile" -p rendition-cli --bin rendition >&2 ;;
esac
# shellcheck disable=SC1090
. "$(infra/local/services.sh up | tail -n1)"
exec python3 -m rendition_ops.soak --bin "$target/$dir/rendition" --renders "$n" "$@"
