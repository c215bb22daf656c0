#!/usr/bin/env bash
# What scripts/schemathesis.sh needs: schemathesis and openapi-spec-validator (PyPI, pinned
# below) in a private venv at target/schemathesis-venv, so the pins cannot clash with other Python
# packages on the machine. Safe to run again: skips what is current.
#
# Python 3.12 or newer is preferred: under CPython 3.11, schemathesis' coverage phase can die in
# `ast.parse` ("AST constructor recursion depth mismatch", a CPython 3.11 bug), so with 3.11
# scripts/schemathesis.sh skips that phase. Debian's python3 (3.11 on bookworm) is the fallback.
set -euo pipefail
cd "$(dirname "$0")/../.."

pins=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
venv=target/schemathesis-venv

version_ok() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, '"$2"'))' 2>/dev/null; }

pick_python() {
  local c
  for c in python3.13 python3.12; do
    if command -v "$c" >/dev/null && version_ok "$c" 12; then command -v "$c"; return; fi
  done
  # pyenv-managed interpreters, when the machine has them (newest first).
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for c in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do
    if version_ok "$c" 12; then echo "$c"; return; fi
  done
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null && version_ok "$c" 10; then command -v "$c"; return; fi
  done
}

py=$(pick_python || true)
if [ -z "$py" ]; then
  echo "schemathesis: installing python3 and python3-venv (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  py=$(pick_python)
fi

want="$("$py" -c 'import platform; print(platform.python_version())') ${pins[*]}"
if [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "schemathesis: pip install ${pins[*]} into $venv (Python from $py)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
echo "$want" >"$venv/.pins"
