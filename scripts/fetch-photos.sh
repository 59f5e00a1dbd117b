#!/usr/bin/env bash
# fetch-photos.sh: put REAL photos for tests and benchmarks into a cache
# directory outside the repository. The photos come from Debian 12 (bookworm)
# wallpaper packages; they are never committed to git.
#
#   dir=$(scripts/fetch-photos.sh | tail -n1)
#
# Output directory: ${RENDITION_PHOTOS:-$HOME/.cache/rendition/photos}.
# The LAST line on stdout is that directory's absolute path; all other output
# goes to stderr. A re-run that finds every file in place does no network
# access and returns at once.
#
# What ends up there:
#   jpeg-NN-<W>x<H>.jpg   camera photos, 3000-6500 px wide (>= 10, >= 2 of them >= 4000 px)
#   png-NN-<W>x<H>.png    5120x2880 vector/3D renders (Plasma) and 3000 px photo PNGs (LXQt)
#   photos.tsv            file, width, height, bytes, package, path inside the package
#
# Needs: apt-get, dpkg, python3 (or vipsheader) -- nothing else. apt-get update
# is run only when the package lists are missing or a download fails.
# The images keep the licences of their Debian packages (see
# /usr/share/doc/<package>/copyright in each package); they are for local
# testing only.
set -euo pipefail

# Bump when the selection or naming changes: a different value forces a refetch.
SPEC_VERSION=1

# Debian packages used (download sizes as of bookworm 12.x):
#   lomiri-wallpapers-16.04      15.8 MB  7 camera photos 3088-5312 px wide (JPEG)
#   lomiri-wallpapers-20.04      11.4 MB  1 camera photo 6028x3391 (JPEG)
#                                         [+ 1 photo-composite, fallback only]
#   lxqt-themes                  25.8 MB  1 camera photo 3000x1993 (JPEG),
#                                         3 camera photos 3000 px wide (PNG, ICC)
#   mate-backgrounds             46.6 MB  1 photographed painting 5640x3172 (JPEG, 16 MB)
#   plasma-workspace-wallpapers  94.0 MB  5 renders 5120x2880 (PNG; RGB and RGBA)
# Total ~194 MB. No smaller bookworm package has real photos >= 3000 px wide:
# gnome-backgrounds is WebP renders, ukui-wallpapers and desktop-base are
# renders, mate/plasma photos stop at 2560 px.
#
# Selection: "tier|package|path inside the .deb". Tier 1 is always used; tier 2
# only if tier 1 does not reach the minimums (e.g. a package is unavailable).
# JPEGs are listed by width, PNGs renders first; numbering follows this order.
SELECTION='
1|lxqt-themes|usr/share/lxqt/wallpapers/after-the-rain.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/Dragonfly_by_Bolly.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg
1|lomiri-wallpapers-16.04|usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg
1|mate-backgrounds|usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg
1|lomiri-wallpapers-20.04|usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg
1|plasma-workspace-wallpapers|usr/share/wallpapers/Altai/contents/images/5120x2880.png
1|plasma-workspace-wallpapers|usr/share/wallpapers/IceCold/contents/images/5120x2880.png
1|plasma-workspace-wallpapers|usr/share/wallpapers/Kay/contents/images/5120x2880.png
1|plasma-workspace-wallpapers|usr/share/wallpapers/MilkyWay/contents/images/5120x2880.png
1|plasma-workspace-wallpapers|usr/share/wallpapers/Patak/contents/images/5120x2880.png
1|lxqt-themes|usr/share/lxqt/wallpapers/flowers.png
1|lxqt-themes|usr/share/lxqt/wallpapers/appleflower.png
1|lxqt-themes|usr/share/lxqt/wallpapers/butterfly.png
2|lomiri-wallpapers-20.04|usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg
'

# Minimums: JPEGs 3000-6500 px wide, of them >= 4000 px, PNGs >= 4500 px wide.
MIN_JPEG=10
MIN_JPEG_4K=2
MIN_PNG_5K=3

log() { printf 'fetch-photos: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

OUT=${RENDITION_PHOTOS:-$HOME/.cache/rendition/photos}
mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)
MARKER="$OUT/.fetch-photos.done"
MANIFEST="$OUT/photos.tsv"
SPEC="v$SPEC_VERSION $(printf '%s' "$SELECTION" | cksum | cut -d' ' -f1)"

