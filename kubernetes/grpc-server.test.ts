// The externalgrpc server over real gRPC on loopback, driven by premiscale's OWN client (kubernetes/testing/
// externalgrpc-client.ts) making cluster-autoscaler's calls: every RPC, the status codes and messages of refused
// calls, mutual TLS. The real cluster-autoscaler drives the same server in test/cluster-autoscaler.kubernetes.test.ts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeKubePki, type KubePki } from "../test/support/kube-pki.js";
import { CloudProvider, type InstanceView, type ViewInstance } from "./cloud-provider.js";
import { loadCloudProviderService, PROTO_OPTIONS, protoDir, SERVICE_NAME, startExternalGrpcServer, type ExternalGrpcCall, type ExternalGrpcServer } from "./grpc-server.js";
import { IntentStore } from "./intent-store.js";
import { providerIdOf } from "./provider-id.js";
import { kubeTestConfig } from "./testing/config.js";
import { externalGrpcClient, type CallError, type ExternalGrpcClient } from "./testing/externalgrpc-client.js";

const U = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const NOW = new Date("2026-12-03T10:00:00Z");

class FakeView implements InstanceView {
  vms: ViewInstance[] = [];
  async instances(group: string): Promise<ViewInstance[]> {
    return group === "workers" ? [...this.vms] : [];
  }
}

let dir: string;
let view: FakeView;
let store: IntentStore;
let calls: ExternalGrpcCall[];
let server: ExternalGrpcServer | null = null;
let client: ExternalGrpcClient | null = null;

async function serve(o: { tls?: Parameters<typeof startExternalGrpcServer>[0]["tls"]; groupKubernetes?: string } = {}): Promise<ExternalGrpcServer> {
  store = await IntentStore.open(dir);
  const provider = new CloudProvider({
    config: kubeTestConfig({ timeoutSeconds: 120, ...(o.groupKubernetes ? { groupKubernetes: o.groupKubernetes } : {}) }),
    store,
    view,
    now: () => NOW,
  });
  server = await startExternalGrpcServer({ provider, host: "127.0.0.1", port: 0, tls: o.tls ?? null, onCall: (c) => calls.push(c) });
  return server;
}

