#!/usr/bin/env bash
# The prod overlay's pod template under `podman kube play`, as close to a
# kubelet as a machine without a cluster gets:
#   - the rendered Deployment's pod template becomes a Pod manifest
#     (tests/deploy/k8s_pod_manifest.mjs: data and health ports on 127.0.0.1
#     at free host ports, probes dropped since Podman cannot run gRPC ones);
#   - the pod starts under the template's hardening (uid 10001, read-only
#     root, no capabilities, no-new-privileges, seccomp, memory limit) with
#     POD_NAME from the downward API;
#   - the health port answers what the kubelet's gRPC probes ask: liveness
#     and readiness SERVING;
#   - 00003abc -> 00003cba on the data port;
#   - SIGTERM (what the kubelet sends): readiness turns NOT_SERVING while
#     liveness stays SERVING, a held client connection gets a FIN (no reset),
#     and the gateway exits 0.
# Builds the image from the Dockerfile as the other deploy tests do (same tag
# and layer cache). The OCI runtime is chosen by a trial container
# (deploy/container/podman-runtime.sh). The pod is removed on exit.
#   tests/deploy/k8s_podman_test.sh [SOURCE_DIR]
# Needs root (rootful Podman), kubectl and what deploy/setup.sh --test
# installs; exits 77 (skipped) when not root or without podman.
set -euo pipefail

src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
cd "$src"

log() { printf '[k8s-podman %4ss] %s\n' "$SECONDS" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]] || ! command -v podman >/dev/null; then
  echo "k8s podman test: needs root and podman (rootful Podman); skipped"
  exit 77
fi
for tool in kubectl node nc; do
  command -v "$tool" >/dev/null || fail "$tool not found (run deploy/setup.sh --test)"
done
modules=$src/.deps/node/node_modules
buf=$modules/.bin/buf
[[ -x $buf && -f $modules/yaml/package.json ]] || fail "$modules incomplete (run deploy/setup.sh --test)"

readonly image=localhost/connection-gateway:latest
readonly pod=gwk8s$$
work=$(mktemp -d /tmp/gateway-k8s-podman-test.XXXXXX)
held=""

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && podman pod exists "$pod" 2>/dev/null; then
    log "gateway log at failure:"
    podman logs --tail 30 "$pod-gateway" 2>&1
  fi
  [[ -n $held ]] && exec 3<&-
  [[ -f $work/pod.yaml ]] && timeout 60 podman kube down "$work/pod.yaml" >/dev/null 2>&1
  podman pod rm -f "$pod" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A run killed outright (ctest timeout) leaves its pod: remove those whose
# test process is gone.
for stale in $(podman pod ls --format '{{.Name}}' 2>/dev/null | grep -E '^gwk8s[0-9]+$' || true); do
  kill -0 "${stale#gwk8s}" 2>/dev/null || podman pod rm -f "$stale" >/dev/null 2>&1 || true
done

quietly() {  # quietly NAME COMMAND...: output shown only on failure
  local what=$1 status=0
  shift
  "$@" >"$work/$what.log" 2>&1 || status=$?
  if ((status != 0)); then
    tail -n 60 "$work/$what.log"
    fail "$what: $* (status $status)"
  fi
}

quietly podman-setup deploy/container/podman-setup.sh
runtime=$(deploy/container/podman-runtime.sh 2>"$work/runtime.log") || {
  cat "$work/runtime.log"
  fail "no OCI runtime can start a container here"
}
log "OCI runtime: $runtime"
rt_podman() { podman --runtime "$runtime" "$@"; }

log "building $image (layer cache shared with the other deploy tests)"
quietly build rt_podman build --format docker --layers -t "$image" -f Dockerfile .

log "rendering deploy/k8s/overlays/prod into a Pod manifest"
KUBECONFIG=/nonexistent timeout 60 kubectl kustomize deploy/k8s/overlays/prod >"$work/prod.yaml" 2>"$work/kustomize.err" ||
  { cat "$work/kustomize.err"; fail "kubectl kustomize deploy/k8s/overlays/prod"; }
