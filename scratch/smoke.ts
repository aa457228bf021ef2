import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { startKubeCluster } from "../test/support/kube-cluster.js";
import { installGuest, freePort } from "../test/support/guests.js";
import { setUpLikeKubeadm, startKubeletAgent } from "../test/support/kubelet-agent.js";
import { nodeGroupConfigText, nodesOf, isReady } from "../test/support/node-groups.js";
import { externalGrpcClient } from "../kubernetes/testing/externalgrpc-client.js";

const guest = await installGuest("busybox");
const cluster = await startKubeCluster();
console.log("cluster up", cluster.startTimings.total);
await setUpLikeKubeadm(cluster);
const dir = await mkdtemp(join(tmpdir(), "premiscale-smoke-"));
const grpcPort = await freePort();
await writeFile(join(dir, "premiscale.yaml"), nodeGroupConfigText({ guest, checkInPort: await freePort(), grpcPort, kubeconfig: cluster.kubeconfigPath, groups: [{ name: "smk", max: 3, timeoutSeconds: 90 }] }));
const serve = spawn(process.execPath, [join(import.meta.dirname, "../dist/cli/main.js"), "serve", "--log-level", "debug"], { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
const agent = startKubeletAgent({ cluster, stateDir: join(dir, "state") });
await new Promise((r) => setTimeout(r, 8000));
const client = externalGrpcClient(`127.0.0.1:${grpcPort}`);
console.log("groups", JSON.stringify(await client.call("NodeGroups")));
const t = performance.now();
await client.call("NodeGroupIncreaseSize", { id: "smk", delta: 1 });
console.log("increase took", performance.now() - t);
for (let i = 0; i < 60; i++) {
  await new Promise((r) => setTimeout(r, 3000));
  const nodes = await nodesOf(cluster, "smk");
  console.log("nodes", nodes.map((n) => `${n.metadata.name} ${isReady(n)}`), "joins", agent.joins.size, "errors", agent.errors.slice(-3), JSON.stringify(await client.call("NodeGroupNodes", { id: "smk" })));
  if (nodes.some(isReady)) break;
}
const inst = (await client.call("NodeGroupNodes", { id: "smk" })).instances;
await client.call("NodeGroupDeleteNodes", { id: "smk", nodes: [{ providerID: inst[0].id, name: inst[0].id }] });
for (let i = 0; i < 30; i++) {
  await new Promise((r) => setTimeout(r, 3000));
  const nodes = await nodesOf(cluster, "smk");
  const n = (await client.call("NodeGroupNodes", { id: "smk" })).instances;
  console.log("after delete: nodes", nodes.length, "instances", JSON.stringify(n));
  if (nodes.length === 0 && (n ?? []).length === 0) break;
}
client.close();
serve.kill("SIGTERM");
await new Promise((r) => serve.once("exit", r));
await agent.stop();
await cluster.stop();
console.log("dir", dir);
