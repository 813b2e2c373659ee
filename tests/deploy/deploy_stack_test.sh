#!/usr/bin/env bash
# The deployment test: builds the gateway image from the Dockerfile with
# Podman, brings the docker-compose.yml stack up with Debian's docker-compose
# against a private Podman API socket (registry-only images swapped by
# deploy/container/compose.test.yml), and checks what a user would:
#   - the gateway container runs as a non-root user and turns healthy;
#   - frames are answered through the published data port;
#   - the control plane answers `buf curl` (reflection, health, GetStats)
#     through the published control port;
#   - Prometheus, inside the compose network, reports the gateway target up and
#     has scraped the traffic sent above;
#   - the Grafana service sees its provisioning files and reaches Prometheus at
#     the datasource URL;
#   - the "upstream" profile: not started by a plain `up`; with it, frames sent
#     to the proxy's published port are answered by the backends behind it,
#     the proxy's control plane lists both backends, and Prometheus (which
#     finds the profile's gateways by DNS) has the proxy's upstream series;
#   - SIGTERM (docker-compose stop) makes the gateway drain and exit 0.
# The OCI runtime is chosen by a trial container
# (deploy/container/podman-runtime.sh): Podman's default, or runc where the
# default (crun on hybrid-cgroup hosts) cannot start containers.
# Everything it starts (containers, network, volumes, the API service) is
# removed on exit, pass or fail. The images are kept as a cache for next time.
#   tests/deploy/deploy_stack_test.sh [SOURCE_DIR]
# Needs root (rootful Podman) and what deploy/setup.sh --test installs; exits
# 77 (skipped) when not root.
set -euo pipefail

src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
cd "$src"

