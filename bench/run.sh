#!/usr/bin/env bash
# The benchmark report in one command, from a clean clone:
#   bench/run.sh                 full grid (~22 minutes) -> bench/results/
#   BENCH_QUICK=1 bench/run.sh   smoke test: 2 sizes x conns 1,100 (~1.5 minutes) -> bench/results/tmp/quick/
#
# Installs what it needs (deploy/setup.sh --bench), builds the
# gateway, gateway-bench and control_probe (Release) and the reference servers from
# ../shared/baselines (copied into the build directory; their code is never
# committed here), then measures, with each server pinned to core 0 and the
# load generator to core 1:
#   grid     every server x payload size x connections x pipeline depth
#   idle     server RSS growth per idle connection
#   rate     p99 at a fixed request rate (open loop)
#   metrics  the gateway with metrics off / on / on without latency timing
#   control  ListConnections snapshot and SetTriggerMode switch latency at 10k connections
# and writes raw.jsonl, meta.json, report.md and PNG plots to the output folder.
#
# Environment (defaults in brackets; quick-mode defaults in braces):
#   BENCH_DURATION [3] {1}   seconds measured per cell
#   BENCH_WARMUP [1] {0.3}   seconds of unmeasured traffic before each cell
#   BENCH_SERVERS ["gateway-edge gateway-level epoll_et libevent_srv nbnet.py"]
#   BENCH_SIZES ["16 64 1024 16384 65536"] {"64 65536"}
#   BENCH_CONNS ["1 10 100 1000 10000"] {"1 100"}
#   BENCH_PIPELINES ["1 16"]
#   BENCH_IDLE_CONNS [10000] {1000}   connections for the idle-memory and control-plane runs
#   BENCH_RATE [50000] {20000}        requests/s of the fixed-rate p99 cell
#   BENCH_RATE_CONNS [1000] {100}     connections of the fixed-rate p99 cell
#   BENCH_COST_ROUNDS [2] {1}         alternating rounds of the metrics on/off cells
#   BENCH_OUT [bench/results] {bench/results/tmp/quick}
#   BENCH_BUILD_DIR [build]           CMake build directory (configured Release)
#   BENCH_BASELINES [../shared/baselines]
#   BENCH_PORT [17000]                first of the loopback ports used
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${BENCH_QUICK:-0}
q() { if [[ $QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi; }
DURATION=${BENCH_DURATION:-$(q 3 1)}
WARMUP=${BENCH_WARMUP:-$(q 1 0.3)}
SERVERS=(${BENCH_SERVERS:-gateway-edge gateway-level epoll_et libevent_srv nbnet.py})
SIZES=(${BENCH_SIZES:-$(q "16 64 1024 16384 65536" "64 65536")})
CONNS=(${BENCH_CONNS:-$(q "1 10 100 1000 10000" "1 100")})
PIPELINES=(${BENCH_PIPELINES:-1 16})
IDLE_CONNS=${BENCH_IDLE_CONNS:-$(q 10000 1000)}
RATE=${BENCH_RATE:-$(q 50000 20000)}
RATE_CONNS=${BENCH_RATE_CONNS:-$(q 1000 100)}
COST_ROUNDS=${BENCH_COST_ROUNDS:-$(q 2 1)}
OUT=${BENCH_OUT:-$(q "$ROOT/bench/results" "$ROOT/bench/results/tmp/quick")}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build}
BASELINES=${BENCH_BASELINES:-$ROOT/../shared/baselines}
NEXT_PORT=${BENCH_PORT:-17000}
PY=/usr/bin/python3  # Debian's, for nbnet.py and the report (a pyenv python3 may be first on PATH)

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "bench: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

# --- 1. Install, build -------------------------------------------------------
install_packages() { deploy/setup.sh --bench; }

build_all() {
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGATEWAY_SANITIZE=OFF -DGATEWAY_TSAN=OFF >/dev/null
  local targets=(gateway gateway-bench control_probe)
  log "building ${targets[*]} (Release) in $BUILD"
  cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >/dev/null
  GW=$BUILD/gateway/gateway
  BENCH=$BUILD/bench/gateway-bench
  PROBE=$BUILD/bench/control_probe
  [[ -d $BASELINES ]] || die "reference servers not found at $BASELINES"
  BB=$BUILD/bench-baselines
  rm -rf "$BB" && mkdir -p "$BB"
  cp "$BASELINES"/Makefile "$BASELINES"/*.c "$BASELINES"/*.py "$BB"/
  chmod -R u+w "$BB"
  log "building the reference servers in $BB"
  make -s -C "$BB" >/dev/null
}

install_packages
build_all
mkdir -p "$OUT" "$OUT/tmp"
LOGS=$OUT/tmp/logs
rm -rf "$LOGS" && mkdir -p "$LOGS"
RAW=$OUT/raw.jsonl
: >"$RAW"
rm -f "$OUT"/*.png

# --- 2. Machine probes ---------------------------------------------------------
pin_cores
NOTES=()
# Cells whose offered bytes in flight exceed the kernel's TCP memory pressure
# threshold measure the kernel, not the server (and starve every other socket).
read -r _ TCP_PRESSURE _ </proc/sys/net/ipv4/tcp_mem
INFLIGHT_LIMIT=$((TCP_PRESSURE * $(getconf PAGESIZE)))

# --- 3. Servers ---------------------------------------------------------------
SERVER_PID="" SERVER_NAME="" PORT=0
cleanup() {
  [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null
  jobs -p | xargs -r kill 2>/dev/null
  return 0
}
trap cleanup EXIT

# start_server NAME [extra gateway flags...]: sets SERVER_PID, PORT, METRICS_PORT, CONTROL_PORT.
start_server() {
  local name=$1
  shift
  take_ports 3  # skipping ports something else already listens on
  PORT=${PORTS[0]} METRICS_PORT=${PORTS[1]} CONTROL_PORT=${PORTS[2]}
  local cmd gw_flags=(--reactors=1 --drain_timeout=1s)
  # The gateway as shipped: metrics and control plane on (loopback, own ports).
  gw_flags+=(--metrics_listen=127.0.0.1:$METRICS_PORT --control_listen=127.0.0.1:$CONTROL_PORT)
  case $name in
    gateway-edge) cmd=("$GW" --listen=127.0.0.1:$PORT --trigger_mode=edge "${gw_flags[@]}" "$@") ;;
    gateway-level) cmd=("$GW" --listen=127.0.0.1:$PORT --trigger_mode=level "${gw_flags[@]}" "$@") ;;
    epoll_et | libevent_srv) cmd=("$BB/$name" "$PORT") ;;
    nbnet.py) cmd=("$PY" "$BB/nbnet.py" "$PORT") ;;
    *) die "unknown server $name" ;;
  esac
  echo "== $(date +%T) ${cmd[*]}" >>"$LOGS/$name.log"
  "${SRV_PIN[@]}" "${cmd[@]}" >>"$LOGS/$name.log" 2>&1 &
  SERVER_PID=$! SERVER_NAME=$name
  wait_port "$PORT" "$SERVER_PID" || die "$name did not start (see $LOGS/$name.log)"
}

stop_server() {
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

# nbnet.py listens with a backlog of 10: more connects in flight than that
# overflow its accept queue, and SYN retransmission backoff makes 10k
# connections take minutes instead of seconds.
connect_batch() { if [[ $1 == nbnet.py ]]; then echo 8; else echo 256; fi; }

# json_obj, json_set and jget: bench/lib.sh.

# run_bench LABEL SIZE CONNS PIPELINE [gateway-bench flags...]: one run against
# the current server, its JSON line appended to raw.jsonl (a stand-in line if
# it produced none).
run_bench() {
  local label=$1 size=$2 conns=$3 pipeline=$4
  shift 4
  local limit out rc=0 json
  limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(w + d + 120) }')
  out=$("${CLI_PIN[@]}" timeout -s INT -k 10 "$limit" "$BENCH" --port="$PORT" --server_pid="$SERVER_PID" \
    --label="$label" --size="$size" --conns="$conns" --pipeline="$pipeline" \
    --connect_batch="$(connect_batch "$SERVER_NAME")" --warmup="${WARMUP}s" --duration="${DURATION}s" "$@" 2>&1) || rc=$?
  printf '== %s\n%s\n' "$label size=$size conns=$conns pipeline=$pipeline $*" "$out" >>"$LOGS/bench.log"
  # The result is gateway-bench's last line that starts as its JSON does.
  json=$(grep '^{"bench":' <<<"$out" | tail -n1 || true)
  json=$(json_set "$json" 2>/dev/null) ||
    json=$(json_obj bench=gateway-bench label="$label" size:="$size" conns:="$conns" pipeline:="$pipeline" \
      ok:=false error="exit status $rc, no result")
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    json=$(json_set "$json" server_died:=true)
    log "$SERVER_NAME died during $label size=$size conns=$conns; restarting it"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    start_server "$SERVER_NAME"
  fi
  printf '%s\n' "$json" >>"$RAW"
  LAST_JSON=$json
}

summary() {  # one line for the terminal, from a result's JSON
  "$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
g = lambda k: j.get(k, "")
pct = lambda k: "%.0f" % (100 * float(j[k])) if isinstance(j.get(k), (int, float)) else ""
status = "ok" if j.get("ok") is True else "FAILED %s" % g("error")
print("%10s req/s %9s MB/s  p99 %9s us  server %7s us/req (%s%% CPU)  client %s%% CPU  %s" % (
    g("rps"), g("mbps"), (j.get("latency_us") or {}).get("p99", ""), g("server_cpu_us_per_req"), pct("server_cpu_util"), pct("client_cpu_util"),
    status), end="")' "$1"
}

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "output: $OUT (cells: ${DURATION}s measured after ${WARMUP}s warmup; load average $LOAD_START)"
# Rough duration: every run costs warmup + duration + ~0.3 s, and each 10000-connection cell ~3 s more.
runs=$((${#SERVERS[@]} * (${#SIZES[@]} * ${#CONNS[@]} * ${#PIPELINES[@]} + 2) + COST_ROUNDS * 2 * ${#PIPELINES[@]} * 3))
log "expected to take about $(awk -v r="$runs" -v w="$WARMUP" -v d="$DURATION" -v big="$(printf '%s\n' "${CONNS[@]}" | grep -c '^10000$' || true)" \
  -v n="${#SERVERS[@]}" -v s="${#SIZES[@]}" -v p="${#PIPELINES[@]}" 'BEGIN { printf "%.0f", (r * (w + d + 0.3) + big * n * s * p * 3) / 60 + 0.5 }') minutes"

# --- 4. The grid --------------------------------------------------------------
total=$((${#SERVERS[@]} * ${#SIZES[@]} * ${#CONNS[@]} * ${#PIPELINES[@]}))
cell=0
for server in "${SERVERS[@]}"; do
  start_server "$server"
  for size in "${SIZES[@]}"; do
    for conns in "${CONNS[@]}"; do
      for pipeline in "${PIPELINES[@]}"; do
        cell=$((cell + 1))
        tag=$(printf '[%3d/%d] %-13s %5s B x %5s conns x p%-2s' "$cell" "$total" "$server" "$size" "$conns" "$pipeline")
        inflight=$((conns * pipeline * (size + 5)))
        if ((inflight > INFLIGHT_LIMIT)); then
          json_obj bench=skipped label="grid:$server" size:="$size" conns:="$conns" pipeline:="$pipeline" \
            inflight_bytes:="$inflight" limit_bytes:="$INFLIGHT_LIMIT" ok:=false >>"$RAW"
          log "$tag skipped: $inflight bytes offered in flight > kernel TCP pressure threshold $INFLIGHT_LIMIT"
          continue
        fi
        run_bench "grid:$server" "$size" "$conns" "$pipeline"
        log "$tag $(summary "$LAST_JSON")"
      done
    done
  done
  stop_server
done

# --- 5. Idle memory -----------------------------------------------------------
for server in "${SERVERS[@]}"; do
  start_server "$server"
  run_bench "idle:$server" 64 1 1 --idle="$IDLE_CONNS" --duration=1s
  log "idle $server: $(jget established "$LAST_JSON") connections in $(jget connect_s "$LAST_JSON") s, RSS +$(jget rss_per_conn "$LAST_JSON") bytes per connection"
  stop_server
done

# --- 6. p99 at a fixed rate (open loop) ---------------------------------------
for server in "${SERVERS[@]}"; do
  start_server "$server"
  run_bench "rate:$server" 64 "$RATE_CONNS" 1 --rate="$RATE"
  log "rate $server ($RATE req/s, $RATE_CONNS conns): $(summary "$LAST_JSON")"
  stop_server
done

# --- 7. The gateway's own costs: metrics off / on / on without latency timing --
if [[ " ${SERVERS[*]} " == *" gateway-edge "* ]]; then
  variants=(off on nolat)
  cost_conns=(100 1000)
  [[ $QUICK == 1 ]] && cost_conns=(100)
  for round in $(seq "$COST_ROUNDS"); do
    for conns in "${cost_conns[@]}"; do
      for pipeline in "${PIPELINES[@]}"; do
        for variant in "${variants[@]}"; do
          case $variant in
            off) extra=(--metrics_listen= --metrics_latency=false) ;;
            on) extra=(--metrics_latency=true) ;;
            nolat) extra=(--metrics_latency=false) ;;
          esac
          start_server gateway-edge "${extra[@]}"
          scraper=""
          if [[ $variant != off ]]; then  # Prometheus-style scrape, once a second
            ("${CLI_PIN[@]}" bash -c "while :; do curl -s -o /dev/null http://127.0.0.1:$METRICS_PORT/metrics; sleep 1; done") &
            scraper=$!
          fi
          run_bench "metrics:gateway-edge:$variant:$round" 64 "$conns" "$pipeline"
          [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
          log "metrics $variant (round $round) 64 B x $conns conns x p$pipeline: $(summary "$LAST_JSON")"
          stop_server
        done
      done
    done
  done
fi

# --- 8. Control plane at IDLE_CONNS connections ---------------------------------
if [[ -x $PROBE ]]; then
  start_server gateway-edge
  "${CLI_PIN[@]}" "$PROBE" --target=127.0.0.1:$CONTROL_PORT --label=control:gateway-edge:0 --repeat=5 --expect=0 \
    >>"$RAW" 2>>"$LOGS/bench.log" || log "control probe failed with no connections"
  idle_out=$OUT/tmp/control_idle.out
  "${CLI_PIN[@]}" "$BENCH" --port="$PORT" --server_pid="$SERVER_PID" --label="control-idle:gateway-edge" \
    --idle="$IDLE_CONNS" --duration=600s >"$idle_out" 2>&1 &
  idle_pid=$!
  for i in $(seq 1200); do
    grep -q '^idle:' "$idle_out" 2>/dev/null && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  "${CLI_PIN[@]}" "$PROBE" --target=127.0.0.1:$CONTROL_PORT --label=control:gateway-edge:$IDLE_CONNS --repeat=5 \
    --expect="$IDLE_CONNS" >>"$RAW" 2>>"$LOGS/bench.log" || log "control probe failed at $IDLE_CONNS connections"
  log "control: $(tail -n1 "$RAW")"
  kill -INT "$idle_pid" 2>/dev/null || true
  wait "$idle_pid" || true
  # The held connections must have survived the switches untouched.
  grep '^{"bench":' "$idle_out" | tail -n1 >>"$RAW" || true
  stop_server
fi

# --- 9. Meta data and the report -----------------------------------------------
END=$(date +%s)
dirty=false
git diff --quiet HEAD -- gateway control metrics server bench 2>/dev/null || dirty=true
pinned=false
((${#SRV_PIN[@]})) && pinned=true
quick=false
[[ $QUICK == 1 ]] && quick=true
notes_json=$(printf '%s\n' "${NOTES[@]}" | "$PY" -c 'import json, sys; print(json.dumps([l for l in sys.stdin.read().splitlines() if l]))')
json_obj date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  dirty:=$dirty kernel="$(uname -r)" cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  cpus:="$(nproc)" mem_mb:="$(free -m | awk '/Mem:/ {print $2}')" \
  load_start="$LOAD_START" load_end="$(cut -d' ' -f1-3 /proc/loadavg)" pinned:=$pinned \
  quick:=$quick duration_s:="$DURATION" warmup_s:="$WARMUP" \
  servers="${SERVERS[*]}" sizes="${SIZES[*]}" conns="${CONNS[*]}" pipelines="${PIPELINES[*]}" \
  idle_conns:="$IDLE_CONNS" rate:="$RATE" rate_conns:="$RATE_CONNS" cost_rounds:="$COST_ROUNDS" \
  inflight_limit:="$INFLIGHT_LIMIT" elapsed_s:=$((END - START)) notes:="$notes_json" |
  "$PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin), indent=1))' >"$OUT/meta.json"
"$PY" bench/report.py "$OUT"
log "done in $(((END - START) / 60)) min $(((END - START) % 60)) s: $OUT/report.md"
