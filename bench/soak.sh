#!/usr/bin/env bash
# The soak test in one command, from a clean clone:
#   bench/soak.sh                       10 minutes -> bench/results/soak/
#   SOAK_DURATION=2m bench/soak.sh      shorter
#
# Installs what it needs (deploy/setup.sh --bench), builds the gateway and
# gateway-soak (Release) and runs gateway-soak, which starts the real gateway
# binary on loopback with kernel-chosen ports (--reactors=2, and
# --frame_timeout=5s when the binary has that flag) and, for SOAK_DURATION,
# mixes against it: verified pipelined traffic of every size, churn, LT/ET
# flips every second, RST storms, slowloris, CloseConnection storms and
# stalled watchers, sampling the gateway's RSS, open fds, queued bytes and
# active connections every second. Writes to the output folder:
#   soak.csv       the time series (one row per second)
#   summary.json   the driver's verdict and counts (one JSON object)
#   summary.txt    the same for people
#   soak.png       RSS, fds, queued bytes and active connections over time
#   meta.json      machine, commit, parameters
#   tmp/           the gateway's log (not committed)
# and exits non-zero if anything was lost or corrupt, a check failed, RSS or
# fds were not flat, or the gateway died (see bench/soak/soak_main.cc).
#
# Environment (defaults in brackets):
#   SOAK_DURATION [10m]            how long the loads run (Abseil duration: 90s, 10m, 1h)
#   SOAK_OUT [bench/results/soak]  output folder
#   SOAK_BUILD_DIR [build]         CMake build directory (configured Release)
#   SOAK_SEED [1]                  seed of every payload and random choice
#   SOAK_GATEWAY_FLAGS ["--reactors=2"]   extra gateway flags
#   SOAK_FRAME_TIMEOUT [5s]        passed as --frame_timeout if the gateway has it
#   SOAK_ARGS [""]                 extra gateway-soak flags (gateway-soak --help lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${SOAK_DURATION:-10m}
OUT=${SOAK_OUT:-$ROOT/bench/results/soak}
BUILD=${SOAK_BUILD_DIR:-$ROOT/build}
SEED=${SOAK_SEED:-1}
GATEWAY_FLAGS=${SOAK_GATEWAY_FLAGS:---reactors=2}
FRAME_TIMEOUT=${SOAK_FRAME_TIMEOUT:-5s}
EXTRA=(${SOAK_ARGS:-})

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "soak: $*"; exit 1; }

# --- 1. Install, build --------------------------------------------------------
install_packages() { deploy/setup.sh --bench; }

build_all() {
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGATEWAY_SANITIZE=OFF -DGATEWAY_TSAN=OFF >/dev/null
  log "building gateway and gateway-soak (Release) in $BUILD"
  cmake --build "$BUILD" -j"$(nproc)" --target gateway gateway-soak >/dev/null
  GW=$BUILD/gateway/gateway
  SOAK=$BUILD/bench/soak/gateway-soak
  [[ -x $GW && -x $SOAK ]] || die "build did not produce $GW and $SOAK"
}

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git diff --quiet HEAD -- gateway control bench 2>/dev/null && echo false || echo true)
install_packages
build_all
mkdir -p "$OUT/tmp"
rm -f "$OUT"/soak.csv "$OUT"/summary.json "$OUT"/summary.txt "$OUT"/soak.png "$OUT"/meta.json "$OUT"/tmp/gateway.log

# --- 2. The run ----------------------------------------------------------------
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "soak for $DURATION (load average $LOAD_START); output: $OUT"
rc=0
"$SOAK" --gateway_binary="$GW" --gateway_flags="$GATEWAY_FLAGS" --frame_timeout="$FRAME_TIMEOUT" \
  --gateway_log="$OUT/tmp/gateway.log" --duration="$DURATION" --seed="$SEED" \
  --csv="$OUT/soak.csv" --summary_json="$OUT/summary.json" "${EXTRA[@]}" | tee "$OUT/summary.txt" || rc=$?
END=$(date +%s)
[[ -s $OUT/summary.json ]] || die "gateway-soak wrote no summary (exit status $rc); see $OUT/tmp/gateway.log"

cat >"$OUT/meta.json" <<EOF
{"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$COMMIT", "dirty": $DIRTY,
 "kernel": "$(uname -r)", "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')",
 "cpus": $(nproc), "mem_mb": $(free -m | awk '/Mem:/ {print $2}'),
 "load_start": "$LOAD_START", "load_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "duration": "$DURATION", "seed": $SEED, "gateway_flags": "$GATEWAY_FLAGS", "frame_timeout": "$FRAME_TIMEOUT",
 "soak_args": "${EXTRA[*]}", "elapsed_s": $((END - START)), "exit_status": $rc}
EOF

# --- 3. The plot -----------------------------------------------------------------
# Columns of soak.csv: 1 t_s, 2 rss_bytes, 3 fds, 4 queued_bytes, 6 active_connections.
if [[ $(wc -l <"$OUT/soak.csv") -gt 2 ]]; then
  gnuplot <<EOF || log "gnuplot failed: no plot"
set terminal pngcairo size 1200,800 font ",10" noenhanced
set output "$OUT/soak.png"
set datafile separator ","
set key off
set grid
set xlabel "seconds"
set multiplot layout 2,2 title "gateway soak, $DURATION ($COMMIT$([[ $DIRTY == true ]] && echo +)): every second"
set title "RSS (MiB)"
set yrange [0:*]
plot "$OUT/soak.csv" every ::1 using 1:(\$2 >= 0 ? \$2/1048576 : NaN) with lines lw 2
set title "open fds"
plot "$OUT/soak.csv" every ::1 using 1:(\$3 >= 0 ? \$3 : NaN) with lines lw 2
set title "queued bytes, sum of gateway_queued_bytes (MiB)"
plot "$OUT/soak.csv" every ::1 using 1:(\$4/1048576) with lines lw 2
set title "active connections"
plot "$OUT/soak.csv" every ::1 using 1:(\$6 >= 0 ? \$6 : NaN) with lines lw 2
unset multiplot
EOF
fi

if ((rc == 0)); then
  log "soak PASSED in $(((END - START) / 60)) min $(((END - START) % 60)) s: $OUT"
else
  log "soak FAILED (exit status $rc): see $OUT/summary.txt and $OUT/tmp/gateway.log"
fi
exit "$rc"
