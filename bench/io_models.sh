#!/usr/bin/env bash
# The IO-model lab in one command (a benchmark, not a test):
#   bench/io_models.sh                         full run -> bench/results/io_models.{csv,md}, io_models_cpu_p{1,16}.png
#   IOM_DURATION=2 IOM_IDLE="0 100" bench/io_models.sh    a quick look
#
# For each IO model (select, poll, epoll level- and edge-triggered, io_uring,
# signal, blocking; a model this build or host refuses is skipped with the
# gateway's own reason), the gateway with one reactor pinned to core 0 and
# gateway-bench pinned to core 1, over loopback: IOM_ACTIVE (100) active
# connections of IOM_SIZE (64) byte frames at pipeline 1 and 16, while 0, 100,
# 1,000 and 10,000 idle connections sit open. Every point starts a fresh
# gateway, opens and proves the idle connections (gateway-bench --idle, held
# by a second gateway-bench), then runs the active load. Per point:
#   server CPU per request   utime+stime of the gateway over the measured
#                            window (/proc/PID/stat) / requests completed
#   req/s, p50, p99          gateway-bench (every response checked)
#   bytes per idle conn      (after a 1 s burst of active traffic, so the
#                            reactor's one-off allocations are resident) VmRSS
#                            (/proc/PID/status) after opening the idle
#                            connections minus before, / their number
#   held                     idle + active connections proven open at once
# select cannot watch fds >= FD_SETSIZE (1024): it gets one more point at the
# most idle connections that fit (1024 - active - SELECT_OVERHEAD); points needing more are
# reported "n/a (FD_SETSIZE)", not attempted.
# Then the live switch: a gateway on epoll (edge) with IOM_SWITCH_CONNS
# (10,000) idle connections is switched with SetIoModel (buf curl or grpcurl)
# to every live-switchable model and back; the duration is the gateway's own
# (IoModelStatus.last_switch_duration, else the metric
# gateway_io_model_switch_duration_seconds).
#
# Environment (defaults in brackets):
#   IOM_MODELS ["select poll epoll-lt epoll-et io_uring signal blocking"]
#   IOM_IDLE ["0 100 1000 10000"]     idle connections per point
#   IOM_PIPELINES ["1 16"]
#   IOM_ACTIVE [100]  IOM_SIZE [64]
#   IOM_DURATION [5]                  seconds measured per point
#   IOM_WARMUP [1]                    seconds of unmeasured traffic first
#   IOM_REPEATS [1]                   runs per point (the report takes medians; 3 or more is better)
#   IOM_SWITCH_CONNS [10000]          connections open during the switch timing (0 = skip it)
#   IOM_OUT [bench/results]           where the CSV, report and plots go
#   IOM_BUILD_DIR [build]             CMake build directory (configured Release here)
#   IOM_NO_BUILD [0]                  1 = use the binaries already in IOM_BUILD_DIR
#   IOM_PORT [18000]                  first loopback port tried
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODELS=(${IOM_MODELS:-select poll epoll-lt epoll-et io_uring signal blocking})
IDLE=(${IOM_IDLE:-0 100 1000 10000})
PIPELINES=(${IOM_PIPELINES:-1 16})
ACTIVE=${IOM_ACTIVE:-100}
SIZE=${IOM_SIZE:-64}
DURATION=${IOM_DURATION:-5}
WARMUP=${IOM_WARMUP:-1}
REPEATS=${IOM_REPEATS:-1}
SWITCH_CONNS=${IOM_SWITCH_CONNS:-10000}
OUT=${IOM_OUT:-$ROOT/bench/results}
BUILD=${IOM_BUILD_DIR:-$ROOT/build}
NEXT_PORT=${IOM_PORT:-18000}
PY=/usr/bin/python3  # Debian's (a pyenv python3 may be first on PATH)
FD_SETSIZE=1024
# fds the gateway holds besides connections (listener, epoll/ring, eventfds,
# control plane, metrics, stdio): a select point needs idle + active + this.
SELECT_OVERHEAD=64

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "io_models: $*"; exit 1; }

# 10k idle + 100 active connections on each side, plus the gateway's own fds.
ulimit -n "$(ulimit -Hn)" || true
(($(ulimit -n) >= 10400)) || log "warning: fd limit $(ulimit -n): the 10000-idle points will fail"

