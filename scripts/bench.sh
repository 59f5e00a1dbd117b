#!/usr/bin/env bash
# bench.sh: Rendition against sharp and vipsthumbnail on real photos, and Rendition's
# render sandbox on against off, ratios measured in the same run (`rendition-bench`, the
# benchmark/ crate). The table goes to stdout, the full report to target/bench.json.
#
#   ./scripts/bench.sh                    # 3 timed passes per case (median), ~20-30 min on 2 cores
#   ./scripts/bench.sh --iterations 5     # any further `rendition-bench` options
#
# Installs the build prerequisites (scripts/install-deps.sh), fetches the photos
# (scripts/fetch-photos.sh, cached outside git), builds rendition-bench and, when node
# is present, installs sharp with npm into ${RENDITION_CACHE:-$HOME/.cache/rendition}/sharp.
# Rendition runs with MALLOC_ARENA_MAX=2 (glibc otherwise makes up to 8 malloc arenas per
# core, which keeps freed image buffers resident); the bench also measures it once with
# glibc's default so the difference is in the report. sharp and vipsthumbnail run with
# glibc's default arenas.
set -euo pipefail
cd "$(dirname "$0")/.."

SHARP_VERSION=${SHARP_VERSION:-0.35.5}
CACHE=${RENDITION_CACHE:-$HOME/.cache/rendition}
TARGET=${CARGO_TARGET_DIR:-target}

log() { printf 'bench: %s\n' "$*" >&2; }

scripts/install-deps.sh --tests
dir=$(scripts/fetch-photos.sh | tail -n1)
cargo build --release -p rendition-bench --bin rendition-bench

sharp_dir=$CACHE/sharp
if command -v node >/dev/null 2>&1; then
  have=$(cd / && node -p "require(process.argv[1] + '/node_modules/sharp/package.json').version" "$sharp_dir" 2>/dev/null || true)
  if [[ $have != "$SHARP_VERSION" ]]; then
    if command -v npm >/dev/null 2>&1; then
      log "installing sharp@$SHARP_VERSION into $sharp_dir"
      mkdir -p "$sharp_dir"
      npm install --prefix "$sharp_dir" --no-audit --no-fund --save-exact "sharp@$SHARP_VERSION" >&2 ||
        log "WARNING: npm install sharp failed; the bench runs without sharp"
    else
      log "node found but npm missing: sharp is skipped"
    fi
  fi
else
  log "node not found: sharp is skipped (apt-get install nodejs npm to include it)"
fi

log "load before: $(uptime)"
log "Rendition runs with MALLOC_ARENA_MAX=2 (and once more with glibc's default, for comparison)"
MALLOC_ARENA_MAX=2 "$TARGET/release/rendition-bench" "$dir" \
  --sharp-dir "$sharp_dir" --json "$TARGET/bench.json" "$@"
log "load after: $(uptime)"
