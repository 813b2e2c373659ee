#!/usr/bin/env python3
"""Writes upstream.md and upstream.json from bench/upstream.sh's cells (one
gateway-bench result line per proxy x cell x repeat) and the run's meta.

Repeats are reduced to their median. CPU per request: the proxy's and the
backend's, each over gateway-bench's measured window. "Direct" is the backend
alone, with the clients connected to it. The targets are those of the
upstream-mode issue (and, marked, of its design reference), each stated per
cell against the measured ratio.
"""
import argparse
import json
import os
import statistics

PROXIES = ["direct", "gateway", "haproxy", "nginx"]
NAMES = {"direct": "direct (no proxy)", "gateway": "gateway upstream mode", "haproxy": "HAProxy (tcp)",
         "nginx": "nginx stream"}


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def reduce_runs(runs):
    """One cell (proxy, conns, pipeline, rate) from its repeats."""
    ok = [r for r in runs if r.get("bench") == "gateway-bench" and r.get("rps") is not None]
    first = runs[0]
    proxy = first["proxy"]
    c = {"proxy": proxy, "conns": first.get("cell_conns", first.get("conns")),
         "pipeline": first.get("cell_pipeline", first.get("pipeline")),
         "rate": first.get("cell_rate", first.get("rate", 0)) or 0, "repeats": len(ok)}
    if not ok:
        c.update(status="not run", note=first.get("error", "no result"))
        return c
    lat = lambda r, k: (r.get("latency_us") or {}).get(k)
    c["rps"] = median(r.get("rps") for r in ok)
    c["p50_us"] = median(lat(r, "p50") for r in ok)
    c["p99_us"] = median(lat(r, "p99") for r in ok)
    if proxy == "direct":
        c["proxy_cpu_us"] = None
        c["backend_cpu_us"] = median(r.get("server_cpu_us_per_req") for r in ok)
    else:
        c["proxy_cpu_us"] = median(r.get("server_cpu_us_per_req") for r in ok)
        c["backend_cpu_us"] = median(r.get("backend_cpu_us_per_req") for r in ok)
    c["total_cpu_us"] = (None if c["backend_cpu_us"] is None or (proxy != "direct" and c["proxy_cpu_us"] is None)
                         else (c["proxy_cpu_us"] or 0) + c["backend_cpu_us"])
    # Core 0 (proxy + backend) and core 1 (gateway-bench) busy, % of a core.
    c["core0_pct"] = median(100 * ((r.get("server_cpu_s") or 0) + (r.get("backend_cpu_s") or 0)) / r["window_s"]
                            for r in ok if r.get("window_s"))
    c["client_pct"] = median(100 * r.get("client_cpu_util", 0) for r in ok)
    c["upstream_conns"] = median(max(r.get("upstream_busy_samples") or [0]) for r in ok)
    c["upstream_conns_all"] = median(max(r.get("upstream_conns_samples") or [0]) for r in ok)
    c["error_frames"] = sum(r.get("error_frames", 0) for r in ok)
    c["errors"] = sum((r.get("errors") or {}).get("total", 0) for r in ok)
    c["unfinished"] = sum(r.get("unfinished", 0) for r in ok)
    c["established"] = min(r.get("established", 0) for r in ok)
    bad = [r for r in runs if not r.get("ok") or not r.get("servers_alive", True)]
    c["status"] = "ok" if not bad and c["error_frames"] == 0 else "flawed"
    notes = []
    if c["errors"]:
        notes.append(f"{c['errors']} errors")
    if c["error_frames"]:
        notes.append(f"{c['error_frames']} error frames")
    if any(not r.get("servers_alive", True) for r in runs):
        notes.append("a server died")
    if c["established"] < (c["conns"] or 0):
        notes.append(f"only {c['established']} connections")
    if c["rate"] and c["rps"] < 0.95 * c["rate"]:
        notes.append(f"fell behind: {100 * c['rps'] / c['rate']:.0f}% of the offered rate")
    c["note"] = ", ".join(notes)
    c["runs"] = runs
    return c


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def fmt(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def check(value, limit, op="<="):
    """(passed or None, text) for one cell."""
    if value is None:
        return None, "not measured"
    passed = value <= limit if op == "<=" else value < limit if op == "<" else value >= limit
    return passed, f"{'pass' if passed else 'FAIL'} ({value:.2f}×)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    meta = json.load(open(a.meta))
    groups = {}
    for line in open(a.cells):
        if line.strip():
            r = json.loads(line)
            key = (r["proxy"], r.get("cell_conns", r.get("conns")), r.get("cell_pipeline", r.get("pipeline")),
                   r.get("cell_rate", r.get("rate", 0)) or 0)
            groups.setdefault(key, []).append(r)
    cells = {k: reduce_runs(v) for k, v in groups.items()}
    proxies = [p for p in PROXIES if any(k[0] == p for k in cells)]
    closed = sorted({k[1:] for k in cells if k[3] == 0})  # (conns, pipeline, 0)
    rated = sorted({k[1:] for k in cells if k[3] > 0})
    get = lambda p, cell, f: (cells.get((p,) + cell) or {}).get(f)

    # Ratios against direct, per cell.
    for (p, *cell), c in cells.items():
        direct = get("direct", tuple(cell), "backend_cpu_us")
        c["proxy_tax"] = ratio(c.get("proxy_cpu_us"), direct) if p != "direct" else None
        c["backend_vs_direct"] = ratio(c.get("backend_cpu_us"), direct) if p != "direct" else None
        c["total_vs_direct"] = ratio(c.get("total_cpu_us"), direct)
        c["rps_vs_direct"] = ratio(c.get("rps"), get("direct", tuple(cell), "rps"))
        c["p99_vs_direct"] = ratio(c.get("p99_us"), get("direct", tuple(cell), "p99_us"))

    label = lambda cell: (f"{cell[0]:,} conns p{cell[1]}" if cell[2] == 0 else
                          f"{cell[2]:,} req/s, {cell[0]:,} conns")
    per_conn = meta["reactors"] * meta["upstream_connections"]
    targets = []

    def target(name, source, cells_checked, fn):
        res = {}
        for cell in cells_checked:
            res[label(cell)] = fn(cell)
        measured = [v[0] for v in res.values() if v[0] is not None]
        verdict = ("not measured" if not measured and not any(v[1].startswith("invalid") for v in res.values()) else
                   "not valid in this run" if not measured else
                   "pass" if all(measured) and len(measured) == len(res) else
                   "pass where measured" if all(measured) else "FAIL")
        targets.append({"target": name, "source": source, "verdict": verdict,
                        "cells": {k: {"pass": v[0], "result": v[1]} for k, v in res.items()}})

    g = lambda cell, f: get("gateway", cell, f)
    target("gateway CPU/request ≤ 1.0× backend CPU/request direct (proxy tax)", "issue", closed,
           lambda cell: check(g(cell, "proxy_tax"), 1.0))
    for other in ("haproxy", "nginx"):
        target(f"gateway CPU/request < {NAMES[other]}'s", "issue", closed,
               lambda cell, o=other: check(ratio(g(cell, "proxy_cpu_us"), get(o, cell, "proxy_cpu_us")), 1.0, "<"))
    target("backend CPU/request behind the gateway ≤ 0.5× direct, 1,000 connections", "issue",
           [c for c in closed if c[0] >= 1000], lambda cell: check(g(cell, "backend_vs_direct"), 0.5))
    for other in ("haproxy", "nginx"):
        target(f"total CPU/request (proxy + backend) ≤ {NAMES[other]}'s", "issue", closed,
               lambda cell, o=other: check(ratio(g(cell, "total_cpu_us"), get(o, cell, "total_cpu_us")), 1.0))
    def fixed_rate_p99(cell):
        # A p99 ratio means something only when both sides kept up with the offered rate.
        behind = [NAMES[p] for p in ("direct", "gateway")
                  if get(p, cell, "rps") is not None and get(p, cell, "rps") < 0.95 * cell[2]]
        if behind:
            return None, (f"invalid: {' and '.join(behind)} fell behind the offered rate "
                          f"(ratio {fmt(g(cell, 'p99_vs_direct'))}×)")
        return check(g(cell, "p99_vs_direct"), 1.5)
    target("p99 at the fixed rate ≤ 1.5× direct", "issue", rated, fixed_rate_p99)

    def upstream_count(cell):
        n = g(cell, "upstream_conns")
        if n is None:
            return None, "not measured"
        extra = (g(cell, "upstream_conns_all") or n) - n
        return n == per_conn, (f"{'pass' if n == per_conn else 'FAIL'} ({n:.0f}"
                               f"{f' + {extra:.0f} idle' if extra else ''})")
    target(f"upstream connections per backend = reactors × upstream_connections = {per_conn}, any client count",
           "issue", closed + rated, upstream_count)
    target("req/s via the gateway ≥ 1.0× direct at 1,000 connections p1 (backend-bound)", "design reference",
           [c for c in closed if c[0] >= 1000 and c[1] == 1], lambda cell: check(g(cell, "rps_vs_direct"), 1.0, ">="))

    # --- JSON -----------------------------------------------------------------
    out_cells = []
    for k in sorted(cells, key=lambda k: (k[3], k[1], k[2], PROXIES.index(k[0]) if k[0] in PROXIES else 9)):
        out_cells.append(cells[k])
    with open(os.path.join(a.out, "upstream.json"), "w") as f:
        json.dump({"meta": meta, "targets": targets, "cells": out_cells}, f, indent=1)
        f.write("\n")

    # --- Markdown ---------------------------------------------------------------
    md = ["# Upstream mode vs HAProxy and nginx", ""]
    md.append(f"`bench/upstream.sh`, {meta['date']}, commit {meta['commit']}{' (dirty)' if meta['dirty'] else ''}, "
              f"kernel {meta['kernel']}, {meta['cpus']} CPUs ({meta['cpu']}), load at start {meta['load_start']}, "
              f"at end {meta['load_end']}. {meta['size']} B payloads; {meta['duration_s']} s measured after "
              f"{meta['warmup_s']} s warm-up per cell, median of {meta['repeats']} run(s); a fresh backend and "
              f"proxy per cell. Backend: the gateway in its default (reverse) mode, one reactor. Proxies: the "
              f"gateway with `--upstream` (`--reactors={meta['reactors']}`, "
              f"`--upstream_connections={meta['upstream_connections']}`), {meta['haproxy'] or 'HAProxy'} "
              f"(`mode tcp`, `nbthread 1`), {meta['nginx'] or 'nginx'} (`stream`, one worker). "
              f"Proxy and backend {'share core 0' if meta['pinned'] else 'are not pinned'}, gateway-bench runs on "
              f"core 1 (2 cores: the reference design's third core for the backend does not exist here, so in the "
              f"proxied cells one core does both jobs and req/s is what proxy + backend manage together on it).")
    busiest = max((max(c.get("core0_pct") or 0, c.get("client_pct") or 0) for c in cells.values()), default=0)
    if cells and busiest < 80:
        md.append("")
        md.append(f"**No cell had either core more than {busiest:.0f}% busy with these processes: other work on the "
                  f"machine took the rest, so req/s and latency here reflect that load more than the servers. CPU "
                  f"per request is the comparable figure.**")
    if float(meta["load_start"].split()[0]) > 0.5:
        md.append("")
        md.append(f"**The machine was not idle at the start (load {meta['load_start']}): treat the numbers as "
                  f"noisy.**")
    md += ["", "CPU per request is utime+stime over gateway-bench's measured window (`/proc/PID/stat`), divided by "
           "the responses completed in it; the proxy and the backend are charged separately (for nginx its worker "
           "process). *Proxy tax* = proxy CPU/request ÷ the backend's CPU/request when the clients connect "
           "directly. *Upstream conns* = the most established connections to the backend port seen by `ss` during "
           "the run that carried traffic (more than 2 data segments a second; direct: the clients' own), + "
           "those that did not (the gateway's health-check connection). *CPU %*: how busy core 0 (proxy + backend) and core 1 (gateway-bench) "
           "were; near 100 marks the side that limited req/s. CPU time is counted in clock ticks (10 ms) per "
           "process per window, so a figure below 0.01 s ÷ the requests in the window reads as 0.", ""]

    # Headline: README-ready.
    md += ["## Headline", "", "CPU µs per request, proxy + backend = total (direct: the backend alone), and req/s.", "",
           "| | " + " | ".join(label(c) for c in closed + rated) + " |", "|---|" + "---:|" * len(closed + rated)]
    for p in proxies:
        row = []
        for cell in closed + rated:
            c = cells.get((p,) + cell) or {}
            if c.get("total_cpu_us") is None:
                row.append("not run" if c.get("status") == "not run" else "-")
            elif p == "direct":
                row.append(f"{fmt(c['total_cpu_us'])}<br>{fmt(c['rps'], 0)}/s")
            else:
                row.append(f"{fmt(c['proxy_cpu_us'])} + {fmt(c['backend_cpu_us'])} = **{fmt(c['total_cpu_us'])}**"
                           f"<br>{fmt(c['rps'], 0)}/s")
        md.append(f"| {NAMES[p]} | " + " | ".join(row) + " |")
    md.append("")

    md += ["## Targets", "", "| target | " + " | ".join(label(c) for c in closed + rated) + " | verdict |",
           "|---|" + "---|" * (len(closed) + len(rated) + 1)]
    for t in targets:
        row = [t["cells"].get(label(c), {}).get("result", "n/a") for c in closed + rated]
        src = "" if t["source"] == "issue" else f" ({t['source']})"
        md.append(f"| {t['target']}{src} | " + " | ".join(row) + f" | **{t['verdict']}** |")
    md.append("")

    def upstream_idle(c):
        extra = (c.get("upstream_conns_all") or 0) - (c.get("upstream_conns") or 0)
        return f" + {extra:.0f}" if extra > 0 else ""

    def table(cell_list):
        lines = ["| proxy | req/s | p50 µs | p99 µs | proxy µs/req | backend µs/req | total µs/req | total vs direct "
                 "| proxy tax | backend vs direct | upstream conns | CPU % core 0 / client | note |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for cell in cell_list:
            lines.append(f"| **{label(cell)}** |" + " |" * 12)
            for p in proxies:
                c = cells.get((p,) + cell)
                if c is None:
                    continue
                if c["status"] == "not run":
                    lines.append(f"| {NAMES[p]} | not run: {c['note']} |" + " |" * 11)
                    continue
                x = lambda v: "-" if v is None else f"{v:.2f}×"
                lines.append(
                    f"| {NAMES[p]} | {fmt(c['rps'], 0)} | {fmt(c['p50_us'], 0)} | {fmt(c['p99_us'], 0)} | "
                    f"{fmt(c['proxy_cpu_us'])} | {fmt(c['backend_cpu_us'])} | {fmt(c['total_cpu_us'])} | "
                    f"{x(c['total_vs_direct'])} | {x(c['proxy_tax'])} | {x(c['backend_vs_direct'])} | "
                    f"{fmt(c['upstream_conns'], 0)}{upstream_idle(c)} | {fmt(c['core0_pct'], 0)} / {fmt(c['client_pct'], 0)} | "
                    f"{c['note'] or ('ok' if c['status'] == 'ok' else c['status'])} |")
        return lines

    md += ["## Closed loop", "", "Each connection keeps `pipeline` requests in flight.", ""] + table(closed) + [""]
    if rated:
        md += ["## Fixed rate (open loop)", "",
               "Latency from each request's intended send time (no coordinated omission).", ""] + table(rated) + [""]
    errs = sum(c.get("errors", 0) for c in cells.values())
    efs = sum(c.get("error_frames", 0) for c in cells.values())
    md.append(f"Every response is checked byte for byte: {errs} errors and {efs} error frames (`00000`) over all "
              f"cells. Raw results per run: `upstream.json` (`cells[].runs`).")
    with open(os.path.join(a.out, "upstream.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
