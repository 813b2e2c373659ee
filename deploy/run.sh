#!/usr/bin/env bash
# Builds the gateway (Release) and runs it; arguments go to the gateway.
#   deploy/run.sh --trigger_mode=level --reactors=2
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gateway
exec build/gateway/gateway "$@"
