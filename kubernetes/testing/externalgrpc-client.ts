/**
 * premiscale's OWN gRPC client of the externalgrpc protocol, making the calls cluster-autoscaler makes, the way it
 * makes them (one unary call each, a 5 s deadline like its default grpc_timeout, mTLS with the server name taken
 * from the address). For tests and benchmarks that cannot run the real cluster-autoscaler (CI has no binary): it is
 * not cluster-autoscaler, and nothing that uses it may say so.
 */
import * as grpc from "@grpc/grpc-js";
import { loadCloudProviderService } from "../grpc-server.js";

/** Unary methods of the service, by name. */
type Method =
  | "NodeGroups"
  | "NodeGroupForNode"
  | "PricingNodePrice"
  | "PricingPodPrice"
  | "GPULabel"
  | "GetAvailableGPUTypes"
  | "Cleanup"
  | "Refresh"
  | "NodeGroupTargetSize"
  | "NodeGroupIncreaseSize"
  | "NodeGroupDeleteNodes"
  | "NodeGroupDecreaseTargetSize"
  | "NodeGroupNodes"
  | "NodeGroupTemplateNodeInfo"
  | "NodeGroupGetOptions";

/** A gRPC error as the client sees it. */
export interface CallError extends Error {
  code: grpc.status;
  details: string;
}

/** The client. `call` resolves with the decoded answer or rejects with a `CallError`. */
export interface ExternalGrpcClient {
  // The answers are proto-loader objects; the tests check their fields.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call(method: Method, request?: Record<string, unknown>, deadlineMs?: number): Promise<any>;
  close(): void;
}

/** TLS material of the client, as cluster-autoscaler's cloud-config names it (PEM contents). */
export interface ClientTls {
  cacert: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** A client of the externalgrpc server at `address` (host:port), plaintext or TLS. */
export function externalGrpcClient(address: string, tls?: ClientTls): ExternalGrpcClient {
  const Ctor = grpc.makeGenericClientConstructor(loadCloudProviderService(), "CloudProvider");
  const creds = tls ? grpc.credentials.createSsl(tls.cacert, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
  const client = new Ctor(address, creds) as unknown as Record<Method, (req: unknown, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res: unknown) => void) => void> & grpc.Client;
  return {
    call: (method, request = {}, deadlineMs = 5000) =>
      new Promise((resolve, reject) => {
        client[method].call(client, request, { deadline: Date.now() + deadlineMs }, (e, res) => (e ? reject(e) : resolve(res)));
      }),
    close: () => client.close(),
  };
}
