#!/usr/bin/env bash
# What scripts/schemathesis.sh needs: Python >= 3.10 with venv, and schemathesis plus
# openapi-spec-validator (PyPI, pinned below) in a private venv at target/schemathesis-venv, so
# the pins cannot clash with other Python packages on the machine. Safe to run again: skips what
# is current.
set -euo pipefail
cd "$(dirname "$0")/../.."

pins=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
venv=target/schemathesis-venv

if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "schemathesis: installing python3 and python3-venv (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi

want="${pins[*]}"
if [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "schemathesis: pip install ${pins[*]} into $venv"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
echo "$want" >"$venv/.pins"
