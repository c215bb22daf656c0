#!/usr/bin/env bash
# README's quick start, run as a new user would, exactly as README.md writes it: the run command
# of its first `sh` block (`cargo run --release`) in the background, /ready awaited on port 1031,
# the curl example of the next `sh` block run from another shell, and its output compared with
# the `json` block after it; then the relay is stopped. The block's other command, `make test`,
# is checked to be what .ci/run runs next. The commands are read from README.md, so the check
# follows the README rather than a copy of it.
#
#   QUICKSTART_TIMEOUT   seconds for the build and start (default 3600: a release build with
#                        fat LTO takes minutes on two cores)
set -euo pipefail
cd "$(dirname "$0")/.."

timeout=${QUICKSTART_TIMEOUT:-3600}
port=1031

# The commands, from README.md's fenced blocks.
blocks=$(mktemp -d)
work=$(mktemp -d)
pid=
# Whether the started process still runs (a zombie does not count).
alive() { [ -n "$pid" ] && [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; }
stop() {
  # Started in its own process group (job control): stop the group, cargo and relay alike.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 75); do alive || return 0; sleep 0.2; done
  return 1
}
cleanup() {
  if alive; then
    stop || kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$blocks" "$work"
}
trap cleanup EXIT

python3 - "$blocks" <<'PY'
import pathlib, re, sys
out = pathlib.Path(sys.argv[1])
text = pathlib.Path("README.md").read_text()
blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
sh = [body for lang, body in blocks if lang == "sh"]
# The quick start: two commands, each followed by a comment.
commands = [line.split("#", 1)[0].strip() for line in sh[0].splitlines() if line.strip()]
if len(commands) != 2:
    sys.exit(f"readme-quickstart: expected two commands in README's first sh block, got {commands}")
(out / "run").write_text(commands[0])
(out / "test").write_text(commands[1])
(out / "curl").write_text(sh[1])
after = text.split(sh[1], 1)[1]
expected = re.search(r"^```json\n(.*?)^```", after, flags=re.S | re.M)
if not expected:
    sys.exit("readme-quickstart: no json block after README's curl example")
(out / "expected").write_text(expected.group(1))
PY

run=$(cat "$blocks/run")
echo "readme-quickstart: README's commands: '$run' and '$(cat "$blocks/test")'"
[ "$(cat "$blocks/test")" = "make test" ] || {
  echo "readme-quickstart: README's test command is '$(cat "$blocks/test")', .ci/run runs 'make test'" >&2
  exit 1
}
if curl -s -o /dev/null "http://localhost:$port/health"; then
  echo "readme-quickstart: port $port is already in use; the quick start needs it" >&2
  exit 1
fi

start=$SECONDS
echo "readme-quickstart: starting '$run' (build + start, up to ${timeout}s)"
set -m
bash -c "$run" >"$work/relay.log" 2>&1 &
pid=$!
set +m
until curl -sf -o /dev/null "http://localhost:$port/ready"; do
  if ! alive; then
    echo "readme-quickstart: '$run' exited before /ready answered 200; its output:" >&2
    tail -n 40 "$work/relay.log" >&2
    exit 1
  fi
  if [ $((SECONDS - start)) -ge "$timeout" ]; then
    echo "readme-quickstart: no 200 from /ready after ${timeout}s; output:" >&2
    tail -n 40 "$work/relay.log" >&2
    exit 1
  fi
  sleep 2
done
echo "readme-quickstart: /ready 200 after $((SECONDS - start))s (build included)"

# The curl example as written, from another shell.
bash "$blocks/curl" >"$work/answer"
if python3 - "$blocks/expected" "$work/answer" <<'PY'
import json, sys
expected, answer = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(expected != answer)
PY
then
  echo "readme-quickstart: the curl example answers what README shows: $(cat "$work/answer")"
else
  echo "readme-quickstart: the curl example answered $(cat "$work/answer")" >&2
  echo "readme-quickstart: README shows $(cat "$blocks/expected")" >&2
  exit 1
fi

if ! stop; then
  echo "readme-quickstart: the relay did not stop within 15 s of SIGTERM" >&2
  exit 1
fi
pid=
echo "readme-quickstart: ok (relay stopped on SIGTERM; $((SECONDS - start))s in all)"
