#!/usr/bin/env bash
# What the OpenFeature client end-to-end suite (tests/clients, scripts/test-clients.sh) needs:
# Node.js >= 20 with npm, Python >= 3.10 with venv, and the pinned client packages
# (tests/clients/python/requirements.txt into tests/clients/python/.venv, and
# tests/clients/node/package-lock.json via `npm ci`). Safe to run again: skips what is current.
set -euo pipefail
cd "$(dirname "$0")/../.."

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v npm >/dev/null || [ "$(node_major)" -lt 20 ]; then
  echo "clients: installing Node.js and npm (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
  [ "$(node_major)" -ge 20 ] || { echo "clients: need Node.js >= 20, have $(node --version 2>&1)" >&2; exit 1; }
fi
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "clients: installing python3 and python3-venv (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi

stamp() { sha256sum "$1" | cut -d' ' -f1; }

# Python: a private venv, so the pins cannot clash with other packages on the machine.
py=tests/clients/python
req_sum=$(stamp "$py/requirements.txt")
if [ ! -x "$py/.venv/bin/python" ] || [ "$(cat "$py/.venv/.requirements.sha256" 2>/dev/null)" != "$req_sum" ]; then
  echo "clients: pip install -r $py/requirements.txt"
  rm -rf "$py/.venv"
  python3 -m venv "$py/.venv"
  "$py/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$py/requirements.txt"
  echo "$req_sum" >"$py/.venv/.requirements.sha256"
fi

# Node: exactly the lockfile.
nd=tests/clients/node
lock_sum=$(stamp "$nd/package-lock.json")
if [ "$(cat "$nd/node_modules/.lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
  echo "clients: npm ci in $nd"
  (cd "$nd" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$nd/node_modules/.lock.sha256"
fi
