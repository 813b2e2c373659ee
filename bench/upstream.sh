#!/usr/bin/env bash
# The proxy benchmark in one command: the gateway in upstream mode side by
# side with HAProxy and nginx in front of the same backend, and with no proxy.
#   bench/upstream.sh                 -> bench/results/upstream.md, upstream.json (about 6 minutes)
#   UP_REPEATS=1 bench/upstream.sh    one run per cell (about 2 minutes)
#
# Installs what it needs (deploy/setup.sh --bench: haproxy, nginx with
# libnginx-mod-stream, ...), builds the gateway and gateway-bench (Release),
# then, 64 B frames, for each cell runs a fresh backend and proxy and measures
#   direct    gateway-bench -> backend
#   gateway   gateway-bench -> gateway --upstream=backend -> backend
#   haproxy   gateway-bench -> HAProxy (mode tcp, one thread)  -> backend
#   nginx     gateway-bench -> nginx stream proxy_pass (one worker) -> backend
# The backend is the gateway binary in its default mode (it reverses each
# payload), one reactor. Proxy and backend share core 0; the load generator
# runs on core 1 (2 cores only). Cells: closed loop at UP_CONNS connections x
# UP_PIPELINES, and open loop at UP_RATE req/s over UP_RATE_CONNS connections.
# gateway-bench charges the proxy (--server_pid) and the backend
# (--backend_pid) separately over its measured window (utime+stime from
# /proc/PID/stat); `ss` counts the backend's established connections from
# the proxy, sampled through the run (all of them, and the busy ones, which
# leaves out a health check's connection). The report (bench/upstream_report.py)
# states the upstream issue's targets against the numbers.
#
# Environment (defaults in brackets):
#   UP_PROXIES ["direct gateway haproxy nginx"]
#   UP_CONNS ["100 1000"]  UP_PIPELINES ["1 16"]  UP_SIZE [64]
#   UP_RATE [50000]  UP_RATE_CONNS [1000]        the fixed-rate cell (0 = skip)
#   UP_DURATION [3]  UP_WARMUP [1]               seconds per cell
#   UP_REPEATS [3]                               runs per cell (the report takes medians)
#   UP_REACTORS [1]  UP_UPSTREAM_CONNECTIONS [1] the gateway proxy's --reactors, --upstream_connections
#   UP_OUT [bench/results]  UP_BUILD_DIR [build]
#   UP_PROXY_GW [UP_BUILD_DIR/gateway/gateway]  the binary run as the upstream-mode proxy
#   UP_NO_BUILD [0]                              1 = no set-up, use the binaries in UP_BUILD_DIR
#   UP_PORT [19000]                              first loopback port tried (HAProxy, nginx)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PROXIES=(${UP_PROXIES:-direct gateway haproxy nginx})
CONNS=(${UP_CONNS:-100 1000})
PIPELINES=(${UP_PIPELINES:-1 16})
SIZE=${UP_SIZE:-64}
RATE=${UP_RATE:-50000}
RATE_CONNS=${UP_RATE_CONNS:-1000}
DURATION=${UP_DURATION:-3}
WARMUP=${UP_WARMUP:-1}
REPEATS=${UP_REPEATS:-3}
REACTORS=${UP_REACTORS:-1}
UPSTREAM_CONNECTIONS=${UP_UPSTREAM_CONNECTIONS:-1}
OUT=${UP_OUT:-$ROOT/bench/results}
BUILD=${UP_BUILD_DIR:-$ROOT/build}
NEXT_PORT=${UP_PORT:-19000}
PY=/usr/bin/python3  # Debian's (a pyenv python3 may be first on PATH)

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "upstream: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

# 1000 client connections plus as many to the backend, on each side.
ulimit -n "$(ulimit -Hn)" || true
# A byte-pipe proxy holds two fds per client connection; HAProxy refuses to
# start if its maxconn needs more fds than the limit allows.
PROXY_MAXCONN=$((($(ulimit -n) - 100) / 2))
((PROXY_MAXCONN >= 2 * 1000)) || log "warning: fd limit $(ulimit -n): 1000-connection cells may fail"

# --- Install, build -------------------------------------------------------------
if [[ ${UP_NO_BUILD:-0} != 1 ]]; then
  deploy/setup.sh --bench
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  log "building gateway and gateway-bench (Release) in $BUILD"
  cmake --build "$BUILD" -j"$(nproc)" --target gateway gateway-bench >/dev/null