async function refused(p: Promise<unknown>): Promise<CallError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, "the call should have failed").toBeDefined();
  return e as CallError;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "premiscale-grpc-"));
  view = new FakeView();
  calls = [];
});
afterEach(async () => {
  client?.close();
  client = null;
  await server?.close();
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

describe("the externalgrpc server, called by premiscale's own client", () => {
  it("answers every RPC of the service", async () => {
    const s = await serve();
    client = externalGrpcClient(s.address);
    view.vms = [{ uuid: U(1), name: "workers-1", status: "running" }];
    expect(await client.call("NodeGroups")).toEqual({ nodeGroups: [{ id: "workers", minSize: 0, maxSize: 5, debug: "premiscale group workers: 0-5 VMs of 2 vCPU / 2048 MiB on h1" }] });
    expect(await client.call("NodeGroupForNode", { node: { providerID: providerIdOf("workers", U(1)), name: "n1" } })).toMatchObject({ nodeGroup: { id: "workers" } });
    expect(await client.call("NodeGroupForNode", { node: { providerID: "", name: "control-plane" } })).toEqual({ nodeGroup: { id: "" } });
    expect((await refused(client.call("PricingNodePrice", { node: {} }))).code).toBe(grpc.status.UNIMPLEMENTED);
    expect((await refused(client.call("PricingPodPrice", {}))).code).toBe(grpc.status.UNIMPLEMENTED);
    expect(await client.call("GPULabel")).toEqual({ label: "premiscale.io/gpu" });
    expect(await client.call("GetAvailableGPUTypes")).toEqual({}); // an empty map: no GPU types
    expect(await client.call("Cleanup")).toEqual({});
    expect(await client.call("Refresh")).toEqual({});
    expect(await client.call("NodeGroupTargetSize", { id: "workers" })).toEqual({ targetSize: 1 });
    expect(await client.call("NodeGroupIncreaseSize", { id: "workers", delta: 3 })).toEqual({});
    expect(await client.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -1 })).toEqual({});
    expect(await client.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: providerIdOf("workers", U(1)), name: "n1" }] })).toEqual({});
    expect(await client.call("NodeGroupTargetSize", { id: "workers" })).toEqual({ targetSize: 2 });
    expect(await client.call("NodeGroupNodes", { id: "workers" })).toEqual({ instances: [{ id: providerIdOf("workers", U(1)), status: { instanceState: 3 } }] });
    expect(Object.keys(await client.call("NodeGroupTemplateNodeInfo", { id: "workers" }))).toEqual(["nodeInfo", "nodeBytes"]);
    expect(await client.call("NodeGroupGetOptions", { id: "workers", defaults: { MaxNodeProvisionDuration: { seconds: 900 } } })).toHaveProperty("nodeGroupAutoscalingOptions");
    expect(calls.map((c) => `${c.method} ${c.code}`)).toContain("NodeGroupIncreaseSize OK");
    expect(calls.every((c) => c.durationMs < 1000)).toBe(true);
  });

  it("reports a failed instance with its error info, as cluster-autoscaler reads it", async () => {
    const s = await serve();
    client = externalGrpcClient(s.address);
    await client.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 });
    await store.update("workers", () => { throw new Error("unused"); }, (i) => ({ ...i, failed: [{ uuid: U(7), errorClass: "OutOfResources", errorCode: "premiscale.NoRoom", message: "host h1: needs 2048 MiB, 900 MiB free", at: NOW.toISOString() }] }));
    expect(await client.call("NodeGroupNodes", { id: "workers" })).toEqual({
      instances: [{ id: providerIdOf("workers", U(7)), status: { instanceState: 2, errorInfo: { errorCode: "premiscale.NoRoom", errorMessage: "host h1: needs 2048 MiB, 900 MiB free", instanceErrorClass: 1 } } }],
    });
  });

  it("refuses bad input with a status code and a message that names the group or node, and changes nothing", async () => {
    const s = await serve();
    client = externalGrpcClient(s.address);
    view.vms = [{ uuid: U(1), name: "workers-1", status: "running" }];
    const unknown = await refused(client.call("NodeGroupIncreaseSize", { id: "nope", delta: 1 }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toBe('NodeGroupIncreaseSize: no node group "nope" (premiscale\'s node groups: workers); nothing changed');
    const negative = await refused(client.call("NodeGroupIncreaseSize", { id: "workers", delta: -2 }));
    expect(negative.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(negative.details).toMatch(/^NodeGroupIncreaseSize of node group workers: delta must be a positive number of nodes, got -2; nothing changed/);
    const foreign = await refused(client.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: "aws:///us-east-1a/i-0123", name: "ip-10-1-2-3" }] }));
    expect(foreign.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(foreign.details).toContain("node ip-10-1-2-3 (providerID aws:///us-east-1a/i-0123) is not a premiscale VM");
    const existing = await refused(client.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -1 }));
    expect(existing.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await client.call("NodeGroupTargetSize", { id: "workers" })).toEqual({ targetSize: 1 });
    expect(store.get("workers")).toBeUndefined();
    expect(calls.filter((c) => c.code !== "OK").map((c) => [c.method, c.group, c.code])).toEqual([
      ["NodeGroupIncreaseSize", "nope", "NOT_FOUND"],
      ["NodeGroupIncreaseSize", "workers", "INVALID_ARGUMENT"],
      ["NodeGroupDeleteNodes", "workers", "INVALID_ARGUMENT"],
      ["NodeGroupDecreaseTargetSize", "workers", "FAILED_PRECONDITION"],
    ]);
  });

  it("echoes GetOptions defaults in the fields each cluster-autoscaler version reads", async () => {
    const s = await serve({ groupKubernetes: "autoscaling: { scaleDownUnneededSeconds: 30 }" });
    client = externalGrpcClient(s.address);
    const old = { scaleDownUtilizationThreshold: 0.5, scaleDownGpuUtilizationThreshold: 0.5, scaleDownUnneededTime: { duration: 600e9 }, scaleDownUnreadyTime: { duration: 1200e9 }, MaxNodeProvisionTime: { duration: 900e9 } };
    const fresh = { scaleDownUtilizationThreshold: 0.5, scaleDownGpuUtilizationThreshold: 0.5, scaleDownUnneededDuration: { seconds: 600 }, scaleDownUnreadyDuration: { seconds: 1200 }, MaxNodeProvisionDuration: { seconds: 900 } };
    const expected = {
      scaleDownUtilizationThreshold: 0.5,
      scaleDownGpuUtilizationThreshold: 0.5,
      // meta/v1 Durations (nanoseconds) for cluster-autoscaler <= 1.34 ...
      scaleDownUnneededTime: { duration: 30e9 },
      scaleDownUnreadyTime: { duration: 1200e9 },
      MaxNodeProvisionTime: { duration: 180e9 },
      // ... and google.protobuf.Durations for >= 1.34; premiscale's max-node-provision-time is readiness.timeoutSeconds + 60.
      scaleDownUnneededDuration: { seconds: 30, nanos: 0 },
      scaleDownUnreadyDuration: { seconds: 1200, nanos: 0 },
      MaxNodeProvisionDuration: { seconds: 180, nanos: 0 },
      zeroOrMaxNodeScaling: false,
      ignoreDaemonSetsUtilization: false,
    };
    for (const [version, defaults] of [["1.33 (meta/v1 durations)", old], ["1.35 (google.protobuf durations)", fresh], ["1.34 (both)", { ...old, ...fresh }]] as const) {
      expect((await client.call("NodeGroupGetOptions", { id: "workers", defaults })).nodeGroupAutoscalingOptions, version).toEqual(expected);
    }
    const none = await refused(client.call("NodeGroupGetOptions", { id: "workers" }));
    expect(none.code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe("the template node's v1.Node bytes", () => {
  it("decode with a decoder generated from our core/v1 subset, identically in field 1 and field 2, with every field", async () => {
    const s = await serve({ groupKubernetes: "labels: { type: kwok, tier: batch }\ntaints: [{ key: dedicated, value: ci, effect: NoSchedule }]\nmaxPods: 50\nreserved: { cpuMillis: 250, memoryMiB: 256 }\nephemeralStorageGiB: 8" });
    // A client whose answer type is the test message reading both fields as k8s.io.api.core.v1.Node.
    const decode = protoLoader.loadSync(join(import.meta.dirname, "testing", "template-as-node.proto"), { ...PROTO_OPTIONS, includeDirs: [protoDir()] });
    const template = (decode["premiscale.testing.Decode"] as grpc.ServiceDefinition).Template!;
    const original = loadCloudProviderService().NodeGroupTemplateNodeInfo!;
    const Ctor = grpc.makeGenericClientConstructor({ Template: { ...original, responseDeserialize: template.responseDeserialize } }, "Decode");
    const raw = new Ctor(s.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Template: (r: unknown, cb: (e: Error | null, v: { nodeInfo: unknown; nodeBytes: unknown }) => void) => void };
    const res = await new Promise<{ nodeInfo: unknown; nodeBytes: unknown }>((resolve, reject) => raw.Template({ id: "workers" }, (e, v) => (e ? reject(e) : resolve(v))));
    raw.close();
    expect(res.nodeInfo).toEqual(res.nodeBytes);
    const seconds = NOW.getTime() / 1000;
    const since = seconds - 60;
    const cond = (type: string, status: string, reason: string) => ({ type, status, reason, lastHeartbeatTime: { seconds, nanos: 0 }, lastTransitionTime: { seconds: since, nanos: 0 } });
    expect(res.nodeBytes).toEqual({
      metadata: {
        name: "template-node-for-workers",
        creationTimestamp: { seconds, nanos: 0 },
        labels: {
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          "kubernetes.io/hostname": "template-node-for-workers",
          "premiscale.io/group": "workers",
          type: "kwok",
          tier: "batch",
        },
      },
      spec: { taints: [{ key: "dedicated", value: "ci", effect: "NoSchedule" }] },
      status: {
        capacity: { cpu: { string: "2" }, memory: { string: "2048Mi" }, pods: { string: "50" }, "ephemeral-storage": { string: "8192Mi" } },
        allocatable: { cpu: { string: "1750m" }, memory: { string: "1792Mi" }, pods: { string: "50" }, "ephemeral-storage": { string: "8192Mi" } },
        phase: "Running",
        conditions: [
          cond("Ready", "True", "KubeletReady"),
          cond("NetworkUnavailable", "False", "RouteCreated"),
          cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
          cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
          cond("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        nodeInfo: { operatingSystem: "linux", architecture: "amd64" },
      },
    });
  });
});

describe("mutual TLS", () => {
  let pki: KubePki;
  let other: KubePki;
  let pkiDir: string;

  beforeAll(async () => {
    pkiDir = mkdtempSync(join(tmpdir(), "premiscale-grpc-pki-"));
    mkdirSync(join(pkiDir, "a"));
    mkdirSync(join(pkiDir, "b"));
    // The server certificate names 127.0.0.1: cluster-autoscaler checks it against the host of its `address`.
    pki = await makeKubePki(join(pkiDir, "a"), [{ name: "ca-client", user: "cluster-autoscaler" }, { name: "someone", user: "someone-else" }]);
    other = await makeKubePki(join(pkiDir, "b"), [{ name: "ca-client", user: "cluster-autoscaler" }]);
  }, 60_000);
  afterAll(() => rmSync(pkiDir, { recursive: true, force: true }));

  const tls = (allowedClients: string[] = []) => ({ cert: pki.apiserver.certPath, key: pki.apiserver.keyPath, clientCa: pki.ca.certPath, allowedClients });
  const read = (p: string) => readFileSync(p);

  it("serves a client whose certificate chains to clientCa", async () => {
    const s = await serve({ tls: tls(["cluster-autoscaler"]) });
    expect(s.secure).toBe(true);
    client = externalGrpcClient(s.address, { cacert: read(pki.ca.certPath), cert: read(pki.clients["ca-client"]!.certPath), key: read(pki.clients["ca-client"]!.keyPath) });
    expect(await client.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 })).toEqual({});
    expect(calls.at(-1)).toMatchObject({ method: "NodeGroupIncreaseSize", code: "OK", peer: "CN=cluster-autoscaler" });
  });

  it("refuses a client without a certificate, or with one from another CA, before any call, and nothing changes", async () => {
    const s = await serve({ tls: tls() });
    for (const [what, creds] of [
      ["no certificate", { cacert: read(pki.ca.certPath) }],
      ["another CA's certificate", { cacert: read(pki.ca.certPath), cert: read(other.clients["ca-client"]!.certPath), key: read(other.clients["ca-client"]!.keyPath) }],
    ] as const) {
      const c = externalGrpcClient(s.address, creds);
      const e = await refused(c.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 }, 3000));
      c.close();
      expect(e.code, what).toBe(grpc.status.UNAVAILABLE);
    }
    expect(calls).toEqual([]);
    expect(store.get("workers")).toBeUndefined();
  });

  it("refuses a certificate of the right CA whose name is not in allowedClients with PERMISSION_DENIED", async () => {
    const s = await serve({ tls: tls(["cluster-autoscaler"]) });
    client = externalGrpcClient(s.address, { cacert: read(pki.ca.certPath), cert: read(pki.clients.someone!.certPath), key: read(pki.clients.someone!.keyPath) });
    const e = await refused(client.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 }));
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.details).toBe("NodeGroupIncreaseSize: client certificate CN=someone-else is not in kubernetes.externalGrpc.tls.allowedClients (cluster-autoscaler); nothing changed");
    expect(store.get("workers")).toBeUndefined();
  });

  it("names the file when a TLS file cannot be read", async () => {
    await expect(serve({ tls: { ...tls(), clientCa: join(pkiDir, "missing.crt") } })).rejects.toThrow(/cannot read kubernetes\.externalGrpc\.tls\.clientCa .*missing\.crt/);
  });
});

describe("listening", () => {
  it("names the address and the config field when the port is taken", async () => {
    const s = await serve();
    const again = await IntentStore.open(dir);
    const provider = new CloudProvider({ config: kubeTestConfig(), store: again, view });
    await expect(startExternalGrpcServer({ provider, host: "127.0.0.1", port: s.port, tls: null })).rejects.toThrow(
      `cannot serve externalgrpc on 127.0.0.1:${s.port} (kubernetes.externalGrpc.listen)`,
    );
  });

  it("uses the service name cluster-autoscaler dials", () => {
    expect(Object.values(loadCloudProviderService()).map((m) => m.path)).toContain(`/${SERVICE_NAME}/NodeGroupIncreaseSize`);
  });
});
