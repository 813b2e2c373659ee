#!/usr/bin/env bash
# Installs what building (and, with --test, testing; with --bench,
# benchmarking) the gateway needs on Debian 12. Idempotent: installs only
# what is missing.
#   deploy/setup.sh           build dependencies
#   deploy/setup.sh --test    plus the test tools (Prometheus, Podman, buf, kubectl, ...)
#   deploy/setup.sh --bench   plus what bench/run.sh needs (gnuplot, libevent, ...)
#   (--test and --bench combine)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PACKAGES=(
  cmake g++ make pkgconf
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev grpc-proto
  libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  # The io_uring back-end.
  liburing-dev
  # The README's first demo pipes a frame through nc.
  netcat-openbsd
)
TEST_PACKAGES=(
  curl ca-certificates nodejs npm openssl
  # libFuzzer targets run in CI under clang.
  clang libclang-rt-14-dev
  prometheus docker-compose
  podman buildah podman-compose debootstrap catatonit uidmap slirp4netns fuse-overlayfs
  # crun refuses every container on hybrid-cgroup hosts; runc works there.
  runc
  # Named, because --no-install-recommends would otherwise pick CNI without
  # DNS: compose services find each other by name through aardvark-dns.
  netavark aardvark-dns iptables
)
# bench/run.sh: plots, the libevent reference server, scrapes, pinning;
# bench/upstream.sh: the proxies the gateway's upstream mode is measured
# against (HAProxy in TCP mode, nginx's stream module) and ss (iproute2).
BENCH_PACKAGES=(gnuplot-nox libevent-dev curl python3 coreutils util-linux iproute2
  haproxy nginx libnginx-mod-stream)

TEST=0
want=("${BUILD_PACKAGES[@]}")
for arg in "$@"; do
  case $arg in
    --test) TEST=1 want+=("${TEST_PACKAGES[@]}") ;;
    --bench) want+=("${BENCH_PACKAGES[@]}") ;;
    *) echo "usage: deploy/setup.sh [--test] [--bench]" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  # A node/npm from elsewhere (e.g. NodeSource's nodejs, which bundles npm and
  # conflicts with Debian's npm package) is as good as Debian's.
  if [[ $pkg == nodejs || $pkg == npm ]] && command -v "${pkg/nodejs/node}" >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  # `env` carries DEBIAN_FRONTEND through sudo, which would drop it.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((TEST)); then
  # buf (for `buf curl`, a reflection-only gRPC client) comes from the npm
  # registry into a local, git-ignored folder.
  if [[ ! -x .deps/node/node_modules/.bin/buf ]]; then
    echo "setup: installing @bufbuild/buf into .deps/node"
    mkdir -p .deps/node
    npm install --silent --no-audit --no-fund --prefix .deps/node @bufbuild/buf@1 >/dev/null
  fi
  # The Kubernetes and Prometheus Operator schemas (and a YAML parser) that
  # tests/deploy/k8s_validate.mjs checks the rendered deploy/k8s overlays with.
  if [[ ! -f .deps/node/node_modules/kubernetes-models/package.json ||
        ! -f .deps/node/node_modules/@kubernetes-models/prometheus-operator/package.json ||
        ! -f .deps/node/node_modules/yaml/package.json ]]; then
    echo "setup: installing kubernetes-models, @kubernetes-models/prometheus-operator, yaml into .deps/node"
    mkdir -p .deps/node
    npm install --silent --no-audit --no-fund --prefix .deps/node \
      kubernetes-models@5 @kubernetes-models/prometheus-operator@6 yaml@2 >/dev/null
  fi
  # `kubectl kustomize` renders deploy/k8s. Where no kubectl is installed,
  # Debian's kubernetes-client (kubectl 1.20, kustomize v2) does: the overlays
  # keep to the syntax it knows. Kept only if it renders them.
  if ! command -v kubectl >/dev/null; then
    echo "setup: installing kubernetes-client (kubectl) for kubectl kustomize"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
    for overlay in deploy/k8s/overlays/*/; do
      if ! KUBECONFIG=/nonexistent kubectl kustomize "$overlay" >/dev/null; then
        echo "setup: Debian's kubectl cannot render $overlay; removing it (install a kubectl with kustomize v5)" >&2
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq kubernetes-client >/dev/null
        break
      fi
    done
  fi
fi
