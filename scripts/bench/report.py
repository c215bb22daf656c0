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
    out.append(f"Machine: {info.get('nproc', '?')} CPUs; "
               + (f"servers pinned to CPU {info.get('server_cpus')}, wrk to CPU {info.get('wrk_cpus')}"
                  if info.get("pin") == "1" else "no CPU pinning")
               + f"; wrk -t{info.get('threads')} -c{info.get('connections')}, "
               f"{info.get('duration')} s per run, {info.get('rounds')} alternating rounds; "
               f"single body {info.get('single_body_bytes', '?')} B, "
               f"bulk body {info.get('bulk_body_bytes', '?')} B.")
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
    for target, label in (("flags_100k", "after the first load"),
                          ("flags_100k_after_refreshes", "after the refreshes")):
        r = rss(target)
        if r and doc:
            ratio = int(r["rss_kb"]) * 1024 / doc
            out.append(f"| RSS with 100,000 flags {label} ({int(r['rss_kb']) / 1024:.0f} MB; "
                       f"peak {int(r['hwm_kb']) / 1024:.0f} MB) ÷ document ({doc / 1e6:.1f} MB) | "
                       f"{ratio:.2f}× | | | < 3× | {verdict(ratio, 3, False)} |")
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
