#!/usr/bin/env python3
"""Start a server and time it from spawn to its first 200 from GET /ready.

    start_ready.py --port 18031 --log relay.log [--timeout 30] -- CMD ARGS...

Prints `ready_ms=<float> pid=<pid>` and exits, leaving the server running (the caller stops
it by that pid). Polls every millisecond on loopback; exits 1 (killing the server) if the
server exits or is not ready within --timeout seconds.
"""
import argparse
import http.client
import subprocess
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    log = open(a.log, "ab")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = start + a.timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            print(f"start_ready: server exited with {proc.returncode}; see {a.log}", file=sys.stderr)
            sys.exit(1)
        try:
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=1)
            c.request("GET", "/ready")
            status = c.getresponse().status
            c.close()
            if status == 200:
                ms = (time.perf_counter() - start) * 1000
                print(f"ready_ms={ms:.1f} pid={proc.pid}")
                return
        except OSError:
            pass
        time.sleep(0.001)
    proc.kill()
    print(f"start_ready: not ready on port {a.port} after {a.timeout}s; see {a.log}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
