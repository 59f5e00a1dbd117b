#!/usr/bin/env bash
# The test command: installs prerequisites, fetches real test photos (cached outside git),
# starts the real services on loopback, then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/fetch-photos.sh >/dev/null
# shellcheck disable=SC1090
. "$(infra/local/services.sh up | tail -n1)"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
