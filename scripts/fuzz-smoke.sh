#!/usr/bin/env bash
# Fuzz smoke test: runs each cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS seconds
# (default 60), one at a time, starting from its committed corpus (fuzz/corpus/<target>/).
# Anything libFuzzer reports (panic, crash, a run over 10 s, RSS over 2 GiB) fails the target;
# its input is kept under fuzz/artifacts/<target>/ (not committed). New corpus entries go to a
# scratch directory, so the committed corpus is left as it is.
#
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh            # longer runs
#   FUZZ_TARGETS="config bearer_token" scripts/fuzz-smoke.sh
#
# Builds with nightly, with debug assertions and overflow checks on (-O -a), and AddressSanitizer
# (cargo-fuzz's default). A smoke run optimizes at opt-level 1 (FUZZ_OPT_LEVEL): it compiles in
# a fraction of opt-level 3's time on two cores, which CI's time limit needs, and 60 s at a lower
# exec/s still replays the whole corpus. Long runs: FUZZ_OPT_LEVEL=3 FUZZ_SECONDS=1800.
# Ends with `fuzz-smoke: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
read -r -a targets <<<"${FUZZ_TARGETS:-flag_document config ofrep_request bearer_token}"
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${FUZZ_OPT_LEVEL:-1}"
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
libfuzzer_flags=(-rss_limit_mb=2048 -timeout=10 -max_total_time="$seconds" -print_final_stats=1)

bash scripts/install-deps.sh fuzz || { echo "fuzz-smoke: 0 passed, ${#targets[@]} failed"; exit 1; }

echo "fuzz-smoke: building ${targets[*]}"
if ! (cd fuzz && cargo +nightly fuzz build -O -a); then
  echo "fuzz-smoke: build failed"
  echo "fuzz-smoke: 0 passed, ${#targets[@]} failed"
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  echo "fuzz-smoke: $t for ${seconds}s"
  # The outer timeout only catches a fuzzer that stops answering altogether.
  (cd fuzz && timeout --kill-after=30 "$((seconds + 600))" \
    cargo +nightly fuzz run -O -a "$t" "$scratch/$t" "corpus/$t" -- "${libfuzzer_flags[@]}") \
    >"$log" 2>&1
  rc=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz-smoke: $t ok: ${runs:-?} executions, ${rate:-?} exec/s"
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1
  else
    failed=$((failed + 1))
    echo "fuzz-smoke: $t FAILED (exit $rc) after ${runs:-?} executions; the end of its log:"
    grep -vE '^#[0-9]+ +(NEW|REDUCE|pulse|RELOAD)' "$log" | tail -60
    ls -1 "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|fuzz-smoke: artifact fuzz/artifacts/$t/|"
  fi
done
echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