fi
GW=$BUILD/gateway/gateway
BENCH=$BUILD/bench/gateway-bench
PROXY_GW=${UP_PROXY_GW:-$GW}
[[ -x $GW && -x $BENCH && -x $PROXY_GW ]] || die "no $GW, $BENCH or $PROXY_GW"
HAPROXY=$(command -v haproxy || true)
NGINX=$(command -v nginx || true)
NGINX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so
pin_cores

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gateway-upstream.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$LOGS"
CELLS=$WORK/cells.jsonl
: >"$CELLS"

BACKEND_PID="" PROXY_PID="" NGINX_MASTER="" SAMPLER_PID=""
cleanup() {
  local p
  for p in $SAMPLER_PID $PROXY_PID $NGINX_MASTER $BACKEND_PID; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  log "logs kept in $LOGS"
  return 0
}
trap cleanup EXIT

# --- Servers ----------------------------------------------------------------------
STARTS=0
# start_gateway_on_core0 NAME BINARY FLAGS...: a gateway on a kernel-chosen port, its
# metrics and control plane on (loopback), as shipped. Sets STARTED_PID and
# STARTED_PORT; false (START_ERROR set) if it does not come up.
start_gateway_on_core0() {
  local name=$1 binary=$2 log_file ready
  shift 2
  STARTS=$((STARTS + 1))
  log_file=$LOGS/$name-$STARTS.log  # a fresh file: an old ready line must not count
  "${SRV_PIN[@]}" "$binary" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --control_listen=127.0.0.1:0 \
    --drain_timeout=1s "$@" >"$log_file" 2>&1 &
  STARTED_PID=$!
  if ! ready=$(wait_gateway_ready "$log_file" "$STARTED_PID"); then
    START_ERROR=$(grep -m1 '^gateway: ' "$log_file" || tail -n1 "$log_file")
    stop_pid "$STARTED_PID" KILL
    STARTED_PID=""
    return 1
  fi
  STARTED_PORT=$(jget data_port "$ready")
}

start_backend() {
  start_gateway_on_core0 backend "$GW" --reactors=1 || die "the backend did not start: $START_ERROR"
  BACKEND_PID=$STARTED_PID BACKEND_PORT=$STARTED_PORT
}

# start_proxy KIND: sets PROXY_PID (the process to charge) and TARGET_PORT;
# false (START_ERROR set) if the proxy cannot run here.
start_proxy() {
  local kind=$1 cfg
  START_ERROR=""
  case $kind in
    direct)
      PROXY_PID="" TARGET_PORT=$BACKEND_PORT
      ;;
    gateway)
      start_gateway_on_core0 gateway "$PROXY_GW" --reactors="$REACTORS" --upstream=127.0.0.1:$BACKEND_PORT \
        --upstream_connections="$UPSTREAM_CONNECTIONS" || return 1
      PROXY_PID=$STARTED_PID TARGET_PORT=$STARTED_PORT
      ;;
    haproxy)
      [[ -n $HAPROXY ]] || { START_ERROR="no haproxy (deploy/setup.sh --bench)"; return 1; }
      take_ports 1
      TARGET_PORT=${PORTS[0]}
      cfg=$WORK/haproxy.cfg
      # One thread, as the gateway's one reactor; TCP mode is a byte pipe per
      # client connection (HAProxy sets TCP_NODELAY itself).
      cat >"$cfg" <<EOF
global
  nbthread 1
  maxconn $PROXY_MAXCONN
defaults
  mode tcp
  maxconn $PROXY_MAXCONN
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$TARGET_PORT
  default_backend be
backend be
  server backend 127.0.0.1:$BACKEND_PORT
EOF
      "${SRV_PIN[@]}" "$HAPROXY" -db -f "$cfg" >>"$LOGS/haproxy.log" 2>&1 &
      PROXY_PID=$!
      wait_port "$TARGET_PORT" "$PROXY_PID" || { START_ERROR="haproxy did not start (see $LOGS/haproxy.log)"; return 1; }
      ;;
    nginx)
      [[ -n $NGINX && -f $NGINX_STREAM ]] || { START_ERROR="no nginx stream module (deploy/setup.sh --bench)"; return 1; }
      take_ports 1
      TARGET_PORT=${PORTS[0]}
      mkdir -p "$WORK/nginx"
      cfg=$WORK/nginx/nginx.conf
      # One worker process (charged; the master only supervises), as
      # Debian ships the stream module: loaded dynamically.
      cat >"$cfg" <<EOF
