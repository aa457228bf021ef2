/**
 * The externalgrpc server: `clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider` over gRPC (grpc-js, our
 * own protos/externalgrpc.proto), answering with cloud-provider.ts. Mutual TLS as cluster-autoscaler's cloud-config
 * expects (its client certificate must chain to `clientCa`, and, when `allowedClients` is set, carry one of those
 * common names); plaintext only on loopback. A refused call answers its gRPC status and a message naming the group
 * or node, and changes nothing.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PremiscaleError } from "../config/errors.js";
import type { ExternalGrpcTls } from "../config/kubernetes.js";
import { CloudProviderError, ERROR_CLASS, INSTANCE_STATE, GPU_LABEL, type AutoscalingOptions, type CloudProvider, type CloudProviderStatus } from "./cloud-provider.js";

/** The service's full name. */
export const SERVICE_NAME = "clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider";

/**
 * Where the .proto files are: beside this module in the source tree, or, from the build (dist/kubernetes/), in the
 * package's kubernetes/protos/.
 */
export function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "protos"), join(here, "..", "..", "kubernetes", "protos")];
  const found = candidates.find((d) => existsSync(join(d, "externalgrpc.proto")));
  if (!found) throw new Error(`externalgrpc.proto not found (looked in ${candidates.join(", ")})`);
  return found;
}

/** proto-loader's options: field names as written, int64 as numbers (durations fit), enums as numbers, no defaults. */
export const PROTO_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: Number, defaults: false, oneofs: true };

/** The service definition, loaded from our .proto. */
export function loadCloudProviderService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(join(protoDir(), "externalgrpc.proto"), PROTO_OPTIONS);
  return def[SERVICE_NAME] as grpc.ServiceDefinition;
}

/** One answered call, for logs and metrics. */
export interface ExternalGrpcCall {
  method: string;
  /** The node group the call named, when it named one. */
  group?: string;
  /** "OK" or the gRPC status name. */
  code: string;
  message?: string;
  durationMs: number;
  /** The client certificate's common name (mTLS), or the peer address. */
  peer: string;
}

/** Options of the server. */
export interface ExternalGrpcServerOptions {
  provider: CloudProvider;
  host: string;
  port: number;
  /** null: plaintext (the config allows it only on loopback). */
  tls: ExternalGrpcTls | null;
  onCall?: (call: ExternalGrpcCall) => void;
}

/** A listening externalgrpc server. */
export interface ExternalGrpcServer {
  /** host:port it listens on (the port chosen when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  readonly secure: boolean;
  /** Stops accepting calls and lets those in flight finish (at most `graceMs`, then cuts them). */
  close(graceMs?: number): Promise<void>;
}

const GRPC_STATUS: Record<CloudProviderStatus | "PERMISSION_DENIED", grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
  UNIMPLEMENTED: grpc.status.UNIMPLEMENTED,
  INTERNAL: grpc.status.INTERNAL,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
};

// The wire shapes (proto-loader objects) of the messages premiscale reads and writes.
interface PbDuration {
  seconds?: number;
  nanos?: number;
}
interface PbMetaDuration {
  duration?: number;
}
interface PbOptions {
  scaleDownUtilizationThreshold?: number;
  scaleDownGpuUtilizationThreshold?: number;
  scaleDownUnneededTime?: PbMetaDuration;
  scaleDownUnreadyTime?: PbMetaDuration;
  MaxNodeProvisionTime?: PbMetaDuration;
  zeroOrMaxNodeScaling?: boolean;
  ignoreDaemonSetsUtilization?: boolean;
  scaleDownUnneededDuration?: PbDuration;
  scaleDownUnreadyDuration?: PbDuration;
  MaxNodeProvisionDuration?: PbDuration;
  maxNodeStartupDuration?: PbDuration;
  allowNonAtomicScaleUpToMax?: boolean;
}
interface PbNode {
  providerID?: string;
  name?: string;
}

const fromDuration = (d: PbDuration | undefined): number | undefined => (d ? (d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6) : undefined);
const fromMeta = (d: PbMetaDuration | undefined): number | undefined => (d ? Math.round((d.duration ?? 0) / 1e6) : undefined);
const toDuration = (ms: number): PbDuration => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
const toMeta = (ms: number): PbMetaDuration => ({ duration: ms * 1e6 });

/**
 * The defaults cluster-autoscaler sent, whichever version: >= 1.34 sends google.protobuf.Durations (fields 8-10),
 * <= 1.34 meta/v1 Durations (3-5); the newer fields win when both are there.
 */
