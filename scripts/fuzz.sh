#!/usr/bin/env bash
# Fuzzes rendition-image and rendition-pipeline with libFuzzer + AddressSanitizer, built as cargo-fuzz builds it
# (without needing cargo-fuzz): each target runs for a bounded time on a scratch corpus
# seeded from fuzz/seeds/<target>/, so the tree stays clean.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 60 s, every target)
#
# Prints one line per target, `fuzz: <target> runs=<N> secs=<S> crashes=<0|1>`, and
# exits non-zero when any target crashed (panic, sanitizer report, leak, timeout or
# out-of-memory); the reproducer is written under fuzz/artifacts/<target>/ and its path
# printed. Reproduce with `fuzz/target/<host>/release/<target> <file>` (after a run of this
# script), or `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> <file>`.
# FUZZ_CORPUS_DIR=<dir> keeps the grown corpora there across runs (default: a temp dir
# that is removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly ALL_TARGETS=(event spec url config decode_boundary)

usage() {
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]  (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
}

secs=60
if [[ $# -gt 0 ]]; then
    secs=$1
    shift
fi
[[ $secs =~ ^[1-9][0-9]*$ ]] || usage
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("${ALL_TARGETS[@]}")
fi
for target in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] || usage
done

# The build `cargo fuzz build` makes (cargo-fuzz 0.13.2 with its defaults: release with
# debug assertions and overflow checks, AddressSanitizer, libFuzzer's coverage
# instrumentation on every crate, one codegen unit), as one cargo invocation for all the
# targets, without cargo-fuzz itself: a cold `cargo install cargo-fuzz` is 25-70 s of
# compiling on 2 cores that the targets do not need. The same flags, word for word, so
# `cargo fuzz run` afterwards finds this build fresh. --target keeps them off build
# scripts and proc macros. The nightly-only flags (-Z, sanitizer coverage) pass on the
# stable toolchain with RUSTC_BOOTSTRAP.
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$host/release"
fuzz_rustflags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0
    -Zsanitizer=address
    -Cllvm-args=-sanitizer-coverage-stack-depth
    -Cdebug-assertions
    -Ccodegen-units=1
)
bins=()
for target in "${targets[@]}"; do
    bins+=(--bin "$target")
done
export RUSTC_BOOTSTRAP=1
RUSTFLAGS="${fuzz_rustflags[*]}${RUSTFLAGS:+ $RUSTFLAGS}" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0" \
    cargo build --manifest-path fuzz/Cargo.toml --target "$host" --release \
    --config 'profile.release.debug="line-tables-only"' "${bins[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
corpus_root=${FUZZ_CORPUS_DIR:-$scratch/corpus}

failed=0
for target in "${targets[@]}"; do
    corpus="$corpus_root/$target"
    artifacts="fuzz/artifacts/$target/"
    log="$scratch/$target.log"
    mkdir -p "$corpus" "$artifacts"
    cp -n fuzz/seeds/"$target"/* "$corpus"/
    start=$(date +%s)
    # TMPDIR: the config target's scratch file. VIPS_WARNING: libvips stays quiet about
    # the broken images it refuses. LSAN_OPTIONS: leaks inside system image libraries.
    if TMPDIR="$scratch" VIPS_WARNING=1 LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp" \
        "$bin_dir/$target" \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" >"$log" 2>&1; then
        crashes=0
    else
        crashes=1
    fi
    elapsed=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    if [[ -z $runs ]]; then
        # No final stats (the process died): the last status line's count.
        runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n1)
    fi
    echo "fuzz: $target runs=${runs:-0} secs=$elapsed crashes=$crashes"
    if [[ $crashes -ne 0 ]]; then
        failed=1
        tail -n 80 "$log" >&2
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        echo "fuzz: $target crashed; reproducer: ${artifact:-none written (see the log above)}" >&2
    fi
done
exit "$failed"