load_module $NGINX_STREAM;
daemon off;
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
pid $WORK/nginx/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections $((2 * PROXY_MAXCONN)); }
stream {
  upstream be { server 127.0.0.1:$BACKEND_PORT; }
  server { listen 127.0.0.1:$TARGET_PORT; proxy_pass be; }
}
EOF
      "${SRV_PIN[@]}" "$NGINX" -e "$LOGS/nginx-error.log" -p "$WORK/nginx" -c "$cfg" >>"$LOGS/nginx.log" 2>&1 &
      NGINX_MASTER=$!
      wait_port "$TARGET_PORT" "$NGINX_MASTER" || { START_ERROR="nginx did not start (see $LOGS/nginx-error.log)"; return 1; }
      local i
      for i in $(seq 50); do
        PROXY_PID=$(pgrep -P "$NGINX_MASTER" | head -n1 || true)
        [[ -n $PROXY_PID ]] && break
        sleep 0.1
      done
      [[ -n $PROXY_PID ]] || { START_ERROR="no nginx worker process"; return 1; }
      ;;
    *) die "unknown proxy $kind" ;;
  esac
}

stop_servers() {
  if [[ -n $NGINX_MASTER ]]; then
    stop_pid "$NGINX_MASTER" TERM  # the master takes its worker down
    NGINX_MASTER=""
  elif [[ -n $PROXY_PID ]]; then
    stop_pid "$PROXY_PID" TERM
  fi
  PROXY_PID=""
  stop_pid "$BACKEND_PID" TERM
  BACKEND_PID=""
}

# sample_upstreams OUT: every 0.2 s, the backend's established connections
# opened by the proxy (or, direct, by the clients), as "ALL BUSY" lines. BUSY
# counts those that have sent more data segments than 2 a second since the
# sampling started (+5): the ones carrying the traffic (each client sends 10
# or more requests a second in every cell), not a health check's connection
# (one probe a second by default).
sample_upstreams() {
  local start=$EPOCHREALTIME
  while :; do
    ss -Htni state established "( dport = :$BACKEND_PORT )" 2>/dev/null |
      awk -v min="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print int(2 * (b - a)) + 5 }')" \
        'match($0, /data_segs_out:[0-9]+/) {
          all++; if (substr($0, RSTART + 14, RLENGTH - 14) + 0 >= min) busy++ }
        END { print all + 0, busy + 0 }' >>"$1"
    sleep 0.2
  done
}

# --- One cell -------------------------------------------------------------------
# run_cell PROXY CONNS PIPELINE RATE REP: one line in cells.jsonl.
run_cell() {
  local proxy=$1 conns=$2 pipeline=$3 rate=$4 rep=$5
  local tag="$proxy:c$conns:p$pipeline${rate:+:r$rate}:$rep" out samples json rc=0 limit
  start_backend
  if ! start_proxy "$proxy"; then
    log "  $tag: not run: $START_ERROR"
    json_obj bench=skipped proxy="$proxy" conns:="$conns" pipeline:="$pipeline" rate:="${rate:-0}" \
      repeat:="$rep" ok:=false error="$START_ERROR" >>"$CELLS"
    stop_servers
    return 0
  fi
  samples=$WORK/upstreams-$tag.txt
  : >"$samples"
  sample_upstreams "$samples" &
  SAMPLER_PID=$!
  local charge=(--server_pid="${PROXY_PID:-$BACKEND_PID}")
  [[ -n $PROXY_PID ]] && charge+=(--backend_pid="$BACKEND_PID")
  local mode=()
  [[ -n $rate ]] && mode=(--rate="$rate")
  limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(w + d + 120) }')
  out=$("${CLI_PIN[@]}" timeout -s INT -k 10 "$limit" "$BENCH" --port="$TARGET_PORT" --conns="$conns" \
    --pipeline="$pipeline" --size="$SIZE" --warmup="${WARMUP}s" --duration="${DURATION}s" --accept_error_frames \
    --label="$tag" "${charge[@]}" "${mode[@]}" 2>&1) || rc=$?
  stop_pid "$SAMPLER_PID" TERM
  SAMPLER_PID=""
  printf '== %s\n%s\n' "$tag" "$out" >>"$LOGS/bench.log"
  json=$(grep '^{"bench":' <<<"$out" | tail -n1 || true)
  json=$(json_set "$json" 2>/dev/null) ||
    json=$(json_obj bench=gateway-bench label="$tag" ok:=false error="exit status $rc, no result")
  local alive=true
  kill -0 "$BACKEND_PID" 2>/dev/null || alive=false
  [[ -z $PROXY_PID ]] || kill -0 "$PROXY_PID" 2>/dev/null || alive=false
  json=$(json_set "$json" proxy="$proxy" cell_conns:="$conns" cell_pipeline:="$pipeline" cell_rate:="${rate:-0}" \
    repeat:="$rep" servers_alive:="$alive" \
    upstream_conns_samples:="[$(awk '{ print $1 }' "$samples" | paste -sd,)]" \
    upstream_busy_samples:="[$(awk '{ print $2 }' "$samples" | paste -sd,)]")
  stop_servers
  printf '%s\n' "$json" >>"$CELLS"
  log "  $tag: $(summary "$json")"
}