# --- Build -------------------------------------------------------------------
if [[ ${IOM_NO_BUILD:-0} != 1 ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  log "building gateway and gateway-bench (Release) in $BUILD"
  cmake --build "$BUILD" -j"$(nproc)" --target gateway gateway-bench >/dev/null
fi
GW=$BUILD/gateway/gateway
BENCH=$BUILD/bench/gateway-bench
[[ -x $GW && -x $BENCH ]] || die "no $GW or $BENCH"
command -v gnuplot >/dev/null || log "warning: no gnuplot (deploy/setup.sh --bench): no plots"

SRV_PIN=() CLI_PIN=()
if (($(nproc) >= 2)); then
  SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 1)
else
  log "warning: fewer than 2 CPUs, nothing is pinned"
fi

# A gRPC client for SetIoModel: grpcurl if installed, else buf from .deps
# (deploy/setup.sh --test installs it).
RPC=""
if command -v grpcurl >/dev/null; then
  RPC=grpcurl
elif [[ -x $ROOT/.deps/node/node_modules/.bin/buf ]]; then
  RPC=$ROOT/.deps/node/node_modules/.bin/buf
fi

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gateway-io-models.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$LOGS"
CSV=$OUT/io_models.csv
SWITCHES=$WORK/switches.jsonl
NOTES=$WORK/notes.txt
: >"$SWITCHES"
: >"$NOTES"
echo "model,idle,pipeline,repeat,status,rps,cpu_us_per_req,p50_us,p99_us,idle_established,active_established,held,rss_before,rss_after,bytes_per_idle,errors,note" >"$CSV"

SERVER_PID="" HOLDER_PID=""
cleanup() {
  [[ -n $HOLDER_PID ]] && kill -KILL "$HOLDER_PID" 2>/dev/null
  [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null
  log "logs kept in $LOGS"
  return 0
}
trap cleanup EXIT

# --- Gateway -----------------------------------------------------------------
model_flags() {  # model_flags MODEL: the gateway flags selecting it
  case $1 in
    epoll-lt) echo "--io_model=epoll --trigger_mode=level" ;;
    epoll-et) echo "--io_model=epoll --trigger_mode=edge" ;;
    *) echo "--io_model=$1" ;;
  esac
}

# start_gateway MODEL: sets SERVER_PID, PORT, CONTROL_PORT, METRICS_PORT;
# returns 1 (START_ERROR set) if the gateway refuses the model or dies.
start_gateway() {
  STARTS=$((${STARTS:-0} + 1))
  # A fresh file per start: an old one's ready line must not be mistaken for this one's.
  local model=$1 log_file=$LOGS/gateway-$1-$STARTS.log i
  START_ERROR=""
  PORT=$NEXT_PORT METRICS_PORT=$((NEXT_PORT + 1)) CONTROL_PORT=$((NEXT_PORT + 2))
  NEXT_PORT=$((NEXT_PORT + 3))
  # shellcheck disable=SC2046  # model_flags is a list of flags
  "${SRV_PIN[@]}" "$GW" --listen=127.0.0.1:$PORT --reactors=1 --drain_timeout=1s \
    --control_listen=127.0.0.1:$CONTROL_PORT --metrics_listen=127.0.0.1:$METRICS_PORT \
    $(model_flags "$model") >"$log_file" 2>&1 &
  SERVER_PID=$!
  for i in $(seq 200); do
    if grep -qs '^gateway: ready ' "$log_file"; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      START_ERROR=$(grep -m1 '^gateway: ' "$log_file" || tail -n1 "$log_file")
      # A port taken by someone else: try the next ones.
      if [[ $START_ERROR == *"in use"* ]]; then start_gateway "$model"; return; fi
      return 1
    fi
    sleep 0.05
  done
  START_ERROR="no ready line within 10 s"
  return 1
}

