#!/usr/bin/env bash
# Makes the Debian 12 base image the Dockerfile starts from,
# docker.io/library/debian:bookworm-slim, in local Podman storage, for machines
# that reach Debian's archive but no container registry. Built with debootstrap
# from the apt mirror this machine already uses (or $DEBIAN_MIRROR /
# $DEBIAN_SECURITY_MIRROR), trimmed like the official slim image (no docs, man
# pages or locales). Does nothing when the image is already there.
#   deploy/container/base-image.sh           make it if missing
#   deploy/container/base-image.sh --force   make it again
# Needs root, debootstrap and podman (deploy/setup.sh --test installs them).
set -euo pipefail

readonly IMAGE=docker.io/library/debian:bookworm-slim

if [[ "${1:-}" != --force ]] && podman image exists "$IMAGE"; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "base-image: must run as root (debootstrap)" >&2
  exit 1
fi

# Prints the first URI that apt uses for suite $1 (deb822 .sources files
# first, then one-line .list files).
apt_uri_for_suite() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # One stanza per paragraph: print its URI when its Suites include $suite.
    awk -v suite="$suite" '
      function flush() { if (types ~ /(^| )deb( |$)/ && has && uri != "") { print uri; found = 1; exit } }
      /^[ \t]*$/ { flush(); types = ""; uri = ""; has = 0; next }
      /^Types:/  { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
      END { if (!found) flush() }' "$f" | head -n1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v suite="$suite" '
      $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }' "$f"
  done
}

mirror=${DEBIAN_MIRROR:-$(apt_uri_for_suite bookworm | head -n1)}
security=${DEBIAN_SECURITY_MIRROR:-$(apt_uri_for_suite bookworm-security | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}

# One builder at a time; a second caller waits and then finds the image.
exec 9>/run/lock/gateway-base-image.lock
flock 9
if [[ "${1:-}" != --force ]] && podman image exists "$IMAGE"; then
  exit 0
fi

work=$(mktemp -d /var/tmp/gateway-base-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "base-image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
# What the official slim image leaves out, so later apt-get installs stay small.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
  "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
# The host's resolver and hostname are provided by the container runtime.
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"

tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
podman import --quiet \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$work/rootfs.tar" "$IMAGE" >/dev/null
echo "base-image: made $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