# ---- fast path: everything already in place --------------------------------
already_done() {
  [[ -f $MARKER && -f $MANIFEST ]] || return 1
  [[ $(<"$MARKER") == "$SPEC" ]] || return 1
  local name w h bytes rest n=0
  while IFS=$'\t' read -r name w h bytes rest; do
    [[ $name == file ]] && continue
    [[ -f $OUT/$name ]] || return 1
    [[ $(stat -c %s -- "$OUT/$name") == "$bytes" ]] || return 1
    n=$((n + 1))
  done <"$MANIFEST"
  ((n > 0))
}

if already_done; then
  log "photos already present in $OUT"
  printf '%s\n' "$OUT"
  exit 0
fi

# ---- never let the photos reach git -----------------------------------------
if command -v git >/dev/null 2>&1 &&
  git -C "$OUT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  probe="$OUT/jpeg-00-0x0.jpg"
  if ! git -C "$OUT" check-ignore -q -- "$probe"; then
    rmdir -- "$OUT" 2>/dev/null || true
    die "$OUT is inside a git work tree and not ignored; choose RENDITION_PHOTOS outside the repository (default: ~/.cache/rendition/photos)"
  fi
fi

# ---- tools -------------------------------------------------------------------
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

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fetch-photos.XXXXXX")
cleanup() { rm -rf -- "$TMP"; }
trap cleanup EXIT
chmod 0755 "$TMP"
mkdir -p "$TMP/debs" "$TMP/x" "$TMP/stage"
# Let apt's sandbox user write the downloads (avoids the "unsandboxed" warning).
if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "$TMP/debs"
fi

# Image dimensions without extra packages: python3 reads the JPEG SOF / PNG
# IHDR header; otherwise vipsheader (installed from libvips-tools if need be).
DIMS_PY='
import struct, sys
def dims(p):
    with open(p, "rb") as f:
        d = f.read(8)
        if d == b"\x89PNG\r\n\x1a\n":
            f.read(8)
            return struct.unpack(">II", f.read(8))
        if d[:2] != b"\xff\xd8":
            raise ValueError("not a JPEG or PNG")
        f.seek(2)
        while True:
            b = f.read(1)
            while b and b != b"\xff":
                b = f.read(1)
            while b == b"\xff":
                b = f.read(1)
            if not b:
                raise ValueError("no SOF marker")
            m = b[0]
            if m in (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7):
                continue
            (n,) = struct.unpack(">H", f.read(2))
            if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">xHH", f.read(5))
                return w, h
            f.seek(n - 2, 1)
w, h = dims(sys.argv[1])
print(w, h)
'
dims() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c "$DIMS_PY" "$1"
  else
    if ! command -v vipsheader >/dev/null 2>&1; then
      log "python3 missing; installing libvips-tools for vipsheader"
      as_root apt-get install -y -q libvips-tools >&2 || die "cannot install libvips-tools"
    fi
    printf '%s %s\n' "$(vipsheader -f width "$1" 2>/dev/null)" "$(vipsheader -f height "$1" 2>/dev/null)"
  fi
}

# ---- download + unpack ---------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
  ((APT_UPDATED)) && return 0
  APT_UPDATED=1
  log "running apt-get update"
  as_root apt-get update -q >&2 || log "apt-get update failed"
}
lists_present() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

declare -A PKG_STATE=() # package -> ok | missing
fetch_pkg() {
  local pkg=$1
  [[ -n ${PKG_STATE[$pkg]:-} ]] && return 0
  lists_present || apt_update_once
  log "downloading $pkg"
  if ! (cd "$TMP/debs" && apt-get download -q "$pkg" >&2); then
    apt_update_once
    if ! (cd "$TMP/debs" && apt-get download -q "$pkg" >&2); then
      log "WARNING: package $pkg unavailable, skipping it"
      PKG_STATE[$pkg]=missing
      return 0
    fi
  fi
  local deb
  deb=$(compgen -G "$TMP/debs/${pkg}_*.deb" | head -n1) || true
  if [[ -z $deb ]]; then
    log "WARNING: no .deb found for $pkg after download, skipping it"
    PKG_STATE[$pkg]=missing
    return 0
  fi
  log "  $(basename "$deb") ($(($(stat -c %s "$deb") / 1000000)) MB)"
  mkdir -p "$TMP/x/$pkg"
  dpkg -x "$deb" "$TMP/x/$pkg"
  rm -f -- "$deb"
  PKG_STATE[$pkg]=ok
}

