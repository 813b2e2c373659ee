#!/usr/bin/env bash
# User-space instructions per request of gateway binaries, counted by
# callgrind (repeatable whatever else the machine does, unlike CPU time):
# each binary runs twice under `valgrind --tool=callgrind`, with one reactor,
# loaded by gateway-bench for 4 s and for 12 s; the difference in
# instructions over the difference in requests cancels start-up and shutdown.
#   bench/instructions_per_request.sh BINARY [BINARY...] -- CONNS PIPELINE [SIZE]
#   bench/instructions_per_request.sh /tmp/old/gateway build/gateway/gateway -- 100 1
set -euo pipefail
cd "$(dirname "$0")/.."
binaries=()
while (($#)) && [[ $1 != -- ]]; do binaries+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
conns=${1:-100}; pipeline=${2:-1}; size=${3:-64}
bench=${GATEWAY_BENCH:-build/bench/gateway-bench}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[[ -x $bench ]] || { echo "build $bench first (cmake --build build --target gateway-bench)" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run BINARY SECONDS -> "requests instructions"
run() {
  local binary=$1 seconds=$2 port out pid
  port=$(free_port); out=$work/cg.$seconds
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" --listen=127.0.0.1:"$port" --reactors=1 \
    --control_listen= --metrics_listen= >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  local json
  json=$("$bench" --port="$port" --conns="$conns" --pipeline="$pipeline" --size="$size" --duration="${seconds}s" \
    --warmup=0s 2>/dev/null | tail -1)
  kill -TERM "$pid"; wait "$pid" || true
  local requests instructions
  requests=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$json")
  instructions=$(awk '/^summary:/ {print $2; exit}' "$out")
  echo "$requests $instructions"
}

for binary in "${binaries[@]}"; do
  read -r r1 i1 < <(run "$binary" 4)
  read -r r2 i2 < <(run "$binary" 12)
  python3 -c 'import sys; r1,i1,r2,i2=map(int,sys.argv[2:]); print(f"{sys.argv[1]}: {(i2-i1)/(r2-r1):.0f} instructions/request ({r2-r1} requests)")' \
    "$binary" "$r1" "$i1" "$r2" "$i2"
done
