#!/usr/bin/env bash
# Load benchmark of issue 7 (`make bench-load`). On loopback only:
#
#   1. builds the relay and the baseline (examples/baseline.rs: a minimal axum server, same
#      toolchain and release profile, fixed answers) in release mode;
#   2. memory and start: start-to-ready and idle RSS on the default config (config/flags.yaml);
#   3. throughput: wrk against the relay (1,000 generated flags) and the baseline, alternating
#      relay/baseline runs with the same connections, threads and duration, for
#      OFREP single evaluation (10,000 rotating targeting keys), OFREP bulk (1,000 flags; the
#      baseline answers a saved copy of the relay's bulk answer) and GET /health;
#   4. refresh under load: a relay polling a file of 100,000 flags every BENCH_POLL while wrk
#      runs single evaluations; first steady, then while the file flips between two different
#      100,000-flag documents every second (write to temp + rename). Reports failed requests,
#      p99 during refresh / p99 steady, and the refresh time the relay logs; RSS with 100,000
#      flags loaded against the document's size;
#   5. fleet convergence (scripts/bench-fleet.py --parts convergence, on a local redis-server):
#      3 relays in one fleet on 1,000 flags, admin refreshes on the first after each switch of
#      the file; p50/p99 of `fleet.tookMs` (the first replica's swap → the last replica serving);
#   6. flagd: gRPC ResolveBoolean against OFREP single over h2c on the same relay and flag
#      (scripts/bench-flagd.sh, part throughput; h2load with the same connections and threads
#      as wrk, order alternating by round): req/s, p99 and relay CPU per request, and the ratios;
#   7. prints the table (scripts/bench/report.py) and writes it to $BENCH_OUT/results.md.
#
# Timings are noisy on a shared machine: compare the ratios, which come from one run.
# Environment (defaults in brackets):
#   BENCH_DURATION [8]        seconds per wrk run       BENCH_ROUNDS [3]   relay/baseline pairs
#   BENCH_CONNECTIONS [32]    wrk connections           BENCH_THREADS [1]  wrk threads
#   BENCH_REFRESH_SECS [12]   steady and refresh phases, each
#   BENCH_REFRESH_FORMAT [yaml]  yaml or json for the two 100,000-flag documents
#   BENCH_POLL [500ms]        the refresh relay's --polling-interval
#   BENCH_PIN [1]             1: servers on CPU BENCH_SERVER_CPUS [0], wrk on BENCH_WRK_CPUS [1]
#   BENCH_PORT_BASE [18031]   four consecutive loopback ports
#   BENCH_OUT [target/bench-load]   generated documents, logs, results (never committed)
#   BENCH_SKIP_BUILD [0]      1: use the binaries already built
#   BENCH_RELAY_BIN, BENCH_BASELINE_BIN   prebuilt binaries to measure instead (A/B of a change)
#   BENCH_PARTS [memory throughput refresh fleet flagd]   which parts to run
#   BENCH_FLEET_REFRESHES [30]  admin refreshes measured in part fleet (100 for a finer p99)
#   BENCH_FLEET_REPLICAS [3]    relays in the fleet
#   BENCH_FLAGD_REQUESTS [100000]  h2load requests per run in part flagd (BENCH_ROUNDS rounds)
# Parts fleet and flagd need redis-server and h2load: `make bench-load` installs them
# (scripts/install-deps.sh bench redis).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-8}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
REFRESH_SECS=${BENCH_REFRESH_SECS:-12}
REFRESH_FORMAT=${BENCH_REFRESH_FORMAT:-yaml}
POLL=${BENCH_POLL:-500ms}
PIN=${BENCH_PIN:-1}
SERVER_CPUS=${BENCH_SERVER_CPUS:-0}
WRK_CPUS=${BENCH_WRK_CPUS:-1}
PORT_BASE=${BENCH_PORT_BASE:-18031}
OUT=${BENCH_OUT:-target/bench-load}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
FLAG=flag-000042
PARTS=" ${BENCH_PARTS:-memory throughput refresh fleet flagd} "
FLEET_REFRESHES=${BENCH_FLEET_REFRESHES:-30}
FLEET_REPLICAS=${BENCH_FLEET_REPLICAS:-3}
FLAGD_REQUESTS=${BENCH_FLAGD_REQUESTS:-100000}

RELAY_PORT=$PORT_BASE
BASELINE_PORT=$((PORT_BASE + 1))
REFRESH_PORT=$((PORT_BASE + 2))
IDLE_PORT=$((PORT_BASE + 3))

for tool in wrk python3 curl; do
  command -v "$tool" >/dev/null || {
    echo "bench-load: $tool is missing (bash scripts/install-deps.sh bench installs wrk)" >&2
    exit 2
  }
