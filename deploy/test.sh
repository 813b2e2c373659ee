#!/usr/bin/env bash
# Builds and runs the whole test suite:
#   1. Release build: every test, including the Prometheus/Grafana and
#      container deployment tests;
#   2. ASan+UBSan build: unit and integration tests;
#   3. TSan build: the multi-threaded tests (label "threaded");
#   4. libFuzzer (clang, ASan+UBSan): each fuzzer for 60 s from its committed
#      seed corpus (tests/fuzz/run.sh; GATEWAY_FUZZ_SECONDS to change).
# Set GATEWAY_TEST_QUICK=1 to run only step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh --test
jobs=$(nproc)

build() {  # build DIR CMAKE_ARGS...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

echo "=== Release build: all tests ==="
build build -DCMAKE_BUILD_TYPE=Release
(cd build && ctest --output-on-failure --timeout 900)

if [[ "${GATEWAY_TEST_QUICK:-0}" != 1 ]]; then
  echo "=== ASan+UBSan build: unit and integration tests ==="
  build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATEWAY_SANITIZE=ON
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure --timeout 900 -LE 'deploy|monitoring|e2e|soak')

  echo "=== TSan build: threaded tests ==="
  build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATEWAY_TSAN=ON
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
     ctest --output-on-failure --timeout 900 -L threaded)

  echo "=== libFuzzer: frame decoder and connection fuzzers ==="
  tests/fuzz/run.sh "${GATEWAY_FUZZ_SECONDS:-60}"
fi
