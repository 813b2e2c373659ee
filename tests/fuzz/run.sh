#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each for a
# bounded time, starting from a scratch copy of its committed seed corpus
# (tests/fuzz/corpus/NAME, never modified) after replaying its committed
# crash reproducers (tests/fuzz/regressions/NAME). Exits non-zero on the
# first crash, leak, sanitizer report or hang, leaving the reproducer in
# build-fuzz/fuzz/NAME/. deploy/test.sh runs it with the default 60 s.
#
#   tests/fuzz/run.sh [SECONDS_PER_FUZZER] [FUZZER...]   (default: 60, both)
#
# Environment: GATEWAY_FUZZ_BUILD_DIR (default build-fuzz), GATEWAY_FUZZ_JOBS
# (parallel libFuzzer processes per fuzzer, default 1), GATEWAY_FUZZ_FLAGS
# (extra libFuzzer flags, e.g. "-max_len=65536").
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
fuzzers=("$@")
[[ ${#fuzzers[@]} -gt 0 ]] || fuzzers=(scan_frame connection)
dir=${GATEWAY_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${GATEWAY_FUZZ_JOBS:-1}

CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j"$(nproc)" --target "${fuzzers[@]/%/_fuzzer}"

parallel=()
[[ $jobs -gt 1 ]] && parallel=(-jobs="$jobs" -workers="$jobs")
[[ $dir == /* ]] || dir=$PWD/$dir
for name in "${fuzzers[@]}"; do
  binary=$dir/tests/fuzz/${name}_fuzzer
  work=$dir/fuzz/$name
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp tests/fuzz/corpus/"$name"/* "$work/corpus/"
  regressions=(tests/fuzz/regressions/"$name"/*)
  if [[ -e ${regressions[0]} ]]; then
    echo "=== $name: ${#regressions[@]} committed reproducers ==="
    "$binary" "${regressions[@]}" >"$work/regressions.log" 2>&1 || { cat "$work/regressions.log"; exit 1; }
  fi
  echo "=== $name: fuzzing for ${seconds}s ($jobs job(s)) ==="
  log=$work/fuzz.log
  # -timeout: one input running 60 s is a hang; -rss_limit_mb is libFuzzer's default.
  # Run inside $work: with -jobs, libFuzzer writes its fuzz-N.log files there.
  # shellcheck disable=SC2086  # GATEWAY_FUZZ_FLAGS is a list of flags
  if ! (cd "$work" && "$binary" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
          "${parallel[@]}" -artifact_prefix="$work/artifacts/" ${GATEWAY_FUZZ_FLAGS:-} corpus >"$log" 2>&1); then
    find "$work" -maxdepth 1 -name '*.log' ! -name regressions.log -exec tail -n 60 {} +
    echo "FAILED: $name; reproducer(s): $(ls "$work/artifacts")"
    echo "replay: $binary $work/artifacts/<file>"
    exit 1
  fi
  # With -jobs each job's stats are in its fuzz-N.log (the main log repeats them).
  pattern=fuzz.log
  [[ $jobs -gt 1 ]] && pattern='fuzz-*.log'
  runs=$(find "$work" -maxdepth 1 -name "$pattern" -exec cat {} + |
         sed -n 's/^stat::number_of_executed_units: *//p' | awk '{s += $1} END {print s + 0}')
  echo "$name: $runs executions in ${seconds}s ($((runs / seconds))/s), corpus $(ls "$work/corpus" | wc -l) inputs, no crash"
done
