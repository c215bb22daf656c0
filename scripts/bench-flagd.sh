#!/usr/bin/env bash
# flagd protocol benchmark (issue 15), loopback only, one run on one machine:
#
#   1. ResolveBoolean over gRPC (h2c, flagd.evaluation.v2) against OFREP single evaluation on
#      the same flag, same relay, same h2load settings (HTTP/2 cleartext for both, and OFREP
#      over HTTP/1.1 too): requests/s and p99 (from h2load's per-request log);
#   2. the relay's RSS idle and with BENCH_STREAMS [1000] open flagd event streams.
#
#   BENCH_REQUESTS [200000] per run   BENCH_CONNECTIONS [32]   BENCH_ROUNDS [2]
#   BENCH_THREADS [1] h2load threads
#   BENCH_SKIP_BUILD [0]   BENCH_RELAY_BIN [target/release/flagrelay]
#   BENCH_OUT [target/bench-flagd]
#   BENCH_FLAGD_PARTS [throughput h1 streams]  throughput: gRPC and OFREP h2c (order alternating
#     by round); h1: OFREP over HTTP/1.1 too; streams: part 2
#   BENCH_PIN [0]  1: relay on CPU BENCH_SERVER_CPUS [0], h2load on BENCH_WRK_CPUS [1]
#   BENCH_RECORD  file to append one `kind=h2load scenario=... round=... rps=... p50_us=...
#     p99_us=... cpu_us_per_req=...` line per run to (`make bench-load`, part `flagd`, does)
# Needs h2load (scripts/deps/bench.sh); part streams the client venv (scripts/deps/clients.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${BENCH_REQUESTS:-200000}
CONNS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-2}
THREADS=${BENCH_THREADS:-1}
STREAMS=${BENCH_STREAMS:-1000}
OUT=${BENCH_OUT:-target/bench-flagd}
BIN=${BENCH_RELAY_BIN:-target/release/flagrelay}
PARTS=" ${BENCH_FLAGD_PARTS:-throughput h1 streams} "
RECORD=${BENCH_RECORD:-}
PY=tests/clients/python/.venv/bin/python

