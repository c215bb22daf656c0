#!/usr/bin/env bash
# Installs what a part of the test suite needs on a fresh machine. Each component has its own
# script in scripts/deps/; `all` runs every one. Safe to run again: each script skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
components=("$@")
if [ "${#components[@]}" -eq 0 ] || [ "${components[0]}" = all ]; then
  components=()
  for f in scripts/deps/*.sh; do components+=("$(basename "$f" .sh)"); done
fi
for c in "${components[@]}"; do
  script="scripts/deps/$c.sh"
  [ -f "$script" ] || { echo "install-deps: no component '$c' (scripts/deps/$c.sh)" >&2; exit 2; }
  echo "install-deps: $c"
  bash "$script"
done