done
needs() { # part tool component
  if [[ $PARTS == *" $1 "* ]] && ! command -v "$2" >/dev/null; then
    echo "bench-load: part $1 needs $2 (bash scripts/install-deps.sh $3)" >&2
    exit 2
  fi
}
needs fleet redis-server redis
needs flagd h2load bench
needs flagd nghttp bench
case "$REFRESH_FORMAT" in yaml | json) ;; *) echo "BENCH_REFRESH_FORMAT must be yaml or json" >&2; exit 2 ;; esac

srv=()
load=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv=(taskset -c "$SERVER_CPUS")
  load=(taskset -c "$WRK_CPUS")
else
  PIN=0
fi

mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"
rm -f "$OUT"/*.log

# Every server this script starts, by pid; all stopped on exit.
# shellcheck source=scripts/lib/pids.sh
source scripts/lib/pids.sh

# The relay must see no FLAGRELAY_ settings of the caller's shell.
clean_env=(env)
while IFS='=' read -r name _; do
  clean_env+=(-u "$name")
done < <(env | grep '^FLAGRELAY_' || true)

record() { echo "$*" >>"$RESULTS"; }

port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }

# start NAME PORT CMD... → sets STARTED_PID and STARTED_MS (spawn → first 200 from /ready).
start() {
  local name=$1 port=$2 out
  shift 2
  port_free "$port" || { echo "bench-load: port $port is in use (set BENCH_PORT_BASE)" >&2; exit 1; }
  out=$(python3 scripts/bench/start_ready.py --port "$port" --log "$OUT/$name.log" \
    --timeout "${BENCH_READY_TIMEOUT:-120}" -- \
    "${srv[@]}" "$@")
  STARTED_PID=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$out")
  STARTED_MS=$(sed -n 's/.*ready_ms=\([0-9.]*\).*/\1/p' <<<"$out")
  PIDS+=("$STARTED_PID")
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# wrk_run SCENARIO TARGET ROUND PORT MODE SECONDS SERVER_PID
# Records wrk's numbers and the server's CPU time per request: on a machine shared with other
# work, requests/s measure the CPU share the server got as much as its speed; CPU per request
# does not depend on that share.
wrk_run() {
  local scenario=$1 target=$2 round=$3 port=$4 mode=$5 secs=$6 pid=$7 line t0 t1 reqs cpu
  t0=$(cpu_ticks "$pid")
  line=$(BENCH_MODE=$mode BENCH_FLAG=$FLAG BENCH_KEYS=10000 "${load[@]}" \
    wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s -s scripts/bench/wrk.lua \
    "http://127.0.0.1:$port" | grep '^WRK_RESULT') || {
    echo "bench-load: wrk failed against $target ($scenario)" >&2
    exit 1
  }
  t1=$(cpu_ticks "$pid")
  reqs=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
  cpu=$(awk -v d=$((t1 - t0)) -v r="$reqs" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.2f", (r > 0 ? d * 1e6 / hz / r : 0) }')
  line="${line#WRK_RESULT } cpu_us_per_req=$cpu"
  record "kind=wrk scenario=$scenario target=$target round=$round $line"
  printf '  %-8s %-9s round %s: %s\n' "$scenario" "$target" "$round" "$line"
}

started=$(date +%s)
echo "== build (release)"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${BENCH_RELAY_BIN:-}${BENCH_BASELINE_BIN:-}" ]; then
  cargo build --release --locked
  cargo build --release --locked --example baseline
fi
RELAY=${BENCH_RELAY_BIN:-$TARGET_DIR/release/flagrelay}
BASELINE=${BENCH_BASELINE_BIN:-$TARGET_DIR/release/examples/baseline}
[ -x "$RELAY" ] && [ -x "$BASELINE" ] || { echo "bench-load: binaries missing" >&2; exit 1; }

echo "== generate flag documents into $OUT"
python3 scripts/bench/gen_flags.py --flags 1000 --format yaml --out "$OUT/flags-1k.yaml"
DOC_BYTES=0
if [[ $PARTS == *" refresh "* ]]; then
  python3 scripts/bench/gen_flags.py --flags 100000 --format "$REFRESH_FORMAT" --variant 0 \
    --out "$OUT/flags-100k-a.$REFRESH_FORMAT"
  python3 scripts/bench/gen_flags.py --flags 100000 --format "$REFRESH_FORMAT" --variant 1 \
    --out "$OUT/flags-100k-b.$REFRESH_FORMAT"
  DOC_BYTES=$(stat -c %s "$OUT/flags-100k-a.$REFRESH_FORMAT")
fi

record "kind=info relay_bin=$RELAY commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
record "kind=info nproc=$(nproc) pin=$PIN server_cpus=$SERVER_CPUS wrk_cpus=$WRK_CPUS" \
  "duration=$DURATION rounds=$ROUNDS connections=$CONNS threads=$THREADS" \
  "refresh_secs=$REFRESH_SECS refresh_format=$REFRESH_FORMAT poll=$POLL doc_bytes=$DOC_BYTES"

if [[ $PARTS == *" memory "* ]]; then
echo "== start to ready and idle RSS, default config (config/flags.yaml)"
for i in 1 2 3 4 5; do
  start "idle-$i" "$IDLE_PORT" "${clean_env[@]}" "$RELAY" --host 127.0.0.1 --port "$IDLE_PORT" \
    --log-level warn
  record "kind=ready target=default ready_ms=$STARTED_MS"
  if [ "$i" = 5 ]; then
    sleep 1
    curl -fsS -o /dev/null -X POST -d '{"context":{"targetingKey":"u"}}' \
      "http://127.0.0.1:$IDLE_PORT/ofrep/v1/evaluate/flags"
    sleep 1
    record "kind=rss target=idle_default rss_kb=$(status_kb "$STARTED_PID" VmRSS)" \
      "hwm_kb=$(status_kb "$STARTED_PID" VmHWM)"
  fi
  stop_pid "$STARTED_PID"
  echo "  start $i: ${STARTED_MS} ms"
done
fi

if [[ $PARTS == *" throughput "* ]]; then
echo "== throughput: relay (1,000 flags) vs baseline, ${DURATION}s x $ROUNDS rounds, -c$CONNS -t$THREADS"
start relay "$RELAY_PORT" "${clean_env[@]}" "$RELAY" --host 127.0.0.1 --port "$RELAY_PORT" \
  --log-level warn --polling-interval 0 --flags "$OUT/flags-1k.yaml"
RELAY_PID=$STARTED_PID
body='{"context":{"targetingKey":"user-1","tenantId":"tenant-1","env":"production","plan":"pro"}}'
curl -fsS -X POST -d "$body" -o "$OUT/single-body.json" \
  "http://127.0.0.1:$RELAY_PORT/ofrep/v1/evaluate/flags/$FLAG"
curl -fsS -X POST -d "$body" -o "$OUT/bulk-body.json" \
  "http://127.0.0.1:$RELAY_PORT/ofrep/v1/evaluate/flags"
start baseline "$BASELINE_PORT" "$BASELINE" --port "$BASELINE_PORT" \
  --single "$OUT/single-body.json" --bulk "$OUT/bulk-body.json"
BASELINE_PID=$STARTED_PID
record "kind=info single_body_bytes=$(stat -c %s "$OUT/single-body.json")" \
  "bulk_body_bytes=$(stat -c %s "$OUT/bulk-body.json")"
declare -A pids=(["$RELAY_PORT"]=$RELAY_PID ["$BASELINE_PORT"]=$BASELINE_PID)
for port in "$RELAY_PORT" "$BASELINE_PORT"; do
  # Same sizes from both, and 200s.
  curl -fsS -X POST -d "$body" -o /dev/null -w "  check $port bulk: %{http_code} %{size_download} bytes\n" \
    "http://127.0.0.1:$port/ofrep/v1/evaluate/flags"
  wrk_run warmup x 0 "$port" single 1 "${pids[$port]}" >/dev/null
done
targets=(relay baseline)
ports=("$RELAY_PORT" "$BASELINE_PORT")
server_pids=("$RELAY_PID" "$BASELINE_PID")
for ((round = 1; round <= ROUNDS; round++)); do
  for scenario in single bulk health; do
    # Alternate which goes first, so drift on the machine does not favour one.
    if ((round % 2)); then order=(0 1); else order=(1 0); fi
    for t in "${order[@]}"; do
      wrk_run "$scenario" "${targets[$t]}" "$round" "${ports[$t]}" "$scenario" "$DURATION" \
        "${server_pids[$t]}"
    done
  done
done
stop_pid "$RELAY_PID"
stop_pid "$BASELINE_PID"
fi

if [[ $PARTS == *" refresh "* ]]; then
echo "== refresh under load: 100,000 flags ($REFRESH_FORMAT, $DOC_BYTES bytes), polling $POLL"
LIVE=$OUT/live.$REFRESH_FORMAT
cp "$OUT/flags-100k-a.$REFRESH_FORMAT" "$LIVE"
start refresh-relay "$REFRESH_PORT" "${clean_env[@]}" "$RELAY" --host 127.0.0.1 \
  --port "$REFRESH_PORT" --log-level info --log-format json --polling-interval "$POLL" \
  --flags "$LIVE"
REFRESH_PID=$STARTED_PID
record "kind=ready target=flags_100k ready_ms=$STARTED_MS"
sleep 2
record "kind=rss target=flags_100k rss_kb=$(status_kb "$REFRESH_PID" VmRSS)" \
  "hwm_kb=$(status_kb "$REFRESH_PID" VmHWM) doc_bytes=$DOC_BYTES"
wrk_run warmup x 0 "$REFRESH_PORT" single 1 "$REFRESH_PID" >/dev/null
wrk_run steady relay 1 "$REFRESH_PORT" single "$REFRESH_SECS" "$REFRESH_PID"
# The same process after the same load with no refresh yet: what serving itself made resident
# (connections, buffers, counters), so the refreshes' own share can be told apart from it.
record "kind=rss target=flags_100k_after_load rss_kb=$(status_kb "$REFRESH_PID" VmRSS)" \
  "hwm_kb=$(status_kb "$REFRESH_PID" VmHWM) doc_bytes=$DOC_BYTES"
before=$(grep -c '"refresh succeeded"' "$OUT/refresh-relay.log" || true)
# Flip the file every second for as long as wrk runs (bounded loop), write to temp + rename.
(
  for ((k = 1; k <= REFRESH_SECS; k++)); do
    sleep 1
    if ((k % 2)); then src=b; else src=a; fi
    cp "$OUT/flags-100k-$src.$REFRESH_FORMAT" "$LIVE.tmp"
    mv -f "$LIVE.tmp" "$LIVE"
    echo "$(date -u +%H:%M:%S.%3N) $src" >>"$OUT/swaps.log"
  done
) &
SWAPPER=$!
wrk_run refresh relay 1 "$REFRESH_PORT" single "$REFRESH_SECS" "$REFRESH_PID"
wait "$SWAPPER"
# "After the refreshes" means once the last document written is served and the set it
# replaced is freed, not while its rebuild is still running (8-13 s under load here): wait
# for a poll that finds the document unchanged (so the last one is built and swapped in),
# then for the replaced set's release (up to 2 s, see refresh::build::retire).
unchanged=$(grep -c '"changed":false' "$OUT/refresh-relay.log" || true)
for ((w = 0; w < 120; w++)); do
  (($(grep -c '"changed":false' "$OUT/refresh-relay.log" || true) > unchanged)) && break
  sleep 0.5
done
sleep 3
record "kind=rss target=flags_100k_after_refreshes rss_kb=$(status_kb "$REFRESH_PID" VmRSS)" \
  "hwm_kb=$(status_kb "$REFRESH_PID" VmHWM) doc_bytes=$DOC_BYTES"
stop_pid "$REFRESH_PID"
grep '"refresh succeeded"' "$OUT/refresh-relay.log" | head -n "$before" \
  | sed 's/^/kind=refreshlog phase=start json=/' >>"$RESULTS" || true
grep '"refresh succeeded"' "$OUT/refresh-relay.log" | tail -n "+$((before + 1))" \
  | sed 's/^/kind=refreshlog phase=load json=/' >>"$RESULTS" || true
fi

if [[ $PARTS == *" fleet "* ]]; then
echo "== fleet convergence: $FLEET_REPLICAS relays, 1,000 flags, $FLEET_REFRESHES admin refreshes"
"${clean_env[@]}" python3 scripts/bench-fleet.py --bin "$RELAY" --parts convergence \
  --replicas "$FLEET_REPLICAS" --refreshes "$FLEET_REFRESHES" --record "$RESULTS" \
  | tee "$OUT/fleet.log" | sed 's/^/  /' || {
  echo "bench-load: scripts/bench-fleet.py failed (log: $OUT/fleet.log)" >&2
  exit 1
}
fi

if [[ $PARTS == *" flagd "* ]]; then
echo "== flagd: gRPC ResolveBoolean vs OFREP single h2c, h2load -c$CONNS -t$THREADS," \
  "$FLAGD_REQUESTS requests x $ROUNDS rounds"
"${clean_env[@]}" BENCH_OUT="$OUT/flagd" BENCH_FLAGD_PARTS=throughput BENCH_SKIP_BUILD=1 \
  BENCH_RELAY_BIN="$RELAY" BENCH_REQUESTS="$FLAGD_REQUESTS" BENCH_ROUNDS="$ROUNDS" \
  BENCH_CONNECTIONS="$CONNS" BENCH_THREADS="$THREADS" BENCH_PIN="$PIN" \
  BENCH_SERVER_CPUS="$SERVER_CPUS" BENCH_WRK_CPUS="$WRK_CPUS" BENCH_RECORD="$RESULTS" \
  bash scripts/bench-flagd.sh | sed 's/^/  /' || {
  echo "bench-load: scripts/bench-flagd.sh failed (logs: $OUT/flagd/)" >&2
  exit 1
}
record "kind=info flagd_requests=$FLAGD_REQUESTS"
fi

record "kind=info total_secs=$(($(date +%s) - started))"
echo
python3 scripts/bench/report.py "$RESULTS" | tee "$OUT/results.md"
