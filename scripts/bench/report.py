#!/usr/bin/env python3
"""Turn scripts/bench-load.sh's results.txt into the Markdown table it prints.

Throughput and latency are medians over the rounds; each ratio is relay ÷ baseline of those
medians, with the range of the per-round ratios (relay and baseline of the same round) next
to it, so noise on the shared machine is visible.
"""
import json
import statistics
import sys


def parse(path):
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("kind=refreshlog "):
                head, _, js = line.partition(" json=")
                row = dict(kv.split("=", 1) for kv in head.split())
                try:
                    row["log"] = json.loads(js)
                except ValueError:
                    continue
                rows.append(row)
                continue
            rows.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
    return rows


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def verdict(value, target, higher_is_better):
    if value != value:  # NaN
        return "no data"
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "met"
    if higher_is_better:
        return f"missed by {100 * (target - value) / target:.0f}%"
    return f"missed by {100 * (value / target - 1):.0f}%"


def flagd_rows(rows, info):
    """Part flagd: gRPC ResolveBoolean in the relay column, OFREP single over h2c on the same
    relay, flag and h2load settings in the baseline column; the ratio is gRPC ÷ OFREP h2c."""
    runs = [r for r in rows if r.get("kind") == "h2load"]
    grpc, h2c = "grpc-ResolveBoolean", "ofrep-single-h2c"
    if not any(r["scenario"] == grpc for r in runs):
        return []

    def series(scenario, field):
        return [float(r[field]) for r in runs if r["scenario"] == scenario]

    def round_ratios(field):
        by_round = {}
        for r in runs:
            by_round.setdefault(r["round"], {})[r["scenario"]] = float(r[field])
        return [d[grpc] / d[h2c] for d in by_round.values() if grpc in d and h2c in d and d[h2c] > 0]

    out = []
    for field, label, fmt in (("rps", "req/s", "{:,.0f}"), ("p50_us", "p50", "{:,.0f} µs"),
                              ("p99_us", "p99", "{:,.0f} µs")):
        g, o = med(series(grpc, field)), med(series(h2c, field))
        rr = round_ratios(field)
        rng = f" ({min(rr):.2f}–{max(rr):.2f})" if rr else ""
        out.append(f"| flagd ResolveBoolean (gRPC, h2c) {label}; baseline column: OFREP single "
                   f"over h2c, same relay | {fmt.format(g)} | {fmt.format(o)} | "
                   f"{g / o if o else float('nan'):.2f}×{rng} | — | |")
    g, o = med(series(grpc, "cpu_us_per_req")), med(series(h2c, "cpu_us_per_req"))
    if g > 0 and o > 0:
        rr = [1 / x for x in round_ratios("cpu_us_per_req") if x > 0]
        rng = f" ({min(rr):.2f}–{max(rr):.2f})" if rr else ""
        out.append(f"| flagd ResolveBoolean relay CPU per request; baseline column: OFREP single h2c | "
                   f"{g:,.1f} µs | {o:,.1f} µs | req/s at equal CPU: {o / g:.2f}×{rng} | — | |")
    failed = sum(int(r["failed"]) for r in runs)
    total = sum(int(r["ok"]) + int(r["failed"]) for r in runs)
    out.append(f"| flagd part: failed requests (gRPC and OFREP h2c), {total:,} requests | {failed} | | | "
               f"0 | {'met' if failed == 0 else 'missed'} |")
    return out


def fleet_rows(rows):
    """Part fleet: one kind=fleet line from scripts/bench-fleet.py --record."""
    f = next((r for r in rows if r.get("kind") == "fleet"), None)
    if f is None:
        return []
    n, ok = int(f["refreshes"]), int(f["converged"])
    out = [f"| fleet of {f['replicas']} relays, {int(f['flags']):,} flags: admin refreshes that "
           f"converged | {ok} of {n} | | | all | {'met' if ok == n else 'missed'} |"]
    if "took_p50_ms" in f:
        p50, p99 = float(f["took_p50_ms"]), float(f["took_p99_ms"])
        out.append(f"| fleet convergence: swap on the first relay → last of {f['replicas']} serving "
                   f"(`fleet.tookMs`), p50 / p99 (max) | {p50:,.1f} ms / {p99:,.1f} ms "
                   f"({float(f['took_max_ms']):,.1f} ms) | | p99 ÷ p50: {p99 / p50 if p50 else float('nan'):.2f}× | — | |")
        out.append(f"| fleet: admin refresh call on the first relay (fetch, parse, build, publish, "
                   f"converge), p50 / p99 | {float(f['wall_p50_ms']):,.1f} ms / "
                   f"{float(f['wall_p99_ms']):,.1f} ms | | | — | |")
    return out


