#!/usr/bin/env bash
# Soak test of issue 8 (`make soak`; not in CI). On loopback only, bounded in time and rate:
#
#   1. builds the relay in release mode;
#   2. starts it on a flag file (SOAK_FLAGS flags) that switches every second between two
#      documents (write to temp + rename), polled every 500 ms, persisted on every change,
#      with evaluation, admin and token credentials;
#   3. for SOAK_MINUTES runs mixed load:
#        - wrk (scripts/soak/mix.lua): OFREP single (70 %) and bulk (10 %) evaluations, sync
#          fetches (5 %), bad JSON, unknown flags and wrong keys (5 % each), with a pause of
#          SOAK_DELAY_MS between requests on each of SOAK_CONNECTIONS connections;
#        - scripts/soak/clients.py: SOAK_SSE_CLIENTS event-stream clients connecting and
#          leaving (1-20 s each, half with a reset; keys in headers, ?apiKey= and tokens),
#          admin refreshes every 2 s, token exchanges, wrong keys and bad JSON;
#   4. samples the relay's RSS (VmRSS) and open descriptors (/proc/PID/fd) every 10 s into
#      $SOAK_OUT/samples.csv;
#   5. after the load, waits for idle connections to time out and samples again, sends
#      SIGTERM, and prints (scripts/soak/report.py): total requests, 5xx count (must be 0),
#      RSS after warm-up vs. at the end and its growth (< 10 %), descriptors idle before vs.
#      idle after the load (no growth), and a PASS/FAIL line. Exits 1 on FAIL.
#
# Environment (defaults in brackets):
#   SOAK_MINUTES [30]       load duration          SOAK_WARMUP_SECS [120]  RSS baseline time
#   SOAK_CONNECTIONS [8]    wrk connections        SOAK_DELAY_MS [2]       wrk pause per request
#   SOAK_SSE_CLIENTS [20]   concurrent SSE clients SOAK_FLAGS [200]        flags per document
#   SOAK_OUT [target/soak]  documents, logs, samples (never committed)
#   SOAK_SKIP_BUILD [0]     1: use the release binary already built
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${SOAK_MINUTES:-30}
WARMUP=${SOAK_WARMUP_SECS:-120}
CONNS=${SOAK_CONNECTIONS:-8}
DELAY_MS=${SOAK_DELAY_MS:-2}
SSE_CLIENTS=${SOAK_SSE_CLIENTS:-20}
FLAGS=${SOAK_FLAGS:-200}
OUT=${SOAK_OUT:-target/soak}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SAMPLE_SECS=10
EVAL_KEY=soak-eval-key-0f9e8d7c
ADMIN_KEY=soak-admin-key-6b5a4938

for v in MINUTES WARMUP CONNS DELAY_MS SSE_CLIENTS FLAGS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "soak: SOAK_$v must be a whole number" >&2; exit 2; }
done
((MINUTES >= 1)) || { echo "soak: SOAK_MINUTES must be at least 1" >&2; exit 2; }
SECS=$((MINUTES * 60))
if ((WARMUP * 2 > SECS)); then
  WARMUP=$((SECS / 3))
  echo "soak: run shorter than twice the warm-up; RSS baseline at ${WARMUP}s"
fi
for tool in wrk python3 curl awk; do
  command -v "$tool" >/dev/null || {
    echo "soak: $tool is missing (bash scripts/install-deps.sh bench installs wrk)" >&2
    exit 2
  }
done

# Every process this script starts, by pid; all stopped on exit.
# shellcheck source=scripts/lib/pids.sh
source scripts/lib/pids.sh

