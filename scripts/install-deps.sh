#!/usr/bin/env bash
# Installs what building and testing Rendition needs on Debian 12 / Ubuntu, when missing:
# libvips (8.14, with its command-line tools for the tests), pkg-config, python3-venv
# (for the moto S3/SQS test server), curl, and Debian's chromium (headless, for the contact
# sheet test). Idempotent; quiet when everything is there.
#
#   scripts/install-deps.sh              # build and test
#   scripts/install-deps.sh --jemalloc   # also Debian's libjemalloc2, which the production
#                                        # images preload (soak and bench scripts)
set -euo pipefail

need=()
pkg-config --atleast-version=8.14 vips 2>/dev/null || need+=(libvips-dev)
command -v vips >/dev/null || need+=(libvips-tools)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(gcc libc6-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null || need+=(chromium)
if [ "${1-}" = --jemalloc ]; then
  ls /usr/lib/*-linux-gnu/libjemalloc.so.2 >/dev/null 2>&1 || need+=(libjemalloc2)
fi

if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${need[@]}" ca-certificates >&2
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi
