#!/usr/bin/env bash
# Same-time A/B of two relay builds (issue 18): both serve the same 1,000 generated flags on
# CPU 0 at once, one `wrk -t1 -c16` each drives them from CPU 1, and each round prints B's
# requests ÷ A's. Both get an equal share of one CPU for the same seconds, so drift on a shared
# machine (which moves absolute numbers by 30 % between runs) cannot favour either; run A
# against A first to see the noise (0.95–1.01 here). With AB_BASELINE=1, B is the axum baseline
# (`examples/baseline`), answering A's own single and bulk answers: the relay against the HTTP
# stack's limit at the same time, the ratio `make bench-load` reports as "at equal CPU".
#
#   scripts/bench-ab.sh A_BIN B_BIN [single|bulk|health] [SECONDS] [ROUNDS] [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 MODE=${3:-single} SECS=${4:-5} ROUNDS=${5:-3} PORT=${6:-18201}
OUT=${BENCH_OUT:-target/bench-ab}
mkdir -p "$OUT"
[ -f "$OUT/flags-1k.yaml" ] ||
  python3 scripts/bench/gen_flags.py --flags 1000 --format yaml --out "$OUT/flags-1k.yaml"
# shellcheck source=scripts/lib/pids.sh
source scripts/lib/pids.sh
# serve BIN PORT ARGS...: start BIN on CPU 0 and wait for its /ready on PORT.
serve() {
  local bin=$1 port=$2
  shift 2
  taskset -c 0 "$bin" "$@" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/ready" && return; sleep 0.1; done
  echo "bench-ab: $bin did not get ready on port $port" >&2
  exit 1
}
relay() {
  serve "$1" "$2" --host 127.0.0.1 --port "$2" --log-level warn --polling-interval 0 \
    --flags "$OUT/flags-1k.yaml"
}
relay "$A" "$PORT"
if [ "${AB_BASELINE:-0}" = 1 ]; then
  body='{"context":{"targetingKey":"user-1","tenantId":"tenant-1","env":"production","plan":"pro"}}'
  curl -fsS -X POST -d "$body" -o "$OUT/single-body.json" \
    "http://127.0.0.1:$PORT/ofrep/v1/evaluate/flags/flag-000042"
  curl -fsS -X POST -d "$body" -o "$OUT/bulk-body.json" "http://127.0.0.1:$PORT/ofrep/v1/evaluate/flags"
  serve "$B" $((PORT + 1)) --port $((PORT + 1)) --single "$OUT/single-body.json" \
    --bulk "$OUT/bulk-body.json"
else
  relay "$B" $((PORT + 1))
fi
requests() { sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$1"; }
for ((r = 1; r <= ROUNDS; r++)); do
  loads=()
  for side in 0 1; do
    BENCH_MODE=$MODE taskset -c 1 wrk -t1 -c16 -d"${SECS}s" -s scripts/bench/wrk.lua \
      "http://127.0.0.1:$((PORT + side))" >"$OUT/wrk-$side.out" &
    loads+=($!)
  done
  wait "${loads[@]}"
  a=$(requests "$OUT/wrk-0.out") b=$(requests "$OUT/wrk-1.out")
  echo "round $r: A=$a B=$b B/A=$(python3 -c "print(round($b / $a, 3))") A/B=$(python3 -c "print(round($a / $b, 3))")"
done