# ---- select ------------------------------------------------------------------
N_JPEG=0 N_PNG=0 N_JPEG_4K=0 N_PNG_5K=0
ROWS=()
take_tier() {
  local tier=$1 t pkg path src ext w h name bytes
  while IFS='|' read -r t pkg path; do
    [[ -z $t || $t != "$tier" ]] && continue
    fetch_pkg "$pkg"
    [[ ${PKG_STATE[$pkg]} == ok ]] || continue
    src="$TMP/x/$pkg/$path"
    if [[ ! -f $src ]]; then
      log "WARNING: $pkg no longer ships $path, skipping it"
      continue
    fi
    read -r w h < <(dims "$src") || { log "WARNING: cannot read size of $path"; continue; }
    ext=${path##*.}
    case $ext in
    jpg)
      if ((w < 3000 || w > 6500)); then
        log "WARNING: $path is ${w}px wide (want 3000-6500), skipping it"
        continue
      fi
      N_JPEG=$((N_JPEG + 1))
      ((w >= 4000)) && N_JPEG_4K=$((N_JPEG_4K + 1))
      name=$(printf 'jpeg-%02d-%dx%d.jpg' "$N_JPEG" "$w" "$h")
      ;;
    png)
      N_PNG=$((N_PNG + 1))
      ((w >= 4500)) && N_PNG_5K=$((N_PNG_5K + 1))
      name=$(printf 'png-%02d-%dx%d.png' "$N_PNG" "$w" "$h")
      ;;
    *) die "unexpected file type in selection: $path" ;;
    esac
    cp -- "$src" "$TMP/stage/$name"
    bytes=$(stat -c %s -- "$TMP/stage/$name")
    ROWS+=("$name"$'\t'"$w"$'\t'"$h"$'\t'"$bytes"$'\t'"$pkg"$'\t'"$path")
  done <<<"$SELECTION"
}

minimums_met() {
  ((N_JPEG >= MIN_JPEG && N_JPEG_4K >= MIN_JPEG_4K && N_PNG_5K >= MIN_PNG_5K))
}

START=$SECONDS
log "fetching photos into $OUT"
take_tier 1
if ! minimums_met; then
  log "tier-1 selection short of the minimums; trying fallbacks"
  take_tier 2
fi
if ! minimums_met; then
  missing=""
  for p in "${!PKG_STATE[@]}"; do [[ ${PKG_STATE[$p]} == missing ]] && missing+=" $p"; done
  die "not enough photos: $N_JPEG JPEGs 3000-6500 px (need $MIN_JPEG), $N_JPEG_4K >= 4000 px (need $MIN_JPEG_4K), $N_PNG_5K PNGs >= 4500 px (need $MIN_PNG_5K); unavailable packages:${missing:- none}"
fi

# ---- install into OUT ------------------------------------------------------------
rm -f -- "$MARKER"
# Remove files of an earlier selection (only our own naming patterns).
find "$OUT" -maxdepth 1 -type f \( -name 'jpeg-[0-9][0-9]-*.jpg' -o -name 'png-[0-9][0-9]-*.png' \) -delete
mv -f -- "$TMP"/stage/* "$OUT"/
{
  printf 'file\twidth\theight\tbytes\tpackage\tpath_in_package\n'
  printf '%s\n' "${ROWS[@]}"
} >"$MANIFEST.tmp"
mv -f -- "$MANIFEST.tmp" "$MANIFEST"
printf '%s\n' "$SPEC" >"$MARKER"

log "done in $((SECONDS - START)) s: $N_JPEG JPEGs ($N_JPEG_4K >= 4000 px), $N_PNG PNGs ($N_PNG_5K >= 4500 px)"
printf '%s\n' "$OUT"