log() { printf '[deploy %4ss] %s\n' "$SECONDS" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  echo "deploy test: needs root for rootful Podman; skipped"
  exit 77
fi
for tool in podman docker-compose curl nc /usr/bin/python3; do
  command -v "$tool" >/dev/null || fail "$tool not found (run deploy/setup.sh --test)"
done
buf=$src/.deps/node/node_modules/.bin/buf
[[ -x $buf ]] || fail "$buf not found (run deploy/setup.sh --test)"

readonly gateway_image=localhost/connection-gateway:latest
readonly gateway_build_cache=localhost/connection-gateway-build:cache
readonly prometheus_image=localhost/connection-gateway-test/prometheus:debian
project=gwdeploy$$
work=$(mktemp -d /tmp/gateway-deploy-test.XXXXXX)
sock=$work/podman.sock
service_pid=""
health_pid=""

compose() {
  DOCKER_HOST=unix://$sock COMPOSE_PROJECT_NAME=$project \
    docker-compose -f docker-compose.yml -f deploy/container/compose.test.yml "$@"
}

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && [[ -S $sock ]]; then
    log "state at failure:"
    compose ps
    compose logs --no-color --tail=40
  fi
  [[ -n $health_pid ]] && kill "$health_pid" 2>/dev/null && wait "$health_pid" 2>/dev/null
  if [[ -S $sock ]]; then
    compose down --volumes --remove-orphans --timeout 5 >"$work/down.log" 2>&1 || cat "$work/down.log"
  fi
  # Whatever compose could not remove (e.g. the API service died early).
  local filter=label=com.docker.compose.project=$project
  podman ps -aq --filter "$filter" | xargs -r podman rm -f >/dev/null 2>&1
  podman network ls -q --filter "$filter" | xargs -r podman network rm -f >/dev/null 2>&1
  podman volume ls -q --filter "$filter" | xargs -r podman volume rm -f >/dev/null 2>&1
  if [[ -n $service_pid ]]; then
    kill "$service_pid" 2>/dev/null
    wait "$service_pid" 2>/dev/null
  fi
  rm -rf "$work"
  log "torn down ($( ((rc == 0)) && echo passed || echo "failed, status $rc"))"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo $$ >"$work/owner.pid"

# A run killed outright (e.g. by a ctest timeout) cannot clean up after itself:
# remove what runs whose test process is gone left behind.
reap_stale_runs() {
  local dir owner pid filter
  for dir in /tmp/gateway-deploy-test.*; do
    [[ $dir != "$work" && -f $dir/owner.pid ]] || continue
    owner=$(<"$dir/owner.pid")
    [[ $owner =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null || continue
    log "removing what the dead run $owner left behind"
    filter=label=com.docker.compose.project=gwdeploy$owner
    podman ps -aq --filter "$filter" | xargs -r podman rm -f >/dev/null 2>&1
    podman network ls -q --filter "$filter" | xargs -r podman network rm -f >/dev/null 2>&1
    podman volume ls -q --filter "$filter" | xargs -r podman volume rm -f >/dev/null 2>&1
    pid=$(cat "$dir/service.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && grep -qa "$dir/podman.sock" "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
  done
}

# Polls "$@" every second until it succeeds or $1 seconds pass.
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 1
  done
}

# Runs a command whose output is kept in a log, shown only if it fails.
quietly() {  # quietly NAME COMMAND...
  local name=$1 status=0
  shift
  "$@" >"$work/$name.log" 2>&1 || status=$?
  if ((status != 0)); then
    tail -n 60 "$work/$name.log"
    fail "$name: $* (status $status)"
  fi
}

reap_stale_runs
log "podman set-up and base image"
quietly podman-setup deploy/container/podman-setup.sh

# crun, Podman's default where installed, refuses every container on
# hybrid-cgroup hosts: a trial container decides, and the image builds (RUN
# steps) and the API service (every compose container) use what it chose.
runtime=$(deploy/container/podman-runtime.sh 2>"$work/runtime.log") || {
  cat "$work/runtime.log"
  fail "no OCI runtime can start a container here"
}
log "OCI runtime: $runtime"
[[ -s $work/runtime.log ]] && log "$(cat "$work/runtime.log")"
rt_podman() { podman --runtime "$runtime" "$@"; }

log "building $gateway_image from the Dockerfile"
quietly build-gateway rt_podman build --format docker --layers -t "$gateway_image" -f Dockerfile .
# Name the build stage (cached, so this is quick) to keep it as the cache for
# the next run, then drop the stages and images older sources left behind.
quietly build-stage rt_podman build --format docker --layers --target build -t "$gateway_build_cache" -f Dockerfile .
podman image prune -f --filter label=io.connection-gateway.stage >/dev/null 2>&1 || true
log "building $prometheus_image from Debian's prometheus package"
quietly build-prometheus rt_podman build --format docker --layers -t "$prometheus_image" \
  -f deploy/container/prometheus.Dockerfile deploy/container
healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$gateway_image")
[[ $healthcheck == *9464/metrics* ]] || fail "image has no metrics health check: $healthcheck"

log "starting the Podman API service on $sock"
podman --runtime "$runtime" system service --time=0 "unix://$sock" >"$work/service.log" 2>&1 &
service_pid=$!
echo "$service_pid" >"$work/service.pid"
wait_for 30 "the Podman API socket" curl -fs --unix-socket "$sock" -o /dev/null http://d/_ping

# Published host ports 0: the engine picks free ones, so parallel runs and
# a gateway already on 6789 do not collide. `docker-compose port` tells them.
log "docker-compose up -d (project $project)"
export GATEWAY_DATA_PORT=0 GATEWAY_CONTROL_PORT=0 GATEWAY_METRICS_PORT=0 PROMETHEUS_PORT=0 GRAFANA_PORT=0
quietly compose-up compose up -d --no-build
host_port() {  # host_port SERVICE CONTAINER_PORT
  local addr
  addr=$(compose port "$1" "$2") || fail "no published port for $1:$2"
  [[ $addr =~ :([0-9]+)$ && ${BASH_REMATCH[1]} != 0 ]] || fail "bad published address for $1:$2: '$addr'"
  echo "${BASH_REMATCH[1]}"
}
data_port=$(host_port gateway 6789)
control_port=$(host_port gateway 50051)
metrics_port=$(host_port gateway 9464)
prometheus_port=$(host_port prometheus 9090)
log "published: data $data_port, control $control_port, metrics $metrics_port, prometheus $prometheus_port"
gateway=$(compose ps -q gateway)
grafana=$(compose ps -q grafana)
[[ -n $gateway && -n $grafana ]] || fail "containers missing"

# No systemd here, so nothing runs health checks on schedule: drive them.
(
  for _ in $(seq 600); do
    kill -0 $$ 2>/dev/null || break  # the test is gone (killed outright)
    podman healthcheck run "$gateway" >/dev/null 2>&1 || true
    sleep 2
  done
) &
health_pid=$!

log "gateway runs as a non-root user"
uid=$(podman exec "$gateway" awk '/^Uid:/ { print $2 }' /proc/1/status)
[[ $uid =~ ^[0-9]+$ && $uid != 0 ]] || fail "gateway runs as uid '$uid'"

log "gateway turns healthy"
health() { podman inspect --format '{{.State.Health.Status}}' "$gateway"; }
is_healthy() { [[ $(health) == healthy ]]; }
wait_for 120 "a healthy gateway" is_healthy
# (grep -q on a pipe could SIGPIPE the writer and fail under pipefail: read it all first.)
ps_out=$(compose ps gateway)
grep -q '(healthy)' <<<"$ps_out" || fail "docker-compose ps does not show the gateway healthy: $ps_out"

log "data plane through the published port"
reply=$(printf '00003abc' | timeout 20 nc -N -w 10 127.0.0.1 "$data_port") || true
[[ $reply == 00003cba ]] || fail "00003abc -> '$reply', want 00003cba"
reply=$(printf '00005hello00001x00003abc' | timeout 20 nc -N -w 10 127.0.0.1 "$data_port") || true
[[ $reply == 00005olleh00001x00003cba ]] || fail "pipelined frames -> '$reply'"
frames_sent=4  # 8 + 24 bytes each way, over 2 connections

log "control plane through the published port (buf curl)"
control=http://127.0.0.1:$control_port
bufcurl() { timeout 30 "$buf" curl --protocol grpc --http2-prior-knowledge "$@"; }
methods=$(bufcurl --list-methods "$control") || fail "buf curl --list-methods failed: $methods"
for method in grpc.health.v1.Health/Check gateway.v1.GatewayControl/GetStats; do
  grep -qx "$method" <<<"$methods" || fail "control plane does not list $method; it lists: $methods"
done
status=$(bufcurl "$control/grpc.health.v1.Health/Check") || fail "Health/Check failed: $status"
grep -q '"SERVING"' <<<"$status" || fail "Health/Check -> $status"
stats=$(bufcurl --emit-defaults "$control/gateway.v1.GatewayControl/GetStats") || fail "GetStats failed: $stats"
# Exactly the traffic sent above: 2 connections, 4 frames, 32 bytes each way.
/usr/bin/python3 -c 'import json, sys
t = json.loads(sys.argv[1])["totals"]
got = {k: int(t[k]) for k in ("accepted", "framesIn", "framesOut", "bytesIn", "bytesOut")}
want = {"accepted": 2, "framesIn": 4, "framesOut": 4, "bytesIn": 32, "bytesOut": 32}
sys.exit(0 if got == want else f"GetStats totals {got}, want {want}")' "$stats" || fail "GetStats: $stats"

log "Prometheus reports the gateway target up and has its metrics"
prometheus=http://127.0.0.1:$prometheus_port
promql() {  # promql EXPR: prints the first sample's value, or nothing
  curl -fsS --max-time 5 -G "$prometheus/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
target_up() { [[ $(promql 'up{job="gateway",instance="gateway:9464"}') == 1 ]]; }
wait_for 120 "Prometheus to report gateway:9464 up" target_up
scraped_traffic() {
  local v
  v=$(promql 'sum(gateway_frames_received_total)')
  [[ -n $v ]] && /usr/bin/python3 -c "import sys; sys.exit(0 if float('$v') >= $frames_sent else 1)"
}
wait_for 120 "Prometheus to scrape sum(gateway_frames_received_total) >= $frames_sent" scraped_traffic
frames=$(promql 'sum(gateway_frames_received_total)')
[[ $frames == "$frames_sent" ]] || fail "Prometheus counts $frames frames received, want exactly $frames_sent"
rules_ok() {  # the gateway alerting rules are loaded and evaluate cleanly
  curl -fsS --max-time 5 "$prometheus/api/v1/rules" 2>/dev/null | /usr/bin/python3 -c 'import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
gateway = [r for r in rules if r["name"].startswith("Gateway")]
sys.exit(0 if gateway and all(r.get("health") == "ok" for r in gateway) else 1)' 2>/dev/null
}
wait_for 60 "Prometheus to load and evaluate the gateway alerting rules" rules_ok
firing=$(promql 'count(ALERTS{alertname=~"Gateway.*",alertstate="firing"})')
[[ -z $firing ]] || fail "gateway alerts firing on a healthy stack: $firing"

log "Grafana service: provisioning mounted, datasource URL reachable"
podman exec "$grafana" sh -c 'ls /etc/grafana/provisioning/datasources/*.y*ml' >/dev/null ||
  fail "no datasource provisioning in the grafana container"
ds_url=$(podman exec "$grafana" sh -c 'cat /etc/grafana/provisioning/datasources/*.y*ml' |
  awk '$1 == "url:" && u == "" { u = $2 } END { print u }')
[[ $ds_url =~ ^http://([a-z0-9.-]+):([0-9]+)$ ]] || fail "datasource url '$ds_url' is not http://host:port"
podman exec "$grafana" bash -c "exec 3<>/dev/tcp/${BASH_REMATCH[1]}/${BASH_REMATCH[2]}" ||
  fail "the grafana container cannot reach $ds_url"
dashboards_dir=$(podman exec "$grafana" sh -c 'cat /etc/grafana/provisioning/dashboards/*.y*ml' |
  awk '$1 == "path:" && p == "" { p = $2 } END { print p }')
podman exec "$grafana" sh -c "ls $dashboards_dir/*.json" >/dev/null ||
  fail "no dashboard JSON at the provider path '$dashboards_dir' in the grafana container"

log "profile upstream: not started by a plain up"
others=$(compose --profile upstream ps -q proxy backend1 backend2)
[[ -z $others ]] || fail "the upstream profile's containers run without --profile upstream: $others"

log "profile upstream: proxy in front of backend1 and backend2"
# From here on every compose call (the clean-up's down included) has the profile.
export COMPOSE_PROFILES=upstream PROXY_DATA_PORT=0 PROXY_CONTROL_PORT=0 PROXY_METRICS_PORT=0
quietly compose-up-upstream compose up -d --no-build
proxy_port=$(host_port proxy 6789)
proxy_control_port=$(host_port proxy 50051)
log "published: proxy data $proxy_port, control $proxy_control_port"
for service in proxy backend1 backend2; do
  id=$(compose ps -q "$service")
  [[ -n $id && $(podman inspect --format '{{.State.Status}}' "$id") == running ]] ||
    fail "$service is not running: $(podman logs "$id" 2>&1 | tail -n 5)"
done
# Until both backends are connected a frame may get the error response (the
# empty frame 00000): retry the first one, then the rest must be exact.
proxied() { [[ $(printf '00003abc' | timeout 20 nc -N -w 10 127.0.0.1 "$proxy_port") == 00003cba ]]; }
wait_for 60 "a round trip through the proxy (00003abc -> 00003cba)" proxied
reply=$(printf '00005hello00001x00003abc' | timeout 20 nc -N -w 10 127.0.0.1 "$proxy_port") || true
[[ $reply == 00005olleh00001x00003cba ]] || fail "pipelined frames through the proxy -> '$reply'"
proxied_frames=4
backends=$(bufcurl --emit-defaults "http://127.0.0.1:$proxy_control_port/gateway.v1.GatewayControl/ListBackends") ||
  fail "ListBackends on the proxy failed: $backends"
for backend in backend1:6789 backend2:6789; do
  grep -q "\"$backend\"" <<<"$backends" || fail "the proxy does not list $backend: $backends"
done
proxy_up() { [[ $(promql 'up{job="gateway",instance="proxy:9464"}') == 1 ]]; }
wait_for 120 "Prometheus to find proxy:9464 by DNS and report it up" proxy_up
proxy_scraped() {
  [[ $(promql 'sum(gateway_upstream_responses_total{instance="proxy:9464"})') == "$proxied_frames" &&
     $(promql 'sum(gateway_upstream_healthy{instance="proxy:9464"})') == 2 ]]
}
wait_for 60 "Prometheus to scrape $proxied_frames upstream responses and 2 healthy backends from the proxy" proxy_scraped
requests=$(promql 'sum(gateway_upstream_requests_total{instance="proxy:9464"})')
[[ $requests == "$proxied_frames" ]] || fail "the proxy counts $requests upstream requests, want $proxied_frames"
errors=$(promql 'sum(gateway_upstream_errors_total{instance="proxy:9464"})')
[[ $errors == 0 ]] || fail "the proxy counts $errors upstream errors"
firing=$(promql 'count(ALERTS{alertname=~"Gateway.*",alertstate="firing"})')
[[ -z $firing ]] || fail "gateway alerts firing with the upstream profile up: $firing"
quietly compose-stop-proxy compose stop proxy
code=$(podman inspect --format '{{.State.ExitCode}}' "$(compose ps -q proxy)")
[[ $code == 0 ]] || fail "proxy exited with status $code after docker-compose stop"

log "SIGTERM: the gateway drains and exits 0"
quietly compose-stop compose stop gateway
code=$(podman inspect --format '{{.State.ExitCode}}' "$gateway")
[[ $code == 0 ]] || fail "gateway exited with status $code after docker-compose stop"
gateway_log=$(podman logs "$gateway" 2>&1)
grep -q 'SIGTERM received' <<<"$gateway_log" || fail "gateway log does not show the SIGTERM drain: $gateway_log"

log "all deployment checks passed"