echo "== build (release)"
if [ "${SOAK_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked
fi
RELAY=$TARGET_DIR/release/flagrelay
[ -x "$RELAY" ] || { echo "soak: $RELAY is missing" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/state"
OUT=$(cd "$OUT" && pwd)
python3 scripts/soak/gen_flags.py --flags "$FLAGS" --variant 0 --out "$OUT/flags-a.yaml"
python3 scripts/soak/gen_flags.py --flags "$FLAGS" --variant 1 --out "$OUT/flags-b.yaml"
cp "$OUT/flags-a.yaml" "$OUT/flags.yaml"
cat >"$OUT/flagrelay.yaml" <<EOF
logLevel: info
pollingInterval: 500
persistentFlagConfigurationFile: "$OUT/state/flags.json"
retrievers:
  - {kind: file, path: "$OUT/flags.yaml"}
authorizedKeys:
  evaluation: [$EVAL_KEY]
  admin: [$ADMIN_KEY]
auth:
  jwtSecret: "soak-jwt-secret-at-least-32-bytes-long"
server:
  maxSseClients: 1000
EOF

# The relay must see no FLAGRELAY_ settings of the caller's shell.
clean_env=(env)
while IFS='=' read -r name _; do
  clean_env+=(-u "$name")
done < <(env | grep '^FLAGRELAY_' || true)

echo "== start the relay"
: >"$OUT/relay.log"
# Its log goes to relay.log, except the warn line of every rejected request (the load sends
# bad requests on purpose), which is only counted.
"${clean_env[@]}" "$RELAY" --config "$OUT/flagrelay.yaml" --host 127.0.0.1 --port 0 \
  > >(awk -v count="$OUT/rejected-lines" \
    '/"msg":"request rejected"/ {n++; next} {print; fflush()} END {print n + 0 > count}' \
    >"$OUT/relay.log") 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
PORT=
for ((i = 0; i < 300; i++)); do
  PORT=$(sed -n 's/.*"msg":"listening","addr":"127\.0\.0\.1:\([0-9]*\)","server":"api".*/\1/p' \
    "$OUT/relay.log" 2>/dev/null | head -1 || true)
  [ -n "$PORT" ] && curl -fsS -o /dev/null "http://127.0.0.1:$PORT/ready" 2>/dev/null && break
  [ -e "/proc/$RELAY_PID" ] || { echo "soak: the relay exited at start" >&2; cat "$OUT/relay.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "soak: the relay did not get ready" >&2; exit 1; }
BASE=http://127.0.0.1:$PORT
echo "  pid $RELAY_PID, $BASE"

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }

# One of each kind of request first, so lazily opened descriptors exist before the baseline.
curl -fsS -o /dev/null -H "X-API-Key: $EVAL_KEY" -d '{"context":{"targetingKey":"u"}}' "$BASE/ofrep/v1/evaluate/flags"
curl -fsS -o /dev/null -H "X-API-Key: $EVAL_KEY" -d '{}' "$BASE/ofrep/v1/evaluate/flags/flag-0001"
curl -fsS -o /dev/null -X POST -H "X-API-Key: $ADMIN_KEY" "$BASE/admin/v1/retriever/refresh"
curl -fsS -o /dev/null -d "{\"apiKey\":\"$EVAL_KEY\"}" "$BASE/client/auth"
curl -s -o /dev/null --max-time 1 "$BASE/ofrep/v1/sse?apiKey=$EVAL_KEY" || true
curl -s -o /dev/null "$BASE/metrics" || true
sleep 2
FD_IDLE_BEFORE=$(fds "$RELAY_PID")
RSS_IDLE_BEFORE=$(status_kb "$RELAY_PID" VmRSS)
echo "  idle: $FD_IDLE_BEFORE descriptors, RSS $RSS_IDLE_BEFORE kB"

echo "== load for $MINUTES min: wrk -c$CONNS (pause ${DELAY_MS} ms), $SSE_CLIENTS SSE clients, admin and token clients, flag file switching every second"
flipper() {
  local i=0 src
  while :; do
    i=$((i + 1))
    if ((i % 2)); then src=b; else src=a; fi
    cp "$OUT/flags-$src.yaml" "$OUT/flags.yaml.tmp"
    mv "$OUT/flags.yaml.tmp" "$OUT/flags.yaml"
    echo "$i" >"$OUT/flips"
    sleep 1
  done
}
echo "t,rss_kb,fds,threads" >"$OUT/samples.csv"
START=$(date +%s)
flipper &
FLIP_PID=$!
PIDS+=("$FLIP_PID")
SOAK_KEY=$EVAL_KEY SOAK_FLAGS=$FLAGS SOAK_DELAY_MS=$DELAY_MS \
  wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s scripts/soak/mix.lua "$BASE" >"$OUT/wrk.txt" 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")
python3 scripts/soak/clients.py --port "$PORT" --seconds "$SECS" --sse-clients "$SSE_CLIENTS" \
  --eval-key "$EVAL_KEY" --admin-key "$ADMIN_KEY" --out "$OUT/clients.json" >"$OUT/clients.log" 2>&1 &
CLIENTS_PID=$!
PIDS+=("$CLIENTS_PID")

# Every SAMPLE_SECS, and a last sample 2 s before the load ends (still under load).
ALIVE=1
next=$SAMPLE_SECS
while :; do
  ((next > SECS - 2)) && next=$((SECS - 2))
  now=$(($(date +%s) - START))
  ((next > now)) && sleep $((next - now))
  t=$(($(date +%s) - START))
  if [ ! -e "/proc/$RELAY_PID" ] || grep -q '^State:.*Z' "/proc/$RELAY_PID/status" 2>/dev/null; then
    ALIVE=0
    echo "soak: the relay died after ${t}s" >&2
    break
  fi
  rss=$(status_kb "$RELAY_PID" VmRSS)
  n=$(fds "$RELAY_PID")
  threads=$(status_kb "$RELAY_PID" Threads)
  echo "$t,$rss,$n,$threads" >>"$OUT/samples.csv"
  if ((t % 60 < SAMPLE_SECS || t >= SECS - 2)); then
    printf '  %4ds  RSS %6s kB  fds %4s  threads %3s\n' "$t" "$rss" "$n" "$threads"
  fi
  ((t >= SECS - 2)) && break
  next=$((next + SAMPLE_SECS))
done

echo "== load done; waiting for the clients"
wait "$WRK_PID" || true
wait "$CLIENTS_PID" || true
stop_pid "$FLIP_PID"
FLIPS=$(cat "$OUT/flips" 2>/dev/null || echo 0)
RSS_IDLE_AFTER=0
FD_IDLE_AFTER=0
EXIT=dead
if ((ALIVE)); then
  # Idle keep-alive connections close after server.readHeaderTimeout (10 s).
  sleep 12
  FD_IDLE_AFTER=$(fds "$RELAY_PID")
  RSS_IDLE_AFTER=$(status_kb "$RELAY_PID" VmRSS)
  kill -TERM "$RELAY_PID"
  EXIT=0
  wait "$RELAY_PID" || EXIT=$?
fi
sleep 0.5

{
  echo "seconds=$SECS"
  echo "flips=$FLIPS"
  echo "alive_to_end=$ALIVE"
  echo "exit=$EXIT"
  echo "fd_idle_before=$FD_IDLE_BEFORE"
  echo "fd_idle_after=$FD_IDLE_AFTER"
  echo "rss_idle_before=$RSS_IDLE_BEFORE"
  echo "rss_idle_after=$RSS_IDLE_AFTER"
  echo "refresh_failed=$(grep -c '"msg":"refresh failed' "$OUT/relay.log" || true)"
  echo "request_failed_lines=$(grep -c '"msg":"request failed"' "$OUT/relay.log" || true)"
  echo "panics=$(grep -c 'panicked' "$OUT/relay.log" || true)"
  echo "changes_applied=$(grep -c '"msg":"refresh succeeded".*"changed":true' "$OUT/relay.log" || true)"
  echo "persist_failed=$(grep -c 'could not persist' "$OUT/relay.log" || true)"
} >"$OUT/facts.txt"
echo "  relay log: $(wc -l <"$OUT/relay.log") lines kept, $(cat "$OUT/rejected-lines" 2>/dev/null || echo '?') rejected-request lines counted"
python3 scripts/soak/report.py --dir "$OUT" --warmup "$WARMUP"
