#!/usr/bin/env bash
# local-recipe.sh: the "Local recipe" of docs/operations.md end to end, on loopback (infra/local/stack.sh):
# bring the stack up, upload a real photo, wait for its eager derivatives, fetch an eager one
# (thumb, already in S3) and an on-demand one (og, rendered by `serve` on the miss and stored)
# through `serve`, check their formats and sizes, the bucket and the worker's metrics, delete
# the source (its derivatives must go too), and tear the stack down (also when a step fails).
# Ends with one `local-recipe: ok (...)` line; exits non-zero after a `local-recipe: FAILED: ...`
# line otherwise.
#
#   scripts/local-recipe.sh [--bin PATH]     # default: what `stack.sh up` picks
#
# Needs: curl, vipsheader (libvips-tools; scripts/install-deps.sh). The photo comes from
# scripts/fetch-photos.sh; when that is unavailable a generated JPEG is used. Each run uploads
# under a new name, so the on-demand render is a real miss even when moto kept older objects.
# A stack already up is reused (or restarted with --bin) and is down afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_ARGS=()
while (($#)); do
    case $1 in
        --bin)
            (($# >= 2)) || { echo "local-recipe: --bin needs a path" >&2; exit 2; }
            BIN_ARGS=(--bin "$2")
            shift 2
            ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "local-recipe: unknown argument $1" >&2; exit 2 ;;
    esac
done

STACK=infra/local/stack.sh
CACHE_DIR="${RENDITION_CACHE:-${HOME:?HOME or RENDITION_CACHE must be set}/.cache/rendition}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/local-recipe.XXXXXX")
STACK_UP=0

step() { printf '[local-recipe] %s\n' "$*" >&2; }
fail() { printf 'local-recipe: FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if ((STACK_UP)); then
        if ((rc != 0)); then
            step "failure: last lines of the worker and serve logs"
            tail -n 15 "$CACHE_DIR/stack-worker.log" "$CACHE_DIR/stack-serve.log" >&2 2>/dev/null || true
        fi
        step "tearing the stack down"
        "$STACK" down >&2 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# One recipe at a time per cache dir (they share the stack); fd 7 is closed for `up`, so
# nothing it starts keeps the lock.
mkdir -p "$CACHE_DIR"
exec 7>"$CACHE_DIR/local-recipe.lock"
flock -w 900 7 || fail "another scripts/local-recipe.sh held $CACHE_DIR/local-recipe.lock for 15 min"
T0=$SECONDS

for tool in curl vipsheader; do
    command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-deps.sh installs it)"
done

# A real photo (the first camera JPEG of the cache, 3000 px wide), else a generated one.
if photos=$(scripts/fetch-photos.sh 2>/dev/null | tail -n1) &&
    src=$(find "$photos" -maxdepth 1 -name 'jpeg-*.jpg' 2>/dev/null | sort | head -n1) && [[ -n $src ]]; then
    step "photo: $src"
else
    src=$WORK/generated.jpg
    vips gaussnoise "$src" 1600 1000 || fail "no photo from scripts/fetch-photos.sh, and vips could not generate one"
    step "photo: scripts/fetch-photos.sh unavailable; generated $src"
fi
NAME=recipe-$(date +%Y%m%d%H%M%S)-$$
cp "$src" "$WORK/$NAME.jpg"

# jobs_total{outcome="rendered"} of the worker (0 when not yet reported).
rendered() {
    curl -fsS --max-time 5 "$RENDITION_STACK_METRICS" |
        awk '$1 == "rendition_jobs_total{outcome=\"rendered\"}" { n = $2 } END { print n + 0 }'
}

# fetch URL OUT FORMAT WIDTH HEIGHT CONTENT_TYPE: GET through serve, then check the image.
fetch() {
    local url=$1 out=$2 loader=$3 w=$4 h=$5 ctype=$6 got
    got=$(curl -fsS -o "$out" -w '%{http_code} %{content_type}' "$RENDITION_STACK_SERVE$url") ||
        fail "GET $RENDITION_STACK_SERVE$url failed"
    [[ $got == "200 $ctype" ]] || fail "GET $url: expected 200 $ctype, got $got"
    got="$(vipsheader -f vips-loader "$out" 2>/dev/null) $(vipsheader -f width "$out" 2>/dev/null)x$(vipsheader -f height "$out" 2>/dev/null)" ||
        fail "$url is not an image vips can read"
    [[ $got == "$loader ${w}x$h" ]] || fail "$url: expected $loader ${w}x$h, got $got"
    step "$url: $ctype ${w}x$h, $(stat -c %s "$out") bytes"
}

# ---- the recipe (docs/operations.md, "Local recipe")
step "stack up"
STACK_UP=1 # a failed `up` may have started one of the two: `down` cleans that up too
env_file=$("$STACK" up "${BIN_ARGS[@]}" 7>&- | tail -n1) || fail "infra/local/stack.sh up failed"
# shellcheck disable=SC1090
. "$env_file"
rendition() { "$RENDITION_STACK_BIN" "$@"; }
before=$(rendered) || fail "the worker's metrics at $RENDITION_STACK_METRICS do not answer"

"$STACK" put "$WORK/$NAME.jpg" || fail "upload failed"
manifest=$("$STACK" wait "originals/$NAME.jpg" 120) || fail "no manifest for originals/$NAME.jpg"
step "manifest: $manifest"

thumb=$(rendition url "originals/$NAME.jpg" --preset thumb) || fail "rendition url --preset thumb failed"
fetch "$thumb" "$WORK/thumb.webp" webpload 160 160 image/webp

og=$(rendition url "originals/$NAME.jpg" --preset og) || fail "rendition url --preset og failed"
if "$STACK" ls "${og#/}" | grep -qxF "${og#/}"; then fail "${og#/} exists before it was requested (og is not eager)"; fi
fetch "$og" "$WORK/og.jpg" jpegload 1200 630 image/jpeg
"$STACK" ls derived/ | grep -qxF "${og#/}" || fail "serve did not store ${og#/} in the bucket"
step "${og#/}: stored by serve"

# The worker counts the job right after it acknowledges it: allow it a moment.
deadline=$((SECONDS + 15))
until now=$(rendered) && ((now >= before + 1)); do
    ((SECONDS < deadline)) || fail "rendition_jobs_total{outcome=\"rendered\"} is ${now:-?} (was $before before the upload)"
    sleep 0.2
done
step "rendition_jobs_total{outcome=\"rendered\"} $now"

# Leave moto as we found it: deleting the source removes its derivatives (ObjectRemoved).
"$STACK" rm "originals/$NAME.jpg" || fail "deleting originals/$NAME.jpg failed"
deadline=$((SECONDS + 30))
while [[ -n $("$STACK" ls "derived/$NAME.jpg/") ]]; do
    ((SECONDS < deadline)) || fail "derived/$NAME.jpg/ still has objects 30 s after its source was deleted"
    sleep 0.2
done
step "originals/$NAME.jpg deleted; its derivatives are gone"

STACK_UP=0
"$STACK" down || fail "infra/local/stack.sh down: worker or serve did not exit 0"

printf 'local-recipe: ok (originals/%s.jpg: thumb 160x160 webp from the worker, og 1200x630 jpeg rendered by serve and stored, delete removed both; jobs rendered=%s; %d s)\n' \
    "$NAME" "$now" "$((SECONDS - T0))"
