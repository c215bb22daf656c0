#!/usr/bin/env bash
# Cost of OpenTelemetry tracing and latency of change notifications (issue 16), loopback only,
# in one run on one machine:
#
#   1. OFREP single evaluation throughput and p99 (wrk, scripts/bench/wrk.lua) against three
#      relays from the same binary: tracing off, on at 1 % (`tracing.otlp.sampleRatio: 0.01`) and
#      on at 100 %, exporting to an OTLP/HTTP sink on loopback (scripts/bench/sink.py, which
#      answers 200 and counts bytes). Rounds alternate off / 1 % / 100 %.
#   2. Webhook delivery latency: a relay with a webhook notifier pointed at the sink; the flag
#      file is rewritten BENCH_CHANGES times and the sink records when each delivery arrived;
#      latency = arrival - rename of the file (includes the poll interval, BENCH_POLL_MS).
#
#   BENCH_DURATION [6] s per wrk run   BENCH_ROUNDS [3]   BENCH_CONNECTIONS [32]
#   BENCH_CHANGES [20]   BENCH_POLL_MS [50]   BENCH_RELAY_BIN [target/release/flagrelay]
#   BENCH_SKIP_BUILD [0]   BENCH_OUT [target/bench-tracing]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-6}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-32}
CHANGES=${BENCH_CHANGES:-20}
POLL=${BENCH_POLL_MS:-50}
OUT=${BENCH_OUT:-target/bench-tracing}
BIN=${BENCH_RELAY_BIN:-target/release/flagrelay}

bash scripts/install-deps.sh bench >/dev/null
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || cargo build --release --locked
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
source scripts/lib/pids.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SINK=$(free_port)
python3 scripts/bench/sink.py "$SINK" "$OUT/sink.log" &
PIDS+=($!)
python3 scripts/bench/gen_flags.py --flags 1000 --format yaml --out "$OUT/flags.yaml"

# Starts a relay; its port is left in PORT (no subshell, so PIDS keeps it for the cleanup).
start_relay() { # name poll extra-config-lines
  local name=$1 port
  port=$(free_port)
  {
    echo "server: {host: 127.0.0.1, port: $port}"
    echo "pollingInterval: $2"
    echo "logLevel: warn"
    echo "retrievers: [{kind: file, path: $OUT/flags.yaml}]"
    printf '%b\n' "$3"
  } >"$OUT/$name.yaml"
  OTEL_BSP_SCHEDULE_DELAY=200 "$BIN" --config "$OUT/$name.yaml" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
  PORT=$port
}

start_relay off 3600s ""; OFF=$PORT
start_relay one 3600s "tracing: {otlp: {endpoint: \"http://127.0.0.1:$SINK\", sampleRatio: 0.01}}"; ONE=$PORT
start_relay all 3600s "tracing: {otlp: {endpoint: \"http://127.0.0.1:$SINK\", sampleRatio: 1}}"; ALL=$PORT

run_wrk() { # port → "rps p99_us"
  BENCH_MODE=single BENCH_FLAG=flag-000042 wrk -t1 -c"$CONNS" -d"${DURATION}s" \
    -s scripts/bench/wrk.lua "http://127.0.0.1:$1" 2>/dev/null \
    | sed -n 's/^WRK_RESULT rps=\([0-9.]*\).*p99_us=\([0-9.]*\).*/\1 \2/p'
}

echo "tracing cost: OFREP single, wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds" | tee "$OUT/results.txt"
for r in $(seq "$ROUNDS"); do
  for name in off one all; do
    port=$OFF; [ $name = one ] && port=$ONE; [ $name = all ] && port=$ALL
    read -r rps p99 < <(run_wrk "$port")
    echo "round $r $name rps=$rps p99_us=$p99" | tee -a "$OUT/results.txt"
  done
done
python3 - "$OUT/results.txt" <<'PY' | tee -a "$OUT/results.txt"
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if p[:1] == ["round"]:
        rows.setdefault(p[2], []).append((float(p[3].split("=")[1]), float(p[4].split("=")[1])))
off = statistics.median(r for r, _ in rows["off"])
for name, label in [("off", "tracing off"), ("one", "on, 1 % sampled"), ("all", "on, 100 % sampled")]:
    rps = statistics.median(r for r, _ in rows[name]); p99 = statistics.median(p for _, p in rows[name])
    print(f"{label:20s} {rps:10.0f} req/s ({rps / off:.3f}x off)  p99 {p99:7.0f} us")
PY

# Notification latency: rewrite the file, time until the sink has the webhook delivery.
start_relay notify "$POLL" "notifiers: [{kind: webhook, url: \"http://127.0.0.1:$SINK/hook\"}]"
: >"$OUT/changes.log"
for i in $(seq "$CHANGES"); do
  sed "s/rollout: [0-9]*/rollout: $((i % 90 + 5))/" "$OUT/flags.yaml" >"$OUT/flags.next"
  python3 -c 'import time,sys; print(time.time())' >>"$OUT/changes.log"
  mv "$OUT/flags.next" "$OUT/flags.yaml"
  sleep 0.5
done
sleep 1
python3 - "$OUT/changes.log" "$OUT/sink.log" "$POLL" <<'PY' | tee -a "$OUT/results.txt"
import sys, statistics
changes = [float(l) for l in open(sys.argv[1]) if l.strip()]
hooks = [float(l.split()[0]) for l in open(sys.argv[2]) if l.split()[1:2] == ["/hook"]]
lat = []
for c in changes:
    after = [h for h in hooks if h >= c]
    if after:
        lat.append((min(after) - c) * 1000)
lat.sort()
print(f"webhook delivery after a file change (poll {sys.argv[3]} ms): {len(lat)}/{len(changes)} delivered, "
      f"p50 {statistics.median(lat):.0f} ms, max {lat[-1]:.0f} ms")
PY
