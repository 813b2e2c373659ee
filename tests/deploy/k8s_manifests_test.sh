#!/usr/bin/env bash
# The Kubernetes manifests (deploy/k8s), with no cluster:
#   - every overlay renders with `kubectl kustomize` (offline: KUBECONFIG
#     points nowhere);
#   - every rendered object validates against the Kubernetes and Prometheus
#     Operator schemas (npm kubernetes-models), unknown fields rejected, and
#     meets the policy of tests/deploy/k8s_validate.mjs (probes on the health
#     port, grace period >= drain delay + drain timeout + 5 s, hardening,
#     PDB, resources, spread, Service/ServiceMonitor/NetworkPolicy wiring,
#     every flag known to the gateway binary);
#   - the validator rejects mutated copies (it can fail);
#   - the Grafana dashboard copy under deploy/k8s is byte-identical to
#     deploy/grafana's.
#   tests/deploy/k8s_manifests_test.sh SOURCE_DIR GATEWAY_BINARY
# Needs kubectl and what deploy/setup.sh --test installs into .deps/node.
set -euo pipefail

src=$(cd "${1:?usage: k8s_manifests_test.sh SOURCE_DIR GATEWAY_BINARY}" && pwd)
gateway=${2:?usage: k8s_manifests_test.sh SOURCE_DIR GATEWAY_BINARY}
cd "$src"

log() { printf '[k8s-manifests] %s\n' "$*"; }
fail() { log "FAIL: $*"; exit 1; }

command -v kubectl >/dev/null || fail "kubectl not found (run deploy/setup.sh --test)"
command -v node >/dev/null || fail "node not found (run deploy/setup.sh --test)"
modules=$src/.deps/node/node_modules
for pkg in kubernetes-models @kubernetes-models/prometheus-operator yaml; do
  [[ -f $modules/$pkg/package.json ]] || fail "$modules/$pkg missing (run deploy/setup.sh --test)"
done

work=$(mktemp -d /tmp/gateway-k8s-manifests.XXXXXX)
trap 'rm -rf "$work"' EXIT

log "Grafana dashboard copy is identical to deploy/grafana's"
cmp deploy/grafana/dashboards/gateway.json deploy/k8s/base/grafana/gateway.json ||
  fail "deploy/k8s/base/grafana/gateway.json differs: cp deploy/grafana/dashboards/gateway.json deploy/k8s/base/grafana/"

# `--helpfull` exits 1, as Abseil's help does; the flag list is what counts.
("$gateway" --helpfull 2>&1 || true) | grep -oE '^    --[a-z0-9_]+' | sed 's/^ *--//' >"$work/flags" || true
(($(wc -l <"$work/flags") >= 20)) || fail "no flag list from $gateway --helpfull"

specs=()
for dir in deploy/k8s/overlays/*/; do
  name=$(basename "$dir")
  log "kubectl kustomize $dir"
  # kustomize v5 warns (stderr) about the v2-compatible fields; kept in a log.
  KUBECONFIG=/nonexistent timeout 60 kubectl kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err" || {
    cat "$work/$name.err"
    fail "kubectl kustomize $dir"
  }
  specs+=("$name=$work/$name.yaml")
done
((${#specs[@]} >= 2)) || fail "want the dev and prod overlays at least"

log "schemas, unknown fields and policy"
timeout 60 node tests/deploy/k8s_validate.mjs "$modules" "$work/flags" "${specs[@]}" || fail "validation"

log "the validator rejects broken manifests"
timeout 60 node tests/deploy/k8s_validate.mjs "$modules" "$work/flags" --self-test "$work/prod.yaml" || fail "self-test"

log "passed"
