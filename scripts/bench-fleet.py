#!/usr/bin/env python3
"""Fleet-mode measurements (issue 13; results in BENCHMARKS.md).

1. Convergence: N relays (default 3) in one fleet on a local redis-server, 1,000 generated flags
   in a file; 100 admin refreshes on the first relay, each after switching the file between two
   variants. Each answer's `fleet.tookMs` is the time from that relay serving the new version
   to the last live replica confirming it (heartbeat after its swap). Reports p50/p99/max and
   the admin call's wall time; checks every answer was 200 and converged.
2. Upstream load: requests an HTTP source gets per polling interval (1 s) from 1 and 3 fleet
   relays, and from 3 relays without a fleet, over `--poll-seconds`.
3. `--throughput ROUNDS`: OFREP single-flag throughput (wrk, scripts/bench/wrk.lua) of one
   relay in a fleet against one without, alternating, 1,000 flags; the median of each.

    scripts/bench-fleet.py --bin target/release/flagrelay [--replicas 3] [--refreshes 100]

`--parts convergence` runs only the first part; `--record FILE` appends the convergence numbers
as one `kind=fleet key=value ...` line to FILE. `make bench-load` (scripts/bench-load.sh, part
`fleet`) uses both, and scripts/bench/report.py turns the line into rows of its table.

Needs redis-server (scripts/install-deps.sh redis). Every process it starts is stopped on exit.
"""
import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = []
ADMIN = "bench-admin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp):
    port = free_port()
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return port
        except OSError:
            time.sleep(0.01)
    sys.exit("redis-server did not start")


def start_relay(binary, tmp, name, config):
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(config)
    p = subprocess.Popen([binary, "--config", path, "--host", "127.0.0.1", "--port", "0",
                          "--log-level", "info"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    PROCS.append(p)
    addr = None
    for line in p.stdout:
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("msg") == "listening" and v.get("server") == "api":
            addr = v["addr"]
            break
    if addr is None:
        sys.exit(f"relay {name} did not start")
    # Keep draining its logs so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    url = f"http://{addr}"
    for _ in range(1000):
        try:
            if urllib.request.urlopen(url + "/ready", timeout=2).status == 200:
                return url
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"relay {name} not ready")


def fleet_config(redis_port, fleet, retriever, poll_ms):
    return (f"pollingInterval: {poll_ms}\nretrievers: [{retriever}]\n"
            f"authorizedKeys: {{admin: [{ADMIN}]}}\n"
            + (f"fleet: {{name: {fleet}, redis: {{url: \"redis://127.0.0.1:{redis_port}\"}}, "
               f"leaseTtl: 2s, convergenceTimeout: 20s}}\n" if fleet else ""))


def gen_flags(n, variant, out):
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/bench/gen_flags.py"), "--flags",
                    str(n), "--format", "yaml", "--variant", str(variant), "--out", out],
                   check=True)


def admin_refresh(url):
    req = urllib.request.Request(url + "/admin/v1/retriever/refresh", method="POST",
                                 headers={"x-api-key": ADMIN})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, body = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        status, body = e.code, json.load(e)
    return status, body, (time.perf_counter() - t) * 1000


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def convergence(args, tmp, redis_port):
    variants = []
    for v in (0, 1):
        path = os.path.join(tmp, f"variant-{v}.yaml")
        gen_flags(args.flags, v, path)
        variants.append(open(path).read())
    flags = os.path.join(tmp, "flags.yaml")

    def write(v):
        with open(flags + ".tmp", "w") as f:
            f.write(variants[v])
        os.replace(flags + ".tmp", flags)

    write(0)
    cfg = fleet_config(redis_port, "bench", f"{{kind: file, path: {flags}}}", 0)
    urls = [start_relay(args.bin, tmp, f"conv-{i}", cfg) for i in range(args.replicas)]
    took, wall, bad = [], [], []
    t_start = time.perf_counter()
    for i in range(args.refreshes):
        write((i + 1) % 2)
        status, body, ms = admin_refresh(urls[0])
        fleet = body.get("fleet", {})
        if status != 200 or not fleet.get("converged") or fleet.get("replicas") != args.replicas:
            bad.append((status, body))
            continue
        took.append(fleet["tookMs"])
        wall.append(ms)
    print(f"convergence: {args.replicas} replicas, {args.flags} flags, {len(took)} of "
          f"{args.refreshes} refreshes converged (failures: {bad[:3]})")
    if args.record:
        with open(args.record, "a", encoding="utf-8") as f:
            f.write(f"kind=fleet replicas={args.replicas} flags={args.flags} "
                    f"refreshes={args.refreshes} converged={len(took)} "
                    f"secs={time.perf_counter() - t_start:.1f}"
                    + (f" took_p50_ms={pct(took, 50):.1f} took_p99_ms={pct(took, 99):.1f} "
                       f"took_max_ms={max(took):.1f} wall_p50_ms={pct(wall, 50):.1f} "
                       f"wall_p99_ms={pct(wall, 99):.1f}" if took else "") + "\n")
    if not took:
        return 1
    print(f"  swap on the first replica -> last replica confirmed (fleet.tookMs): "
          f"p50 {pct(took, 50):.1f} ms, p99 {pct(took, 99):.1f} ms, max {max(took):.1f} ms, "
          f"mean {statistics.mean(took):.1f} ms")
    print(f"  admin refresh wall time (fetch, parse, build, publish, converge): "
          f"p50 {pct(wall, 50):.1f} ms, p99 {pct(wall, 99):.1f} ms")
    return 0 if not bad else 1


