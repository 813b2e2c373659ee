#!/usr/bin/env bash
# The README's first demo, exactly as written: takes the `nc` line from the
# code blocks of README.md's "The two commands" section (so the README and
# this test cannot drift), starts the real gateway binary the way
# deploy/run.sh does (its default --listen port, which must be the port the
# line uses), runs the line with bash and compares what it prints with the
# `# prints ...` comment on that line.
#   tests/deploy/readme_demo_test.sh GATEWAY_BINARY [README]
# The port is fixed by the README (6789): the test fails with a clear message
# when something already listens there (ctest: RESOURCE_LOCK podman, as the
# deployment test can publish it too). Needs nc (netcat-openbsd, which
# deploy/setup.sh installs).
set -euo pipefail

gateway=${1:?usage: readme_demo_test.sh GATEWAY_BINARY [README]}
readme=${2:-$(dirname "$0")/../../README.md}

fail() { echo "readme demo: FAIL: $*" >&2; exit 1; }
log() { echo "readme demo: $*"; }

[[ -x $gateway ]] || fail "no gateway binary at $gateway (build the gateway target)"
[[ -f $readme ]] || fail "no README at $readme"
command -v nc >/dev/null || fail "nc not found: the demo needs netcat-openbsd (deploy/setup.sh installs it)"
command -v ss >/dev/null || fail "ss not found (iproute2)"

# The lines inside ``` blocks of the "## The two commands" section.
section_code=$(awk '
  /^## / { in_section = ($0 == "## The two commands"); next }
  in_section && /^```/ { in_code = !in_code; next }
  in_section && in_code { print }' "$readme")
[[ -n $section_code ]] || fail "README has no code in a '## The two commands' section"
demo_lines=$(grep -E '(^|[|;&[:space:]])nc[[:space:]]' <<<"$section_code" || true)
[[ -n $demo_lines ]] || fail "no nc line in the code of README's 'The two commands' section"
(($(wc -l <<<"$demo_lines") == 1)) || fail "expected one nc line in 'The two commands', found: $demo_lines"
line=$demo_lines

# "COMMAND   # prints EXPECTED"
[[ $line =~ ^(.*[^[:space:]])[[:space:]]+#[[:space:]]*prints[[:space:]]+([^[:space:]]+)[[:space:]]*$ ]] ||
  fail "the demo line has no '# prints EXPECTED' comment: $line"
command=${BASH_REMATCH[1]}
expected=${BASH_REMATCH[2]}
[[ $command =~ [[:space:]]nc[[:space:]].*[[:space:]](localhost|127\.0\.0\.1)[[:space:]]+([0-9]+) ]] ||
  fail "cannot find 'localhost PORT' in the demo line: $command"
port=${BASH_REMATCH[2]}
log "README line: $command"
log "expects: $expected (port $port)"

# deploy/run.sh runs the binary with its defaults: the demo's port must be the
# default data-plane port.
help=$("$gateway" --help 2>&1 || true)
default_listen=$(awk '/--listen \(/ { f = 1 } f && /default:/ { match($0, /default: "[^"]*"/); print substr($0, RSTART + 10, RLENGTH - 11); exit }' <<<"$help")
[[ $default_listen == *:"$port" ]] ||
  fail "the README's demo uses port $port, but the gateway's default --listen is '$default_listen'"

# Port fixed by the README: refuse to share it (the gateway binds with
# SO_REUSEPORT, so another gateway run as the same user would not make the
# bind fail; it would split the connections).
listeners=$(ss -Hltn "sport = :$port" || true)
[[ -z $listeners ]] || fail "port $port is busy, the README's demo needs it; stop what listens there: $listeners"

work=$(mktemp -d /tmp/gateway-readme-demo.XXXXXX)
gateway_pid=""
cleanup() {
  local rc=$?
  if [[ -n $gateway_pid ]] && kill -0 "$gateway_pid" 2>/dev/null; then
    kill -TERM "$gateway_pid" 2>/dev/null
    wait "$gateway_pid" 2>/dev/null || true
  fi
  ((rc == 0)) || { echo "--- gateway stderr:"; cat "$work/gateway.log" 2>/dev/null; }
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Loopback only; no control plane or metrics server (fixed ports of their own).
"$gateway" --listen="127.0.0.1:$port" --control_listen= --metrics_listen= 2>"$work/gateway.log" &
gateway_pid=$!
# The data port from the gateway's machine-readable "ready" line; empty until then.
data_port() {
  sed -n 's/^gateway: ready //p' "$work/gateway.log" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["data_port"])' 2>/dev/null
}
for ((i = 0; i < 200; i++)); do
  [[ -n $(data_port) ]] && break
  kill -0 "$gateway_pid" 2>/dev/null || fail "the gateway exited at start: $(cat "$work/gateway.log")"
  sleep 0.1
done
[[ $(data_port) == "$port" ]] || fail "the gateway did not report serving port $port within 20 s: $(cat "$work/gateway.log")"

# The line exactly as the README writes it, run by bash as a user's shell would.
output=$(timeout 20 bash -c "$command" 2>"$work/demo.err") || fail "the demo line failed: $(cat "$work/demo.err")"
[[ $output == "$expected" ]] ||
  fail "the demo printed '$output' (stderr: '$(cat "$work/demo.err")'), the README says '$expected'"
log "printed $output, as the README says"

kill -TERM "$gateway_pid"
status=0
wait "$gateway_pid" || status=$?
gateway_pid=""
((status == 0)) || fail "the gateway exited with status $status on SIGTERM"
log "passed"
