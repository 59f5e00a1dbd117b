#!/usr/bin/env bash
# install-sharp.sh: installs sharp (SHARP_VERSION, default below) with npm into
# ${RENDITION_CACHE:-$HOME/.cache/rendition}/sharp when node and npm are present, and
# prints that directory on its last line; prints nothing there when sharp cannot be had
# (no node, no npm, no registry), so callers run without it and say so.
# Used by scripts/bench.sh (the speed baseline) and scripts/test.sh (the geometry oracle).
set -euo pipefail

SHARP_VERSION=${SHARP_VERSION:-0.35.5}
CACHE=${RENDITION_CACHE:-$HOME/.cache/rendition}
sharp_dir=$CACHE/sharp

log() { printf 'install-sharp: %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1; then
  log "node not found: sharp is skipped (apt-get install nodejs npm to include it)"
  exit 0
fi
have=$(cd / && node -p "require(process.argv[1] + '/node_modules/sharp/package.json').version" "$sharp_dir" 2>/dev/null || true)
if [[ $have != "$SHARP_VERSION" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    log "node found but npm missing: sharp is skipped"
    exit 0
  fi
  log "installing sharp@$SHARP_VERSION into $sharp_dir"
  mkdir -p "$sharp_dir"
  if ! npm install --prefix "$sharp_dir" --no-audit --no-fund --save-exact "sharp@$SHARP_VERSION" >&2; then
    log "WARNING: npm install sharp failed; running without sharp"
    exit 0
  fi
fi
echo "$sharp_dir"
