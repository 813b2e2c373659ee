#!/usr/bin/env bash
# Validates docker-compose.yml with docker-compose itself (no engine needed),
# alone and with the deployment test's override, and checks the services and
# published ports a user relies on; the "upstream" profile (a gateway in
# upstream mode in front of two backend gateways, all scraped by Prometheus);
# also the opt-in io_uring override and the seccomp profile it names.
#   tests/deploy/compose_config_test.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"

fail() { echo "FAIL: $*" >&2; exit 1; }
# Defaults only: no host environment or .env file may change what is checked.
unset GATEWAY_DATA_PORT GATEWAY_CONTROL_PORT GATEWAY_METRICS_PORT PROMETHEUS_PORT GRAFANA_PORT \
  PROXY_DATA_PORT PROXY_CONTROL_PORT PROXY_METRICS_PORT
export COMPOSE_PROJECT_NAME=gwconfigtest

docker-compose -f docker-compose.yml config -q || fail "docker-compose.yml is invalid"
docker-compose -f docker-compose.yml -f deploy/container/compose.test.yml config -q ||
  fail "docker-compose.yml + deploy/container/compose.test.yml is invalid"

docker-compose --profile upstream -f docker-compose.yml -f deploy/container/compose.test.yml config -q ||
  fail "docker-compose.yml + deploy/container/compose.test.yml with --profile upstream is invalid"

# (docker-compose 1.29 lists every service here, whatever the profile; which
# ones `up` starts without --profile is checked below.)
services=$(docker-compose -f docker-compose.yml config --services | sort | tr '\n' ' ')
[[ $services == "backend1 backend2 gateway grafana prometheus proxy " ]] || fail "services are '$services'"

# The resolved file, as docker-compose will use it.
config=$(docker-compose -f docker-compose.yml config)
/usr/bin/python3 - "$config" <<'PY' || fail "resolved docker-compose.yml does not match expectations"
import os
import sys

import yaml

c = yaml.safe_load(sys.argv[1])["services"]


def published(service):
    out = set()
    for p in c[service].get("ports", []):
        if isinstance(p, dict):
            out.add((p.get("host_ip", ""), int(p["published"]), int(p["target"])))
        else:  # "ip:published:target/proto"
            parts = p.split("/")[0].split(":")
            ip = parts[0] if len(parts) == 3 else ""
            out.add((ip, int(parts[-2]), int(parts[-1])))
    return out


def expect(what, got, want):
    if got != want:
        print(f"{what}: got {got!r}, want {want!r}")
        sys.exit(1)


expect("gateway ports", published("gateway"),
       {("", 6789, 6789), ("127.0.0.1", 50051, 50051), ("", 9464, 9464)})
expect("prometheus ports", published("prometheus"), {("", 9090, 9090)})
# Profile "upstream": only proxy, backend1 and backend2, so a plain `up`
# starts exactly gateway, prometheus and grafana.
profiles = {name: tuple(service.get("profiles", [])) for name, service in c.items()}
expect("profiles", profiles, {"gateway": (), "prometheus": (), "grafana": (), "proxy": ("upstream",),
                              "backend1": ("upstream",), "backend2": ("upstream",)})
expect("proxy ports", published("proxy"), {("", 6790, 6789), ("127.0.0.1", 50052, 50051), ("", 9465, 9464)})
base = ["--listen=0.0.0.0:6789", "--control_listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464"]
expect("proxy command", c["proxy"]["command"], base + ["--upstream=backend1:6789,backend2:6789"])
expect("proxy depends on", set(c["proxy"]["depends_on"]), {"backend1", "backend2"})
for backend in ("backend1", "backend2"):
    # Plain gateways of the same image, reachable only on the compose network.
    expect(f"{backend} command", c[backend]["command"], base)
    expect(f"{backend} image", c[backend]["image"], c["gateway"]["image"])
    expect(f"{backend} ports", published(backend), set())
expect("proxy image", c["proxy"]["image"], c["gateway"]["image"])
# Prometheus finds the profile's gateways by DNS (no target when they are not
# running), in the dashboard's job, named like the static target.
with open("deploy/prometheus/prometheus.yml") as f:
    job = next(j for j in yaml.safe_load(f)["scrape_configs"] if j["job_name"] == "gateway")
expect("static targets", job["static_configs"], [{"targets": ["gateway:9464"]}])
sd = job["dns_sd_configs"]
expect("dns_sd names", (sorted(sd[0]["names"]), sd[0]["type"], sd[0]["port"]),
       (["backend1", "backend2", "proxy"], "A", 9464))
expect("instance relabel", [(r["source_labels"], r["target_label"], r["replacement"]) for r in job["relabel_configs"]],
       [(["__meta_dns_name"], "instance", "$1:9464")])
expect("grafana ports", published("grafana"), {("", 3000, 3000)})
cmd = c["gateway"]["command"]
for flag in ("--listen=0.0.0.0:6789", "--control_listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464"):
    if flag not in cmd:
        print(f"gateway command {cmd} lacks {flag}")
        sys.exit(1)
mounts = {v.split(":")[1] for v in c["prometheus"]["volumes"]}
expect("prometheus config mounted", "/etc/prometheus" in mounts, True)
mounts = {v.split(":")[1] for v in c["grafana"]["volumes"]}
expect("grafana provisioning mounted", "/etc/grafana/provisioning" in mounts, True)
# A missing bind-mount source would be created empty by the engine.
for name, service in c.items():
    for v in service.get("volumes", []):
        source = v.split(":")[0]
        if source.startswith("/") and not os.path.exists(source):
            print(f"{name}: bind-mount source {source} does not exist")
            sys.exit(1)
PY
# The opt-in io_uring override: valid, same command plus the model, and the
# seccomp profile it names exists and allows exactly what it says.
docker-compose -f docker-compose.yml -f deploy/compose.io_uring.yml config -q ||
  fail "docker-compose.yml + deploy/compose.io_uring.yml is invalid"
uring=$(docker-compose -f docker-compose.yml -f deploy/compose.io_uring.yml config)
/usr/bin/python3 - "$uring" <<'PY' || fail "deploy/compose.io_uring.yml does not resolve as documented"
import json
import sys

import yaml

g = yaml.safe_load(sys.argv[1])["services"]["gateway"]
want = ["--listen=0.0.0.0:6789", "--control_listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464",
        "--io_model=io_uring"]
if g["command"] != want:
    sys.exit(f"gateway command {g['command']}, want {want}")
opts = [o.replace(":", "=", 1) for o in g.get("security_opt", [])]
if opts != ["seccomp=./deploy/seccomp/io_uring.json"]:
    sys.exit(f"gateway security_opt {opts}")
with open("deploy/seccomp/io_uring.json") as f:
    profile = json.load(f)
allowed = {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("includes")
           for n in r["names"]}
denied = {n for r in profile["syscalls"] if r["action"] != "SCMP_ACT_ALLOW" for n in r["names"]}
uring = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
if not uring <= allowed or uring & denied:
    sys.exit("deploy/seccomp/io_uring.json does not allow the three io_uring syscalls unconditionally")
if profile["defaultAction"] == "SCMP_ACT_ALLOW" or len(allowed) < 300:
    sys.exit("deploy/seccomp/io_uring.json is not a default-deny profile")
PY
echo "docker-compose.yml: valid"