summary() {  # one line for the terminal, from a cell's JSON
  "$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
s = j.get("upstream_busy_samples") or [0]
f = lambda k: "-" if j.get(k) is None else "%.2f" % j[k]
print("%9s req/s  p50 %7s us  p99 %8s us  proxy %s us/req  backend %s us/req  upstream conns %d busy  %s" % (
    "%.0f" % j.get("rps", 0), (j.get("latency_us") or {}).get("p50", "-"), (j.get("latency_us") or {}).get("p99", "-"),
    f("server_cpu_us_per_req") if j.get("proxy") != "direct" else "-",
    f("backend_cpu_us_per_req") if j.get("proxy") != "direct" else f("server_cpu_us_per_req"),
    max(s), "ok" if j.get("ok") else "FAILED %s" % j.get("error", "")), end="")' "$1"
}

# --- Run --------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
cells=$(((${#CONNS[@]} * ${#PIPELINES[@]} + (RATE > 0 ? 1 : 0)) * ${#PROXIES[@]} * REPEATS))
log "$cells cells of ${DURATION}s after ${WARMUP}s warmup; about $(awk -v c="$cells" -v w="$WARMUP" -v d="$DURATION" \
  'BEGIN { printf "%.0f", c * (w + d + 2.5) / 60 + 0.5 }') minutes (load average $LOAD_START)"
for rep in $(seq "$REPEATS"); do
  # Proxies interleaved within each cell, so drifting machine load hits all alike.
  for conns in "${CONNS[@]}"; do
    for pipeline in "${PIPELINES[@]}"; do
      log "$SIZE B x $conns conns x p$pipeline (run $rep)"
      for proxy in "${PROXIES[@]}"; do run_cell "$proxy" "$conns" "$pipeline" "" "$rep"; done
    done
  done
  if ((RATE > 0)); then
    log "$SIZE B at $RATE req/s over $RATE_CONNS conns (run $rep)"
    for proxy in "${PROXIES[@]}"; do run_cell "$proxy" "$RATE_CONNS" 1 "$RATE" "$rep"; done
  fi
done

# --- Report -----------------------------------------------------------------------
"$PY" - "$WORK/meta.json" <<PY
import json, os, subprocess, sys
def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
json.dump({
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"), "commit": sh("git rev-parse --short HEAD"),
    "dirty": sh("git status --porcelain -- gateway server bench :!bench/results") != "",
    "kernel": os.uname().release, "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip(),
    "cpus": os.cpu_count(), "load_start": "$LOAD_START", "load_end": sh("cut -d' ' -f1-3 /proc/loadavg"),
    "pinned": ${#SRV_PIN[@]} > 0, "size": $SIZE, "duration_s": $DURATION, "warmup_s": $WARMUP,
    "repeats": $REPEATS, "reactors": $REACTORS, "upstream_connections": $UPSTREAM_CONNECTIONS,
    "rate": $RATE, "rate_conns": $RATE_CONNS, "proxies": "${PROXIES[*]}",
    "haproxy": sh("haproxy -v 2>/dev/null | head -n1"), "nginx": sh("nginx -v 2>&1"),
    "gateway": sh("'$GW' --version 2>/dev/null"), "elapsed_s": $(( $(date +%s) - START )),
}, open(sys.argv[1], "w"))
PY
"$PY" bench/upstream_report.py --cells "$CELLS" --meta "$WORK/meta.json" --out "$OUT"
log "wrote $OUT/upstream.md and $OUT/upstream.json"
