#!/usr/bin/env bash
# All cryptography must go through aws-lc-rs: `ring` may not appear in the dependency tree,
# with or without the fips feature (all targets, all edge kinds).
set -euo pipefail
cd "$(dirname "$0")/.."
for features in "" "--features fips"; do
  # shellcheck disable=SC2086
  out=$(cargo tree --locked -i ring --target all $features 2>&1 || true)
  if grep -qE "^ring v" <<<"$out"; then
    echo "ring is in the dependency tree (${features:-default features}):" >&2
    echo "$out" >&2
    exit 1
  fi
done
echo "no-ring: 2 passed, 0 failed"
