#!/usr/bin/env bash
# Prints the OCI runtime Podman should use on this machine: its default one
# (crun or runc, as installed) when that can start a container, otherwise runc.
# On hosts whose cgroups are hybrid (cgroup v1 controllers plus a cgroup2
# tree) crun refuses every container, also the RUN steps of `podman build`
# ("crun: cgroups in hybrid mode not supported"), while Debian's runc works.
# Decided by trial, not by looking at the host: `podman run --rm IMAGE true`
# with the default runtime, then with runc.
#   deploy/container/podman-runtime.sh [IMAGE]     (default: the local debian:bookworm-slim)
#   runtime=$(deploy/container/podman-runtime.sh)
#   podman --runtime "$runtime" build ...; podman --runtime "$runtime" system service ...
# Prints one runtime name on stdout (a note on stderr when it falls back);
# exits 1 with both errors when no runtime can start a container. Needs the
# image in local storage (deploy/container/podman-setup.sh makes it).
set -euo pipefail

image=${1:-docker.io/library/debian:bookworm-slim}

podman image exists "$image" || {
  echo "podman-runtime: no image $image for the trial (run deploy/container/podman-setup.sh)" >&2
  exit 1
}
default=$(podman info --format '{{.Host.OCIRuntime.Name}}') || {
  echo "podman-runtime: podman info failed" >&2
  exit 1
}

# Starts a throw-away container; prints podman's error output on failure.
trial() {  # trial [PODMAN_GLOBAL_OPTIONS...]
  timeout 120 podman "$@" run --rm --pull=never "$image" true 2>&1 >/dev/null
}

if default_error=$(trial); then
  echo "$default"
  exit 0
fi
if [[ $default != runc ]]; then
  if runc_error=$(trial --runtime runc); then
    echo "podman-runtime: the default runtime $default cannot start containers here" \
      "($(tail -n1 <<<"$default_error")); using runc" >&2
    echo runc
    exit 0
  fi
  echo "podman-runtime: runc cannot start containers either: $runc_error" >&2
  [[ -x /usr/sbin/runc || -x /usr/bin/runc ]] ||
    echo "podman-runtime: runc is not installed (deploy/setup.sh --test installs it)" >&2
fi
echo "podman-runtime: the default runtime $default cannot start containers: $default_error" >&2
exit 1
