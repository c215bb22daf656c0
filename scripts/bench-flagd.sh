#!/usr/bin/env bash
# flagd protocol benchmark (issue 15), loopback only, one run on one machine:
#
#   1. ResolveBoolean over gRPC (h2c, flagd.evaluation.v2) against OFREP single evaluation on
#      the same flag, same relay, same h2load settings (HTTP/2 cleartext for both, and OFREP
#      over HTTP/1.1 too): requests/s and p99 (from h2load's per-request log);
#   2. the relay's RSS idle and with BENCH_STREAMS [1000] open flagd event streams.
#
#   BENCH_REQUESTS [200000] per run   BENCH_CONNECTIONS [32]   BENCH_ROUNDS [2]
#   BENCH_SKIP_BUILD [0]   BENCH_RELAY_BIN [target/release/flagrelay]
#   BENCH_OUT [target/bench-flagd]
# Needs h2load (scripts/deps/bench.sh) and the client venv (scripts/deps/clients.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${BENCH_REQUESTS:-200000}
CONNS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-2}
STREAMS=${BENCH_STREAMS:-1000}
OUT=${BENCH_OUT:-target/bench-flagd}
BIN=${BENCH_RELAY_BIN:-target/release/flagrelay}
PY=tests/clients/python/.venv/bin/python

bash scripts/install-deps.sh bench clients >/dev/null
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || cargo build --release --locked
mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API=$(free_port); FLAGD=$(free_port)
printf 'bench-flag: {enabled: true, rollout: 100}\n' >"$OUT/flags.yaml"
cat >"$OUT/config.yaml" <<YAML
server: {host: 127.0.0.1, port: $API}
pollingInterval: 3600s
logLevel: warn
retrievers: [{kind: file, path: $PWD/$OUT/flags.yaml}]
flagd: {host: 127.0.0.1, port: $FLAGD}
YAML
"$BIN" --config "$OUT/config.yaml" >"$OUT/relay.log" 2>&1 &
RELAY=$!
trap 'kill $RELAY 2>/dev/null; wait $RELAY 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$API/ready" >/dev/null && break; sleep 0.1; done

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

run() { # name, extra h2load args...
  local name=$1; shift
  rm -f "$OUT/$name.log"
  h2load -n "$REQS" -c "$CONNS" -t 1 -m 1 --log-file="$OUT/$name.log" "$@" >"$OUT/$name.out"
  python3 - "$name" "$OUT/$name.out" "$OUT/$name.log" <<'PY'
import re, sys
name, out, log = sys.argv[1:]
text = open(out).read()
rps = float(re.search(r"finished in .*?, ([\d.]+) req/s", text).group(1))
ok = re.search(r"(\d+) succeeded, (\d+) failed", text)
lat = sorted(int(l.split()[2]) for l in open(log) if l.strip())  # microseconds
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
print(f"| {name} | {rps:,.0f} | {p(0.5):.3f} | {p(0.99):.3f} | {ok.group(1)} ok, {ok.group(2)} failed |")
PY
}
echo "| run | req/s | p50 ms | p99 ms | requests |"
echo "|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
  run "grpc-ResolveBoolean-$r" -d "$OUT/grpc.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$FLAGD/flagd.evaluation.v2.Service/ResolveBoolean"
  run "ofrep-single-h2c-$r" -d "$OUT/ofrep.json" -H 'content-type: application/json' \
    "http://127.0.0.1:$API/ofrep/v1/evaluate/flags/bench-flag"
  run "ofrep-single-h1-$r" --h1 -d "$OUT/ofrep.json" -H 'content-type: application/json' \
    "http://127.0.0.1:$API/ofrep/v1/evaluate/flags/bench-flag"
done

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
