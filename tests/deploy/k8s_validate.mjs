// Validates rendered Kustomize overlays (deploy/k8s): every object against
// the Kubernetes / Prometheus Operator schemas of the npm kubernetes-models
// packages, with unknown fields rejected, then the policy an operator relies
// on (probes, drain timing, hardening, selectors, monitoring wiring).
//   node k8s_validate.mjs NODE_MODULES FLAGS_FILE NAME=RENDERED.yaml...
//   node k8s_validate.mjs NODE_MODULES FLAGS_FILE --self-test RENDERED.yaml
// FLAGS_FILE: the gateway's flag names, one a line (from `gateway --helpfull`).
// --self-test: mutates a rendered overlay in ways that must be caught (a
// string grace period, an unknown field, a short grace period, an unknown
// flag) and fails unless each one is; proves the checks can fail.
// Prints one line per problem; exits 1 if any.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, flagsFile, ...rest] = process.argv.slice(2);
if (!nodeModules || !flagsFile || rest.length === 0) {
  console.error("usage: k8s_validate.mjs NODE_MODULES FLAGS_FILE (NAME=FILE... | --self-test FILE)");
  process.exit(2);
}
const load = (path) => import(pathToFileURL(join(nodeModules, path)).href);
const YAML = await load("yaml/dist/index.js");

// apiVersion/kind -> the models' compiled JSON-schema validator.
const core = (name) => `kubernetes-models/_schemas/IoK8sApi${name}.js`;
const SCHEMAS = {
  "v1/Namespace": core("CoreV1Namespace"),
  "v1/Service": core("CoreV1Service"),
  "v1/ConfigMap": core("CoreV1ConfigMap"),
  "apps/v1/Deployment": core("AppsV1Deployment"),
  "policy/v1/PodDisruptionBudget": core("PolicyV1PodDisruptionBudget"),
  "autoscaling/v2/HorizontalPodAutoscaler": core("AutoscalingV2HorizontalPodAutoscaler"),
  "networking.k8s.io/v1/NetworkPolicy": core("NetworkingV1NetworkPolicy"),
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor.js",
};
const validators = {};
for (const [key, path] of Object.entries(SCHEMAS)) validators[key] = (await load(path)).validate;

const gatewayFlags = new Set(readFileSync(flagsFile, "utf8").split("\n").filter(Boolean));