# Two free loopback ports for the data and health host ports.
read -r data_port health_port < <(node -e '
  const net = require("net"); const ports = [];
  const next = () => { const s = net.createServer().listen(0, "127.0.0.1", () => {
    ports.push(s.address().port); s.close(() => ports.length < 2 ? next() : console.log(ports.join(" "))); }); };
  next();')
[[ $data_port =~ ^[0-9]+$ && $health_port =~ ^[0-9]+$ ]] || fail "no free ports"
node tests/deploy/k8s_pod_manifest.mjs "$modules" "$work/prod.yaml" "$pod" "$image" "$data_port" "$health_port" \
  >"$work/pod.yaml" || fail "k8s_pod_manifest.mjs"

log "podman kube play (data 127.0.0.1:$data_port, health 127.0.0.1:$health_port)"
quietly kube-play timeout 120 podman --runtime "$runtime" kube play "$work/pod.yaml"
container=$pod-gateway

health() {  # health SERVICE: prints the status, or nothing
  timeout 10 "$buf" curl --protocol grpc --http2-prior-knowledge -d "{\"service\":\"$1\"}" \
    "http://127.0.0.1:$health_port/grpc.health.v1.Health/Check" 2>/dev/null |
    node -e 'let s = ""; process.stdin.on("data", (d) => s += d).on("end", () => {
      try { console.log(JSON.parse(s).status ?? ""); } catch { console.log(""); } })'
}
deadline=$((SECONDS + 60))
until [[ $(health liveness) == SERVING ]]; do
  [[ $(podman inspect --format '{{.State.Running}}' "$container" 2>/dev/null) == true ]] ||
    fail "the gateway exited: $(podman logs "$container" 2>&1 | tail -n 5)"
  ((SECONDS < deadline)) || fail "liveness not SERVING on the health port within 60 s"
  sleep 1
done
log "health port: liveness SERVING"
[[ $(health readiness) == SERVING ]] || fail "readiness is '$(health readiness)', want SERVING"
[[ $(health "") == SERVING ]] || fail "the overall health is not SERVING"

log "the pod template's hardening is in force"
uid=$(podman exec "$container" awk '/^Uid:/ { print $2 }' /proc/1/status)
[[ $uid == 10001 ]] || fail "the gateway runs as uid '$uid', want 10001"
nnp=$(podman exec "$container" awk '/^NoNewPrivs:/ { print $2 }' /proc/1/status)
[[ $nnp == 1 ]] || fail "NoNewPrivs is '$nnp' (allowPrivilegeEscalation: false not applied)"
caps=$(podman exec "$container" awk '/^CapEff:/ { print $2 }' /proc/1/status)
[[ $caps =~ ^0+$ ]] || fail "effective capabilities $caps, want none"
[[ $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$container") == true ]] || fail "root filesystem writable"
podman exec "$container" sh -c 'touch /probe' 2>/dev/null && fail "wrote to the root filesystem"
[[ $(podman inspect --format '{{.HostConfig.Memory}}' "$container") == 1073741824 ]] || fail "memory limit not 1Gi"
[[ $(podman exec "$container" printenv POD_NAME) == "$pod" ]] || fail "POD_NAME is not the pod's name"

log "data plane: 00003abc -> 00003cba"
reply=$(printf '00003abc' | timeout 20 nc -N -w 10 127.0.0.1 "$data_port") || true
[[ $reply == 00003cba ]] || fail "00003abc -> '$reply', want 00003cba"

log "SIGTERM: readiness off, liveness on, a held connection gets a FIN, exit 0"
exec 3<>"/dev/tcp/127.0.0.1/$data_port"
held=1
printf '00002hi' >&3
IFS= read -r -N 7 -t 10 echoed <&3 || fail "no answer on the held connection"
[[ $echoed == 00002ih ]] || fail "held connection: 00002hi -> '$echoed'"
podman kill --signal TERM "$container" >/dev/null
# The drain delay (5 s) keeps the gateway up while the kubelet would see this.
deadline=$((SECONDS + 5))
until [[ $(health readiness) == NOT_SERVING ]]; do
  ((SECONDS < deadline)) || fail "readiness did not turn NOT_SERVING after SIGTERM"
  sleep 0.2
done
[[ $(health liveness) == SERVING ]] || fail "liveness not SERVING while draining"
# EOF (a FIN), not a reset, once the drain closes it; then the exit.
rest=$(timeout 30 cat <&3) || fail "the held connection ended in an error (reset?), not a FIN"
[[ -z $rest ]] || fail "unexpected bytes on the held connection: '$rest'"
exec 3<&-
held=""
deadline=$((SECONDS + 30))
until [[ $(podman inspect --format '{{.State.Status}}' "$container") == exited ]]; do
  ((SECONDS < deadline)) || fail "the gateway did not exit within 30 s of SIGTERM"
  sleep 0.5
done
code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
[[ $code == 0 ]] || fail "the gateway exited $code after SIGTERM, want 0"

quietly kube-down timeout 60 podman kube down "$work/pod.yaml"
podman pod exists "$pod" 2>/dev/null && fail "podman kube down left the pod"
log "passed"
