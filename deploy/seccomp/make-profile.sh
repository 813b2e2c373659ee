#!/usr/bin/env bash
# Writes io_uring.json next to this script: the container engine's default
# seccomp profile plus io_uring_setup, io_uring_enter and io_uring_register
# allowed, nothing else changed. Docker (since moby#46762) and Podman
# (containers-common's seccomp.json) leave these three out, so
# --io_model=io_uring fails in a container with EPERM (Docker) or ENOSYS
# (Podman) under the default profile; this is the opt-in that keeps every other
# restriction (better than seccomp=unconfined).
#   deploy/seccomp/make-profile.sh [DEFAULT_PROFILE]
# DEFAULT_PROFILE defaults to Podman's, /usr/share/containers/seccomp.json
# (Debian's golang-github-containers-common, installed by deploy/setup.sh
# --test); Docker's is moby's profiles/seccomp/default.json. The generated
# file is committed: rerun this after the default profile changes.
set -euo pipefail
cd "$(dirname "$0")"

source_profile=${1:-/usr/share/containers/seccomp.json}
[[ -r $source_profile ]] || {
  echo "make-profile: cannot read $source_profile (deploy/setup.sh --test installs Podman's)" >&2
  exit 1
}

/usr/bin/python3 - "$source_profile" io_uring.json.tmp <<'PY'
import json
import sys

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]

with open(sys.argv[1]) as f:
    profile = json.load(f)
rules = profile["syscalls"]
# A rule that denies them explicitly (some profiles list them under an errno
# rule) must not win over ours: drop them from every rule first.
for rule in rules:
    rule["names"] = [n for n in rule["names"] if n not in IO_URING]
profile["syscalls"] = [r for r in rules if r["names"]]
profile["syscalls"].append({
    "names": IO_URING,
    "action": "SCMP_ACT_ALLOW",
    "args": [],
    "comment": "connection-gateway --io_model=io_uring (deploy/seccomp/make-profile.sh)",
    "includes": {},
    "excludes": {},
})
with open(sys.argv[2], "w") as f:
    json.dump(profile, f, indent=2)
    f.write("\n")
PY
mv io_uring.json.tmp io_uring.json
echo "make-profile: wrote $(pwd)/io_uring.json from $source_profile"
