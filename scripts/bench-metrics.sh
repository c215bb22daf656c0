#!/usr/bin/env bash
# What observability costs: OFREP throughput of the relay with metrics, request ids and request
# logging on (the default) against the same binary started with the hidden `--no-metrics`
# switch (no observe layer, no metric recording), on loopback with wrk.
#
# Both relays serve config/flags.yaml (12 flags) at log level info (request lines are debug, so
# off, as in production). Scenarios: `single` (POST /ofrep/v1/evaluate/flags/new-checkout,
# rotating 10,000 targeting keys) and `bulk` (POST /ofrep/v1/evaluate/flags). Runs alternate
# on/off, switching which goes first each round, so drift on the machine does not favour one;
# the overhead is 1 - median(on) / median(off). Timings are noisy on a shared machine: more
# rounds narrow it.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [5]      seconds per wrk run     BENCH_ROUNDS [5]     on/off pairs per scenario
#   BENCH_CONNECTIONS [32]  wrk connections         BENCH_THREADS [1]    wrk threads
#   BENCH_PIN [1]           1: relays on CPU 0, wrk on CPU 1 (when there are 2 CPUs and taskset)
#   FLAGRELAY_BIN           a prebuilt relay binary (default: cargo build --release)
#   BENCH_MAX_OVERHEAD      fail when an overhead (percent) is above this (default: report only)
# Prints one line per run, then per scenario the median throughput of each and the overhead,
# and the relay's median CPU time per request (user + system, from /proc) of each: under other
# load on the machine that ratio is steadier than throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}

if ! command -v wrk >/dev/null; then
  echo "bench-metrics: installing wrk (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

bin=${FLAGRELAY_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet --bin flagrelay
  bin="$root/target/release/flagrelay"
fi

srv=()
load=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv=(taskset -c 0)
  load=(taskset -c 1)
fi

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/wrk.lua" <<'EOF'
-- BENCH_MODE single | bulk. Requests are prebuilt; done() prints one WRK_RESULT line.
local mode = os.getenv("BENCH_MODE") or "single"
local reqs, n, i = {}, 10000, 0
function init(args)
  local path = "/ofrep/v1/evaluate/flags/new-checkout"
  if mode == "bulk" then path = "/ofrep/v1/evaluate/flags" end
  local headers = { ["Content-Type"] = "application/json" }
  for k = 1, n do
    local body = string.format('{"context":{"targetingKey":"user-%d","tenantId":"t-%d"}}', k, k % 50)
    reqs[k] = wrk.format("POST", path, headers, body)
  end
  i = math.random(n)
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

# start NAME ARGS... → sets ADDR and PID (not in a subshell, so cleanup knows the pid).
start() {
  local name=$1 _
  shift
  ADDR=
  env -u FLAGRELAY_CONFIG "${srv[@]}" "$bin" --host 127.0.0.1 --port 0 --log-level info \
    --polling-interval 0 --flags "$root/config/flags.yaml" "$@" >"$work/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 1 200); do
    ADDR=$(grep -m1 '"server":"api"' "$work/$name.log" 2>/dev/null | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)
    [ -n "$ADDR" ] && break
    sleep 0.05
  done
  [ -n "$ADDR" ] || { echo "bench-metrics: relay $name did not start" >&2; cat "$work/$name.log" >&2; exit 1; }
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://$ADDR/ready" && break
    sleep 0.05
  done
}

start on
on=$ADDR on_pid=$PID
start off --no-metrics
off=$ADDR off_pid=$PID
# The switch must really switch: one serves /metrics with request counts, the other counts nothing.
curl -fs -o /dev/null -X POST "http://$on/ofrep/v1/evaluate/flags/new-checkout"
curl -fs -o /dev/null -X POST "http://$off/ofrep/v1/evaluate/flags/new-checkout"
grep -q 'flagrelay_http_requests_total{route="/ofrep' <(curl -fs "http://$on/metrics") ||
  { echo "bench-metrics: the relay with metrics counted nothing" >&2; exit 1; }
if grep -q 'flagrelay_http_requests_total{route="/ofrep' <(curl -fs "http://$off/metrics"); then
  echo "bench-metrics: --no-metrics still counts requests" >&2
  exit 1
fi
curl -fsI "http://$off/health" | grep -qi '^x-request-id' &&
  { echo "bench-metrics: --no-metrics still runs the observe layer" >&2; exit 1; }

# CPU time (user + system, clock ticks) the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # run MODE ADDR SECONDS PID → the WRK_RESULT fields, plus the relay's CPU per request
  local before after line
  before=$(cpu_ticks "$4")
  line=$(BENCH_MODE=$1 "${load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${3}s" --timeout 5s -s "$work/wrk.lua" \
    "http://$2" | grep '^WRK_RESULT' | sed 's/^WRK_RESULT //')
  after=$(cpu_ticks "$4")
  echo "$line cpu_ticks=$((after - before)) ticks_per_s=$(getconf CLK_TCK)"
}

echo "bench-metrics: $(nproc) CPUs, pinned: ${srv[*]:-no}, ${DURATION}s x ${ROUNDS} rounds, -c$CONNS -t$THREADS"
: >"$work/results"
for mode in single bulk; do
  run "$mode" "$on" 1 "$on_pid" >/dev/null
  run "$mode" "$off" 1 "$off_pid" >/dev/null
  for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(on off); else order=(off on); fi
    for which in "${order[@]}"; do
      addr=$on pid=$on_pid
      [ "$which" = off ] && addr=$off pid=$off_pid
      line=$(run "$mode" "$addr" "$DURATION" "$pid")
      echo "  $mode round $r metrics=$which: $line"
      echo "$mode $which $line secs=$DURATION" >>"$work/results"
    done
  done
done

python3 - "$work/results" "${BENCH_MAX_OVERHEAD:-}" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, which, *fields = line.split()
    kv = dict(f.split("=", 1) for f in fields)
    if int(kv["non2xx"]) or int(kv["socket_errors"]):
        print(f"bench-metrics: errors in a run: {line.strip()}")
        sys.exit(1)
    rows.setdefault(mode, {}).setdefault(which, []).append(kv)
limit = float(sys.argv[2]) if sys.argv[2] else None
worst = 0.0
for mode, by in rows.items():
    med = {w: statistics.median(float(k["rps"]) for k in by[w]) for w in ("on", "off")}
    p99 = {w: statistics.median(int(k["p99_us"]) for k in by[w]) for w in ("on", "off")}
    # The relay's CPU time per request: less swayed than throughput by other work on the machine.
    cpu = {
        w: statistics.median(
            int(k["cpu_ticks"]) / int(k["ticks_per_s"]) * 1e6 / (float(k["rps"]) * float(k.get("secs", 1)))
            for k in by[w]
        )
        for w in ("on", "off")
    }
    overhead = (1 - med["on"] / med["off"]) * 100
    cpu_overhead = (cpu["on"] / cpu["off"] - 1) * 100
    worst = max(worst, overhead)
    print(f"bench-metrics: {mode} on={med['on']:.0f} req/s off={med['off']:.0f} req/s "
          f"overhead={overhead:.1f}%; relay CPU per request on={cpu['on']:.1f} us "
          f"off={cpu['off']:.1f} us (+{cpu_overhead:.1f}%); p99 on={p99['on']} us off={p99['off']} us")
if limit is not None and worst > limit:
    print(f"bench-metrics: overhead {worst:.1f}% is above {limit}%")
    sys.exit(1)
EOF
