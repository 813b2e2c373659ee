#!/usr/bin/env python3
"""Writes io_models.md and the CPU-per-request plots from bench/io_models.sh's
CSV (one row per point and repeat), its switch timings and notes.

Repeats are reduced to their median. The targets are those of the IO-models
issue, each with the measured ratio and whether it is met.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess

MODELS = ["select", "poll", "epoll-lt", "epoll-et", "io_uring", "signal", "blocking"]
NUM = ["rps", "cpu_us_per_req", "p50_us", "p99_us", "held", "bytes_per_idle"]


def load(csv_path):
    points = {}  # (model, idle, pipeline) -> {"status": ..., field: median}
    rows = {}
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            rows.setdefault((r["model"], int(r["idle"]), int(r["pipeline"])), []).append(r)
    for key, rs in rows.items():
        ok = [r for r in rs if r["status"] == "ok"]
        p = {"status": "ok" if ok else rs[0]["status"], "note": rs[0]["note"] or (rs[0]["status"] if not ok else ""),
             "repeats": len(ok)}
        for k in NUM:
            vals = [float(r[k]) for r in ok if r[k] not in ("", None)]
            p[k] = statistics.median(vals) if vals else None
        p["errors"] = sum(int(r["errors"] or 0) for r in rs)
        points[key] = p
    return points


def fmt(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def verdict(value, limit, below=True):
    if value is None:
        return "not measured"
    met = value <= limit if below else value >= limit
    return f"{'met' if met else 'missed'} ({value:.2f}x, target {'≤' if below else '≥'} {limit}x)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--switches", required=True)
    ap.add_argument("--notes", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gnuplot", default="")
    a = ap.parse_args()

    points = load(a.csv)
    meta = json.load(open(a.meta))
    notes = [l.strip() for l in open(a.notes) if l.strip()]
    switches = [json.loads(l) for l in open(a.switches) if l.strip()]
    models = [m for m in MODELS if any(k[0] == m for k in points)]
    idles = sorted({k[1] for k in points})
    pipes = sorted({k[2] for k in points})
    get = lambda m, i, p, f: (points.get((m, i, p)) or {}).get(f)

    md = ["# IO models side by side", ""]
    md.append(f"`bench/io_models.sh`, {meta['date']}, commit {meta['commit']}{' (dirty)' if meta['dirty'] else ''}, "
              f"kernel {meta['kernel']}, {meta['cpus']} CPUs ({meta['cpu'].strip()}), load at start {meta['load_start']}. "
              f"Gateway with one reactor on core 0{'' if meta['pinned'] else ' (not pinned)'}, gateway-bench on core 1; "
              f"{meta['active']} active connections, {meta['size']} B payload, {meta['duration_s']} s measured after "
              f"{meta['warmup_s']} s warm-up per point, median of {meta['repeats']} run(s) "
              f"({'3 or more are better on a shared machine' if meta['repeats'] < 3 else 'medians'}). "
              f"A fresh gateway per point; the idle connections are opened and proven with one request first.")
    if float(meta["load_start"].split()[0]) > 0.5:
        md.append(f"**The machine was not idle at the start (load {meta['load_start']}): treat the numbers as noisy.**")
    md.append("")
    if notes:
        md += ["Not run:", ""] + [f"- {n}" for n in notes] + [""]

    # --- Targets --------------------------------------------------------------
    md += ["## Targets", ""]
    p1 = 1 if 1 in pipes else (pipes[0] if pipes else 1)
    top = max(idles) if idles else 0
    t = []
    # The "100 / 1,000 / 10,000 connections" are the lab's 100 active
    # with 0 / 1,000 / 10,000 idle beside them.
    for idle, limit in ((0, 0.92), (1000, 0.92), (10000, 1.0)):
        if idle in idles:
            r = ratio(get("io_uring", idle, p1, "cpu_us_per_req"), get("epoll-et", idle, p1, "cpu_us_per_req"))
            t.append(f"| io_uring CPU/request vs epoll-ET, {meta['active']} active + {idle:,} idle, p{p1} | "
                     f"{verdict(r, limit)} |")
    worst = None
    for (m, i, p), v in points.items():
        if m != "io_uring":
            continue
        r = ratio(v.get("p99_us"), get("epoll-et", i, p, "p99_us"))
        if r is not None and (worst is None or r > worst[0]):
            worst = (r, i, p)
    t.append("| io_uring p99 vs epoll-ET, worst point | " +
             (verdict(worst[0], 1.2) + f" at {worst[1]:,} idle, p{worst[2]}" if worst else "not measured") + " |")
    bi = [get(m, top, p1, "bytes_per_idle") for m in ("io_uring", "epoll-et")]
    t.append(f"| io_uring bytes per idle connection vs epoll-ET's, {top:,} idle | "
             + (f"{'met' if bi[0] <= bi[1] else 'missed'} ({fmt(bi[0], 0)} B vs {fmt(bi[1], 0)} B)"
                if None not in bi else "not measured") + " |")
    for m in ("epoll-lt", "epoll-et", "io_uring"):
        for p in pipes:
            base = get(m, 0, p, "cpu_us_per_req")
            devs = [ratio(get(m, i, p, "cpu_us_per_req"), base) for i in idles if i > 0]
            devs = [d for d in devs if d is not None]
            if base is None or not devs:
                t.append(f"| {m} flat within ±15% from 0 to {top:,} idle, p{p} | not measured |")
                continue
            worst_dev = max(devs, key=lambda d: abs(d - 1))
            t.append(f"| {m} flat within ±15% from 0 to {top:,} idle, p{p} | "
                     f"{'met' if abs(worst_dev - 1) <= 0.15 else 'missed'} (worst {100 * (worst_dev - 1):+.1f}%) |")
    for p in pipes:
        r = ratio(get("poll", top, p, "cpu_us_per_req"), get("poll", 0, p, "cpu_us_per_req"))
        t.append(f"| poll CPU/request at {top:,} idle ≥ 2× its 0-idle, p{p} | {verdict(r, 2.0, below=False)} |")
    na = [i for i in idles if (get("select", i, p1, "note") or "").startswith("n/a")]
    held = max((v.get("held") or 0 for k, v in points.items() if k[0] == "select"), default=None)
    t.append("| select's limit shown, not crashed into | " +
             (f"held at most {fmt(held, 0)} connections; {', '.join(f'{i:,}' for i in na) or 'no'} idle "
              f"n/a (FD_SETSIZE {1024})" if "select" in models else "not measured") + " |")
    sw = [s for s in switches if s.get("ok") and "duration_ms" in s]
    t.append("| live switch (SetIoModel) at ~10,000 connections | " +
             ("; ".join(f"{s['from'].replace('IO_MODEL_', '').lower()} → {s['to'].replace('IO_MODEL_', '').lower()} "
                        f"{s['duration_ms']:.1f} ms" for s in sw) if sw else "not measured") + " |")
    md += ["| target | result |", "|---|---|"] + t + [""]

    # --- Tables ---------------------------------------------------------------
    for p in pipes:
        md += [f"## Pipeline {p}", "",
               "Server CPU per request (µs), then req/s and p50 / p99 latency (µs), by idle connections.", ""]
        md += ["| model | " + " | ".join(f"{i:,} idle" for i in idles) + " |",
               "|---|" + "---:|" * len(idles)]
        for m in models:
            cells = []
            for i in idles:
                v = points.get((m, i, p))
                if v is None:
                    cells.append("-")
                elif v["status"] != "ok":
                    cells.append(v["note"] or v["status"])
                else:
                    cells.append(f"**{fmt(v['cpu_us_per_req'])}**<br>{fmt(v['rps'], 0)}/s<br>"
                                 f"{fmt(v['p50_us'], 0)} / {fmt(v['p99_us'], 0)}")
            md.append(f"| {m} | " + " | ".join(cells) + " |")
        md.append("")
        if os.path.exists(os.path.join(a.out, f"io_models_cpu_p{p}.png")) or a.gnuplot:
            md += [f"![CPU per request, pipeline {p}](io_models_cpu_p{p}.png)", ""]

    md += ["## Memory and connections", "",
           "User-space bytes per idle connection (VmRSS after opening them minus before, / their number) and the "
           "most connections each model held at once (idle + active, all proven).", "",
           "| model | " + " | ".join(f"B/conn at {i:,} idle" for i in idles if i > 0) + " | most held |",
           "|---|" + "---:|" * (len([i for i in idles if i > 0]) + 1)]
    for m in models:
        cells = [fmt(get(m, i, p1, "bytes_per_idle"), 0) for i in idles if i > 0]
        held = max((v.get("held") or 0 for k, v in points.items() if k[0] == m), default=0)
        md.append(f"| {m} | " + " | ".join(cells) + f" | {fmt(held, 0)} |")
    md.append("")

    md += ["## Live switch", ""]
    if switches:
        md += ["| from | to | connections | result | duration (gateway) | client wall time |", "|---|---|---:|---|---:|---:|"]
        for s in switches:
            res = "ok" if s.get("ok") else f"refused: {s.get('error', '')}"
            dur = f"{s['duration_ms']:.1f} ms" if "duration_ms" in s else "-"
            md.append(f"| {s['from']} | {s['to']} | {s['connections']:,} | {res} | {dur} | {s['client_wall_ms']:.0f} ms |")
        md += ["", "The duration is the gateway's own (first reactor starting to last one done); the client wall time "
               "adds the gRPC client's start-up."]
    else:
        md.append("Not measured.")
    md.append("")
    errs = sum(v["errors"] for v in points.values())
    md.append(f"Response errors over all points: {errs} (every response is checked byte for byte).")
    with open(os.path.join(a.out, "io_models.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    # --- Plots ----------------------------------------------------------------
    if not a.gnuplot:
        return
    for p in pipes:
        dat = os.path.join(a.out, f".io_models_p{p}.dat")
        series = []
        with open(dat, "w") as f:
            for m in models:
                pts = [(max(i, 1), get(m, i, p, "cpu_us_per_req")) for i in idles]
                pts = [(x, y) for x, y in pts if y is not None]
                if not pts:
                    continue
                f.write(f"# {m}\n" + "".join(f"{x} {y}\n" for x, y in pts) + "\n\n")
                series.append(m)
        if not series:
            os.remove(dat)
            continue
        plots = ", ".join(f"'{dat}' index {k} with linespoints lw 2 title '{m}'" for k, m in enumerate(series))
        script = (f"set terminal pngcairo size 900,560 noenhanced\n"
                  f"set output '{os.path.join(a.out, f'io_models_cpu_p{p}.png')}'\n"
                  f"set title 'Gateway CPU per request vs idle connections ({meta['active']} active, "
                  f"{meta['size']} B, pipeline {p}; 0 idle drawn at 1)'\n"
                  "set logscale x\nset xlabel 'idle connections'\nset ylabel 'server CPU per request (us)'\n"
                  "set yrange [0:*]\nset key outside right\nset grid\n"
                  f"plot {plots}\n")
        subprocess.run([a.gnuplot], input=script, text=True, check=True)
        os.remove(dat)


if __name__ == "__main__":
    main()
