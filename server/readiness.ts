import { request } from "node:http";
import { Document, isMap, isSeq, parseDocument } from "yaml";
import { PremiscaleError } from "../config/errors.js";
import type { ServerConfig } from "../config/types.js";
import type { VmSpec } from "../providers/provider.js";
import { createCheckInServer, phoneHomeConfig, type CheckInServer, type ServerLogLine } from "./check-in-server.js";
import { CheckInLedger, ledgerRecorder, loadServerSecret } from "./check-in-ledger.js";
import { hmacTokenVerifier, instanceToken } from "./instance-token.js";

/** How long apply polls the ledger between looks, when another process (`premiscale serve`) runs the server. */
const POLL_MS = 250;

/** What apply uses to wait for new VMs: see `ApplyDeps.readiness` in applier/apply-plan.ts. */
export interface ReadinessService {
  /**
   * Adds the check-in (and, every `heartbeatSeconds` when above 0, a heartbeat; with `bootBeacon`, a beacon posted
   * on every boot) to the VM's user-data.
   */
  prepare(spec: VmSpec, heartbeatSeconds?: number, options?: { bootBeacon?: boolean }): VmSpec;
  /**
   * Resolves once the VM checked in; with `since`, once it was heard from (boot beacon, heartbeat or check-in) after
   * that time: a VM started again has checked in long ago.
   */
  wait(vm: { uuid: string; name: string }, timeoutMs: number, signal?: AbortSignal, since?: Date): Promise<void>;
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
  const recorder = ledgerRecorder(ledger, (id, what, e) =>
    options.logger({ time: new Date().toISOString(), level: "error", event: "internal_error", instanceId: id, reason: `recording a ${what} failed: ${e.message}` }),
  );
  const server = createCheckInServer({
    host,
    port,
    tokens: hmacTokenVerifier(secret),
    logger: options.logger,
    defaultMetrics: false,
    onHeartbeat: recorder.onHeartbeat,
    onCheckIn: recorder.onCheckIn,
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
    prepare: (spec, heartbeatSeconds = 0, options = {}) => {
      const token = instanceToken(secret, spec.uuid);
      const beat = `${advertiseUrl}/heartbeat/${spec.uuid}/${encodeURIComponent(token)}`;
      let userData = withPhoneHome(spec.userData, phoneHomeConfig(advertiseUrl, token));
      if (heartbeatSeconds > 0) userData = withHeartbeat(userData, beat, heartbeatSeconds);
      if (options.bootBeacon) userData = withBootBeacon(userData, beat);
      return { ...spec, userData };
    },
    wait: async (vm, timeoutMs, signal, since) => {
      const deadline = Date.now() + timeoutMs;
      const heard = async (): Promise<boolean> => {
        // From the ledger, never from the server's memory: apply may destroy an old VM the moment this one is
        // ready, and a crash right then must not lose the check-in that made it ready (the record is fsynced).
        if (!since) return Boolean(await ledger.get(vm.uuid));
        // The server writes every beat and check-in to the ledger (serve's, or ours through the recorder).
        const seen = await ledger.lastSeen(vm.uuid);
        return seen !== null && Date.parse(seen) >= since.getTime();
      };
      for (;;) {
        if (await heard()) return;
        if (signal?.aborted) throw new Error(`stopped waiting for ${vm.name} to ${since ? "come up" : "check in"}: apply was interrupted`);
        if (Date.now() >= deadline) {
          if (since) {
            throw new Error(
              `${vm.name} did not say it was up within ${Math.round(timeoutMs / 1000)} s of being started (no boot beacon, heartbeat or check-in reached ${advertiseUrl})`,
            );
          }
          throw new Error(
            `${vm.name} did not check in within ${Math.round(timeoutMs / 1000)} s: is cloud-init in its image, and does the guest reach ${advertiseUrl}? ` +
              "(or set the group's readiness.checkIn: false)",
          );
        }
        await new Promise<void>((resolve) => {
          const onAbort = () => (clearTimeout(t), resolve());
          const t = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
          signal?.addEventListener("abort", onAbort, { once: true });
        });
      }
    },
    close: async () => {
      await own?.close();
      await recorder.flush();
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

/**
 * Adds a heartbeat to #cloud-config user-data: a `bootcmd` (run on every boot) that starts a background loop
 * POSTing to the heartbeat URL every `seconds`, with python3 (cloud-init's own language), curl or wget. Also written
 * as `premiscale: {heartbeat_url, heartbeat_seconds}` for guests without cloud-init that read the seed themselves.
 */
export function withHeartbeat(userData: string, url: string, seconds: number): string {
  const doc = parseDocument(userData);
  if (doc.errors.length > 0 || !isMap(doc.contents)) {
    throw new PremiscaleError("the user-data is not a #cloud-config mapping, so a heartbeat cannot be added to it", "user_data_not_cloud_config", "fix the template's user-data, or set readiness.heartbeatSeconds: 0");
  }
  // python3 first: every cloud-init guest has it (minimal images may lack curl and wget).
  const loop =
    `(while :; do sleep ${seconds}; ` +
    `python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=bytes([98])), timeout=10)" '${url}' >/dev/null 2>&1 || ` +
    `curl -fsS -m 10 -X POST -d beat=1 '${url}' >/dev/null 2>&1 || wget -q -O /dev/null --post-data=beat=1 '${url}' >/dev/null 2>&1; ` +
    `done) </dev/null >/dev/null 2>&1 &`;
  const existing = doc.get("bootcmd");
  const bootcmd = isSeq(existing) ? existing.toJSON() : existing === undefined ? [] : [existing];
  doc.set("bootcmd", doc.createNode([...(bootcmd as unknown[]), ["sh", "-c", loop]]));
  doc.set("premiscale", doc.createNode({ heartbeat_url: url, heartbeat_seconds: seconds }));
  const body = doc.toString({ lineWidth: 0 });
  return body.startsWith("#cloud-config") ? body : `#cloud-config\n${body}`;
}

/** Where cloud-init runs scripts on every boot (its `scripts_per_boot` module, in the final stage, like phone_home). */
export const BOOT_BEACON_PATH = "/var/lib/cloud/scripts/per-boot/premiscale-boot-beacon";

/**
 * Adds a boot beacon to #cloud-config user-data: `write_files` puts a script where cloud-init runs scripts on every
 * boot, and it POSTs once to the heartbeat URL (retrying for a minute). cloud-init's phone_home runs on an instance's
 * first boot only, so a warm pool VM started again would otherwise never say it is up. The script runs in the final
 * stage, where phone_home runs: the VM is as far up as a new one is when it checks in. Also written as `premiscale:
 * {boot_beacon_url}` for guests without cloud-init (the busybox test guest checks in again on every boot instead).
 */
export function withBootBeacon(userData: string, url: string): string {
  const doc = parseDocument(userData);
  if (doc.errors.length > 0 || !isMap(doc.contents)) {
    throw new PremiscaleError("the user-data is not a #cloud-config mapping, so a boot beacon cannot be added to it", "user_data_not_cloud_config", "fix the template's user-data, or set readiness.checkIn: false");
  }
  const script = [
    "#!/bin/sh",
    "# premiscale: say this VM is up, on every boot (a warm pool starts VMs again; phone_home runs on the first boot only)",
    `url='${url}'`,
    "i=0",
    "while [ \"$i\" -lt 30 ]; do",
    `  python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=b'boot=1'), timeout=10)" "$url" >/dev/null 2>&1 || curl -fsS -m 10 -X POST -d boot=1 "$url" >/dev/null 2>&1 || wget -q -O /dev/null --post-data=boot=1 "$url" >/dev/null 2>&1 && exit 0`,
    "  i=$((i + 1))",
    "  sleep 2",
    "done",
    "exit 0",
    "",
  ].join("\n");
  const existing = doc.get("write_files");
  const files = isSeq(existing) ? existing.toJSON() : existing === undefined ? [] : [existing];
  doc.set("write_files", doc.createNode([...(files as unknown[]), { path: BOOT_BEACON_PATH, permissions: "0755", owner: "root:root", content: script }]));
  const mine = doc.get("premiscale");
  const extra = isMap(mine) ? (mine.toJSON() as Record<string, unknown>) : {};
  doc.set("premiscale", doc.createNode({ ...extra, boot_beacon_url: url }));
  const body = doc.toString({ lineWidth: 0 });
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
