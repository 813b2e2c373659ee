#!/usr/bin/env bash
# Control-plane abuse against the data plane (issue 8, items 5 and 6): how much
# a bystander's latency and the gateway's memory suffer from
#   baseline  nothing else running;
#   watchers  ABUSE_WATCHERS WatchConnections streams (include_state_changes,
#             each its own client connection) opened as the measured window
#             starts and never read;
#   lists     ABUSE_LIST_LOOPS tight loops of full ListConnections snapshots
#             (page_size 10000) while ABUSE_IDLE idle connections are held.
#   idle      (a reference for lists) the idle connections alone.
# The bystander is gateway-bench in open loop (fixed rate, latency from each
# request's intended send time) against the real gateway binary, which runs
# with its default flags apart from loopback addresses.
#
# Usage:
#   bench/abuse.sh NAME=GATEWAY_BINARY [NAME=GATEWAY_BINARY ...]
# e.g. bench/abuse.sh before=/tmp/before/build/gateway/gateway after=build/gateway/gateway
#
# Writes raw.jsonl (one line per run) and report.md (tables, commands,
# machine) to ABUSE_OUT; report.md includes ABUSE_OUT/notes.md if present.
# Knobs (environment, default in brackets):
#   ABUSE_BUILD_DIR [build]     where gateway-bench and abuse_probe are (built if missing)
#   ABUSE_OUT [bench/results/abuse]
#   ABUSE_CASES ["baseline watchers lists"]   ABUSE_REPS [3]
#   ABUSE_DURATION [20] measured seconds      ABUSE_WARMUP [2]
#   ABUSE_RATE [5000] req/s                   ABUSE_CONNS [100]   ABUSE_SIZE [64]
#   ABUSE_WATCHERS [200]                      ABUSE_LIST_LOOPS [4]  ABUSE_IDLE [10000]
#   ABUSE_START [ABUSE_WARMUP] seconds after the bystander starts when the abuse
#                starts (the measured window starts after ABUSE_WARMUP)
#   ABUSE_PORT [18000] first loopback port tried (3 per gateway)
#   ABUSE_REPORT_ONLY=1  rewrite report.md from raw.jsonl (after editing notes.md)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD=${ABUSE_BUILD_DIR:-build}
OUT=${ABUSE_OUT:-bench/results/abuse}
CASES=${ABUSE_CASES:-baseline watchers lists}
REPS=${ABUSE_REPS:-3}
DURATION=${ABUSE_DURATION:-20}
WARMUP=${ABUSE_WARMUP:-2}
ABUSE_START=${ABUSE_START:-$WARMUP}
RATE=${ABUSE_RATE:-5000}
CONNS=${ABUSE_CONNS:-100}
SIZE=${ABUSE_SIZE:-64}
WATCHERS=${ABUSE_WATCHERS:-200}
LIST_LOOPS=${ABUSE_LIST_LOOPS:-4}
IDLE=${ABUSE_IDLE:-10000}
NEXT_PORT=${ABUSE_PORT:-18000}
PY=/usr/bin/python3  # Debian's (a pyenv python3 may be first on PATH)