deps=(bench)
[[ $PARTS == *" streams "* ]] && deps+=(clients)
bash scripts/install-deps.sh "${deps[@]}" >/dev/null
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || cargo build --release --locked
srv=()
load=()
if [ "${BENCH_PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv=(taskset -c "${BENCH_SERVER_CPUS:-0}")
  load=(taskset -c "${BENCH_WRK_CPUS:-1}")
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API=$(free_port); FLAGD=$(free_port)
printf 'bench-flag: {enabled: true, rollout: 100}\n' >"$OUT/flags.yaml"
cat >"$OUT/config.yaml" <<YAML
server: {host: 127.0.0.1, port: $API}
pollingInterval: 3600s
logLevel: warn
retrievers: [{kind: file, path: $OUT/flags.yaml}]
flagd: {host: 127.0.0.1, port: $FLAGD}
YAML
"${srv[@]}" "$BIN" --config "$OUT/config.yaml" >"$OUT/relay.log" 2>&1 &
RELAY=$!
trap 'kill $RELAY 2>/dev/null; wait $RELAY 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$API/ready" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$API/ready" >/dev/null \
  || { echo "bench-flagd: the relay is not ready (log: $OUT/relay.log)" >&2; exit 1; }

# ResolveBooleanRequest{flag_key: "bench-flag", context: {targetingKey: "user-1"}}, framed.
python3 - "$OUT/grpc.bin" <<'PY'
import sys
def ld(tag, b): return bytes([tag, len(b)]) + b
value = ld(0x1a, b"user-1")                      # Value.string_value
entry = ld(0x0a, b"targetingKey") + ld(0x12, value)
ctx = ld(0x0a, entry)                             # Struct.fields
msg = ld(0x0a, b"bench-flag") + ld(0x12, ctx)
open(sys.argv[1], "wb").write(b"\0" + len(msg).to_bytes(4, "big") + msg)
PY
printf '{"context":{"targetingKey":"user-1"}}' >"$OUT/ofrep.json"
# The gRPC answer must be a success (grpc-status 0 in the trailers), not an error at HTTP 200.
nghttp -v -d "$OUT/grpc.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$FLAGD/flagd.evaluation.v2.Service/ResolveBoolean" 2>&1 | grep -q 'grpc-status: 0' \
  || { echo "bench-flagd: the prepared gRPC call does not succeed" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$RELAY/stat"; }
run() { # scenario, round, requests, extra h2load args...
  local scenario=$1 round=$2 n=$3 name="$1-$2" t0 t1; shift 3
  rm -f "$OUT/$name.log"
  t0=$(cpu_ticks)
  "${load[@]}" h2load -n "$n" -c "$CONNS" -t "$THREADS" -m 1 --log-file="$OUT/$name.log" "$@" \
    >"$OUT/$name.out"
  t1=$(cpu_ticks)
  python3 - "$scenario" "$round" "$OUT/$name.out" "$OUT/$name.log" "$((t1 - t0))" \
    "$(getconf CLK_TCK)" "$RECORD" <<'PY'
import re, sys
scenario, rnd, out, log, ticks, hz, record = sys.argv[1:]
text = open(out).read()
rps = float(re.search(r"finished in .*?, ([\d.]+) req/s", text).group(1))
ok = re.search(r"(\d+) succeeded, (\d+) failed", text)
lat = sorted(int(l.split()[2]) for l in open(log) if l.strip())  # microseconds
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
done = int(ok.group(1)) + int(ok.group(2))
cpu = int(ticks) * 1e6 / int(hz) / done if done else 0
if rnd != "0":
    print(f"| {scenario}, round {rnd} | {rps:,.0f} | {p(0.5) / 1000:.3f} | {p(0.99) / 1000:.3f} | "
          f"{cpu:.1f} | {ok.group(1)} ok, {ok.group(2)} failed |")
if record and rnd != "0":
    with open(record, "a") as f:
        f.write(f"kind=h2load scenario={scenario} round={rnd} rps={rps:.2f} p50_us={p(0.5)} "
                f"p99_us={p(0.99)} ok={ok.group(1)} failed={ok.group(2)} cpu_us_per_req={cpu:.2f}\n")
PY
}
grpc() {
  run grpc-ResolveBoolean "$1" "$2" -d "$OUT/grpc.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' "http://127.0.0.1:$FLAGD/flagd.evaluation.v2.Service/ResolveBoolean"
}
h2c() {
  run ofrep-single-h2c "$1" "$2" -d "$OUT/ofrep.json" -H 'content-type: application/json' \
    "http://127.0.0.1:$API/ofrep/v1/evaluate/flags/bench-flag"
}
h1() {
  run ofrep-single-h1 "$1" "$2" --h1 -d "$OUT/ofrep.json" -H 'content-type: application/json' \
    "http://127.0.0.1:$API/ofrep/v1/evaluate/flags/bench-flag"
}
if [[ $PARTS == *" throughput "* ]]; then
  # Warm-up (round 0: not printed, not recorded).
  grpc 0 $((CONNS * 100))
  h2c 0 $((CONNS * 100))
  echo "| run | req/s | p50 ms | p99 ms | relay CPU µs/req | requests |"
  echo "|---|---|---|---|---|---|"
  for r in $(seq "$ROUNDS"); do
    # Alternate which goes first, so drift on the machine does not favour one.
    if ((r % 2)); then grpc "$r" "$REQS"; h2c "$r" "$REQS"; else h2c "$r" "$REQS"; grpc "$r" "$REQS"; fi
    if [[ $PARTS == *" h1 "* ]]; then h1 "$r" "$REQS"; fi
  done
fi
[[ $PARTS == *" streams "* ]] || exit 0

rss() { awk '/VmRSS/ {print $2}' "/proc/$RELAY/status"; }
idle=$(rss)
exec 3> >("$PY" scripts/bench/flagd_streams.py "127.0.0.1:$FLAGD" "$STREAMS" >"$OUT/streams.out" 2>&1)
for _ in $(seq 600); do grep -q "^open" "$OUT/streams.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^open $STREAMS" "$OUT/streams.out" || { echo "bench-flagd: streams did not open: $(cat "$OUT/streams.out")" >&2; exit 1; }
sleep 1
held=$(rss)
open_now=$(curl -s "http://127.0.0.1:$API/metrics" | awk '/^flagrelay_sse_clients / {print $2}')
exec 3>&-
echo
echo "RSS idle: $((idle / 1024)) MiB; with $STREAMS flagd event streams open (flagrelay_sse_clients $open_now): $((held / 1024)) MiB ($(( (held - idle) / STREAMS )) KiB per stream)"
