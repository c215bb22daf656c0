#!/usr/bin/env bash
# Redis and Sentinel for the fleet-mode tests (tests/e2e_fleet*.rs): Debian's redis-server and
# redis-sentinel. The tests start their own processes on loopback ports in temp dirs; the
# packaged system services are stopped and disabled so they hold no port.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: do not start the packaged services during the install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq "${need[@]}" >/dev/null || {
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  }
fi
