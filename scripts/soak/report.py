#!/usr/bin/env python3
"""The soak's verdict (scripts/soak.sh): reads what the run left in --dir and prints the
figures and one PASS/FAIL line; exits 1 on FAIL.

Criteria: zero 5xx and zero unexpected statuses or transport errors from every client; RSS
growth under load from the end of the warm-up to the end < 10 %; no more open descriptors
when idle after the load than when idle before it; no refresh or save failed; no stream stayed
silent 5 s while the flags changed every second; the relay lived to the end and exited 0
on SIGTERM.
"""
import argparse
import csv
import json
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--dir", required=True)
p.add_argument("--warmup", type=float, required=True)
p.add_argument("--max-rss-growth", type=float, default=10.0)
a = p.parse_args()
d = a.dir


def read_kv(name):
    out = {}
    with open(os.path.join(d, name)) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                out[k] = v
    return out


facts = read_kv("facts.txt")
samples = []
with open(os.path.join(d, "samples.csv")) as f:
    for row in csv.DictReader(f):
        samples.append({k: float(v) for k, v in row.items()})
wrk = {}
with open(os.path.join(d, "wrk.txt")) as f:
    for line in f:
        if line.startswith("SOAK_WRK "):
            wrk = json.loads(line[len("SOAK_WRK "):])
with open(os.path.join(d, "clients.json")) as f:
    clients = json.load(f)

fails = []
if not wrk:
    fails.append("wrk printed no summary")
if not samples:
    fails.append("no samples")

wrk_statuses = {int(k): v for k, v in wrk.get("statuses", {}).items()}
wrk_5xx = sum(v for k, v in wrk_statuses.items() if k >= 500)
wrk_unexpected = sum(v for k, v in wrk_statuses.items() if k not in (200, 304, 400, 401, 404))
wrk_errors = wrk.get("errors", {})
wrk_socket_errors = sum(wrk_errors.get(k, 0) for k in ("connect", "read", "write", "timeout"))
total_requests = wrk.get("requests", 0) + clients["requests"]
five_xx = wrk_5xx + clients["five_xx"]

# RSS under load: the first sample at or after the warm-up, and the last one.
under_load = [s for s in samples if s["t"] >= a.warmup]
warm = under_load[0] if under_load else samples[-1]
end = samples[-1]
growth = (end["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"] * 100 if warm["rss_kb"] else 0.0
fd_idle_before = int(facts["fd_idle_before"])
fd_idle_after = int(facts["fd_idle_after"])
refresh_failed = int(facts.get("refresh_failed", "0"))
handler_errors = int(facts.get("request_failed_lines", "0")) + int(facts.get("panics", "0"))

print()
print("== soak figures")
secs = float(facts["seconds"])
print(f"duration                 {secs / 60:.1f} min (warm-up {a.warmup:.0f} s); flag file switched "
      f"{facts['flips']} times, {facts.get('changes_applied', '?')} changes applied")
print(f"total requests           {total_requests}  (wrk {wrk.get('requests', 0)}, "
      f"{wrk.get('requests', 0) / secs:.0f}/s; other clients {clients['requests']})")
socket_errors = {k: wrk_errors.get(k, 0) for k in ("connect", "read", "write", "timeout")}
print(f"  wrk statuses           {dict(sorted(wrk_statuses.items()))}; socket errors {socket_errors}")
print(f"  wrk latency            p50 {wrk.get('p50_ms', 0):.2f} ms, p99 {wrk.get('p99_ms', 0):.2f} ms, max {wrk.get('max_ms', 0):.1f} ms")
print(f"  other clients          statuses {dict(sorted(clients['statuses'].items()))}; "
      f"SSE connections {clients['sse_connections']} ({clients['sse_resets']} left with a reset), "
      f"events {clients['sse_events']}, admin refreshes {clients['admin_refreshes']}")
print(f"5xx                      {five_xx}")
print(f"unexpected statuses      {wrk_unexpected + clients['unexpected_count']}  {clients['unexpected'][:5]}")
print(f"transport errors         wrk {wrk_socket_errors}, other clients {clients['transport_error_count']}  {clients['transport_errors'][:3]}")
persist_failed = int(facts.get("persist_failed", "0"))
print(f"refreshes failed         {refresh_failed}; saves failed {persist_failed}; 5xx/panic log lines {handler_errors}")
print(f"RSS                      idle before load {int(facts['rss_idle_before'])} kB; "
      f"at {warm['t']:.0f} s {int(warm['rss_kb'])} kB -> at {end['t']:.0f} s {int(end['rss_kb'])} kB: "
      f"{growth:+.1f} % (limit {a.max_rss_growth:.0f} %); max {int(max(s['rss_kb'] for s in samples))} kB; "
      f"idle after load {int(facts['rss_idle_after'])} kB; threads {int(warm.get('threads', 0))} -> "
      f"{int(end.get('threads', 0))}")
# Informational: each new thread of the blocking pool can bring its own malloc arena, so RSS
# steps up with the thread count; growth at a constant thread count tells the two apart.
same = [x for x in under_load if x.get("threads") == end.get("threads")]
if same and same[0] is not end and same[0]["rss_kb"]:
    g = (end["rss_kb"] - same[0]["rss_kb"]) / same[0]["rss_kb"] * 100
    label = f"  at {int(end.get('threads', 0))} threads".ljust(25)
    print(f"{label}from {same[0]['t']:.0f} s to {end['t']:.0f} s: {g:+.1f} % (informational)")
print(f"open descriptors         idle before load {fd_idle_before}, idle after load {fd_idle_after}; "
      f"under load at {warm['t']:.0f} s {int(warm['fds'])}, at {end['t']:.0f} s {int(end['fds'])}, "
      f"max {int(max(s['fds'] for s in samples))}")
print(f"relay exit on SIGTERM    {facts['exit']}")

if five_xx:
    fails.append(f"{five_xx} 5xx answers")
if wrk_unexpected or clients["unexpected_count"]:
    fails.append("unexpected statuses")
if wrk_socket_errors or clients["transport_error_count"]:
    fails.append("transport errors")
if refresh_failed:
    fails.append(f"{refresh_failed} refreshes failed")
if persist_failed:
    fails.append(f"{persist_failed} saves of the flag set failed")
if handler_errors:
    fails.append("5xx or panic lines in the relay log")
if clients["sse_silent_5s"]:
    fails.append(f"{clients['sse_silent_5s']} streams got no event in >= 5 s")
if clients["sse_events"] == 0:
    fails.append("no SSE event received")
if growth >= a.max_rss_growth:
    fails.append(f"RSS grew {growth:.1f} %")
if fd_idle_after > fd_idle_before:
    fails.append(f"descriptors grew from {fd_idle_before} to {fd_idle_after}")
if facts.get("alive_to_end") != "1":
    fails.append("the relay died during the run")
if facts["exit"] != "0":
    fails.append(f"exit status {facts['exit']} on SIGTERM")

print()
if fails:
    print("SOAK FAIL: " + "; ".join(fails))
    sys.exit(1)
print("SOAK PASS")
