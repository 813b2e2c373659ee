// Turns the Deployment of a rendered overlay into a Pod manifest that
// `podman kube play` (Podman 4.3) runs as Kubernetes would run its pod
// template: same args, env, securityContext and resources, with
//   - the data and health ports published on 127.0.0.1 at the given host
//     ports (Podman publishes every containerPort on 0.0.0.0 otherwise, so
//     the metrics port is dropped from the list: it is still served inside);
//   - the probes dropped: Podman runs only liveness, not as gRPC, and
//     ignores readiness and startup; the test probes the health port itself;
//   - the image replaced by the locally built one, restartPolicy Never.
//   node k8s_pod_manifest.mjs NODE_MODULES RENDERED.yaml POD_NAME IMAGE DATA_PORT HEALTH_PORT > pod.yaml
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, rendered, podName, image, dataPort, healthPort] = process.argv.slice(2);
if (!healthPort) {
  console.error("usage: k8s_pod_manifest.mjs NODE_MODULES RENDERED.yaml POD_NAME IMAGE DATA_PORT HEALTH_PORT");
  process.exit(2);
}
const YAML = await import(pathToFileURL(join(nodeModules, "yaml/dist/index.js")).href);
const docs = YAML.parseAllDocuments(readFileSync(rendered, "utf8")).map((d) => d.toJS());
const deployment = docs.find((d) => d?.kind === "Deployment");
if (!deployment) {
  console.error(`no Deployment in ${rendered}`);
  process.exit(1);
}
const spec = structuredClone(deployment.spec.template.spec);
const hostPorts = { data: Number(dataPort), health: Number(healthPort) };
for (const c of spec.containers) {
  c.image = image;
  c.imagePullPolicy = "Never";
  delete c.startupProbe;
  delete c.readinessProbe;
  delete c.livenessProbe;
  c.ports = (c.ports ?? [])
    .filter((p) => p.name in hostPorts)
    .map((p) => ({ ...p, hostIP: "127.0.0.1", hostPort: hostPorts[p.name] }));
}
// Scheduling has no meaning for one local pod; an exit must stay an exit
// (the test checks the status SIGTERM leaves), not a restart.
delete spec.topologySpreadConstraints;
spec.restartPolicy = "Never";
const pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: podName, labels: deployment.spec.template.metadata?.labels ?? {} },
  spec,
};
process.stdout.write(YAML.stringify(pod));
