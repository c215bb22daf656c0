#!/usr/bin/env bash
# `make test-fips`: build the relay with the `fips` feature (AWS-LC's FIPS 140-3 module) and check,
# on the running binaries, what issue 5 promises:
#   - the FIPS build's first log line is {"level":"info","msg":"crypto mode","fips140":true,...}
#     and /info reports fips140 true;
#   - the FIPS build starts and serves /health with --fips-strict;
#   - the default build with --fips-strict refuses to start (exit code != 0) and logs false.
# Building AWS-LC's FIPS module takes several minutes on two cores; that is expected.
set -euo pipefail
cd "$(dirname "$0")/.."

# cmake and Go for the AWS-LC FIPS build (Perl is already on the machine).
bash scripts/install-deps.sh fips

# `make build-relayproxy-fips` builds the same feature set with the release profile. Here the
# dev profile (FIPS_TEST_PROFILE) does: AWS-LC's FIPS module, its self-tests and integrity check
# are the same C build either way, and the dev profile reuses everything `make test` compiled, so
# only the crates under aws-lc-rs rebuild. A release build with fat LTO took 24 minutes of CI's
# time on two cores. Both builds share target/, so the FIPS binary is copied out before the
# default one is built over it.
profile="${FIPS_TEST_PROFILE:-dev}"
case "$profile" in dev) out_dir=target/debug ;; *) out_dir=target/$profile ;; esac
bins=$(mktemp -d)
echo "test-fips: building the FIPS binary, profile $profile (AWS-LC's FIPS module takes minutes)"
cargo build --locked --profile "$profile" --features fips
cp "$out_dir/flagrelay" "$bins/flagrelay-fips"
echo "test-fips: building the default binary, profile $profile"
cargo build --locked --profile "$profile"
cp "$out_dir/flagrelay" "$bins/flagrelay"
fips_bin=$bins/flagrelay-fips
std_bin=$bins/flagrelay

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*" >&2; }

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work" "$bins"
}
trap cleanup EXIT

# A small flag file and a config on loopback with polling off: nothing here depends on the
# repository's example flags or reaches beyond this machine.
cat >"$work/flags.yaml" <<'EOF'
fips-check:
  enabled: true
  rollout: 100
EOF
cat >"$work/flagrelay.yaml" <<EOF
server:
  host: 127.0.0.1
logFormat: json
pollingInterval: 0
retrievers:
  - kind: file
    path: $work/flags.yaml
EOF

# A port nobody listens on now (the relay binds it a moment later).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# HTTP status of GET url, or 000 when nothing answers.
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }

# Start a relay in the background; sets $pid. Output goes to $work/NAME.out and .err.
start() {
  local name=$1 bin=$2 port=$3
  shift 3
  "$bin" --config "$work/flagrelay.yaml" --port "$port" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
}

# Wait up to 30 s for /health to answer 200, as long as the process is alive.
wait_healthy() {
  local port=$1 pid=$2 i
  for i in $(seq 1 150); do
    [ "$(status_of "http://127.0.0.1:$port/health")" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

show_logs() {
  echo "--- $1 stdout:" >&2
  head -n 20 "$work/$1.out" >&2 || true
  echo "--- $1 stderr:" >&2
  head -n 20 "$work/$1.err" >&2 || true
}

# 1-3. The FIPS build, no strict mode: starts, says fips140 true first, /info agrees.
port=$(free_port)
start fips "$fips_bin" "$port"
if wait_healthy "$port" "$pid"; then
  pass "FIPS build starts and serves /health"
else
  fail "FIPS build did not serve /health on port $port"
  show_logs fips
fi
first=$(head -n 1 "$work/fips.out")
if grep -qF '"msg":"crypto mode"' <<<"$first" && grep -qF '"fips140":true' <<<"$first"; then
  pass "FIPS build's first log line: $first"
else
  fail "FIPS build's first log line is not the crypto mode line with \"fips140\":true: $first"
fi
info=$(curl -s --max-time 2 "http://127.0.0.1:$port/info" || true)
if python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]).get("fips140") is not True)' "$info" 2>/dev/null; then
  pass "FIPS build's /info reports fips140: true"
else
  fail "FIPS build's /info does not report fips140: true: $info"
fi
stop "$pid"

# 4. The FIPS build in strict mode starts.
port=$(free_port)
start fips-strict "$fips_bin" "$port" --fips-strict
if wait_healthy "$port" "$pid"; then
  pass "FIPS build with --fips-strict starts and serves /health"
else
  fail "FIPS build with --fips-strict did not serve /health on port $port"
  show_logs fips-strict
fi
stop "$pid"

# 5-6. The default build in strict mode refuses to start, and says why it cannot.
port=$(free_port)
set +e
timeout 30 "$std_bin" --config "$work/flagrelay.yaml" --port "$port" --fips-strict \
  >"$work/std-strict.out" 2>"$work/std-strict.err"
code=$?
set -e
if [ "$code" -eq 124 ]; then
  fail "default build with --fips-strict was still running after 30 s"
  show_logs std-strict
elif [ "$code" -ne 0 ]; then
  pass "default build with --fips-strict exits with code $code"
else
  fail "default build with --fips-strict exited 0"
  show_logs std-strict
fi
first=$(head -n 1 "$work/std-strict.out")
if grep -qF '"msg":"crypto mode"' <<<"$first" && grep -qF '"fips140":false' <<<"$first"; then
  pass "default build's first log line: $first"
else
  fail "default build's first log line is not the crypto mode line with \"fips140\":false: $first"
fi

echo "test-fips: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
