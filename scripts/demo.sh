#!/usr/bin/env bash
# The embedded default in one command: a local folder as the bucket.
# Puts a few real photos (and one corrupt file) into ./demo/originals/, runs
# `rendition run --local ./demo --once`, and shows where the derivatives landed.
# For the watching mode: target/release/rendition run --local ./demo  (then drop files in).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
photos=$(scripts/fetch-photos.sh | tail -n1)
cargo build --release --locked --bin rendition

mkdir -p demo/originals
cp "$photos"/jpeg-0[5-8]-*.jpg demo/originals/
cp "$photos"/png-06-*.png demo/originals/
head -c 20000 "$photos"/jpeg-09-*.jpg > demo/originals/truncated.jpg

target/release/rendition run --local demo --once

echo
echo "Derivatives (demo/derived/<source>/<guid>/<preset>.webp, manifest.json last):"
find demo/derived -type f | sort
echo
echo "Rejected sources, with the reason: demo/failed/"
find demo/failed -type f -exec sh -c 'echo "$1:"; cat "$1"; echo' _ {} \;
