#!/usr/bin/env bash
# io_uring under Podman's seccomp profiles: io_uring_setup itself in a plain
# container (default profile: refused; deploy/seccomp/io_uring.json: allowed),
# then the gateway image on the io_uring back-end:
#   - the default profile (no io_uring syscalls: ENOSYS) -> the container
#     exits 1 with one line on stderr naming io_uring and the seccomp fix;
#   - --security-opt seccomp=deploy/seccomp/io_uring.json (the opt-in
#     profile) -> ready, and 00003abc is answered 00003cba through the
#     published port.
# Builds the image from the Dockerfile as the stack test does (same tag and
# layer cache, so after tests/deploy/deploy_stack_test.sh it is a cache hit
# and this takes seconds). The OCI runtime is chosen by a trial container
# (deploy/container/podman-runtime.sh). What it starts is removed on exit.
#   tests/deploy/io_uring_seccomp_test.sh [SOURCE_DIR]
# Needs root (rootful Podman) and what deploy/setup.sh --test installs; exits
# 77 (skipped) when not root.
set -euo pipefail

src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
cd "$src"

log() { printf '[io_uring-seccomp %4ss] %s\n' "$SECONDS" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  echo "io_uring seccomp test: needs root for rootful Podman; skipped"
  exit 77
fi
for tool in podman nc; do
  command -v "$tool" >/dev/null || fail "$tool not found (run deploy/setup.sh --test)"
done
[[ -r deploy/seccomp/io_uring.json ]] || fail "deploy/seccomp/io_uring.json missing"

readonly image=localhost/connection-gateway:latest
work=$(mktemp -d /tmp/gateway-uring-seccomp-test.XXXXXX)
name=gwuring$$
cleanup() {
  local rc=$?
  set +e
  podman rm -f "$name" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# The profiles themselves, whatever the gateway does: io_uring_setup(1, zeroed
# params), syscall 425 on x86_64 and aarch64, by perl (perl-base is in every
# Debian image); prints "ok" or the errno number.
try_setup='my $p = "\0" x 120; my $r = syscall(425, 1, $p); print $r < 0 ? $! + 0 : "ok"'
base=docker.io/library/debian:bookworm-slim
log "io_uring_setup in a container: refused by the default profile, allowed by ours"
got=$(rt_podman run --rm --pull=never "$base" perl -e "$try_setup" 2>&1) || fail "podman run: $got"
[[ $got == 38 || $got == 1 ]] || fail "io_uring_setup under the default profile -> '$got', want 38 (ENOSYS) or 1 (EPERM)"
got=$(rt_podman run --rm --pull=never --security-opt seccomp="$src/deploy/seccomp/io_uring.json" "$base" \
  perl -e "$try_setup" 2>&1) || fail "podman run: $got"
[[ $got == ok ]] || fail "io_uring_setup under deploy/seccomp/io_uring.json -> '$got', want ok"

log "building $image (layer cache shared with the stack test)"
quietly build rt_podman build --format docker --layers -t "$image" -f Dockerfile .

flags=(--listen=0.0.0.0:6789 --control_listen= --metrics_listen= --io_model=io_uring)

log "default seccomp profile: exit 1 with one line"
# Detached, so podman's own messages (e.g. about systemd health-check timers)
# stay out of what the container wrote; no health check needed here.
rt_podman run -d --pull=never --no-healthcheck --name "$name" "$image" "${flags[@]}" >/dev/null ||
  fail "podman run failed"
status=$(timeout 60 podman wait "$name") || fail "the gateway did not exit within 60 s: $(podman logs "$name" 2>&1)"
err=$(podman logs "$name" 2>&1)
podman rm -f "$name" >/dev/null 2>&1 || true
((status == 1)) || fail "exit status $status under the default profile, want 1; output: $err"
lines=$(grep -c . <<<"$err" || true)
((lines == 1)) || fail "the container wrote $lines lines, want 1: $err"
[[ $err == "gateway: "* && $err == *io_uring* ]] || fail "the line does not name io_uring: $err"
[[ $err == *seccomp* ]] || fail "the line does not name the seccomp fix: $err"
log "  $err"

log "deploy/seccomp/io_uring.json: ready and serving"
rt_podman run -d --pull=never --no-healthcheck --name "$name" --security-opt seccomp="$src/deploy/seccomp/io_uring.json" \
  -p 127.0.0.1::6789 "$image" "${flags[@]}" >/dev/null || fail "podman run with the io_uring profile failed"
deadline=$((SECONDS + 30))
until podman logs "$name" 2>&1 | grep -q '^gateway: ready '; do
  if [[ $(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
    fail "the gateway exited under the io_uring profile: $(podman logs "$name" 2>&1)"
  fi
  ((SECONDS < deadline)) || fail "no ready line within 30 s: $(podman logs "$name" 2>&1)"
  sleep 0.5
done
addr=$(podman port "$name" 6789/tcp | head -n1)
[[ $addr =~ :([0-9]+)$ ]] || fail "no published port: '$addr'"
port=${BASH_REMATCH[1]}
reply=$(printf '00003abc' | timeout 20 nc -N -w 10 127.0.0.1 "$port") || true
[[ $reply == 00003cba ]] || fail "00003abc -> '$reply', want 00003cba; log: $(podman logs "$name" 2>&1)"
quietly stop podman stop -t 15 "$name"
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[[ $code == 0 ]] || fail "the gateway exited $code on SIGTERM"
log "passed"
