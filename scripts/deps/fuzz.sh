#!/usr/bin/env bash
# cargo-fuzz (libFuzzer) for `scripts/fuzz-smoke.sh`: the fuzz targets build with the nightly
# toolchain, which must be there already (`cargo +nightly`). cargo-fuzz comes from crates.io
# with its own lock file; skipped when already installed.
set -euo pipefail
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "deps/fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if cargo fuzz --version >/dev/null 2>&1; then
  exit 0
fi
cargo install cargo-fuzz --locked
