# Helpers shared by the bench scripts; sourced, never run. The caller defines
# log and die and sets PY (Debian's python3) and NEXT_PORT (the first
# loopback port to try).

# port_busy PORT: true if something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID: waits up to 10 s for PORT to listen; false if PID dies first.
wait_port() {
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    port_busy "$1" && return 0
    sleep 0.1
  done
  return 1
}

# take_ports N: PORTS=(N consecutive loopback ports from NEXT_PORT on that
# nothing listens on); NEXT_PORT moves past them, so no two servers of a run
# are handed the same port.
take_ports() {
  local n=$1 i
  while :; do
    for ((i = 0; i < n; i++)); do
      if port_busy $((NEXT_PORT + i)); then
        NEXT_PORT=$((NEXT_PORT + i + 1))
        continue 2
      fi
    done
    break
  done
  PORTS=()
  for ((i = 0; i < n; i++)); do PORTS+=($((NEXT_PORT + i))); done
  NEXT_PORT=$((NEXT_PORT + n))
}

# stop_pid PID SIGNAL: sends SIGNAL, waits up to 10 s, then KILL; reaps PID
# if it is this shell's child. No-op for an empty PID.
stop_pid() {
  [[ -n $1 ]] || return 0
  kill "-$2" "$1" 2>/dev/null || true
  local i
  for i in $(seq 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# pin_cores: SRV_PIN and CLI_PIN, the taskset prefixes for the server side
# (core 0) and the load generator (core 1); empty on one CPU.
pin_cores() {
  SRV_PIN=() CLI_PIN=()
  if (($(nproc) >= 2)); then
    SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 1)
  else
    log "warning: fewer than 2 CPUs, nothing is pinned"
  fi
}

# JSON is written and read by Python's json module, never by echo or grep.
# json_obj KEY=STRING KEY:=JSON ...: one compact JSON object on stdout
# (KEY:=JSON for numbers, booleans and lists, as in httpie).
# json_set OBJECT KEY=STRING KEY:=JSON ...: OBJECT with those keys set; fails
# if OBJECT is not a JSON object.
# jget KEY OBJECT: the value (true/false for booleans; empty if absent).
BENCH_JSON_PY='
import json, sys
def fields(args):
    out = {}
    for a in args:
        key, _, value = a.partition("=")
        if key.endswith(":"):
            out[key[:-1]] = json.loads(value)
        else:
            out[key] = value
    return out
cmd = sys.argv[1]
if cmd == "obj":
    print(json.dumps(fields(sys.argv[2:]), separators=(",", ":")))
elif cmd == "set":
    o = json.loads(sys.argv[2])
    if not isinstance(o, dict):
        sys.exit(1)
    o.update(fields(sys.argv[3:]))
    print(json.dumps(o, separators=(",", ":")))
elif cmd == "get":
    v = json.loads(sys.argv[3]).get(sys.argv[2], "")
    print(json.dumps(v) if isinstance(v, bool) else v)
'
json_obj() { "$PY" -c "$BENCH_JSON_PY" obj "$@"; }
json_set() { "$PY" -c "$BENCH_JSON_PY" set "$@"; }
jget() { "$PY" -c "$BENCH_JSON_PY" get "$1" "$2"; }

# wait_gateway_ready LOG PID: waits up to 10 s for the gateway's ready line
# in LOG and prints its JSON ({"data_port":...}); false if PID exits first.
wait_gateway_ready() {
  local i
  for i in $(seq 200); do
    if grep -qs '^gateway: ready ' "$1"; then
      sed -n 's/^gateway: ready //p' "$1" | head -n1
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
