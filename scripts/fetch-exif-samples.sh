#!/usr/bin/env bash
# fetch-exif-samples.sh: put real EXIF-orientation test images into a cache
# directory outside the repository, for tests/integration/fidelity.rs.
#
#   dir=$(scripts/fetch-exif-samples.sh | tail -n1)
#
# Output directory: ${RENDITION_EXIF:-$HOME/.cache/rendition/exif}.
# The LAST line on stdout is that directory's absolute path; all other output
# goes to stderr. A re-run that finds every file in place does no network
# access and returns at once.
#
# What ends up there: orientation_0.jpg .. orientation_8.jpg, the same 50x70
# picture stored for each EXIF orientation (0 = no tag), from Debian 12's
# golang-github-disintegration-imaging-dev (testdata of the Go imaging
# library, MIT licence; see /usr/share/doc/<package>/copyright in the package).
# They are for local testing only and are never committed.
#
# Needs: apt-get and dpkg. apt-get update is run only when the package lists
# are missing or the download fails.
set -euo pipefail

PKG=golang-github-disintegration-imaging-dev
SRC_DIR=usr/share/gocode/src/github.com/disintegration/imaging/testdata
FILES=(orientation_0.jpg orientation_1.jpg orientation_2.jpg orientation_3.jpg
  orientation_4.jpg orientation_5.jpg orientation_6.jpg orientation_7.jpg
  orientation_8.jpg)

log() { printf 'fetch-exif-samples: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

OUT=${RENDITION_EXIF:-$HOME/.cache/rendition/exif}
mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)
MARKER="$OUT/.fetch-exif-samples.done"

all_present() {
  [[ -f $MARKER ]] || return 1
  local f
  for f in "${FILES[@]}"; do
    [[ -s $OUT/$f ]] || return 1
  done
}

if all_present; then
  log "samples already present in $OUT"
  printf '%s\n' "$OUT"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found (this script needs Debian 12)"
command -v dpkg >/dev/null 2>&1 || die "dpkg not found"

as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "not root and no sudo: cannot run '$*'"
    return 1
  fi
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fetch-exif.XXXXXX")
cleanup() { rm -rf -- "$TMP"; }
trap cleanup EXIT
chmod 0755 "$TMP"
mkdir -p "$TMP/debs" "$TMP/x"
# Let apt's sandbox user write the download (avoids the "unsandboxed" warning).
if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "$TMP/debs"
fi

download() { (cd "$TMP/debs" && apt-get download -q "$PKG" >&2); }
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  log "running apt-get update"
  as_root apt-get update -q >&2 || log "apt-get update failed"
fi
log "downloading $PKG"
if ! download; then
  log "download failed; running apt-get update and retrying"
  as_root apt-get update -q >&2 || log "apt-get update failed"
  download || die "cannot download $PKG"
fi
deb=$(compgen -G "$TMP/debs/${PKG}_*.deb" | head -n1) || true
[[ -n $deb ]] || die "no .deb found for $PKG after download"
dpkg -x "$deb" "$TMP/x"

rm -f -- "$MARKER"
for f in "${FILES[@]}"; do
  [[ -s $TMP/x/$SRC_DIR/$f ]] || die "$PKG no longer ships $SRC_DIR/$f"
  cp -- "$TMP/x/$SRC_DIR/$f" "$OUT/$f"
done
printf '%s\n' "$(basename "$deb")" >"$MARKER"

log "done: ${#FILES[@]} samples from $(basename "$deb")"
printf '%s\n' "$OUT"