// The schema validators are plain property reads: a field the schema knows
// is read, an object whose keys are free (labels, ConfigMap data) is
// enumerated. So a key that is neither read nor enumerated is unknown to the
// schema; the API server would drop it (a typo like terminationGracePeriodSecondz).
function tracked(root) {
  const seen = new Map();  // object -> {read: Set, enumerated: bool}
  const proxies = new Map();
  const wrap = (value) => {
    if (value === null || typeof value !== "object") return value;
    if (proxies.has(value)) return proxies.get(value);
    const info = { read: new Set(), enumerated: false };
    seen.set(value, info);
    const proxy = new Proxy(value, {
      get(target, key, receiver) {
        if (typeof key === "string") info.read.add(key);
        return wrap(Reflect.get(target, key, receiver));
      },
      has(target, key) {
        if (typeof key === "string") info.read.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        info.enumerated = true;
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  return { proxy: wrap(root), seen };
}

function unknownFields(root, seen) {
  const out = [];
  const walk = (value, path) => {
    if (value === null || typeof value !== "object") return;
    if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}/${i}`));
      return;
    }
    const info = seen.get(value);
    for (const key of Object.keys(value)) {
      if (info && !info.enumerated && !info.read.has(key)) out.push(`${path}/${key}`);
      else if (info) walk(value[key], `${path}/${key}`);
    }
  };
  walk(root, "");
  return out;
}

function schemaErrors(doc) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const validate = validators[key];
  if (!validate) return [`no schema for ${key} (add it to k8s_validate.mjs)`];
  const { proxy, seen } = tracked(doc);
  const errors = [];
  if (!validate(proxy)) {
    for (const e of validate.errors) errors.push(`schema: ${e.instancePath || "/"} ${e.keyword} ${JSON.stringify(e.params)}`);
  }
  for (const path of unknownFields(doc, seen)) errors.push(`unknown field ${path}`);
  return errors;
}

// Abseil durations as the manifests write them: 5s, 10m, 1m30s, 500ms, 0.
function seconds(text) {
  if (text === "0") return 0;
  const units = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };
  let total = 0, rest = text;
  while (rest.length) {
    const m = /^(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)/.exec(rest);
    if (!m) return NaN;
    total += Number(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  return text.length ? total : NaN;
}

const matches = (selector, labels) =>
  selector && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const portOf = (address) => Number(/:(\d+)$/.exec(address ?? "")?.[1]);

// What every overlay must have. Returns problems, one string each.
function policy(docs, name) {
  const errs = [];
  const need = (ok, what) => { if (!ok) errs.push(what); };
  const of = (kind) => docs.filter((d) => d.kind === kind);

  const deployments = of("Deployment");
  need(deployments.length === 1, `want 1 Deployment, got ${deployments.length}`);
  if (deployments.length !== 1) return errs;
  const dep = deployments[0];
  const pod = dep.spec?.template?.spec ?? {};
  const podLabels = dep.spec?.template?.metadata?.labels ?? {};
  need(matches(dep.spec?.selector?.matchLabels, podLabels), "Deployment selector does not match its pod labels");
  const replicas = dep.spec?.replicas;
  if (name.startsWith("prod")) need(replicas === 3, `prod: replicas ${replicas}, want 3`);
  else need(replicas >= 1 && replicas <= 2, `${name}: replicas ${replicas}, want 1..2`);
  need(dep.spec?.strategy?.rollingUpdate?.maxUnavailable === 0,
    "rolling update must keep every pod until its replacement is ready (maxUnavailable: 0)");

  const containers = pod.containers ?? [];
  need(containers.length === 1 && containers[0].name === "gateway", "want one container named gateway");
  const c = containers[0] ?? {};
  const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  for (const [port, number] of Object.entries({ data: 6789, health: 8086, metrics: 9464 })) {
    need(ports[port] === number, `containerPort ${port} is ${ports[port]}, want ${number}`);
  }

  // Flags: each known to the gateway binary, none twice.
  const args = c.args ?? [];
  const flags = {};
  for (const arg of args) {
    const m = /^--([a-z0-9_]+)(?:=(.*))?$/.exec(arg);
    if (!m) { errs.push(`argument ${arg} is not --flag=value`); continue; }
    need(gatewayFlags.has(m[1]), `flag --${m[1]} is not in gateway --helpfull`);
    need(!(m[1] in flags), `flag --${m[1]} given twice`);
    flags[m[1]] = m[2] ?? "true";
  }
  need(portOf(flags.listen) === ports.data, `--listen=${flags.listen} is not on the data port`);
  need(portOf(flags.health_listen) === ports.health, `--health_listen=${flags.health_listen} is not on the health port`);
  need(portOf(flags.metrics_listen) === ports.metrics, `--metrics_listen=${flags.metrics_listen} is not on the metrics port`);
  need(/^0\.0\.0\.0:/.test(flags.health_listen ?? ""), "--health_listen must listen on all addresses (the kubelet dials the pod IP)");

  // Grace period covers the whole drain.
  const delay = seconds(flags.drain_delay ?? "0");
  const timeout = seconds(flags.drain_timeout ?? "10s");
  need(Number.isFinite(delay) && delay > 0, `--drain_delay=${flags.drain_delay}: want a delay > 0 (endpoints lag SIGTERM)`);
  need(Number.isFinite(timeout), `--drain_timeout=${flags.drain_timeout} unparsable`);
  const grace = pod.terminationGracePeriodSeconds;
  need(typeof grace === "number" && grace >= delay + timeout + 5,
    `terminationGracePeriodSeconds ${grace} < drain_delay ${delay} + drain_timeout ${timeout} + 5`);

  // Probes: gRPC health on the health port with the right service names.
  const probe = (kind, service) => {
    const p = c[kind];
    need(p?.grpc?.port === ports.health, `${kind}: want grpc on the health port ${ports.health}, got ${JSON.stringify(p)}`);
    need(p?.grpc?.service === service, `${kind}: grpc service ${p?.grpc?.service}, want ${service}`);
  };
  probe("startupProbe", "liveness");
  probe("readinessProbe", "readiness");
  probe("livenessProbe", "liveness");

  // Hardening (container settings override the pod's).
  const sc = { ...(pod.securityContext ?? {}), ...(c.securityContext ?? {}) };
  need(sc.runAsNonRoot === true, "runAsNonRoot must be true");
  need(sc.runAsUser === 10001, `runAsUser ${sc.runAsUser}, want 10001 (the image's user)`);
  need(sc.readOnlyRootFilesystem === true, "readOnlyRootFilesystem must be true");
  need(sc.allowPrivilegeEscalation === false, "allowPrivilegeEscalation must be false");
  need(sc.privileged !== true, "privileged");
  need((sc.capabilities?.drop ?? []).includes("ALL"), "capabilities must drop ALL");
  need(!(sc.capabilities?.add ?? []).length, "capabilities added");
  need(sc.seccompProfile?.type === "RuntimeDefault", "seccompProfile must be RuntimeDefault");
  need(pod.automountServiceAccountToken === false, "automountServiceAccountToken must be false");
  need(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC, "host namespaces");

  const res = c.resources ?? {};
  need(res.requests?.cpu && res.requests?.memory, "resources.requests cpu and memory must be set");
  need(res.limits?.memory, "resources.limits.memory must be set");
  need(!res.limits?.cpu, "no CPU limit (throttling stalls whole reactors)");

  const podName = (c.env ?? []).find((e) => e.name === "POD_NAME");
  need(podName?.valueFrom?.fieldRef?.fieldPath === "metadata.name", "env POD_NAME from the downward API metadata.name");

  const spread = pod.topologySpreadConstraints ?? [];
  for (const key of ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]) {
    const t = spread.find((s) => s.topologyKey === key);
    need(t && matches(t.labelSelector?.matchLabels, podLabels), `topologySpreadConstraints on ${key} selecting the pods`);
  }

  // Disruption budget.
  const pdbs = of("PodDisruptionBudget");
  need(pdbs.length === 1 && pdbs[0].spec?.maxUnavailable === 1, "want one PodDisruptionBudget with maxUnavailable 1");
  need(pdbs.every((p) => matches(p.spec?.selector?.matchLabels, podLabels)), "PDB selector does not match the pods");

  // Services route to ports the pod has.
  const services = of("Service");
  need(services.some((s) => s.spec?.ports?.some((p) => p.targetPort === "data" || p.targetPort === ports.data)),
    "no Service for the data port");
  for (const s of services) {
    need(matches(s.spec?.selector, podLabels), `Service ${s.metadata.name} selector does not match the pods`);
    for (const p of s.spec?.ports ?? []) {
      const target = typeof p.targetPort === "string" ? ports[p.targetPort] ?? (c.ports ?? []).find((q) => q.name === p.targetPort)?.containerPort : p.targetPort;
      need(target !== undefined, `Service ${s.metadata.name} port ${p.name}: targetPort ${p.targetPort} is no container port`);
    }
  }

  // The control plane: loopback, or a headless Service that lists draining
  // pods and TLS with client certificates.
  const control = services.filter((s) => s.spec?.ports?.some((p) => p.name === "control"));
  const loopback = /^(127\.0\.0\.1|\[::1\]|localhost):/.test(flags.control_listen ?? "127.0.0.1:50051");
  for (const s of control) {
    need(s.spec.clusterIP === "None", `control Service ${s.metadata.name} must be headless (clusterIP: None)`);
    need(s.spec.publishNotReadyAddresses === true, `control Service ${s.metadata.name} must have publishNotReadyAddresses: true`);
  }
  if (control.length) need(!loopback, "a control Service, but --control_listen is loopback");
  if (!loopback) {
    for (const f of ["control_tls_cert", "control_tls_key", "control_tls_client_ca"]) {
      need(flags[f], `--control_listen=${flags.control_listen} off loopback needs --${f}`);
    }
  }

  // NetworkPolicy: data, health, metrics open; control from this namespace only.
  const nps = of("NetworkPolicy");
  need(nps.length === 1 && matches(nps[0].spec?.podSelector?.matchLabels, podLabels), "want one NetworkPolicy selecting the pods");
  const rules = nps[0]?.spec?.ingress ?? [];
  for (const port of ["data", "health", "metrics"]) {
    need(rules.some((r) => !r.from && r.ports?.some((p) => p.port === port)), `NetworkPolicy: ${port} must be open`);
  }
  const controlRules = rules.filter((r) => !r.ports || r.ports.some((p) => p.port === "control" || p.port === 50051));
  need(controlRules.length > 0, "NetworkPolicy: no rule for the control port");
  for (const r of controlRules) {
    need(r.from?.length && r.from.every((f) => f.podSelector && Object.keys(f.podSelector).length === 0 && !f.namespaceSelector && !f.ipBlock),
      "NetworkPolicy: the control port only from pods of the same namespace (from: [podSelector: {}])");
  }

  // Monitoring: the ServiceMonitor finds a Service with its port name.
  for (const sm of of("ServiceMonitor")) {
    const target = services.filter((s) => matches(sm.spec?.selector?.matchLabels, s.metadata?.labels));
    need(target.length === 1, `ServiceMonitor ${sm.metadata.name} selects ${target.length} Services, want 1`);
    for (const e of sm.spec?.endpoints ?? []) {
      need(target[0]?.spec?.ports?.some((p) => p.name === e.port), `ServiceMonitor port ${e.port} is not a port name of ${target[0]?.metadata?.name}`);
      need(target[0]?.spec?.ports?.find((p) => p.name === e.port)?.port === ports.metrics, "ServiceMonitor port is not the metrics port");
    }
  }

  // Autoscaling on connections per pod, served by prometheus-adapter.
  for (const hpa of of("HorizontalPodAutoscaler")) {
    const ref = hpa.spec?.scaleTargetRef ?? {};
    need(ref.kind === "Deployment" && ref.name === dep.metadata.name, "HPA does not scale the Deployment");
    const metric = (hpa.spec?.metrics ?? []).find((m) => m.type === "Pods");
    need(metric?.pods?.metric?.name === "gateway_connections_active" && metric?.pods?.target?.type === "AverageValue",
      "HPA: want a Pods metric gateway_connections_active with an AverageValue target");
    need((hpa.spec?.behavior?.scaleDown?.stabilizationWindowSeconds ?? 0) >= 300, "HPA: scale-down must be slow (stabilizationWindowSeconds >= 300)");
    need(hpa.spec?.minReplicas >= 2, "HPA: minReplicas >= 2");
    const adapter = of("ConfigMap").map((cm) => cm.data?.["config.yaml"]).filter(Boolean).map((t) => YAML.parse(t));
    const rule = adapter.flatMap((a) => a.rules ?? []).find((r) => r.name?.as === "gateway_connections_active");
    need(rule && /gateway_connections_active\{.*pod!=""/.test(rule.seriesQuery) &&
      rule.resources?.overrides?.pod?.resource === "pod" && rule.resources?.overrides?.namespace?.resource === "namespace",
      "no prometheus-adapter rule serving gateway_connections_active per pod");
  }
  if (name.startsWith("prod")) {
    need(of("HorizontalPodAutoscaler").length === 1, "prod: want a HorizontalPodAutoscaler");
    need(of("ServiceMonitor").length === 1, "prod: want a ServiceMonitor");
  }
  return errs;
}

function check(docs, name) {
  const errs = [];
  for (const doc of docs) {
    for (const e of schemaErrors(doc)) errs.push(`${doc.kind}/${doc.metadata?.name}: ${e}`);
  }
  return errs.concat(policy(docs, name));
}

const parse = (file) => YAML.parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);

let failed = 0;
if (rest[0] === "--self-test") {
  const base = parse(rest[1]);
  const clean = check(base, "prod");
  if (clean.length) { console.log(`self-test: the unmutated input fails:\n  ${clean.join("\n  ")}`); process.exit(1); }
  const mutations = {
    "a string grace period": (p) => { p.terminationGracePeriodSeconds = "30"; },
    "an unknown pod field": (p) => { p.terminationGracePeriodSecondz = 30; },
    "an unknown probe field": (p) => { p.containers[0].readinessProbe.grpc.servce = "readiness"; },
    "a grace period shorter than the drain": (p) => { p.terminationGracePeriodSeconds = 15; },
    "a flag the gateway lacks": (p) => { p.containers[0].args.push("--drain_dleay=5s"); },
    "a readiness probe on the liveness service": (p) => { p.containers[0].readinessProbe.grpc.service = "liveness"; },
    "root": (p) => { p.containers[0].securityContext.runAsUser = 0; },
    "an unknown ServiceMonitor field": (p, docs) => { docs.find((d) => d.kind === "ServiceMonitor").spec.endpoints[0].intervall = "10s"; },
    "an unknown HPA field": (p, docs) => { docs.find((d) => d.kind === "HorizontalPodAutoscaler").spec.behavior.scaleDown.stabilisationWindowSeconds = 600; },
    "a ServiceMonitor port name the Service lacks": (p, docs) => { docs.find((d) => d.kind === "ServiceMonitor").spec.endpoints[0].port = "http-metrics"; },
  };
  for (const [what, mutate] of Object.entries(mutations)) {
    const docs = structuredClone(base);
    mutate(docs.find((d) => d.kind === "Deployment").spec.template.spec, docs);
    const errs = check(docs, "prod");
    if (errs.length) console.log(`self-test: ${what} rejected: ${errs[0]}`);
    else { console.log(`self-test: ${what} NOT rejected`); failed++; }
  }
} else {
  for (const arg of rest) {
    const [name, file] = arg.split("=");
    const docs = parse(file);
    const errs = check(docs, name);
    for (const e of errs) console.log(`${name}: ${e}`);
    failed += errs.length;
    console.log(`${name}: ${docs.length} objects (${docs.map((d) => d.kind).join(", ")}), ${errs.length} problem(s)`);
  }
}
process.exit(failed ? 1 : 0);
