#!/usr/bin/env bash
# Installs what building Rendition needs on Debian 12 / Ubuntu, when missing: libvips
# (8.14), pkg-config, a C compiler. With --tests also what only the tests and the ops
# scripts need: libvips' command-line tools, python3-venv (for the moto S3/SQS server),
# curl, Debian's chromium (headless, for the contact sheet test), libheif's heif-enc (HEIF
# regression cases) and node with npm (sharp, the reference the fit semantics are checked
# against; the CloudFront Function's tests) and Debian's prometheus for its promtool (the
# alert rules' checks and unit tests; where systemd runs, the package also enables and
# starts a Prometheus server on :9090). Idempotent; quiet when everything is there.
#
#   scripts/install-deps.sh              # build (the demo)
#   scripts/install-deps.sh --tests      # build and test
#   scripts/install-deps.sh --jemalloc   # build and test, and Debian's libjemalloc2, which
#                                        # the production images preload (soak and bench)
set -euo pipefail

mode=${1-}
need=()
pkg-config --atleast-version=8.14 vips 2>/dev/null || need+=(libvips-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
if [ "$mode" = --tests ] || [ "$mode" = --jemalloc ]; then
  command -v vips >/dev/null || need+=(libvips-tools)
  command -v curl >/dev/null || need+=(curl)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  [ -x /usr/bin/chromium ] || command -v chromium >/dev/null || need+=(chromium)
  command -v heif-enc >/dev/null || need+=(libheif-examples)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  command -v promtool >/dev/null || need+=(prometheus)
fi
if [ "$mode" = --jemalloc ]; then
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
