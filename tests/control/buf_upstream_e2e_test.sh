#!/usr/bin/env bash
# End-to-end: upstream mode managed with `buf curl` through reflection alone,
# as the README shows. Two backend gateways and a gateway in front of the
# first; WatchBackends streams while AddBackend, SetBackendWeight,
# DrainBackend, UndrainBackend and RemoveBackend run; requests keep being
# answered through the proxy; the error statuses; SIGTERM ends the stream
# cleanly.
#   buf_upstream_e2e_test.sh GATEWAY_BINARY BUF_BINARY
set -uo pipefail
GATEWAY=$1
BUF=$2
[[ -x $BUF ]] || { echo "FAIL: $BUF not found: run deploy/setup.sh --test"; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for log in "$WORK"/*.log; do echo "--- $log:"; cat "$log"; done; exit 1; }
wait_for() {  # wait_for TRIES COMMAND...: polls every 0.1 s
  local tries=$1; shift
  for ((i = 0; i < tries; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}
# start NAME ARGS...: a gateway logging to NAME.log; sets PID.
start() {
  local name=$1; shift
  "$GATEWAY" --listen=127.0.0.1:0 --metrics_listen= --reactors=1 "$@" 2> "$WORK/$name.log" &
  PID=$!
  PIDS+=("$PID")
  wait_for 100 grep -q '^gateway: ready {' "$WORK/$name.log" || fail "$name did not start"
}
port() {  # port NAME KEY
  sed -n 's/^gateway: ready //p' "$WORK/$1.log" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

start backend1 --control_listen=
B1=127.0.0.1:$(port backend1 data_port)
start backend2 --control_listen=
B2=127.0.0.1:$(port backend2 data_port)
start proxy --control_listen=127.0.0.1:0 --upstream="$B1" --upstream_probe_interval=100ms
PROXY_PID=$PID
DATA_PORT=$(port proxy data_port)
URL=http://127.0.0.1:$(port proxy control_port)
grep -q "^gateway: upstream mode: 1 backend(s) ($B1)" "$WORK/proxy.log" || fail "no upstream-mode line"
BUFC=("$BUF" curl --protocol grpc --http2-prior-knowledge --emit-defaults --connect-timeout 10)
call() { timeout 20 "${BUFC[@]}" -d "$2" "$URL/gateway.v1.GatewayControl/$1" 2>&1; }
expect_ok() {  # expect_ok METHOD JSON PATTERN...
  local method=$1 json=$2; shift 2
  OUT=$(call "$method" "$json") || fail "$method $json: exit $?: $OUT"
  for pattern in "$@"; do grep -q -- "$pattern" <<< "$OUT" || fail "$method $json: no '$pattern' in: $OUT"; done
}
expect_error() {  # expect_error METHOD JSON CODE
  OUT=$(call "$1" "$2") && fail "$1 $2 succeeded: $OUT"
  grep -q "\"code\": \"$3\"" <<< "$OUT" || fail "$1 $2: expected code $3, got: $OUT"
}
round_trip() {  # one frame through the proxy, its reversal back
  exec 3<>"/dev/tcp/127.0.0.1/$DATA_PORT" || fail "cannot connect to the proxy"
  printf '00003abc' >&3
  read -r -N 8 -t 10 REPLY <&3 || fail "no response through the proxy"
  exec 3>&-
  [[ $REPLY == 00003cba ]] || fail "the proxy answered '$REPLY'"
}

METHODS=$(timeout 20 "${BUFC[@]}" --list-methods "$URL") || fail "list-methods: $METHODS"
for m in ListBackends GetBackend AddBackend RemoveBackend DrainBackend UndrainBackend SetBackendWeight WatchBackends; do
  grep -qx "gateway.v1.GatewayControl/$m" <<< "$METHODS" || fail "method $m not listed: $METHODS"
done

timeout 60 "${BUFC[@]}" -d '{}' "$URL/gateway.v1.GatewayControl/WatchBackends" > "$WORK/watch.out" 2>&1 &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
# Registered once a change made now reaches it.
W=1
registered() {
  W=$((W + 1))
  call SetBackendWeight "{\"address\": \"$B1\", \"weight\": $W}" > /dev/null
  grep -q TYPE_WEIGHT_CHANGED "$WORK/watch.out"
}
wait_for 100 registered || fail "the watch stream saw no change: $(cat "$WORK/watch.out")"
expect_ok SetBackendWeight "{\"address\": \"$B1\", \"weight\": 1}" '"weight": 1'

round_trip
expect_ok ListBackends '{}' "\"address\": \"$B1\"" '"state": "BACKEND_STATE_HEALTHY"' '"requests": "1"' '"responses": "1"'
expect_ok AddBackend "{\"address\": \"$B2\", \"weight\": 2}" "\"address\": \"$B2\"" '"weight": 2'
expect_ok GetBackend "{\"address\": \"$B2\"}" "\"address\": \"$B2\""
expect_ok SetBackendWeight "{\"address\": \"$B2\", \"weight\": 5}" '"weight": 5'
expect_ok DrainBackend "{\"address\": \"$B1\", \"timeout\": \"5s\"}" '"state": "BACKEND_STATE_DRAINING"' '"inflight": "0"'
for _ in 1 2 3; do round_trip; done
expect_ok GetBackend "{\"address\": \"$B2\"}" '"requests": "3"'
expect_ok UndrainBackend "{\"address\": \"$B1\"}" '"state": "BACKEND_STATE_HEALTHY"'
expect_ok RemoveBackend "{\"address\": \"$B2\"}" "\"address\": \"$B2\"" '"requests": "3"'
round_trip
expect_ok ListBackends '{}' "\"address\": \"$B1\"" '"requests": "2"'

expect_error GetBackend "{\"address\": \"$B2\"}" not_found
expect_error AddBackend "{\"address\": \"$B1\"}" already_exists
expect_error AddBackend '{"address": "nonsense"}' invalid_argument
expect_error SetBackendWeight "{\"address\": \"$B1\", \"weight\": 0}" invalid_argument
expect_error DrainBackend '{}' invalid_argument

for type in TYPE_ADDED TYPE_STATE_CHANGED BACKEND_STATE_DRAINING TYPE_REMOVED; do
  seen() { grep -q "$type" "$WORK/watch.out"; }
  wait_for 100 seen || fail "the watcher saw no $type: $(cat "$WORK/watch.out")"
done

kill -TERM "$PROXY_PID"
wait "$PROXY_PID"; STATUS=$?
[[ $STATUS == 0 ]] || fail "the proxy exited $STATUS after SIGTERM"
wait "$WATCH_PID"; STATUS=$?
[[ $STATUS == 0 ]] || fail "the watch stream did not end cleanly (buf exit $STATUS): $(cat "$WORK/watch.out")"
echo "PASS"