log() { echo "[abuse $(date +%T)] $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

# JSON is written and read by Python's json module, never by echo or grep.
# json_obj KEY=STRING KEY:=JSON ...: one compact JSON object on stdout
# (KEY:=JSON for numbers, objects and null, as in httpie).
# json_or LINE FALLBACK: LINE if it is a JSON object, else FALLBACK (JSON).
# json_p99 OBJECT: latency_us.p99 of a gateway-bench result (empty if absent).
JSON_PY='
import json, sys
cmd = sys.argv[1]
if cmd == "obj":
    out = {}
    for a in sys.argv[2:]:
        key, _, value = a.partition("=")
        if key.endswith(":"):
            out[key[:-1]] = json.loads(value)
        else:
            out[key] = value
    print(json.dumps(out, separators=(",", ":")))
elif cmd == "or":
    try:
        o = json.loads(sys.argv[2])
    except ValueError:
        o = None
    if not isinstance(o, dict):
        o = json.loads(sys.argv[3])
    print(json.dumps(o, separators=(",", ":")))
elif cmd == "p99":
    o = json.loads(sys.argv[2])
    print((o.get("latency_us") or {}).get("p99", ""))
'
json_obj() { "$PY" -c "$JSON_PY" obj "$@"; }
json_or() { "$PY" -c "$JSON_PY" or "$1" "$2"; }
json_p99() { "$PY" -c "$JSON_PY" p99 "$1"; }
# The ABUSE_* settings of this run, "K=V K=V " (quoted into the report's command).
ABUSE_ENV=$("$PY" -c 'import os; print("".join("%s=%s " % kv for kv in sorted(os.environ.items()) if kv[0].startswith("ABUSE_")), end="")')

RAW=$OUT/raw.jsonl
LOGS=$OUT/tmp
REPORT_ONLY=${ABUSE_REPORT_ONLY:-0}
if [[ $REPORT_ONLY != 1 ]]; then
  (($# > 0)) || die "usage: bench/abuse.sh NAME=GATEWAY_BINARY [NAME=GATEWAY_BINARY ...]"
  for spec in "$@"; do
    [[ $spec == *=* && -x ${spec#*=} ]] || die "not NAME=EXECUTABLE: $spec"
  done

  BENCH=$BUILD/bench/gateway-bench
  PROBE=$BUILD/bench/abuse_probe
  if [[ ! -x $BENCH || ! -x $PROBE ]]; then
    log "building gateway-bench and abuse_probe in $BUILD"
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j2 --target gateway-bench abuse_probe >/dev/null
  fi

  mkdir -p "$OUT/tmp"
  : >"$RAW"
  ulimit -n "$(ulimit -Hn)"
fi

GW_PID="" IDLE_PID="" PROBE_PID="" BYSTANDER_PID=""
cleanup() {
  local p
  for p in $PROBE_PID $BYSTANDER_PID $IDLE_PID $GW_PID; do kill -KILL "$p" 2>/dev/null || true; done
  return 0
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# start_gateway BINARY: sets GW_PID, PORT, CONTROL_PORT.
start_gateway() {
  take_ports 3
  PORT=${PORTS[0]} METRICS_PORT=${PORTS[1]} CONTROL_PORT=${PORTS[2]}
  GW_CMD=("$1" --listen=127.0.0.1:$PORT --metrics_listen=127.0.0.1:$METRICS_PORT
    --control_listen=127.0.0.1:$CONTROL_PORT --drain_timeout=1s)
  "${GW_CMD[@]}" >>"$LOGS/gateway.log" 2>&1 &
  GW_PID=$!
  wait_port "$PORT" "$GW_PID" && wait_port "$CONTROL_PORT" "$GW_PID" || die "gateway did not start (see $LOGS/gateway.log)"
}

# run_case NAME BINARY CASE REP: one run, one line in raw.jsonl.
run_case() {
  local name=$1 bin=$2 case=$3 rep=$4
  local load1 rss_start rss_peak rss_end r bystander probe="null" tag="$name-$case-$rep"
  load1=$(cut -d' ' -f1 /proc/loadavg)
  start_gateway "$bin"
  IDLE_CMD=()
  if [[ $case == lists || $case == idle ]]; then
    IDLE_CMD=("$BENCH" --port="$PORT" --idle="$IDLE" --duration=600s)
    "${IDLE_CMD[@]}" >"$LOGS/idle-$tag.out" 2>&1 &
    IDLE_PID=$!
    for _ in $(seq 1200); do
      grep -q '^idle:' "$LOGS/idle-$tag.out" 2>/dev/null && break
      kill -0 "$IDLE_PID" 2>/dev/null || die "idle holder failed: $(tail -n3 "$LOGS/idle-$tag.out")"
      sleep 0.1
    done
  fi
  rss_start=$(rss_kb "$GW_PID")
  BYSTANDER_CMD=("$BENCH" --port="$PORT" --conns="$CONNS" --rate="$RATE" --size="$SIZE" --warmup="${WARMUP}s"
    --duration="${DURATION}s" --server_pid="$GW_PID" --label="$tag")
  "${BYSTANDER_CMD[@]}" >"$LOGS/bystander-$tag.out" 2>&1 &
  BYSTANDER_PID=$!
  # The abuse starts ABUSE_START s in (by default as the measured window does)
  # and outlasts the window.
  PROBE_CMD=()
  case $case in
    watchers) PROBE_CMD=("$PROBE" --target=127.0.0.1:$CONTROL_PORT --watchers="$WATCHERS" --state_changes) ;;
    lists) PROBE_CMD=("$PROBE" --target=127.0.0.1:$CONTROL_PORT --list_loops="$LIST_LOOPS" --page_size=10000) ;;
  esac
  if ((${#PROBE_CMD[@]})); then
    sleep "$ABUSE_START"
    PROBE_CMD+=(--hold="$((WARMUP - ABUSE_START + DURATION + 2))s" --label="$tag")
    "${PROBE_CMD[@]}" >"$LOGS/probe-$tag.out" 2>&1 &
    PROBE_PID=$!
  fi
  rss_peak=$rss_start
  while kill -0 "$BYSTANDER_PID" 2>/dev/null; do
    r=$(rss_kb "$GW_PID")
    ((r > rss_peak)) && rss_peak=$r
    sleep 0.25
  done
  wait "$BYSTANDER_PID" || true
  BYSTANDER_PID=""
  rss_end=$(rss_kb "$GW_PID")
  # The results are the last line of each tool that starts as its JSON does.
  local no_result='{"ok":false,"error":"no result"}'
  bystander=$(grep '^{"bench":' "$LOGS/bystander-$tag.out" | tail -n1 || true)
  bystander=$(json_or "$bystander" "$no_result")
  if [[ -n $PROBE_PID ]]; then
    stop_pid "$PROBE_PID" INT
    PROBE_PID=""
    probe=$(grep '^{"abuse":' "$LOGS/probe-$tag.out" | tail -n1 || true)
    probe=$(json_or "$probe" "$no_result")
  fi
  stop_pid "$IDLE_PID" INT
  IDLE_PID=""
  stop_pid "$GW_PID" TERM
  GW_PID=""
  json_obj env="$ABUSE_ENV" build="$name" binary="$bin" case="$case" rep:="$rep" load1_at_start:="$load1" \
    rss_start_kb:="$rss_start" rss_peak_kb:="$rss_peak" rss_end_kb:="$rss_end" gateway_cmd="${GW_CMD[*]}" \
    idle_cmd="${IDLE_CMD[*]}" bystander_cmd="${BYSTANDER_CMD[*]}" probe_cmd="${PROBE_CMD[*]}" \
    bystander:="$bystander" probe:="$probe" >>"$RAW"
  log "$tag: p99 $(json_p99 "$bystander") us, rss peak ${rss_peak} kB (start ${rss_start})"
}

if [[ $REPORT_ONLY != 1 ]]; then
  START=$(date +%s)
  for rep in $(seq "$REPS"); do
    for case in $CASES; do
      for spec in "$@"; do run_case "${spec%%=*}" "${spec#*=}" "$case" "$rep"; done
    done
  done
  log "runs done in $(($(date +%s) - START)) s"
fi

# --- The report ----------------------------------------------------------------
"$PY" - "$RAW" "$OUT" <<'EOF'
import json, os, statistics, sys, platform, subprocess
raw, out = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(raw) if l.strip()]
specs = " ".join(dict.fromkeys("%s=%s" % (r["build"], r["binary"]) for r in runs))
builds = []
for r in runs:
    if r["build"] not in builds: builds.append(r["build"])
cases = []
for r in runs:
    if r["case"] not in cases: cases.append(r["case"])
def ms(us): return us / 1000.0
def lat(r, k): return ms(r["bystander"].get("latency_us", {}).get(k, float("nan")))
def med(xs): return statistics.median(xs) if xs else float("nan")
L = ["# Control-plane abuse vs the data plane: bystander latency and gateway memory", ""]
L += ["Generated by `" + runs[0].get("env", "") + "bench/abuse.sh " + specs + "`.", ""]
title = {"baseline": "(a) baseline", "watchers": "(b) stalled watchers", "lists": "(c) snapshot loops + idle connections",
         "idle": "idle connections alone"}
L += ["## Summary (median over runs)", "",
      "| case | build | bystander p50 ms | p99 ms | p99.9 ms | max ms | gateway RSS start MB | peak MB | growth MB | abuse |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
def abuse(rs):
    p = [r["probe"] for r in rs if r["probe"]]
    if not p: return ""
    if p[0].get("watchers", 0):
        s = "open %s, refused %s of %d" % ("/".join(str(x.get("watchers_open")) for x in p),
                                           "/".join(str(x.get("watchers_refused")) for x in p), p[0]["watchers"])
        if any(x.get("watchers_pending") for x in p):
            s += ", unanswered " + "/".join(str(x.get("watchers_pending")) for x in p)
        return s
    if p[0].get("list_loops", 0):
        return "%.0f snapshots/s, %.0f ms each (median)" % (med([x["list_calls_per_s"] for x in p]),
                                                          med([x["list_ms"]["p50"] for x in p if x.get("list_ms")]))
    return ""
for c in cases:
    for b in builds:
        rs = [r for r in runs if r["case"] == c and r["build"] == b]
        if not rs: continue
        L.append("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %s |" % (
            title.get(c, c), b, med([lat(r, "p50") for r in rs]), med([lat(r, "p99") for r in rs]),
            med([lat(r, "p999") for r in rs]), med([lat(r, "max") for r in rs]),
            med([r["rss_start_kb"] / 1024 for r in rs]), med([r["rss_peak_kb"] / 1024 for r in rs]),
            med([(r["rss_peak_kb"] - r["rss_start_kb"]) / 1024 for r in rs]), abuse(rs)))
L += [""]
L += ["## Every run", "",
      "| case | build | run | load1 at start | requests | errors | p50 ms | p99 ms | p99.9 ms | max ms | RSS start MB | peak MB | end MB | gateway CPU % | abuse |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
for c in cases:
    for b in builds:
        for r in [r for r in runs if r["case"] == c and r["build"] == b]:
            by = r["bystander"]
            cpu = by.get("server_cpu_util")
            L.append("| %s | %s | %d | %.2f | %s | %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %s | %s |" % (
                c, b, r["rep"], r["load1_at_start"], by.get("requests", "-"), by.get("errors", {}).get("total", "-"),
                lat(r, "p50"), lat(r, "p99"), lat(r, "p999"), lat(r, "max"), r["rss_start_kb"] / 1024,
                r["rss_peak_kb"] / 1024, r["rss_end_kb"] / 1024, "-" if cpu is None else "%.0f" % (100 * cpu),
                abuse([r])))
L += [""]
p = [r["probe"] for r in runs if r["probe"] and r["probe"].get("refusal")]
if p: L += ["The refusal the capped gateway gives: `%s`." % p[0]["refusal"], ""]
L += ["## Commands", ""]
for c in cases:
    r = next(r for r in runs if r["case"] == c)
    L += ["**%s**" % title.get(c, c), "", "```sh", r["gateway_cmd"].replace(r["binary"], "$GATEWAY")]
    if r.get("idle_cmd"):
        L.append(r["idle_cmd"] + " &   # held idle, each proven with one request")
    L.append(r["bystander_cmd"].rsplit(" --server_pid", 1)[0] + "   # the bystander")
    if r["probe_cmd"]: L.append(r["probe_cmd"].rsplit(" --label", 1)[0] + "   # from the start of the measured window")
    L += ["```", ""]
L += ["Binaries: " + ", ".join("`%s` = `%s`" % (b, next(r["binary"] for r in runs if r["build"] == b)) for b in builds), ""]
try:
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
except Exception:
    cpu = "?"
L += ["Machine: %s, %d cores, kernel %s. Gateway, bystander and abuse share the cores (no pinning); "
      "the load average at each run's start is in the table." % (cpu, os.cpu_count(), platform.release()), ""]
notes = os.path.join(out, "notes.md")
if os.path.exists(notes): L += [open(notes).read()]
open(os.path.join(out, "report.md"), "w").write("\n".join(L) + "\n")
EOF
log "report: $OUT/report.md"
