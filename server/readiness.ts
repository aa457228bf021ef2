import { request } from "node:http";
import { Document, isMap, parseDocument } from "yaml";
import { PremiscaleError } from "../config/errors.js";
import type { ServerConfig } from "../config/types.js";
import type { VmSpec } from "../providers/provider.js";
import { createCheckInServer, phoneHomeConfig, type CheckInServer, type ServerLogLine } from "./check-in-server.js";
import { CheckInLedger, loadServerSecret } from "./check-in-ledger.js";
import { hmacTokenVerifier, instanceToken } from "./instance-token.js";

/** How long apply polls the ledger between looks, when another process (`premiscale serve`) runs the server. */
const POLL_MS = 250;

/** What apply uses to wait for new VMs: see `ApplyDeps.readiness` in applier/apply-plan.ts. */
export interface ReadinessService {
  prepare(spec: VmSpec): VmSpec;
  wait(vm: { uuid: string; name: string }, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** `own`: this process serves check-ins; `shared`: `premiscale serve` (another process) does. */
  readonly mode: "own" | "shared";
  close(): Promise<void>;
}

/**
 * Starts readiness for one apply. When the configured address is free, this process serves check-ins itself for as
 * long as the apply runs; when `premiscale serve` already listens there, check-ins reach it and apply reads them from
 * the shared ledger in `runtimeDir` (both use the same server secret from there).
 */
export async function startReadiness(options: {
  server: ServerConfig;
  /** The state directory's local `.premiscale/` folder. */
  runtimeDir: string;
  logger: (line: ServerLogLine) => void;
}): Promise<ReadinessService> {
  const secret = await loadServerSecret(options.runtimeDir);
  const ledger = new CheckInLedger(options.runtimeDir);
  const { host, port, advertiseUrl } = options.server;
  const server = createCheckInServer({
    host,
    port,
    tokens: hmacTokenVerifier(secret),
    logger: options.logger,
    defaultMetrics: false,
    onCheckIn: (c) => void ledger.record(c).catch((e) => options.logger({ time: new Date().toISOString(), level: "error", event: "internal_error", reason: `recording a check-in failed: ${(e as Error).message}` })),
  });
  let own: CheckInServer | null = server;
  try {
    await server.listen();
  } catch (e) {
    own = null;
    if (!(await isPremiscaleServer(host, port))) {
      throw new PremiscaleError(
        `cannot serve check-ins on ${host}:${port}, and what listens there is not premiscale serve: ${(e as Error).message}`,
        "checkin_port_busy",
        "stop what uses the port, or set server.listen to a free address (and server.advertiseUrl to match)",
      );
    }
  }
  return {
    mode: own ? "own" : "shared",
    prepare: (spec) => ({ ...spec, userData: withPhoneHome(spec.userData, phoneHomeConfig(advertiseUrl, instanceToken(secret, spec.uuid))) }),
    wait: async (vm, timeoutMs, signal) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (own ? own.checkIns().some((c) => c.instanceId === vm.uuid) : await ledger.get(vm.uuid)) return;
        if (signal?.aborted) throw new Error(`stopped waiting for ${vm.name} to check in: apply was interrupted`);
        if (Date.now() >= deadline) {
          throw new Error(
            `${vm.name} did not check in within ${Math.round(timeoutMs / 1000)} s: is cloud-init in its image, and does the guest reach ${advertiseUrl}? ` +
              "(or set the group's readiness.checkIn: false)",
          );
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
          signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
        });
      }
    },
    close: async () => {
      await own?.close();
    },
  };
}

/** Adds cloud-init `phone_home` to #cloud-config user-data (replacing one the template had: premiscale's must win). */
export function withPhoneHome(userData: string, phoneHome: { url: string; post: "all"; tries: number }): string {
  const text = userData.trim() ? userData : "#cloud-config\n";
  const doc = parseDocument(text);
  if (doc.errors.length > 0 || !(isMap(doc.contents) || doc.contents === null)) {
    throw new PremiscaleError("the user-data is not a #cloud-config mapping, so phone_home cannot be added to it", "user_data_not_cloud_config", "fix the template's user-data, or set readiness.checkIn: false");
  }
  const body = doc.contents === null ? `${text.trimEnd()}\n${new Document({ phone_home: phoneHome }).toString({ lineWidth: 0 })}` : (doc.set("phone_home", doc.createNode(phoneHome)), doc.toString({ lineWidth: 0 }));
  return body.startsWith("#cloud-config") ? body : `#cloud-config\n${body}`;
}

/** Whether premiscale's check-in server answers `/healthz` at host:port. */
function isPremiscaleServer(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: "/healthz", timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 && body.trim() === "ok"));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}
