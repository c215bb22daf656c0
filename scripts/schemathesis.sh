#!/usr/bin/env bash
# Checks the relay against its own OpenAPI document, live:
#  1. openapi-spec-validator validates GET /openapi.json against the OpenAPI 3.1 meta-schema;
#  2. schemathesis generates requests from the document for every operation (but the two event
#     streams, which never end: tests/e2e_core.rs and the client suites cover them) and checks
#     that no answer is a 5xx and that every status, content type, header and body is the one
#     the document promises.
# The relay is this tree's binary on a free loopback port, serving config/flags.yaml with an
# evaluation key, an admin key (sent on every request: it may call everything) and token
# exchange on. Bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase (default 100),
# SCHEMATHESIS_TIMEOUT seconds in all (default 600). FLAGRELAY_BIN runs a prebuilt binary.
# Prints `schemathesis: N passed, M failed`; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/deps/schemathesis.sh
venv="$root/target/schemathesis-venv"

bin=${FLAGRELAY_BIN:-}
if [ -z "$bin" ]; then
  cargo build --locked --quiet --bin flagrelay
  bin="$root/target/debug/flagrelay"
fi

work=$(mktemp -d)
relay_pid=
cleanup() {
  if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

eval_key="st-eval-$RANDOM$RANDOM"
admin_key="st-admin-$RANDOM$RANDOM"
cat >"$work/flagrelay.yaml" <<EOF
logLevel: info
pollingInterval: 0
retrievers:
  - {kind: file, path: "$root/config/flags.yaml"}
authorizedKeys:
  evaluation: ["$eval_key"]
  admin: ["$admin_key"]
auth:
  jwtSecret: "schemathesis-jwt-secret-$RANDOM$RANDOM-0123456789abcdef"
EOF

"$bin" --config "$work/flagrelay.yaml" --host 127.0.0.1 --port 0 >"$work/relay.log" 2>&1 &
relay_pid=$!
addr=
for _ in $(seq 1 200); do
  addr=$(grep -m1 '"server":"api"' "$work/relay.log" 2>/dev/null | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)
  [ -n "$addr" ] && break
  kill -0 "$relay_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "schemathesis: the relay did not start:" >&2
  cat "$work/relay.log" >&2
  echo "schemathesis: 0 passed, 1 failed"
  exit 1
fi
base="http://$addr"
for _ in $(seq 1 100); do
  "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$base/ready" 2>/dev/null && break
  sleep 0.1
done

# 1. The document against the OpenAPI 3.1 meta-schema.
"$venv/bin/python" - "$base/openapi.json" <<'EOF'
import json, sys, urllib.request
from openapi_spec_validator import validate
doc = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
validate(doc)
print(f"openapi-spec-validator: {sys.argv[1]} is a valid OpenAPI {doc['openapi']} document")
EOF

# 2. schemathesis. The coverage phase needs Python >= 3.12 (see scripts/deps/schemathesis.sh).
phases=examples,coverage,fuzzing
if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  phases=examples,fuzzing
  echo "schemathesis: Python < 3.12 in the venv, skipping the coverage phase"
fi
set +e
# From the temp dir: schemathesis and Hypothesis keep their caches in the working directory.
cd "$work"
timeout "${SCHEMATHESIS_TIMEOUT:-600}" "$venv/bin/schemathesis" run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth \
  --header "X-API-Key: $admin_key" \
  --exclude-path-regex '^/(ofrep/v1/sse|v1/flags/stream)$' \
  --phases "$phases" \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  --seed "${SCHEMATHESIS_SEED:-20261121}" \
  --workers 2 \
  --request-timeout 10 \
  --no-color \
  --report json --report-json-path "$work/report.json" >"$work/schemathesis.out" 2>&1
st=$?
set -e
cd "$root"
sed -n '/SUMMARY/,$p' "$work/schemathesis.out"
if [ "$st" -ne 0 ]; then
  cat "$work/schemathesis.out" | head -300
fi

alive=1
kill -0 "$relay_pid" 2>/dev/null || alive=0
"$venv/bin/python" - "$work/report.json" "$st" "$alive" <<'EOF'
import json, sys
path, status, alive = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
try:
    report = json.load(open(path))
except (OSError, ValueError):
    report = None
if report is None:
    print(f"schemathesis: no report (exit {status})")
    print("schemathesis: 0 passed, 1 failed")
    sys.exit(1)
cases = report["test_cases"]
failed = cases["with_failures"] + cases["errored"] + len(report.get("errors", []))
if not alive:
    print("schemathesis: the relay died during the run")
    failed += 1
if status != 0 and failed == 0:
    failed = 1
passed = max(cases["generated"] - cases["with_failures"] - cases["errored"], 0)
print(f"schemathesis: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
