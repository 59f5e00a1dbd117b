#!/usr/bin/env bash
# bench.sh: Rendition against sharp and vipsthumbnail on real photos, and Rendition's
# render sandbox on against off, ratios measured in the same run (`rendition-bench`, the
# benchmark/ crate). The table goes to stdout, the full report to target/bench.json.
#
#   ./scripts/bench.sh                    # 3 timed passes per case (median), ~30-40 min on 2 cores
#   ./scripts/bench.sh --iterations 5     # any further `rendition-bench` options
#
# Installs the build prerequisites (scripts/install-deps.sh), fetches the photos
# (scripts/fetch-photos.sh, cached outside git), builds rendition-bench and, when node
# is present, installs sharp with npm (scripts/install-sharp.sh) into
# ${RENDITION_CACHE:-$HOME/.cache/rendition}/sharp.
# Rendition runs with MALLOC_ARENA_MAX=2 (glibc otherwise makes up to 8 malloc arenas per
# core, which keeps freed image buffers resident); the bench also measures it once with
# glibc's default so the difference is in the report. sharp and vipsthumbnail run with
# glibc's default arenas.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RENDITION_CACHE:-$HOME/.cache/rendition}
TARGET=${CARGO_TARGET_DIR:-target}

log() { printf 'bench: %s\n' "$*" >&2; }

scripts/install-deps.sh --tests
dir=$(scripts/fetch-photos.sh | tail -n1)
cargo build --release -p rendition-bench --bin rendition-bench

# Empty when sharp cannot be installed: the bench then runs without it and says so.
sharp_dir=$(scripts/install-sharp.sh | tail -n1)
sharp_dir=${sharp_dir:-$CACHE/sharp}

log "load before: $(uptime)"
log "Rendition runs with MALLOC_ARENA_MAX=2 (and once more with glibc's default, for comparison)"
MALLOC_ARENA_MAX=2 "$TARGET/release/rendition-bench" "$dir" \
  --sharp-dir "$sharp_dir" --json "$TARGET/bench.json" "$@"
log "load after: $(uptime)"
