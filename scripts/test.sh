#!/usr/bin/env bash
# The test command: installs prerequisites, fetches real test photos (cached outside git),
# starts the real services on loopback, then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --tests
scripts/fetch-photos.sh >/dev/null
# sharp, the reference for the fit semantics (tests/integration/shapes.rs); empty when it
# cannot be installed, and that test then says it compared with libvips only.
RENDITION_SHARP_DIR=$(scripts/install-sharp.sh | tail -n1)
export RENDITION_SHARP_DIR
# Where node is installed (install-deps.sh --tests installs it), sharp must be there too.
if command -v node >/dev/null; then export RENDITION_REQUIRE_SHARP=1; fi
# shellcheck disable=SC1090
. "$(infra/local/services.sh up | tail -n1)"

cargo fmt --all -- --check
# README ≤ 250 lines with its diagram, every docs/ page linked, every link and anchor
# resolving, the configuration reference generated from the schema.
python3 scripts/check-docs.py
scripts/lint-infra.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
scripts/test-clients.sh 2>&1 | tee -a "$log"; clients_status=${PIPESTATUS[0]}; [ "$status" -ne 0 ] || status=$clients_status
# The Python operations tools (ops/): ruff and pytest, their storage checks against moto.
scripts/test-ops.sh --bin target/debug/rendition 2>&1 | tee -a "$log"; ops_status=${PIPESTATUS[0]}; [ "$status" -ne 0 ] || status=$ops_status
scripts/local-recipe.sh --bin target/debug/rendition 2>&1 | tee -a "$log"
recipe_status=${PIPESTATUS[0]}
# A short chaos run (100 + 100 uploads, SIGKILLs with jobs in flight, a broker cut, an S3
# outage) on the debug build: delivery and its checks break the run, not only the docs.
scripts/chaos.sh --short --bin target/debug/rendition 2>&1 | tee -a "$log"
chaos_status=${PIPESTATUS[0]}
# Every fuzz target for a bounded time (FUZZ_SECONDS each, default 60) on its seed corpus;
# a crash fails the run and leaves its reproducer under fuzz/artifacts/.
scripts/fuzz.sh "${FUZZ_SECONDS:-60}" 2>&1 | tee -a "$log"
fuzz_status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one result line per target) and
# the fuzz targets.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     /^fuzz: [a-z_]+ runs=/ { t += 1; for (i = 1; i <= NF; i++) { if ($i ~ /^runs=/) r += substr($i, 6); if ($i == "crashes=1") c += 1 } }
     END { printf "summary: %d passed, %d failed, %d skipped; fuzz: %d targets, %d runs, %d crashed\n", p, f, s, t, r, c }' "$log"
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ "$recipe_status" -ne 0 ]; then exit "$recipe_status"; fi
if [ "$chaos_status" -ne 0 ]; then exit "$chaos_status"; fi
exit "$fuzz_status"
