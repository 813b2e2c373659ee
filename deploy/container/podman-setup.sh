#!/usr/bin/env bash
# Prepares rootful Podman on a machine without Docker so the compose stack can
# run on it (what tests/deploy/deploy_stack_test.sh does first):
#   1. default container ulimits within this machine's hard limits (sandboxes
#      refuse Podman's larger defaults with "error setting rlimit type 7"),
#      written once to /etc/containers/containers.conf.d/ (idempotent);
#   2. the local debian:bookworm-slim base image (deploy/container/base-image.sh).
# Needs root and the packages deploy/setup.sh --test installs.
set -euo pipefail
cd "$(dirname "$0")"

if [[ $(id -u) -ne 0 ]]; then
  echo "podman-setup: must run as root (rootful Podman)" >&2
  exit 1
fi

# The lower of Podman's wish and the hard limit this process may grant.
limit() {  # limit HARD WANTED
  if [[ $1 == unlimited ]] || (($1 > $2)); then echo "$2"; else echo "$1"; fi
}
nofile=$(limit "$(ulimit -Hn)" 1048576)
nproc=$(limit "$(ulimit -Hu)" 32768)
conf=/etc/containers/containers.conf.d/50-gateway-ulimits.conf
want="# Written by connection-gateway deploy/container/podman-setup.sh
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
if [[ ! -f $conf || "$(cat "$conf")" != "$want" ]]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" >"$conf.tmp"
  mv "$conf.tmp" "$conf"
  echo "podman-setup: wrote $conf"
fi

./base-image.sh
