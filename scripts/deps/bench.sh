#!/usr/bin/env bash
# The load generators for `make bench-load` (scripts/bench-load.sh): wrk from Debian; and
# h2load and nghttp (Debian nghttp2-client) for its flagd part and scripts/bench-flagd.sh.
# python3, curl and taskset (util-linux) are expected on the machine already.
set -euo pipefail
if ! command -v wrk >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi
if ! command -v h2load >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nghttp2-client >/dev/null
fi
wrk --version 2>&1 | head -1 || true
