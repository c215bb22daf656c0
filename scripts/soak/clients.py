#!/usr/bin/env python3
"""The soak's non-wrk clients (scripts/soak.sh), standard library only:

- SSE clients that connect to /ofrep/v1/sse or /v1/flags/stream (key in a header, in
  ?apiKey=, or a token from /client/auth), stay 1-20 s counting events, and leave, half of
  them with a reset (SO_LINGER 0) instead of a clean close; some with a wrong key (401);
- admin refreshes every 2 s (and wrong-key / wrong-kind ones: 401, 403);
- token exchanges (good key, unknown key, bad JSON).

Every answer is counted by status. At the end (after --seconds) a JSON summary goes to --out.
"""
import argparse
import http.client
import json
import random
import socket
import struct
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--seconds", type=float, required=True)
p.add_argument("--sse-clients", type=int, default=20)
p.add_argument("--eval-key", required=True)
p.add_argument("--admin-key", required=True)
p.add_argument("--out", required=True)
a = p.parse_args()

HOST = "127.0.0.1"
deadline = time.monotonic() + a.seconds
lock = threading.Lock()
stats = {
    "requests": 0,
    "statuses": {},
    # (what, status) pairs that were not what the request should get.
    "unexpected": [],
    "unexpected_count": 0,
    "transport_errors": [],
    "transport_error_count": 0,
    "sse_connections": 0,
    "sse_events": 0,
    "sse_resets": 0,
    # Streams that stayed open >= 5 s while flags changed every second, but got no event.
    "sse_silent_5s": 0,
    "admin_refreshes": 0,
}


def count(what, status, expected):
    with lock:
        stats["requests"] += 1
        k = str(status)
        stats["statuses"][k] = stats["statuses"].get(k, 0) + 1
        if status not in expected:
            stats["unexpected_count"] += 1
            if len(stats["unexpected"]) < 50:
                stats["unexpected"].append(f"{what}: {status}")


def transport_error(what, e):
    with lock:
        stats["requests"] += 1
        stats["transport_error_count"] += 1
        if len(stats["transport_errors"]) < 50:
            stats["transport_errors"].append(f"{what}: {e!r}")


def call(method, path, headers=None, body=None):
    c = http.client.HTTPConnection(HOST, a.port, timeout=15)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, data
    finally:
        c.close()


def token():
    status, data = call("POST", "/client/auth", {"Content-Type": "application/json"},
                        json.dumps({"apiKey": a.eval_key}))
    count("token", status, {200})
    return json.loads(data)["authToken"] if status == 200 else None


def sse_client(i):
    rnd = random.Random(i)
    while time.monotonic() < deadline:
        path = rnd.choice(["/ofrep/v1/sse", "/v1/flags/stream"])
        mode = rnd.choice(["header", "query", "token", "wrong"])
        headers = ""
        expected = {200}
        try:
            if mode == "header":
                headers = f"X-API-Key: {a.eval_key}\r\n"
            elif mode == "query":
                path += f"?apiKey={a.eval_key}"
            elif mode == "token":
                t = token()
                if t is None:
                    continue
                headers = f"Authorization: Bearer {t}\r\n"
            else:
                path += "?apiKey=soak-wrong-key"
                expected = {401}
        except Exception as e:  # noqa: BLE001
            transport_error("token", e)
            time.sleep(0.5)
            continue
        life = rnd.uniform(1, 20)
        s = socket.create_connection((HOST, a.port), timeout=15)
        try:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n{headers}\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed before the response head")
                buf += chunk
            status = int(buf.split(b" ", 2)[1])
            count(f"sse {path.split('?')[0]} {mode}", status, expected)
            if status != 200:
                continue
            with lock:
                stats["sse_connections"] += 1
            opened = time.monotonic()
            end = min(opened + life, deadline)
            events = buf.count(b"\ndata:")
            tail = buf[-16:]
            s.settimeout(0.5)
            while time.monotonic() < end:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    raise ConnectionError("stream closed by the relay")
                joined = tail + chunk
                events += joined.count(b"\ndata:") - tail.count(b"\ndata:")
                tail = joined[-16:]
            with lock:
                stats["sse_events"] += events
                if time.monotonic() - opened >= 5 and events == 0:
                    stats["sse_silent_5s"] += 1
            if rnd.random() < 0.5:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with lock:
                    stats["sse_resets"] += 1
        except Exception as e:  # noqa: BLE001
            transport_error(f"sse {path.split('?')[0]}", e)
            time.sleep(0.5)
        finally:
            s.close()


def admin_loop():
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            if n % 5 == 0:
                status, _ = call("POST", "/admin/v1/retriever/refresh", {"X-API-Key": "soak-wrong-key"})
                count("admin wrong key", status, {401})
            elif n % 5 == 1:
                status, _ = call("POST", "/admin/v1/retriever/refresh", {"X-API-Key": a.eval_key})
                count("admin with an evaluation key", status, {403})
            else:
                status, body = call("POST", "/admin/v1/retriever/refresh", {"X-API-Key": a.admin_key})
                count("admin refresh", status, {200})
                with lock:
                    stats["admin_refreshes"] += 1
        except Exception as e:  # noqa: BLE001
            transport_error("admin", e)
        time.sleep(2 if n % 5 >= 2 else 0.2)


def token_loop():
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            if n % 3 == 0:
                status, _ = call("POST", "/client/auth", {"Content-Type": "application/json"},
                                 json.dumps({"apiKey": "soak-wrong-key"}))
                count("token unknown key", status, {401})
            elif n % 3 == 1:
                status, _ = call("POST", "/client/auth", {"Content-Type": "application/json"}, "{not json")
                count("token bad JSON", status, {400})
            else:
                token()
        except Exception as e:  # noqa: BLE001
            transport_error("token", e)
        time.sleep(1)


threads = [threading.Thread(target=sse_client, args=(i,), daemon=True) for i in range(a.sse_clients)]
threads += [threading.Thread(target=admin_loop, daemon=True), threading.Thread(target=token_loop, daemon=True)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=max(0, deadline - time.monotonic()) + 30)
stats["five_xx"] = sum(v for k, v in stats["statuses"].items() if k.startswith("5"))
with open(a.out, "w") as f:
    json.dump(stats, f, indent=1, sort_keys=True)