def main():
    rows = parse(sys.argv[1])
    info = {}
    for r in rows:
        if r.get("kind") == "info":
            info.update({k: v for k, v in r.items() if k != "kind"})
    wrk = [r for r in rows if r.get("kind") == "wrk" and r["scenario"] not in ("warmup",)]

    def series(scenario, target, field):
        return [float(r[field]) for r in wrk if r["scenario"] == scenario and r["target"] == target]

    def round_ratios(scenario, field):
        by_round = {}
        for r in wrk:
            if r["scenario"] == scenario:
                by_round.setdefault(r["round"], {})[r["target"]] = float(r[field])
        return [d["relay"] / d["baseline"] for d in by_round.values()
                if "relay" in d and "baseline" in d and d["baseline"] > 0]

    out = []
    head = (f"Machine: {info.get('nproc', '?')} CPUs; "
            + (f"servers pinned to CPU {info.get('server_cpus')}, wrk and h2load to CPU "
               f"{info.get('wrk_cpus')}" if info.get("pin") == "1" else "no CPU pinning"))
    if any(r["scenario"] in ("single", "bulk", "health") for r in wrk):
        head += (f"; wrk -t{info.get('threads')} -c{info.get('connections')}, "
                 f"{info.get('duration')} s per run, {info.get('rounds')} alternating rounds; "
                 f"single body {info.get('single_body_bytes', '?')} B, "
                 f"bulk body {info.get('bulk_body_bytes', '?')} B")
    if "flagd_requests" in info:
        head += (f"; flagd part: h2load -t{info.get('threads')} -c{info.get('connections')} -m1, "
                 f"{int(info['flagd_requests']):,} requests per run, {info.get('rounds')} rounds "
                 f"alternating gRPC and OFREP h2c on one relay serving one flag")
    out.append(head + ".")
    out.append("")
    out.append("| measure | relay | baseline | relay ÷ baseline (per-round range) | target | verdict |")
    out.append("|---|---:|---:|---:|---|---|")

    targets = {
        ("single", "rps"): (0.8, True),
        ("single", "p99_us"): (1.5, False),
        ("bulk", "rps"): (0.5, True),
    }
    names = {"single": "OFREP single (10,000 keys)", "bulk": "OFREP bulk (1,000 flags)",
             "health": "GET /health"}
    for scenario in ("single", "bulk", "health"):
        if not series(scenario, "relay", "rps"):
            continue  # part throughput not run
        for field, label, fmt in (("rps", "req/s", "{:,.0f}"), ("p50_us", "p50", "{:,.0f} µs"),
                                  ("p99_us", "p99", "{:,.0f} µs")):
            rel, base = med(series(scenario, "relay", field)), med(series(scenario, "baseline", field))
            ratio = rel / base if base else float("nan")
            rr = round_ratios(scenario, field)
            rng = f" ({min(rr):.2f}–{max(rr):.2f})" if rr else ""
            t = targets.get((scenario, field))
            if t:
                tgt = ("≥ " if t[1] else "≤ ") + f"{t[0]}×"
                v = verdict(ratio, t[0], t[1])
            else:
                tgt, v = "—", ""
            out.append(f"| {names[scenario]} {label} | {fmt.format(rel)} | {fmt.format(base)} | "
                       f"{ratio:.2f}×{rng} | {tgt} | {v} |")
        # Server CPU time per request: independent of the CPU share the server got on a busy
        # machine. baseline ÷ relay is the throughput ratio both would reach with a core each.
        rel, base = med(series(scenario, "relay", "cpu_us_per_req")), med(series(scenario, "baseline", "cpu_us_per_req"))
        if rel == rel and base == base and rel > 0:
            rr = [1 / x for x in round_ratios(scenario, "cpu_us_per_req") if x > 0]
            rng = f" ({min(rr):.2f}–{max(rr):.2f})" if rr else ""
            t = targets.get((scenario, "rps"))
            tgt, v = (f"≥ {t[0]}×", verdict(base / rel, t[0], True)) if t else ("—", "")
            out.append(f"| {names[scenario]} server CPU per request | {rel:,.1f} µs | {base:,.1f} µs | "
                       f"req/s at equal CPU: {base / rel:.2f}×{rng} | {tgt} | {v} |")

    out.extend(flagd_rows(rows, info))
    out.extend(fleet_rows(rows))

    steady = [r for r in wrk if r["scenario"] == "steady"]
    refresh = [r for r in wrk if r["scenario"] == "refresh"]
    if steady and refresh:
        s, f = steady[0], refresh[0]
        failed = sum(int(r["non2xx"]) + int(r["socket_errors"]) for r in (s, f))
        out.append(f"| refresh under load: failed requests (non-2xx + socket errors), "
                   f"{int(s['requests']) + int(f['requests']):,} requests | {failed} | | | 0 | "
                   f"{'met' if failed == 0 else 'missed'} |")
        p99r = float(f["p99_us"]) / float(s["p99_us"])
        out.append(f"| refresh under load: p99 during refresh ÷ p99 steady "
                   f"({float(f['p99_us']):,.0f} µs ÷ {float(s['p99_us']):,.0f} µs) | {p99r:.2f}× | | | "
                   f"≤ 2× | {verdict(p99r, 2.0, False)} |")
        out.append(f"| refresh under load: req/s during refresh ÷ steady "
                   f"({float(f['rps']):,.0f} ÷ {float(s['rps']):,.0f}) | "
                   f"{float(f['rps']) / float(s['rps']):.2f}× | | | — | |")
    logs = [r for r in rows if r.get("kind") == "refreshlog"]
    start = [r["log"] for r in logs if r["phase"] == "start" and r["log"].get("changed") is True]
    load = [r["log"] for r in logs if r["phase"] == "load" and r["log"].get("changed") is True]
    unchanged = [r["log"] for r in logs if r["log"].get("changed") is False]
    fmt_name = info.get("refresh_format", "?")
    if start:
        ms = float(start[0]["duration_ms"])
        out.append(f"| first load of 100,000 flags ({fmt_name}), read + parse + validate + build + swap | "
                   f"{ms:,.0f} ms | | | < 1 s | {verdict(ms, 1000, False)} |")
    if load:
        d = [float(x["duration_ms"]) for x in load]
        out.append(f"| refresh of 100,000 flags under load, median (max) of {len(d)} | "
                   f"{med(d):,.0f} ms ({max(d):,.0f} ms) | | | < 1 s | {verdict(med(d), 1000, False)} |")
    if unchanged:
        d = [float(x["duration_ms"]) for x in unchanged]
        out.append(f"| poll of the unchanged 100,000-flag file, median of {len(d)} | "
                   f"{med(d):,.1f} ms | | | — | |")

    def rss(target):
        return next((r for r in rows if r.get("kind") == "rss" and r["target"] == target), None)

    doc = int(info.get("doc_bytes", "0") or 0)
    r = rss("idle_default")
    if r:
        mb = int(r["rss_kb"]) / 1024
        out.append(f"| RSS idle, default config (peak {int(r['hwm_kb']) / 1024:.1f} MB) | {mb:.1f} MB | | | "
                   f"< 15 MB | {verdict(mb, 15, False)} |")
    labels = (("flags_100k", "after the first load"),
              ("flags_100k_after_load", "after the steady load, before any refresh"),
              ("flags_100k_after_refreshes", "after the refreshes"))
    for target, label in labels:
        r = rss(target)
        if r and doc:
            ratio = int(r["rss_kb"]) * 1024 / doc
            out.append(f"| RSS with 100,000 flags {label} ({int(r['rss_kb']) / 1024:.0f} MB; "
                       f"peak {int(r['hwm_kb']) / 1024:.0f} MB) ÷ document ({doc / 1e6:.1f} MB) | "
                       f"{ratio:.2f}× | | | ≤ 5× | {verdict(ratio, 5, False)} |")
    # Issue 18: what refreshes leave behind. Against the first load (as the issue states it)
    # and against the same process after the same load before any refresh (what is the
    # refreshes' own, not serving's).
    after = rss("flags_100k_after_refreshes")
    for target, label in labels[:2]:
        r = rss(target)
        if r and after:
            ratio = int(after["rss_kb"]) / int(r["rss_kb"])
            out.append(f"| RSS after the refreshes ÷ {label} | {ratio:.2f}× | | | ≤ 1.1× | "
                       f"{verdict(ratio, 1.1, False)} |")
    ready = [float(r["ready_ms"]) for r in rows if r.get("kind") == "ready" and r["target"] == "default"]
    if ready:
        out.append(f"| start to ready, default config, median (max) of {len(ready)} | "
                   f"{med(ready):.0f} ms ({max(ready):.0f} ms) | | | < 100 ms | {verdict(med(ready), 100, False)} |")
    r100 = [float(r["ready_ms"]) for r in rows if r.get("kind") == "ready" and r["target"] == "flags_100k"]
    if r100:
        out.append(f"| start to ready with 100,000 flags | {r100[0]:,.0f} ms | | | — | |")
    if "total_secs" in info:
        out.append("")
        out.append(f"Total run time: {info['total_secs']} s.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
