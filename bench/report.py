#!/usr/bin/python3
"""Turns bench/run.sh's raw.jsonl + meta.json into report.md and PNG plots.

usage: bench/report.py RESULTS_DIR

Only the standard library and gnuplot. Every figure in the report comes from
the raw JSON lines of one run; ratios compare cells of that same run.
"""
import json
import math
import os
import statistics
import subprocess
import sys

SAT = 0.9  # a side at or above 90% of its core is saturated
SERVER_ORDER = ["gateway-edge", "gateway-level", "epoll_et", "libevent_srv", "nbnet.py"]


def load(out):
    rows = []
    with open(os.path.join(out, "raw.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    meta = {}
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    return rows, meta


def split_label(row):
    parts = row.get("label", "").split(":")
    return parts + [""] * (4 - len(parts))


def size_name(size):
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def lat(v):
    if v is None:
        return "–"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def pct(v):
    return "–" if v is None else f"{100 * v:.0f}%"


def good(row):
    return row is not None and row.get("bench") == "gateway-bench" and row.get("ok") is True


def saturated(row):
    su, cu = row.get("server_cpu_util"), row.get("client_cpu_util")
    if su is None or cu is None:
        return "?"
    s, c = su >= SAT, cu >= SAT
    if s and c:
        return "both"
    if s:
        return "server"
    if c:
        return "client"
    return "neither"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def verdict(value, limit, at_most=True):
    """'met'/'missed' with the margin, for a ratio against a target."""
    if value is None:
        return "no data"
    if at_most:
        ok = value <= limit
        room = (limit - value) / limit
    else:
        ok = value >= limit
        room = (value - limit) / limit
    if not ok:
        return f"**missed** by {abs(room) * 100:.0f}%"
    return f"met, {room * 100:.0f}% to spare" + (" (room to raise it)" if room >= 0.15 else "")


class Report:
    def __init__(self, out):
        self.out = out
        self.rows, self.meta = load(out)
        self.grid = {}
        self.skipped = []
        self.failed = []
        self.by_kind = {}
        for r in self.rows:
            kind, server, variant, rnd = split_label(r)
            if "control" in r:
                self.by_kind.setdefault("control", []).append(r)
                continue
            self.by_kind.setdefault(kind, []).append(r)
            if kind == "grid":
                key = (server, r.get("size"), r.get("conns"), r.get("pipeline"))
                self.grid[key] = r
                if r.get("bench") == "skipped":
                    self.skipped.append(r)
                elif not good(r):
                    self.failed.append(r)
        self.servers = [s for s in SERVER_ORDER if any(k[0] == s for k in self.grid)]
        self.servers += sorted({k[0] for k in self.grid} - set(self.servers))
        self.sizes = sorted({k[1] for k in self.grid})
        self.conns = sorted({k[2] for k in self.grid})
        self.pipelines = sorted({k[3] for k in self.grid})
        self.md = []

    def cell(self, server, size, conns, pipeline):
        r = self.grid.get((server, size, conns, pipeline))
        return r if good(r) else None

    def w(self, line=""):
        self.md.append(line)

    # --- sections ---------------------------------------------------------------
    def header(self):
        m = self.meta
        self.w("# Benchmark report")
        self.w()
        self.w(f"Produced by `bench/run.sh`{' (BENCH_QUICK=1: a smoke-test grid, not a measurement)' if m.get('quick') else ''} "
               f"on {m.get('date', '?')} at commit `{m.get('commit', '?')}`{' (with local changes)' if m.get('dirty') else ''}, "
               f"in {m.get('elapsed_s', 0) // 60} min {m.get('elapsed_s', 0) % 60} s.")
        self.w()
        self.w(f"- Machine: {m.get('cpus', '?')} × {m.get('cpu', '?')}, {m.get('mem_mb', '?')} MB RAM, Linux {m.get('kernel', '?')}; "
               f"load average {m.get('load_start', '?')} at the start, {m.get('load_end', '?')} at the end.")
        pin = "server pinned to core 0 (`taskset -c 0`), load generator `gateway-bench` to core 1" if m.get("pinned") \
            else "nothing pinned (fewer than 2 CPUs)"
        self.w(f"- Placement: {pin}; loopback TCP (127.0.0.1).")
        self.w(f"- Each cell: {m.get('warmup_s', '?')} s of warmup traffic, then {m.get('duration_s', '?')} s measured; "
               "every response validated byte for byte (a cell with any mismatch, reset or early EOF is marked FAILED).")
        self.w("- `gateway-edge` / `gateway-level`: the gateway with `--reactors=1` in edge / level mode, as shipped "
               "(metrics exposer and control plane listening on loopback, not scraped during the grid). "
               "`epoll_et`, `libevent_srv`, `nbnet.py`: the reference servers of `../shared/baselines` (see its README).")
        self.w("- Figures: requests/s and MB/s (10^6 bytes of responses, header included, per second) over the measured window; "
               "latency from each request's send to its validated response (closed loop), percentiles from a log-bucketed "
               "histogram (<0.8% error); server CPU per request = utime+stime of the server process "
               "(`/proc/PID/stat`, read by gateway-bench at the window's start and end; 10 ms tick resolution) / requests "
               "completed in the window. "
               f"A side is *saturated* at ≥{SAT * 100:.0f}% of its core: where the client saturates, the server's req/s is a "
               "floor, and CPU per request is the fair comparison.")
        load = m.get("load_start", "")
        try:
            busy = float(load.split()[0]) >= 0.5
        except (ValueError, IndexError):
            busy = False
        if busy:
            self.w(f"- **Warning: the machine was not idle when the run started (load average {load}); other processes "
                   "competed for both cores, so these figures are not a measurement of the servers.**")
        for note in m.get("notes", []):
            self.w(f"- Note: {note}.")
        self.w()

    def headline(self):
        size = 64 if 64 in self.sizes else (self.sizes[0] if self.sizes else None)
        if size is None:
            return
        self.w(f"## Headline ({size_name(size)} payload)")
        self.w()
        cols = [(c, p) for p in self.pipelines for c in self.conns]
        head = " | ".join(f"{c} conn{'s' if c > 1 else ''}, p{p}" for c, p in cols)
        for title, fn in (("Requests per second", lambda r: num(r["rps"])),
                          ("Server CPU per request (µs)", lambda r: num(r.get("server_cpu_us_per_req"), 2)),
                          ("p99 latency (µs)", lambda r: lat(r["latency_us"]["p99"]))):
            self.w(f"**{title}**")
            self.w()
            self.w(f"| server | {head} |")
            self.w("|---" * (len(cols) + 1) + "|")
            for s in self.servers:
                vals = []
                for c, p in cols:
                    r = self.cell(s, size, c, p)
                    vals.append(fn(r) if r else "–")
                self.w(f"| {s} | " + " | ".join(vals) + " |")
            self.w()
        idle = self.idle_rows()
        if idle:
            self.w("**Idle memory** (server RSS growth per idle connection): " +
                   ", ".join(f"{s} {num(r.get('rss_per_conn'))} B" for s, r in idle) + ".")
            self.w()

    def grid_tables(self):
        self.w("## The grid")
        self.w()
        for size in self.sizes:
            self.w(f"### {size_name(size)} payload")
            self.w()
            self.w(f"![throughput]({self.plot_name('throughput', size)}) ![p99]({self.plot_name('p99', size)})")
            self.w()
            self.w("| conns | pipeline | server | req/s | MB/s | p50 µs | p99 µs | p99.9 µs | max µs | server CPU µs/req | server CPU | client CPU | saturated |")
            self.w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            for c in self.conns:
                for p in self.pipelines:
                    for s in self.servers:
                        r = self.grid.get((s, size, c, p))
                        if r is None:
                            continue
                        if r.get("bench") == "skipped":
                            self.w(f"| {c} | {p} | {s} | skipped (see below) |||||||||| ")
                            continue
                        if not good(r):
                            self.w(f"| {c} | {p} | {s} | FAILED: {self.failure(r)} |||||||||| ")
                            continue
                        l = r["latency_us"]
                        self.w(f"| {c} | {p} | {s} | {num(r['rps'])} | {num(r['mbps'], 1)} | {lat(l['p50'])} | {lat(l['p99'])} | "
                               f"{lat(l['p999'])} | {lat(l['max'])} | {num(r.get('server_cpu_us_per_req'), 3)} | "
                               f"{pct(r.get('server_cpu_util'))} | {pct(r.get('client_cpu_util'))} | {saturated(r)} |")
            self.w()

    @staticmethod
    def failure(r):
        if r.get("error"):
            return r["error"]
        errs = r.get("errors", {})
        parts = [f"{k} {v}" for k, v in errs.items() if k != "total" and v]
        if r.get("established") is not None and r.get("established") != r.get("conns"):
            parts.append(f"{r.get('established')}/{r.get('conns')} connections established")
        if r.get("requests") == 0:
            parts.append("no response completed in the window")
        if r.get("server_died"):
            parts.append("the server died")
        return ", ".join(parts) or "not ok"

    def trimmed(self):
        if not self.skipped and not self.failed:
            return
        self.w("## Cells trimmed or failed")
        self.w()
        if self.skipped:
            limit = self.meta.get("inflight_limit", 0)
            cells = sorted({(r["size"], r["conns"], r["pipeline"]) for r in self.skipped})
            self.w(f"Trimmed for every server: " + ", ".join(f"{size_name(s)} × {c} conns × pipeline {p}" for s, c, p in cells) + ".")
            self.w(f"These cells offer conns × pipeline × frame bytes in flight above the kernel's TCP memory pressure "
                   f"threshold (`tcp_mem`, {limit / 2**30:.2f} GiB here): the kernel, not the server, then decides the result "
                   "(at 10000 conns × 64 KiB × 16 no response completes within a window, for any server), and every other "
                   "TCP socket on the machine is starved while it lasts.")
            self.w()
        for r in self.failed:
            kind, server, _, _ = split_label(r)
            self.w(f"- FAILED {server} {size_name(r.get('size', 0))} × {r.get('conns')} conns × pipeline {r.get('pipeline')}: "
                   f"{self.failure(r)}")
        if self.failed:
            self.w()

    def idle_rows(self):
        rows = []
        for r in self.by_kind.get("idle", []):
            _, server, _, _ = split_label(r)
            if good(r) and r.get("rss_per_conn") is not None:
                rows.append((server, r))
        order = {s: i for i, s in enumerate(SERVER_ORDER)}
        return sorted(rows, key=lambda x: order.get(x[0], 99))

    def idle_section(self):
        rows = self.idle_rows()
        bad = [r for r in self.by_kind.get("idle", []) if not good(r)]
        if not rows and not bad:
            return
        self.w("## Idle memory")
        self.w()
        self.w("Each server freshly started; `gateway-bench --idle N` opens N connections, proves each with one 64 B request, "
               "and reads the server's RSS (`/proc/PID/statm`) before connecting and once all are proven. User-space memory "
               "only (kernel socket buffers are not in RSS).")
        self.w()
        self.w("| server | connections | connect + prove (s) | RSS before (MiB) | RSS after (MiB) | bytes per connection |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for s, r in rows:
            self.w(f"| {s} | {r['established']} | {r['connect_s']:.2f} | {r['rss_before'] / 2**20:.1f} | "
                   f"{r['rss_after'] / 2**20:.1f} | {num(r['rss_per_conn'])} |")
        for r in bad:
            self.w(f"| {split_label(r)[1]} | FAILED: {self.failure(r)} ||||| ")
        self.w()

    def rate_section(self):
        rows = [r for r in self.by_kind.get("rate", [])]
        if not rows:
            return
        self.w("## p99 at a fixed request rate (open loop)")
        self.w()
        r0 = rows[0]
        self.w(f"{num(r0.get('rate'))} requests/s over {r0.get('conns')} connections, 64 B, pipeline 1; latency measured "
               "from each request's *intended* send time, so a server that stalls shows the stall (no coordinated omission). "
               "Unlike the closed-loop grid, every server gets the same offered load here.")
        self.w()
        self.w("| server | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | server CPU µs/req | client CPU |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            s = split_label(r)[1]
            if not good(r):
                self.w(f"| {s} | FAILED: {self.failure(r)} ||||||||")
                continue
            l = r["latency_us"]
            self.w(f"| {s} | {num(r['rps'])} | {lat(l['p50'])} | {lat(l['p90'])} | {lat(l['p99'])} | {lat(l['p999'])} | "
                   f"{lat(l['max'])} | {num(r.get('server_cpu_us_per_req'), 3)} | {pct(r.get('client_cpu_util'))} |")
        self.w()

    def rate_p99(self, server):
        for r in self.by_kind.get("rate", []):
            if split_label(r)[1] == server and good(r):
                return r["latency_us"]["p99"]
        return None

    def metrics_data(self):
        """{(conns, pipeline): {variant: [cpu_us_per_req per round]}}"""
        data = {}
        for r in self.by_kind.get("metrics", []):
            _, _, variant, _ = split_label(r)
            if not good(r) or r.get("server_cpu_us_per_req") is None:
                continue
            data.setdefault((r["conns"], r["pipeline"]), {}).setdefault(variant, []).append(r["server_cpu_us_per_req"])
        return data

    def costs_section(self):
        self.w("## The gateway's own costs")
        self.w()
        # Level vs edge, from the grid.
        self.w("### Level-triggered vs edge-triggered")
        self.w()
        self.w("Ratio gateway-level / gateway-edge for every grid cell both completed: server CPU per request "
               "(>1 = level costs more) and requests/s.")
        self.w()
        self.w("| payload | " + " | ".join(f"{c} conn{'s' if c > 1 else ''}, p{p}" for p in self.pipelines for c in self.conns) + " |")
        self.w("|---" * (len(self.conns) * len(self.pipelines) + 1) + "|")
        cpu_ratios = []
        for size in self.sizes:
            vals = []
            for p in self.pipelines:
                for c in self.conns:
                    e, l = self.cell("gateway-edge", size, c, p), self.cell("gateway-level", size, c, p)
                    rc = ratio(l and l.get("server_cpu_us_per_req"), e and e.get("server_cpu_us_per_req"))
                    rr = ratio(l and l["rps"], e and e["rps"])
                    if rc:
                        cpu_ratios.append(rc)
                    vals.append("–" if rc is None else f"CPU {rc:.2f}, req/s {rr:.2f}")
            self.w(f"| {size_name(size)} | " + " | ".join(vals) + " |")
        if cpu_ratios:
            gm = math.exp(statistics.mean(math.log(x) for x in cpu_ratios))
            self.w()
            self.w(f"Geometric mean of the CPU-per-request ratio over {len(cpu_ratios)} cells: **{gm:.3f}** "
                   f"(level costs {abs(gm - 1) * 100:.1f}% {'more' if gm >= 1 else 'less'} CPU per request than edge).")
        self.w()
        # Metrics.
        data = self.metrics_data()
        self.w("### Metrics on vs off")
        self.w()
        if not data:
            self.w("Not measured (the gateway has no `--metrics_listen`, or gateway-edge was not in the run).")
            self.w()
        else:
            rounds = self.meta.get("cost_rounds", 1)
            self.w(f"gateway-edge, 64 B, a fresh process per run, {rounds} alternating round(s) averaged. *off*: "
                   "`--metrics_listen= --metrics_latency=false`; *on*: as shipped (exposer on, per-request latency "
                   "histogram), scraped once a second during the run; *nolat*: exposer on and scraped, "
                   "`--metrics_latency=false`.")
            self.w()
            self.w("| conns | pipeline | off µs/req | on µs/req | on / off | nolat µs/req | nolat / off | target (on/off ≤ 1.05) |")
            self.w("|---:|---:|---:|---:|---:|---:|---:|---|")
            for (c, p) in sorted(data):
                v = {k: statistics.mean(x) for k, x in data[(c, p)].items()}
                on_off = ratio(v.get("on"), v.get("off"))
                nl_off = ratio(v.get("nolat"), v.get("off"))
                self.w(f"| {c} | {p} | {num(v.get('off'), 3)} | {num(v.get('on'), 3)} | "
                       f"{'–' if on_off is None else f'{on_off:.3f}'} | {num(v.get('nolat'), 3)} | "
                       f"{'–' if nl_off is None else f'{nl_off:.3f}'} | {verdict(on_off, 1.05)} |")
            self.w()
        # Control plane.
        ctl = [r for r in self.by_kind.get("control", []) if r.get("control")]
        held = [r for r in self.by_kind.get("control-idle", [])]
        self.w("### Control plane at scale")
        self.w()
        if not ctl:
            self.w("Not measured (no `--control_listen` in the gateway, or `control_probe` not built).")
            self.w()
            return
        self.w("`control_probe` (C++ gRPC client on core 1) times a full `ListConnections` snapshot (all pages, page size "
               "10000) and `SetTriggerMode` switches (level, then back to edge), 5 times each, against gateway-edge holding "
               "N idle connections from `gateway-bench --idle N`.")
        self.w()
        self.w("| connections | ListConnections snapshot ms (min / median / max) | SetTriggerMode ms (min / median / max) | status |")
        self.w("|---:|---|---|---|")
        for r in ctl:
            def mmm(x):
                return "–" if not x else f"{x['min']:.2f} / {x['median']:.2f} / {x['max']:.2f}"
            self.w(f"| {r.get('connections')} | {mmm(r.get('list_ms'))} | {mmm(r.get('switch_ms'))} | "
                   f"{'ok' if r.get('ok') else 'FAILED: ' + r.get('error', '')} |")
        self.w()
        for r in held:
            errs = r.get("errors", {}).get("total")
            self.w(f"The {r.get('established')} held connections after the switches: "
                   f"{'all intact (no reset, EOF or stray byte)' if good(r) else 'DAMAGED: ' + self.failure(r)}"
                   f"{'' if errs is None else ''}.")
            self.w()

    def targets_section(self):
        self.w("## Against the targets")
        self.w()
        self.w("Ratios from cells of this same run. The targets are product requirements, not test assertions.")
        self.w()
        rows = []
        gw, et, le = "gateway-edge", "epoll_et", "libevent_srv"
        for c in (100, 1000):
            for p in (1, 16):
                g, e, l = self.cell(gw, 64, c, p), self.cell(et, 64, c, p), self.cell(le, 64, c, p)
                gv = g and g.get("server_cpu_us_per_req")
                r1 = ratio(gv, e and e.get("server_cpu_us_per_req"))
                r2 = ratio(gv, l and l.get("server_cpu_us_per_req"))
                rows.append((f"CPU/request vs epoll_et ≤ 1.15×, 64 B, {c} conns, p{p}",
                             "–" if r1 is None else f"{r1:.3f}× ({num(gv, 3)} vs {num(e.get('server_cpu_us_per_req'), 3)} µs)",
                             verdict(r1, 1.15)))
                rows.append((f"CPU/request vs libevent_srv ≤ 0.8×, 64 B, {c} conns, p{p}",
                             "–" if r2 is None else f"{r2:.3f}× ({num(gv, 3)} vs {num(l.get('server_cpu_us_per_req'), 3)} µs)",
                             verdict(r2, 0.8)))
        for c in self.conns:
            for p in self.pipelines:
                g, e, l = self.cell(gw, 65536, c, p), self.cell(et, 65536, c, p), self.cell(le, 65536, c, p)
                if not g:
                    continue
                r1 = ratio(g["mbps"], e and e["mbps"])
                r2 = ratio(g["mbps"], l and l["mbps"])
                sat = f"; saturated: gateway {saturated(g)}" + (f", epoll_et {saturated(e)}" if e else "")
                rows.append((f"64 KiB MB/s vs epoll_et ≥ 0.9×, {c} conns, p{p}",
                             "–" if r1 is None else f"{r1:.3f}× ({num(g['mbps'])} vs {num(e['mbps'])} MB/s{sat})",
                             verdict(r1, 0.9, at_most=False)))
                rows.append((f"64 KiB MB/s vs libevent_srv: ahead by a wide margin (taken as ≥ 1.5×), {c} conns, p{p}",
                             "–" if r2 is None else f"{r2:.2f}× ({num(g['mbps'])} vs {num(l['mbps'])} MB/s)",
                             "no data" if r2 is None else ("met" if r2 >= 1.5 else "**missed**" if r2 < 1 else "ahead, not widely")))
        for size in self.sizes:
            for p in self.pipelines:
                g, e = self.cell(gw, size, 1000, p), self.cell(et, size, 1000, p)
                if not g:
                    continue
                r1 = ratio(g["latency_us"]["p99"], e and e["latency_us"]["p99"])
                rows.append((f"p99 at 1000 conns ≤ epoll_et's, {size_name(size)}, p{p} (closed loop)",
                             "–" if r1 is None else f"{r1:.2f}× ({lat(g['latency_us']['p99'])} vs {lat(e['latency_us']['p99'])} µs)",
                             verdict(r1, 1.0)))
        gp, ep = self.rate_p99(gw), self.rate_p99(et)
        if gp is not None or ep is not None:
            r0 = (self.by_kind.get("rate") or [{}])[0]
            r1 = ratio(gp, ep)
            rows.append((f"p99 ≤ epoll_et's at a fixed {num(r0.get('rate'))} req/s, {r0.get('conns')} conns (open loop)",
                         "–" if r1 is None else f"{r1:.2f}× ({lat(gp)} vs {lat(ep)} µs)", verdict(r1, 1.0)))
        for s, r in self.idle_rows():
            if s == gw:
                rows.append((f"idle memory ≤ 1 KiB per connection ({r['established']} conns)", f"{num(r['rss_per_conn'])} B",
                             verdict(r["rss_per_conn"] / 1024, 1.0)))
        for (c, p), v in sorted(self.metrics_data().items()):
            on, off = v.get("on"), v.get("off")
            r1 = ratio(on and statistics.mean(on), off and statistics.mean(off))
            rows.append((f"metrics on costs ≤ 5% CPU/request, 64 B, {c} conns, p{p}",
                         "–" if r1 is None else f"{(r1 - 1) * 100:+.1f}%", verdict(r1, 1.05)))
        self.w("| target | measured | verdict |")
        self.w("|---|---|---|")
        for t, m, v in rows:
            self.w(f"| {t} | {m} | {v} |")
        self.w()

    # --- plots ----------------------------------------------------------------
    def plot_name(self, what, size):
        return f"{what}_{size}.png"

    def plots(self):
        tmp = os.path.join(self.out, "tmp", "plot")
        os.makedirs(tmp, exist_ok=True)
        script = ['set terminal pngcairo size 1200,460 font ",10" noenhanced', "set logscale x", "set grid",
                  "set key top left", "set xlabel 'connections'", "set style data linespoints"]
        made = []
        for size in self.sizes:
            for what in ("throughput", "p99", "cpu"):
                if what == "cpu" and size != 64:
                    continue
                panels = []
                for p in self.pipelines:
                    series = []
                    for s in self.servers:
                        pts = []
                        for c in self.conns:
                            r = self.cell(s, size, c, p)
                            if not r:
                                continue
                            if what == "throughput":
                                y = r["mbps"] if size >= 16384 else r["rps"]
                            elif what == "p99":
                                y = r["latency_us"]["p99"]
                            else:
                                y = r.get("server_cpu_us_per_req")
                            if y:
                                pts.append((c, y))
                        if pts:
                            path = os.path.join(tmp, f"{what}_{size}_{p}_{s}.dat")
                            with open(path, "w") as f:
                                f.writelines(f"{c} {y}\n" for c, y in pts)
                            series.append(f"'{path}' using 1:2 title '{s}'")
                    if series:
                        panels.append((p, series))
                if not panels:
                    continue
                ylabel = {"throughput": "MB/s" if size >= 16384 else "requests/s", "p99": "p99 latency (µs)",
                          "cpu": "server CPU per request (µs)"}[what]
                title = {"throughput": "throughput", "p99": "p99 latency", "cpu": "server CPU per request"}[what]
                name = self.plot_name(what, size)
                script.append(f"set output '{os.path.join(self.out, name)}'")
                script.append(f"set multiplot layout 1,{len(panels)} title '{size_name(size)} payload: {title} vs connections'")
                script.append(f"set ylabel '{ylabel}'")
                script.append("set logscale y" if what != "cpu" else "unset logscale y")
                for p, series in panels:
                    script.append(f"set title 'pipeline {p}'")
                    script.append("plot " + ", ".join(series))
                script.append("unset multiplot")
                made.append(name)
        if not made:
            return
        gp = os.path.join(tmp, "plots.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        res = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
        if res.returncode != 0:
            print("report: gnuplot failed:\n" + res.stderr, file=sys.stderr)

    def write(self):
        self.header()
        self.targets_section()
        self.headline()
        if "cpu_64.png" in os.listdir(self.out):
            self.w("![server CPU per request, 64 B](cpu_64.png)")
            self.w()
        self.grid_tables()
        self.trimmed()
        self.idle_section()
        self.rate_section()
        self.costs_section()
        self.w("## Reproducing")
        self.w()
        self.w("`bench/run.sh` (see `bench/README.md`); the raw figures are in `raw.jsonl` (one JSON line per run, "
               "as printed by `gateway-bench`), the run's parameters in `meta.json`.")
        with open(os.path.join(self.out, "report.md"), "w") as f:
            f.write("\n".join(self.md) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rep = Report(sys.argv[1])
    rep.plots()
    rep.write()


if __name__ == "__main__":
    main()
