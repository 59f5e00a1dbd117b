#!/usr/bin/env bash
# make-bench-classes.sh: the photo classes `rendition-bench` measures, made from the real
# photos of scripts/fetch-photos.sh into a cache directory outside git. Idempotent: a re-run
# that finds everything in place returns at once.
#
#   dir=$(scripts/make-bench-classes.sh | tail -n1)
#
# Output directory: ${RENDITION_BENCH_CLASSES:-${RENDITION_CACHE:-$HOME/.cache/rendition}/bench-classes};
# the LAST line on stdout is its absolute path, everything else goes to stderr.
# BENCH_PER_CLASS (default 4) photos per class:
#
#   progressive-NN-<photo>.jpg  hard links to progressive camera photos (SOF2), spread by
#                               size over those under 8 MB (the 16 MB photographed painting
#                               would double the run time on its own)
#   baseline-NN-<photo>.jpg     the same photos as a camera writes them: baseline (SOF0),
#                               4:2:0, Q 92, standard Huffman tables, EXIF Orientation 6
#                               (landscape pixels shown portrait: a phone held upright), by
#                               `vips jpegsave` and an Exif APP1 written here
#   heic-NN-<photo>.heic        the same photos as a phone's HEIC: HEVC (x265, 8 bit 4:2:0,
#                               quality 50) in HEIF, by heif-enc (libheif-examples)
#   png-NN-<photo>.png          hard links to PNGs, spread over the 5120 px renders and the
#                               3000 px photos
#   classes.tsv                 file, class, source photo
#
# The same pixels in three encodings make the JPEG and HEIC classes comparable with each
# other. Needs python3, vips (libvips-tools) and heif-enc: scripts/install-deps.sh --tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump when what is made changes: a different value remakes the directory.
SPEC_VERSION=1
PER_CLASS=${BENCH_PER_CLASS:-4}
CACHE=${RENDITION_CACHE:-$HOME/.cache/rendition}
OUT=${RENDITION_BENCH_CLASSES:-$CACHE/bench-classes}