stop_gateway() {
  [[ -n $SERVER_PID ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

vm_rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# open_idle N OUT: gateway-bench holding N proven connections in the
# background (HOLDER_PID); returns once all are up (1 if it gave up).
open_idle() {
  local n=$1 out=$2 i
  "${CLI_PIN[@]}" "$BENCH" --port="$PORT" --idle="$n" --duration=3600s --label=idle >"$out" 2>&1 &
  HOLDER_PID=$!
  for i in $(seq 1200); do  # 120 s
    grep -q '^idle:' "$out" 2>/dev/null && return 0
    kill -0 "$HOLDER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

close_idle() {
  [[ -n $HOLDER_PID ]] || return 0
  kill -INT "$HOLDER_PID" 2>/dev/null || true
  wait "$HOLDER_PID" 2>/dev/null || true
  HOLDER_PID=""
}

# jfield JSON_LINE KEY[.SUB]: one field of gateway-bench's result line ("" if none).
jfield() {
  "$PY" -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1" "$2" 2>/dev/null || true
}

row() {  # row FIELDS...: one CSV line (fields without commas)
  local IFS=,
  echo "$*" >>"$CSV"
}

# --- One point: model x idle (both pipelines), one repeat ----------------------
run_point() {
  local model=$1 idle=$2 rep=$3 p
  if [[ $model == select ]] && ((idle + ACTIVE + SELECT_OVERHEAD > FD_SETSIZE)); then
    for p in "${PIPELINES[@]}"; do
      row "$model" "$idle" "$p" "$rep" "n/a" "" "" "" "" "" "" "" "" "" "" "" "n/a (FD_SETSIZE)"
    done
    return 0
  fi
  if ! start_gateway "$model"; then
    for p in "${PIPELINES[@]}"; do
      row "$model" "$idle" "$p" "$rep" "failed" "" "" "" "" "" "" "" "" "" "" "" "gateway did not start"
    done
    return 0
  fi
  local rss_before rss_after idle_est=0 per_idle=""
  # A moment of active traffic first, so what a reactor allocates once (its
  # read scratch, buffer pool, io_uring's buffer ring, malloc's arenas) is
  # resident before the baseline: the idle figure is then the marginal cost
  # of a connection, not the reactor's fixed cost spread over the first few.
  # Four connections: few enough that the idle ones cannot reuse their memory.
  "${CLI_PIN[@]}" "$BENCH" --port="$PORT" --conns=4 --pipeline=16 --size="$SIZE" \
    --duration=1s --warmup=0s --label="$model:prime" >"$LOGS/prime-$model-$idle-$rep.out" 2>&1 || true
  rss_before=$(vm_rss "$SERVER_PID")
  if ((idle > 0)); then
    local idle_out=$LOGS/idle-$model-$idle-$rep.out
    if ! open_idle "$idle" "$idle_out"; then
      log "  $model idle=$idle: could not open the idle connections (see $idle_out)"
    fi
    idle_est=$(sed -n 's/^idle: \([0-9]*\) of .*/\1/p' "$idle_out" | head -n1)
    idle_est=${idle_est:-0}
  fi
  rss_after=$(vm_rss "$SERVER_PID")
  if ((idle_est > 0)); then
    per_idle=$("$PY" -c "print(round(($rss_after - $rss_before) / $idle_est, 1))")
  fi
  for p in "${PIPELINES[@]}"; do
    local out=$LOGS/active-$model-$idle-p$p-$rep.out json status=ok note=""
    "${CLI_PIN[@]}" "$BENCH" --port="$PORT" --conns="$ACTIVE" --pipeline="$p" --size="$SIZE" \
      --duration="${DURATION}s" --warmup="${WARMUP}s" --server_pid="$SERVER_PID" \
      --label="$model:idle=$idle:p$p" >"$out" 2>&1 || status=failed
    json=$(grep '^{"bench":' "$out" | tail -n1 || true)
    if [[ -z $json ]]; then
      status=failed note="no result line (see logs)"
      row "$model" "$idle" "$p" "$rep" "$status" "" "" "" "" "$idle_est" "" "" "$rss_before" "$rss_after" "$per_idle" "" "$note"
      continue
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { status=failed note="gateway died"; }
    local est errors
    est=$(jfield "$json" established)
    errors=$(jfield "$json" errors.total)
    ((idle_est == idle)) || note="only $idle_est of $idle idle connections opened"
    row "$model" "$idle" "$p" "$rep" "$status" "$(jfield "$json" rps)" "$(jfield "$json" server_cpu_us_per_req)" \
      "$(jfield "$json" latency_us.p50)" "$(jfield "$json" latency_us.p99)" "$idle_est" "$est" \
      "$((idle_est + ${est:-0}))" "$rss_before" "$rss_after" "$per_idle" "$errors" "$note"
    log "  $model idle=$idle p$p #$rep: $(jfield "$json" rps) req/s, $(jfield "$json" server_cpu_us_per_req) us CPU/req," \
      "p99 $(jfield "$json" latency_us.p99) us, ${per_idle:-?} B/idle conn${note:+ ($note)}"
  done
  close_idle
  stop_gateway
}

# --- The live switch at SWITCH_CONNS connections --------------------------------
# set_io_model MODEL_ENUM: prints the reply (JSON) or the error; status of the client.
set_io_model() {
  local body="{\"model\":\"$1\"}"
  if [[ $RPC == grpcurl ]]; then
    timeout 120 grpcurl -plaintext -max-time 110 -d "$body" "127.0.0.1:$CONTROL_PORT" gateway.v1.GatewayControl/SetIoModel 2>&1
  else
    timeout 120 "$RPC" curl --protocol grpc --http2-prior-knowledge --emit-defaults --timeout 110s -d "$body" \
      "http://127.0.0.1:$CONTROL_PORT/gateway.v1.GatewayControl/SetIoModel" 2>&1
  fi
}

metric_value() {  # metric_value NAME: the first sample's value from /metrics ("" if none)
  curl -fsS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 { print $2; exit }'
}

run_switches() {
  ((SWITCH_CONNS > 0)) || return 0
  if [[ -z $RPC ]]; then
    echo "live switch: not measured (no grpcurl, and no buf in .deps: deploy/setup.sh --test)" >>"$NOTES"
    return 0
  fi
  start_gateway epoll-et || { echo "live switch: the gateway did not start: $START_ERROR" >>"$NOTES"; return 0; }
  local idle_out=$LOGS/switch-idle.out est
  open_idle "$SWITCH_CONNS" "$idle_out" || log "switch: could not open $SWITCH_CONNS connections"
  est=$(sed -n 's/^idle: \([0-9]*\) of .*/\1/p' "$idle_out" | head -n1)
  log "live switch with ${est:-0} connections open ($RPC)"
  local from=IO_MODEL_EPOLL target reply rc t0 t1
  # Every switchable model, each entered and left; select is refused with
  # fds >= 1024 open. A switch to the current model is a no-op, never timed.
  for target in IO_MODEL_POLL IO_MODEL_IO_URING IO_MODEL_EPOLL IO_MODEL_SELECT IO_MODEL_IO_URING IO_MODEL_POLL \
    IO_MODEL_EPOLL; do
    [[ $target == "$from" ]] && continue
    t0=$(date +%s%N)
    rc=0
    reply=$(set_io_model "$target") || rc=$?
    t1=$(date +%s%N)
    "$PY" - "$from" "$target" "$rc" "$reply" "$(( (t1 - t0) / 1000 ))" "${est:-0}" \
      "$(metric_value gateway_io_model_switch_duration_seconds)" >>"$SWITCHES" <<'PY'
import json, sys
src, dst, rc, reply, wall_us, conns, metric = sys.argv[1:8]
rec = {"from": src, "to": dst, "ok": rc == "0", "client_wall_ms": int(wall_us) / 1000, "connections": int(conns)}
try:
    body = json.loads(reply)
except ValueError:
    body = None
if rc == "0" and isinstance(body, dict):
    d = body.get("lastSwitchDuration") or body.get("last_switch_duration")
    if isinstance(d, str) and d.endswith("s"):
        rec["duration_ms"] = float(d[:-1]) * 1000
        rec["source"] = "IoModelStatus.last_switch_duration"
    elif metric:
        rec["duration_ms"] = float(metric) * 1000
        rec["source"] = "gateway_io_model_switch_duration_seconds"
    rec["model"] = body.get("model")
else:
    rec["error"] = " ".join(reply.split())[:300]
print(json.dumps(rec))
PY
    log "  $from -> $target: $(tail -n1 "$SWITCHES")"
    [[ $rc == 0 ]] && from=$target
  done
  close_idle
  stop_gateway
}

# --- Run -----------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
RUN_MODELS=()
for model in "${MODELS[@]}"; do
  if ! start_gateway "$model"; then
    log "skipping $model: $START_ERROR"
    echo "$model: skipped: ${START_ERROR#gateway: }" >>"$NOTES"
    continue
  fi
  stop_gateway
  RUN_MODELS+=("$model")
  log "model $model"
  points=("${IDLE[@]}")
  # select runs "up to its limit": one more point, as many idle connections
  # as FD_SETSIZE leaves room for, when the list goes past it.
  if [[ $model == select ]]; then
    at_limit=$((FD_SETSIZE - ACTIVE - SELECT_OVERHEAD))
    for idle in "${IDLE[@]}"; do
      if ((idle > at_limit)); then points+=("$at_limit"); break; fi
    done
  fi
  for idle in "${points[@]}"; do
    for rep in $(seq "$REPEATS"); do
      run_point "$model" "$idle" "$rep"
    done
  done
done
run_switches

# --- Report --------------------------------------------------------------------
"$PY" - "$WORK/meta.json" <<PY
import json, os, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
json.dump({
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"), "commit": sh("git rev-parse --short HEAD"),
    "dirty": sh("git status --porcelain -- gateway control metrics server bench :!bench/results") != "",
    "kernel": os.uname().release, "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"),
    "cpus": os.cpu_count(), "load_start": "$LOAD_START", "load_end": sh("cut -d' ' -f1-3 /proc/loadavg"),
    "pinned": ${#SRV_PIN[@]} > 0, "duration_s": $DURATION, "warmup_s": $WARMUP, "repeats": $REPEATS,
    "active": $ACTIVE, "size": $SIZE, "idle": "${IDLE[*]}", "pipelines": "${PIPELINES[*]}",
    "models": "${MODELS[*]}", "run_models": "${RUN_MODELS[*]}", "switch_conns": $SWITCH_CONNS,
    "elapsed_s": $(( $(date +%s) - START )),
}, open(sys.argv[1], "w"))
PY
"$PY" bench/io_models_report.py --csv "$CSV" --switches "$SWITCHES" --notes "$NOTES" --meta "$WORK/meta.json" \
  --out "$OUT" --gnuplot "$(command -v gnuplot || true)"
log "wrote $CSV, $OUT/io_models.md and the plots"
