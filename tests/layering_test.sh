#!/usr/bin/env bash
# gateway/ is the data plane alone. Fails if a file under gateway/ includes
# control/, metrics/, server/, gRPC, Prometheus or absl/flags.
#   --facade also fails if gateway/gateway.h, through the gateway/ headers it
#   includes (transitively), pulls in connection, buffer, loop or poller
#   internals.
# Usage: layering_test.sh SOURCE_DIR [--facade]
set -euo pipefail
src=${1:?usage: layering_test.sh SOURCE_DIR [--facade]}
facade=${2:-}
status=0

forbidden='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](control/|metrics/|server/|grpc|grpcpp/|prometheus/|absl/flags/)'
if hits=$(grep -rnE "$forbidden" "$src/gateway"); then
  echo "FAIL: gateway/ includes what the data plane must not depend on:"
  echo "$hits"
  status=1
fi

if [[ $facade == --facade ]]; then
  internals='^gateway/(connection|connection_host|connection_timers|connection_events|buffer|read_scratch|event_loop|reactor|poller|listener)\.h$'
  declare -A seen=()
  queue=(gateway/gateway.h)
  while ((${#queue[@]})); do
    header=${queue[0]}
    queue=("${queue[@]:1}")
    [[ -n ${seen[$header]:-} ]] && continue
    seen[$header]=1
    [[ -f $src/$header ]] || continue
    while read -r included; do
      if [[ $included =~ $internals ]]; then
        echo "FAIL: gateway/gateway.h pulls in $included (through $header)"
        status=1
      fi
      queue+=("$included")
    done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"(gateway\/[^"]+)".*/\1/p' "$src/$header")
  done
fi

((status == 0)) && echo "OK: gateway/ layering"
exit $status