log() { printf 'make-bench-classes: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

[[ $PER_CLASS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PER_CLASS must be a positive integer, got '$PER_CLASS'"
for tool in python3 vips vipsheader heif-enc; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps.sh --tests)"
done

photos=$(scripts/fetch-photos.sh | tail -n1)
mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)
MARKER="$OUT/.make-bench-classes.done"
MANIFEST="$OUT/classes.tsv"
SPEC="v$SPEC_VERSION n=$PER_CLASS $(cksum <"$photos/photos.tsv" | cut -d' ' -f1)"

already_done() {
  [[ -f $MARKER && -f $MANIFEST ]] || return 1
  [[ $(<"$MARKER") == "$SPEC" ]] || return 1
  local name rest n=0
  while IFS=$'\t' read -r name rest; do
    [[ $name == file ]] && continue
    [[ -s $OUT/$name ]] || return 1
    n=$((n + 1))
  done <"$MANIFEST"
  ((n > 0))
}
if already_done; then
  log "classes already present in $OUT"
  printf '%s\n' "$OUT"
  exit 0
fi

# `sof FILE`: progressive or baseline, from the JPEG's SOF marker (0xFFC2 and the other
# progressive SOFs: progressive). `orient FILE N`: replaces the file's Exif APP1 segments
# with one holding only Orientation = N (after a JFIF APP0, as cameras order them).
# `pick K NAME...`: K names spread evenly over the list (first and last included).
PY='
import struct, sys

def segments(d):
    """(marker, start, end) of the header segments, up to and including SOS."""
    if d[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    i = 2
    while i + 4 <= len(d):
        if d[i] != 0xFF:
            raise ValueError(f"no marker at {i}")
        m = d[i + 1]
        if m == 0xFF:
            i += 1
            continue
        (n,) = struct.unpack(">H", d[i + 2:i + 4])
        yield m, i, i + 2 + n
        if m == 0xDA:
            return
        i += 2 + n
    raise ValueError("no SOS")

def sof(path):
    d = open(path, "rb").read()
    for m, _, _ in segments(d):
        if m in (0xC2, 0xC6, 0xCA, 0xCE):
            return "progressive"
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            return "baseline"
    raise ValueError(f"{path}: no SOF marker")

def orient(path, value):
    d = open(path, "rb").read()
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHIHHI", 1, 0x0112, 3, 1, value, 0, 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    head, rest, body = [], [], None
    for m, s, e in segments(d):
        seg = d[s:e]
        if m == 0xDA:
            body = d[s:]
            break
        if m == 0xE1 and seg[4:10] == b"Exif\x00\x00":
            continue
        (head if m == 0xE0 and not rest else rest).append(seg)
    open(path, "wb").write(d[:2] + b"".join(head) + app1 + b"".join(rest) + body)

cmd = sys.argv[1]
if cmd == "sof":
    print(sof(sys.argv[2]))
elif cmd == "orient":
    orient(sys.argv[2], int(sys.argv[3]))
elif cmd == "pick":
    k, names = int(sys.argv[2]), sys.argv[3:]
    n = len(names)
    idx = sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 and n > 1 else [0]
    print("\n".join(names[i] for i in idx if n))
'
py() { python3 -c "$PY" "$@"; }

progressive=()
for f in "$photos"/jpeg-*.jpg; do
  (($(stat -c %s -- "$f") <= 8000000)) || continue
  [[ $(py sof "$f") == progressive ]] && progressive+=("$(basename -- "$f")")
done
pngs=()
for f in "$photos"/png-*.png; do pngs+=("$(basename -- "$f")"); done
((${#progressive[@]} >= PER_CLASS)) || die "only ${#progressive[@]} progressive JPEGs under 8 MB in $photos (want $PER_CLASS)"
((${#pngs[@]} >= PER_CLASS)) || die "only ${#pngs[@]} PNGs in $photos (want $PER_CLASS)"
mapfile -t jpeg_pick < <(py pick "$PER_CLASS" "${progressive[@]}")
mapfile -t png_pick < <(py pick "$PER_CLASS" "${pngs[@]}")

START=$SECONDS
log "making $PER_CLASS photos per class in $OUT"
rm -f -- "$MARKER"
find "$OUT" -maxdepth 1 -type f \( -name 'progressive-*' -o -name 'baseline-*' -o -name 'heic-*' -o -name 'png-*' \) -delete
TMP=$(mktemp -d "${TMPDIR:-/tmp}/make-bench-classes.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT

rows=()
link() { ln -f -- "$1" "$2" 2>/dev/null || cp -- "$1" "$2"; }
i=0
for name in "${jpeg_pick[@]}"; do
  i=$((i + 1))
  src=$photos/$name
  stem=${name%.jpg}
  nn=$(printf '%02d' "$i")

  link "$src" "$OUT/progressive-$nn-$stem.jpg"
  rows+=("progressive-$nn-$stem.jpg"$'\t'progressive$'\t'"$name")

  # A camera's JPEG: baseline, 4:2:0 (libvips' `auto` would keep 4:4:4 at Q >= 90),
  # standard Huffman tables, the photo's other metadata kept.
  baseline=$OUT/baseline-$nn-$stem.jpg
  # (interlace, optimize_coding and strip are off by default: boolean options of the vips
  # command line can only be switched on)
  vips jpegsave "$src" "$TMP/b.jpg" --Q 92 --subsample-mode on
  py orient "$TMP/b.jpg" 6
  [[ $(py sof "$TMP/b.jpg") == baseline ]] || die "$name: the re-encoded JPEG is not baseline"
  [[ $(vipsheader -f orientation "$TMP/b.jpg") == 6 ]] || die "$name: libvips does not read Orientation 6 back"
  mv -f -- "$TMP/b.jpg" "$baseline"
  rows+=("$(basename -- "$baseline")"$'\t'baseline$'\t'"$name")

  heic=$OUT/heic-$nn-$stem.heic
  log "heif-enc $name (x265: tens of seconds)"
  heif-enc --quality 50 --output "$TMP/h.heic" "$src" >&2
  # libvips (Debian's libheif with libde265) must decode it, not only read its header.
  vips avg "$TMP/h.heic" >/dev/null || die "$name: libvips cannot decode the HEIC heif-enc made"
  mv -f -- "$TMP/h.heic" "$heic"
  rows+=("$(basename -- "$heic")"$'\t'heic$'\t'"$name")
done
i=0
for name in "${png_pick[@]}"; do
  i=$((i + 1))
  dst=png-$(printf '%02d' "$i")-$name
  link "$photos/$name" "$OUT/$dst"
  rows+=("$dst"$'\t'png$'\t'"$name")
done

{
  printf 'file\tclass\tsource\n'
  printf '%s\n' "${rows[@]}"
} >"$MANIFEST.tmp"
mv -f -- "$MANIFEST.tmp" "$MANIFEST"
printf '%s\n' "$SPEC" >"$MARKER"
log "done in $((SECONDS - START)) s: ${#rows[@]} files"
printf '%s\n' "$OUT"