class Counting(http.server.BaseHTTPRequestHandler):
    body = b""
    count = 0
    lock = threading.Lock()

    def do_GET(self):
        with Counting.lock:
            Counting.count += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-yaml")
        self.send_header("content-length", str(len(Counting.body)))
        self.end_headers()
        self.wfile.write(Counting.body)

    def log_message(self, *a):
        pass


def upstream(args, tmp, redis_port):
    path = os.path.join(tmp, "upstream.yaml")
    gen_flags(100, 0, path)
    Counting.body = open(path, "rb").read()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/flags.yaml"
    for label, n, fleet in (("1 relay, fleet", 1, "up1"), ("3 relays, fleet", 3, "up3"),
                            ("3 relays, no fleet", 3, None)):
        started = len(PROCS)
        cfg = fleet_config(redis_port, fleet, f"{{kind: http, url: \"{url}\"}}", 1000)
        for i in range(n):
            start_relay(args.bin, tmp, f"{label[:1]}-{fleet}-{i}", cfg)
        time.sleep(2)
        before = Counting.count
        time.sleep(args.poll_seconds)
        got = Counting.count - before
        print(f"upstream: {label}: {got} requests in {args.poll_seconds} s "
              f"({got / args.poll_seconds:.2f} per 1 s interval)")
        for p in PROCS[started:]:
            p.terminate()
            p.wait()
        del PROCS[started:]
    server.shutdown()


def throughput(args, tmp, redis_port):
    flags = os.path.join(tmp, "tp.yaml")
    gen_flags(args.flags, 0, flags)
    retriever = f"{{kind: file, path: {flags}}}"
    urls = {
        "fleet": start_relay(args.bin, tmp, "tp-fleet", fleet_config(redis_port, "tp", retriever, 0)),
        "alone": start_relay(args.bin, tmp, "tp-alone", fleet_config(redis_port, None, retriever, 0)),
    }
    results = {"fleet": [], "alone": []}
    env = dict(os.environ, BENCH_MODE="single", BENCH_FLAG="flag-000042")
    for r in range(args.throughput):
        order = ["fleet", "alone"] if r % 2 == 0 else ["alone", "fleet"]
        for label in order:
            out = subprocess.run(
                ["wrk", "-t1", "-c32", f"-d{args.tp_seconds}s", "-s",
                 os.path.join(ROOT, "scripts/bench/wrk.lua"), urls[label]],
                env=env, capture_output=True, text=True, check=True).stdout
            line = next(l for l in out.splitlines() if l.startswith("WRK_RESULT"))
            rps = float(dict(kv.split("=") for kv in line.split()[1:])["rps"])
            results[label].append(rps)
            print(f"  throughput round {r + 1} {label}: {rps:.0f} req/s")
    f, a = statistics.median(results["fleet"]), statistics.median(results["alone"])
    print(f"throughput (OFREP single, {args.flags} flags): fleet {f:.0f} req/s, alone {a:.0f} "
          f"req/s, fleet/alone {f / a:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/flagrelay"))
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--refreshes", type=int, default=100)
    ap.add_argument("--flags", type=int, default=1000)
    ap.add_argument("--poll-seconds", type=int, default=10)
    ap.add_argument("--throughput", type=int, default=0, metavar="ROUNDS")
    ap.add_argument("--tp-seconds", type=int, default=5)
    ap.add_argument("--parts", default="convergence upstream",
                    help="which of `convergence upstream` to run (space-separated)")
    ap.add_argument("--record", metavar="FILE",
                    help="append the convergence numbers to FILE as a kind=fleet line")
    args = ap.parse_args()
    parts = args.parts.split()
    unknown = set(parts) - {"convergence", "upstream"}
    if unknown:
        ap.error(f"--parts: unknown part(s) {sorted(unknown)}; known: convergence upstream")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            redis_port = start_redis(tmp)
            rc = 0
            if "convergence" in parts:
                rc = convergence(args, tmp, redis_port)
                for p in PROCS[1:]:
                    p.terminate()
                    p.wait()
                del PROCS[1:]
            if "upstream" in parts:
                upstream(args, tmp, redis_port)
            if args.throughput:
                throughput(args, tmp, redis_port)
            return rc
        finally:
            for p in PROCS:
                p.terminate()
            for p in PROCS:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
