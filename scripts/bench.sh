#!/usr/bin/env bash
# bench.sh: Rendition against sharp and vipsthumbnail on real photos, per class of source
# (progressive JPEG, baseline camera JPEG with EXIF orientation, PNG, HEIC), with the ratios
# and the targets, measured in the same run (`rendition-bench`, the bench/ crate).
# Rendition runs with the render sandbox on and jemalloc preloaded, as the images ship it.
# The table goes to stdout, the full report to target/bench.json.
#
#   ./scripts/bench.sh                    # 3 timed passes per case (median): ~5 min on 2 idle cores,
#                                         # ~8 min when other work loads them (load 4-5)
#   ./scripts/bench.sh --iterations 5     # any further `rendition-bench` options
#   ./scripts/bench.sh --class heic --sandbox-compare --allocator jemalloc,glibc
#
# Installs the prerequisites (scripts/install-deps.sh --jemalloc: libvips' tools, heif-enc,
# node and npm, Debian's libjemalloc2), makes the photo classes (scripts/make-bench-classes.sh
# from the photos of scripts/fetch-photos.sh, 4 per class, cached outside git), builds
# rendition-bench and, when node is present, installs sharp with npm
# (scripts/install-sharp.sh) into ${RENDITION_CACHE:-$HOME/.cache/rendition}/sharp.
# sharp and vipsthumbnail run with glibc's default malloc.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RENDITION_CACHE:-$HOME/.cache/rendition}
TARGET=${CARGO_TARGET_DIR:-target}

log() { printf 'bench: %s\n' "$*" >&2; }

scripts/install-deps.sh --jemalloc
dir=$(scripts/make-bench-classes.sh | tail -n1)
cargo build --release -p rendition-bench --bin rendition-bench

# Empty when sharp cannot be installed: the bench then runs without it and says so.
sharp_dir=$(scripts/install-sharp.sh | tail -n1)
sharp_dir=${sharp_dir:-$CACHE/sharp}

log "load before: $(uptime)"
"$TARGET/release/rendition-bench" "$dir" \
  --sharp-dir "$sharp_dir" --json "$TARGET/bench.json" "$@"
log "load after: $(uptime)"
