#!/usr/bin/env bash
# Debian packages used by the tests and benchmarks (FIPS toolchain, load generator).
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v go >/dev/null || need+=(golang-go)
command -v wrk >/dev/null || need+=(wrk)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
