#!/usr/bin/env bash
# End-to-end: the real gateway binary driven by `buf curl`, a third-party gRPC
# client that knows the API only through server reflection. Lists the
# services, calls every RPC (and its error cases), the health check, and a
# WatchConnections stream; then SIGTERM ends the stream cleanly and the
# gateway exits 0; a second gateway on the same control port exits 1.
#   buf_e2e_test.sh GATEWAY_BINARY BUF_BINARY
set -uo pipefail
GATEWAY=$1
BUF=$2
[[ -x $BUF ]] || { echo "FAIL: $BUF not found: run deploy/setup.sh --test"; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- gateway log:"; cat "$WORK/gateway.log"; exit 1; }

# Polls `condition` (a command) every 0.1 s, at most `tries` times.
wait_for() {
  local tries=$1; shift
  for ((i = 0; i < tries; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}

"$GATEWAY" --listen=127.0.0.1:0 --control_listen=127.0.0.1:0 --metrics_listen= --reactors=2 \
  2> "$WORK/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
ready() { grep -q '^gateway: ready {' "$WORK/gateway.log"; }
wait_for 100 ready || fail "the gateway did not start"
# port KEY: that port from the ready line's JSON.
port() {
  sed -n 's/^gateway: ready //p' "$WORK/gateway.log" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
DATA_PORT=$(port data_port)
CONTROL_PORT=$(port control_port)
[[ $DATA_PORT -gt 0 && $CONTROL_PORT -gt 0 ]] || fail "no ports in the ready line"
URL=http://127.0.0.1:$CONTROL_PORT
BUFC=("$BUF" curl --protocol grpc --http2-prior-knowledge --emit-defaults --connect-timeout 10)

# call METHOD JSON: prints the response (or the error); returns buf's exit status.
call() { timeout 20 "${BUFC[@]}" -d "$2" "$URL/$1" 2>&1; }
expect_ok() {  # expect_ok METHOD JSON PATTERN...
  local method=$1 json=$2; shift 2
  OUT=$(call "$method" "$json") || fail "$method $json: exit $?: $OUT"
  for pattern in "$@"; do grep -q -- "$pattern" <<< "$OUT" || fail "$method $json: no '$pattern' in: $OUT"; done
}
expect_error() {  # expect_error METHOD JSON CODE
  OUT=$(call "$1" "$2") && fail "$1 $2 succeeded: $OUT"
  grep -q "\"code\": \"$3\"" <<< "$OUT" || fail "$1 $2: expected code $3, got: $OUT"
  grep -q '"message": "..*"' <<< "$OUT" || fail "$1 $2: no message: $OUT"
}

# 1. Reflection alone: the services and every method.
SERVICES=$(timeout 20 "${BUFC[@]}" --list-services "$URL") || fail "list-services: $SERVICES"
for s in gateway.v1.GatewayControl grpc.health.v1.Health; do
  grep -qx "$s" <<< "$SERVICES" || fail "service $s not listed: $SERVICES"
done
METHODS=$(timeout 20 "${BUFC[@]}" --list-methods "$URL") || fail "list-methods: $METHODS"
for m in GetTriggerMode SetTriggerMode GetIoModel SetIoModel ListConnections GetConnection CloseConnection WatchConnections GetStats \
    ListBackends GetBackend AddBackend RemoveBackend DrainBackend UndrainBackend SetBackendWeight WatchBackends; do
  grep -qx "gateway.v1.GatewayControl/$m" <<< "$METHODS" || fail "method $m not listed: $METHODS"
done

# 2. Health.
expect_ok grpc.health.v1.Health/Check '{}' '"status": "SERVING"'

# 3. A watcher, registered before the traffic below (its first event proves it).
timeout 60 "${BUFC[@]}" -d '{}' "$URL/gateway.v1.GatewayControl/WatchConnections" > "$WORK/watch.out" 2>&1 &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
probe() { exec 4<>"/dev/tcp/127.0.0.1/$DATA_PORT" && exec 4>&-; grep -q TYPE_OPENED "$WORK/watch.out"; }
wait_for 100 probe || fail "the watch stream reported no TYPE_OPENED: $(cat "$WORK/watch.out")"

# 4. One client connection, one round trip.
exec 3<>"/dev/tcp/127.0.0.1/$DATA_PORT"
printf '00003abc' >&3
read -r -N 8 -t 10 REPLY <&3 || fail "no response from the data plane"
[[ $REPLY == 00003cba ]] || fail "data plane answered '$REPLY'"
LOCAL_PORT=$(ss -Htn state established "( dport = :$DATA_PORT )" 2>/dev/null | awk '{print $3}' | sed 's/.*://' | head -1)

# 5. ListConnections / GetConnection for it.
one_connection() { OUT=$(call gateway.v1.GatewayControl/ListConnections '{}'); grep -q '"totalSize": "1"' <<< "$OUT"; }
wait_for 100 one_connection || fail "ListConnections never showed exactly 1 connection: $OUT"
FD=$(sed -n 's/.*"fd": \([0-9]*\).*/\1/p' <<< "$OUT" | head -1)
[[ -n $FD ]] || fail "no fd in: $OUT"
expect_ok gateway.v1.GatewayControl/ListConnections '{"page_size": 1, "state": "CONNECTION_STATE_READ"}' \
  "\"fd\": $FD" '"nextPageToken": ""' '"totalSize": "1"'
expect_ok gateway.v1.GatewayControl/ListConnections '{"state": "CONNECTION_STATE_WRITE"}' '"totalSize": "0"'
expect_ok gateway.v1.GatewayControl/GetConnection "{\"fd\": $FD}" "\"fd\": $FD" '"state": "CONNECTION_STATE_READ"' \
  '"bytesIn": "8"' '"bytesOut": "8"' '"framesIn": "1"' '"peer": "127.0.0.1:' '"triggerMode": "TRIGGER_MODE_EDGE"' \
  '"ioModel": "IO_MODEL_EPOLL"'
if [[ -n $LOCAL_PORT ]]; then grep -q "\"peer\": \"127.0.0.1:$LOCAL_PORT\"" <<< "$OUT" || fail "peer is not us: $OUT"; fi

# 6. Trigger mode.
expect_ok gateway.v1.GatewayControl/GetTriggerMode '{}' '"mode": "TRIGGER_MODE_EDGE"' '"switches": "0"'
expect_ok gateway.v1.GatewayControl/SetTriggerMode '{"mode": "TRIGGER_MODE_LEVEL"}' '"mode": "TRIGGER_MODE_LEVEL"' '"switches": "1"'
expect_ok gateway.v1.GatewayControl/GetConnection "{\"fd\": $FD}" '"triggerMode": "TRIGGER_MODE_LEVEL"'
expect_ok gateway.v1.GatewayControl/SetTriggerMode '{"mode": "TRIGGER_MODE_EDGE"}' '"mode": "TRIGGER_MODE_EDGE"' '"switches": "2"'

# 6b. IO model: the default, the no-op, and (where poll is built in) a live
# switch to poll and back that the watcher sees, with the trigger mode
# refused meanwhile.
expect_ok gateway.v1.GatewayControl/GetIoModel '{}' '"model": "IO_MODEL_EPOLL"' '"switches": "0"' '"available": \['
expect_ok gateway.v1.GatewayControl/SetIoModel '{"model": "IO_MODEL_EPOLL"}' '"model": "IO_MODEL_EPOLL"' '"switches": "0"'
IO_SWITCHES=0
if grep -q IO_MODEL_POLL <<< "$(call gateway.v1.GatewayControl/GetIoModel '{}')"; then
  expect_ok gateway.v1.GatewayControl/SetIoModel '{"model": "IO_MODEL_POLL"}' '"model": "IO_MODEL_POLL"' '"switches": "1"'
  expect_ok gateway.v1.GatewayControl/GetConnection "{\"fd\": $FD}" '"ioModel": "IO_MODEL_POLL"'
  expect_error gateway.v1.GatewayControl/SetTriggerMode '{"mode": "TRIGGER_MODE_LEVEL"}' failed_precondition
  grep -q 'poll' <<< "$OUT" || fail "the refusal does not name poll: $OUT"
  switch_seen() { grep -q TYPE_IO_MODEL_SWITCHED "$WORK/watch.out"; }
  wait_for 100 switch_seen || fail "the watcher saw no TYPE_IO_MODEL_SWITCHED: $(cat "$WORK/watch.out")"
  expect_ok gateway.v1.GatewayControl/SetIoModel '{"model": "IO_MODEL_EPOLL"}' '"model": "IO_MODEL_EPOLL"' '"switches": "2"'
  IO_SWITCHES=2
fi

# 7. Stats.
expect_ok gateway.v1.GatewayControl/GetStats '{}' '"activeConnections": "1"' '"triggerMode": "TRIGGER_MODE_EDGE"' \
  '"ioModel": "IO_MODEL_EPOLL"' "\"ioModelSwitches\": \"$IO_SWITCHES\"" '"triggerModeSwitches": "2"' '"framesIn": "1"' "\"dataPort\": $DATA_PORT" '"uptime": "'

# 8. Every error status.
expect_error gateway.v1.GatewayControl/SetTriggerMode '{}' invalid_argument
expect_error gateway.v1.GatewayControl/SetTriggerMode '{"mode": "TRIGGER_MODE_UNSPECIFIED"}' invalid_argument
expect_error gateway.v1.GatewayControl/SetIoModel '{}' invalid_argument
expect_error gateway.v1.GatewayControl/SetIoModel '{"model": "IO_MODEL_UNSPECIFIED"}' invalid_argument
expect_error gateway.v1.GatewayControl/SetIoModel '{"model": "IO_MODEL_BLOCKING"}' failed_precondition
grep -q 'blocking' <<< "$OUT" || fail "the refusal does not name blocking: $OUT"
expect_error gateway.v1.GatewayControl/SetIoModel '{"model": "IO_MODEL_SIGNAL"}' failed_precondition
expect_error gateway.v1.GatewayControl/GetConnection '{"fd": 99999}' not_found
expect_error gateway.v1.GatewayControl/GetConnection '{"fd": -1}' invalid_argument
expect_error gateway.v1.GatewayControl/CloseConnection '{"fd": 99999}' not_found
expect_error gateway.v1.GatewayControl/ListConnections '{"page_token": "bogus"}' invalid_argument
expect_error gateway.v1.GatewayControl/ListConnections '{"page_size": -1}' invalid_argument
# Not in upstream mode (buf_upstream_e2e_test.sh covers it).
expect_error gateway.v1.GatewayControl/ListBackends '{}' failed_precondition
grep -q -- '--upstream' <<< "$OUT" || fail "the refusal does not name --upstream: $OUT"
expect_error gateway.v1.GatewayControl/AddBackend '{"address": "127.0.0.1:7000"}' failed_precondition

# 9. CloseConnection: the client sees EOF; the watcher sees the reason.
expect_ok gateway.v1.GatewayControl/CloseConnection "{\"fd\": $FD}" '{}'
if read -r -N 1 -t 10 EXTRA <&3; then fail "data after CloseConnection: '$EXTRA'"; fi
exec 3>&-
closed_seen() { grep -q CLOSE_REASON_CONTROL_PLANE "$WORK/watch.out"; }
wait_for 100 closed_seen || fail "the watcher saw no CLOSE_REASON_CONTROL_PLANE: $(cat "$WORK/watch.out")"

# 10. A second gateway on the same control port: one line, exit 1.
timeout 20 "$GATEWAY" --listen=127.0.0.1:0 --control_listen="127.0.0.1:$CONTROL_PORT" --metrics_listen= \
  2> "$WORK/second.log"
STATUS=$?
[[ $STATUS == 1 ]] || fail "second gateway on a busy control port exited $STATUS"
grep -q "^gateway: cannot serve the control plane on 127.0.0.1:$CONTROL_PORT: Address already in use$" \
  "$WORK/second.log" || fail "unexpected error output: $(cat "$WORK/second.log")"
[[ $(grep -vc "^gateway: serving" "$WORK/second.log") == 1 ]] || fail "more than one error line: $(cat "$WORK/second.log")"

# 11. SIGTERM: the watch stream ends cleanly (buf exits 0), the gateway exits 0.
kill -TERM "$GW_PID"
wait "$GW_PID"; STATUS=$?
[[ $STATUS == 0 ]] || fail "gateway exited $STATUS after SIGTERM"
wait "$WATCH_PID"; STATUS=$?
[[ $STATUS == 0 ]] || fail "the watch stream did not end cleanly (buf exit $STATUS): $(cat "$WORK/watch.out")"
echo "PASS"