export function optionsFromWire(pb: PbOptions | undefined): AutoscalingOptions | undefined {
  if (!pb) return undefined;
  const o: AutoscalingOptions = {};
  const set = <K extends keyof AutoscalingOptions>(k: K, v: AutoscalingOptions[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set("scaleDownUtilizationThreshold", pb.scaleDownUtilizationThreshold ?? 0);
  set("scaleDownGpuUtilizationThreshold", pb.scaleDownGpuUtilizationThreshold ?? 0);
  set("scaleDownUnneededMs", fromDuration(pb.scaleDownUnneededDuration) ?? fromMeta(pb.scaleDownUnneededTime));
  set("scaleDownUnreadyMs", fromDuration(pb.scaleDownUnreadyDuration) ?? fromMeta(pb.scaleDownUnreadyTime));
  set("maxNodeProvisionMs", fromDuration(pb.MaxNodeProvisionDuration) ?? fromMeta(pb.MaxNodeProvisionTime));
  set("maxNodeStartupMs", fromDuration(pb.maxNodeStartupDuration));
  set("zeroOrMaxNodeScaling", pb.zeroOrMaxNodeScaling ?? false);
  set("ignoreDaemonSetsUtilization", pb.ignoreDaemonSetsUtilization ?? false);
  set("allowNonAtomicScaleUpToMax", pb.allowNonAtomicScaleUpToMax);
  return o;
}

/** Options on the wire, every duration in both the old (meta/v1) and the new (google.protobuf) field. */
export function optionsToWire(o: AutoscalingOptions): PbOptions {
  const both = (ms: number | undefined, oldField: keyof PbOptions, newField: keyof PbOptions): PbOptions =>
    ms === undefined ? {} : { [oldField]: toMeta(ms), [newField]: toDuration(ms) };
  return {
    scaleDownUtilizationThreshold: o.scaleDownUtilizationThreshold ?? 0,
    scaleDownGpuUtilizationThreshold: o.scaleDownGpuUtilizationThreshold ?? 0,
    ...both(o.scaleDownUnneededMs, "scaleDownUnneededTime", "scaleDownUnneededDuration"),
    ...both(o.scaleDownUnreadyMs, "scaleDownUnreadyTime", "scaleDownUnreadyDuration"),
    ...both(o.maxNodeProvisionMs, "MaxNodeProvisionTime", "MaxNodeProvisionDuration"),
    ...(o.maxNodeStartupMs !== undefined ? { maxNodeStartupDuration: toDuration(o.maxNodeStartupMs) } : {}),
    zeroOrMaxNodeScaling: o.zeroOrMaxNodeScaling ?? false,
    ignoreDaemonSetsUtilization: o.ignoreDaemonSetsUtilization ?? false,
    ...(o.allowNonAtomicScaleUpToMax !== undefined ? { allowNonAtomicScaleUpToMax: o.allowNonAtomicScaleUpToMax } : {}),
  };
}

const nodeRef = (n: PbNode | undefined) => ({ providerID: n?.providerID ?? "", name: n?.name ?? "" });

/** Reads a PEM file named by the config, with an error naming the field. */
function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new PremiscaleError(`cannot read kubernetes.externalGrpc.tls.${field} ${path}: ${(e as Error).message}`, "externalgrpc_tls_unreadable", `check kubernetes.externalGrpc.tls.${field}`);
  }
}

/**
 * Starts the externalgrpc server on host:port (port 0: a free one). Rejects with a `PremiscaleError` naming the
 * address when it cannot listen, or the file when a TLS file cannot be read.
 */
