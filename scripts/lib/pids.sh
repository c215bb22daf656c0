# Sourced by scripts/bench-load.sh and scripts/soak.sh: every server or load process a script
# starts goes into PIDS, and all of them are stopped when the script exits, however it exits.
PIDS=()

# Stop one process: SIGTERM, wait up to 5 s, then SIGKILL.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    [ -e "/proc/$pid" ] || return 0
    # A reaped-but-not-yet-gone or zombie process counts as stopped.
    grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
}
trap cleanup EXIT
