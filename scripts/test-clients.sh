#!/usr/bin/env bash
# End-to-end suite with real, unchanged OpenFeature clients against the relay binary on
# loopback: Python (openfeature-sdk + openfeature-provider-ofrep and -flagd, pytest) and Node
# (@openfeature/server-sdk + ofrep-provider and flagd-provider, @openfeature/web-sdk +
# ofrep-web-provider and flagd-web-provider, node --test). Each suite starts its own relays on free ports with temporary configs and flag
# files (tests/clients/fixtures/flags.yaml) and stops them at the end.
#
#   FLAGRELAY_BIN=path   use this binary instead of building target/debug/flagrelay
#                        (the debug build: `make test` has just built it for cargo test)
#   CLIENTS=python|node  run one suite only
#
# Last line: "test-clients: N passed, M failed[, K skipped]"; exit 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/install-deps.sh clients || { echo "test-clients: installing dependencies failed" >&2; exit 1; }

if [ -z "${FLAGRELAY_BIN:-}" ]; then
  cargo build --locked || { echo "test-clients: cargo build failed" >&2; exit 1; }
  FLAGRELAY_BIN=$root/target/debug/flagrelay
fi
case "$FLAGRELAY_BIN" in /*) ;; *) FLAGRELAY_BIN=$root/$FLAGRELAY_BIN ;; esac
[ -x "$FLAGRELAY_BIN" ] || { echo "test-clients: no relay binary at $FLAGRELAY_BIN" >&2; exit 1; }
export FLAGRELAY_BIN
echo "test-clients: relay $FLAGRELAY_BIN ($("$FLAGRELAY_BIN" --version 2>&1 | head -1))"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0 failed=0 skipped=0
suites=${CLIENTS:-python node}

for suite in $suites; do
  case "$suite" in
  python)
    echo; echo "==== Python: openfeature-sdk + openfeature-provider-ofrep (pytest) ===="
    (cd tests/clients/python && timeout 600 .venv/bin/python -m pytest -v --junitxml="$out/python.xml")
    rc=$?
    read -r p f s < <(python3 - "$out/python.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 0, 0); sys.exit()
t = f = e = s = 0
for ts in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
    t += int(ts.get("tests", 0)); f += int(ts.get("failures", 0))
    e += int(ts.get("errors", 0)); s += int(ts.get("skipped", 0))
print(t - f - e - s, f + e, s)
PY
)
    ;;
  node)
    echo; echo "==== Node: server-sdk + ofrep-provider, web-sdk + ofrep-web-provider (node --test) ===="
    (cd tests/clients/node && timeout 600 node --test --test-concurrency=1 --test-timeout=60000 \
      --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$out/node.tap" test/*.test.mjs)
    rc=$?
    count() { grep -E "^# $1 [0-9]+$" "$out/node.tap" 2>/dev/null | tail -1 | awk '{print $3}'; }
    p=$(count pass) f=$(count fail) c=$(count cancelled) s=$(count skipped) t=$(count todo)
    p=${p:-0} f=$((${f:-0} + ${c:-0})) s=$((${s:-0} + ${t:-0}))
    ;;
  *) echo "test-clients: unknown suite '$suite'" >&2; exit 2 ;;
  esac
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "test-clients: $suite suite exited $rc with no failing test counted: counting it as one failure" >&2
    f=1
  fi
  echo "test-clients: $suite: $p passed, $f failed, $s skipped"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done

echo
if [ "$skipped" -gt 0 ]; then
  echo "test-clients: $passed passed, $failed failed, $skipped skipped"
else
  echo "test-clients: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