export async function startExternalGrpcServer(o: ExternalGrpcServerOptions): Promise<ExternalGrpcServer> {
  const p = o.provider;
  const credentials = o.tls
    ? grpc.ServerCredentials.createSsl(readPem(o.tls.clientCa, "clientCa"), [{ cert_chain: readPem(o.tls.cert, "cert"), private_key: readPem(o.tls.key, "key") }], true)
    : grpc.ServerCredentials.createInsecure();
  const allowed = o.tls?.allowedClients ?? [];

  type Call = grpc.ServerUnaryCall<Record<string, unknown>, unknown>;
  /** Wraps one method: client check, error → status, timing, the onCall report. */
  const unary =
    (method: string, answer: (req: Record<string, unknown>) => unknown, groupOf?: (req: Record<string, unknown>) => string) =>
    (call: Call, callback: grpc.sendUnaryData<unknown>) => {
      const started = performance.now();
      const cn = [call.getAuthContext()?.sslPeerCertificate?.subject?.CN ?? []].flat()[0];
      const peer = cn ? `CN=${cn}` : call.getPeer();
      const report = (code: string, message?: string) => {
        const group = groupOf?.(call.request);
        o.onCall?.({ method, ...(group ? { group } : {}), code, ...(message ? { message } : {}), durationMs: performance.now() - started, peer });
      };
      const fail = (status: keyof typeof GRPC_STATUS, message: string) => {
        report(status, message);
        callback({ code: GRPC_STATUS[status], details: message });
      };
      if (allowed.length > 0 && !allowed.includes(cn ?? "")) {
        fail("PERMISSION_DENIED", `${method}: client certificate ${cn ? `CN=${cn}` : "(none)"} is not in kubernetes.externalGrpc.tls.allowedClients (${allowed.join(", ")}); nothing changed`);
        return;
      }
      Promise.resolve()
        .then(() => answer(call.request))
        .then(
          (res) => {
            report("OK");
            callback(null, res);
          },
          (e: unknown) => {
            if (e instanceof CloudProviderError) fail(e.status, e.message);
            else fail("INTERNAL", `${method}: ${(e as Error)?.message ?? String(e)}`);
          },
        );
    };
  const id = (r: Record<string, unknown>) => String(r.id ?? "");
  const unimplemented = (method: string, why: string) => unary(method, () => Promise.reject(new CloudProviderError("UNIMPLEMENTED", `${method}: ${why}`)));

  const server = new grpc.Server();
  server.addService(loadCloudProviderService(), {
    NodeGroups: unary("NodeGroups", () => ({ nodeGroups: p.nodeGroups() })),
    NodeGroupForNode: unary("NodeGroupForNode", async (r) => ({ nodeGroup: (await p.nodeGroupForNode(nodeRef(r.node as PbNode))) ?? { id: "" } })),
    PricingNodePrice: unimplemented("PricingNodePrice", "premiscale has no prices"),
    PricingPodPrice: unimplemented("PricingPodPrice", "premiscale has no prices"),
    GPULabel: unary("GPULabel", () => ({ label: GPU_LABEL })),
    GetAvailableGPUTypes: unary("GetAvailableGPUTypes", () => ({ gpuTypes: {} })),
    Cleanup: unary("Cleanup", () => ({})),
    Refresh: unary("Refresh", () => ({})),
    NodeGroupTargetSize: unary("NodeGroupTargetSize", async (r) => ({ targetSize: await p.targetSize(id(r)) }), id),
    NodeGroupIncreaseSize: unary("NodeGroupIncreaseSize", async (r) => (await p.increaseSize(id(r), Number(r.delta ?? 0)), {}), id),
    NodeGroupDeleteNodes: unary("NodeGroupDeleteNodes", async (r) => (await p.deleteNodes(id(r), ((r.nodes as PbNode[] | undefined) ?? []).map(nodeRef)), {}), id),
    NodeGroupDecreaseTargetSize: unary("NodeGroupDecreaseTargetSize", async (r) => (await p.decreaseTargetSize(id(r), Number(r.delta ?? 0)), {}), id),
    NodeGroupNodes: unary(
      "NodeGroupNodes",
      async (r) => ({
        instances: (await p.nodes(id(r))).map((i) => ({
          id: i.id,
          status: {
            instanceState: INSTANCE_STATE[i.state],
            ...(i.error ? { errorInfo: { errorCode: i.error.code, errorMessage: i.error.message, instanceErrorClass: ERROR_CLASS[i.error.class] } } : {}),
          },
        })),
      }),
      id,
    ),
    NodeGroupTemplateNodeInfo: unary(
      "NodeGroupTemplateNodeInfo",
      (r) => {
        const bytes = p.templateNodeInfo(id(r));
        return { nodeInfo: bytes, nodeBytes: bytes };
      },
      id,
    ),
    NodeGroupGetOptions: unary(
      "NodeGroupGetOptions",
      (r) => ({ nodeGroupAutoscalingOptions: optionsToWire(p.getOptions(id(r), optionsFromWire(r.defaults as PbOptions | undefined))) }),
      id,
    ),
  });

  const address = `${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}`;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (e, bound) => (e ? reject(e) : resolve(bound))));
  } catch (e) {
    server.forceShutdown();
    const busy = /EADDRINUSE|address already in use/i.test((e as Error).message);
    throw new PremiscaleError(
      `cannot serve externalgrpc on ${address} (kubernetes.externalGrpc.listen): ${busy ? "the port is already in use" : (e as Error).message}`,
      busy ? "externalgrpc_port_in_use" : "externalgrpc_listen_failed",
      busy ? "stop what listens there, or set kubernetes.externalGrpc.listen to a free address (and cluster-autoscaler's cloud-config address to match)" : "check kubernetes.externalGrpc.listen",
      { cause: e },
    );
  }
  let closed: Promise<void> | null = null;
  return {
    address: `${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}`,
    port,
    secure: o.tls !== null,
    close: (graceMs = 5000) =>
      (closed ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      })),
  };
}
