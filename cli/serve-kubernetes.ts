/**
 * `premiscale serve`'s Kubernetes mode (a top-level `kubernetes` block): cluster-autoscaler's externalgrpc cloud
 * provider and the loop that plans and applies the node groups (pipeline/autoscaler-provider.ts), logged as JSON
 * lines and measured on serve's `/metrics`.
 */
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import type { Config } from "../config/types.js";
import { startAutoscalerProvider, type AutoscalerEvent, type RunningAutoscalerProvider } from "../pipeline/autoscaler-provider.js";

/** Calls that change a node group: logged at info; the others (cluster-autoscaler polls them) at debug. */
const CHANGING = new Set(["NodeGroupIncreaseSize", "NodeGroupDeleteNodes", "NodeGroupDecreaseTargetSize"]);

/** Starts the Kubernetes mode for `config` (which has a `kubernetes` block); its events go to `log` and `registry`. */
export async function startKubernetesMode(config: Config, log: Logger, registry: Registry): Promise<RunningAutoscalerProvider> {
  const calls = new Histogram({
    name: "premiscale_externalgrpc_call_duration_seconds",
    help: "externalgrpc calls from cluster-autoscaler, by method and gRPC status: time from the request to the answer.",
    labelNames: ["method", "code"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const passes = new Counter({
    name: "premiscale_autoscaler_passes_total",
    help: "Plan-and-apply passes over the node groups, by outcome (no_changes, applied, partial, failed, locked).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of ["no_changes", "applied", "partial", "failed", "locked"]) passes.inc({ outcome }, 0);
  const onEvent = (e: AutoscalerEvent) => {
    switch (e.type) {
      case "externalgrpc_listening":
        if (e.secure) log.info({ event: "externalgrpc_listening", address: e.address, tls: "mutual", groups: e.groups });
        else log.warn({ event: "externalgrpc_listening", address: e.address, tls: "none", groups: e.groups, reason: "plaintext: allowed only on a loopback address (set kubernetes.externalGrpc.tls for anything else)" });
        return;
      case "externalgrpc_call": {
        const { type: _t, ...call } = e;
        calls.observe({ method: e.method, code: e.code }, e.durationMs / 1000);
        if (e.code !== "OK") log.warn({ event: "externalgrpc_refused", ...call });
        else log[CHANGING.has(e.method) ? "info" : "debug"]({ event: "externalgrpc_call", ...call });
        return;
      }
      case "intent": {
        const { type: _t, ...change } = e;
        log.info({ event: "intent_recorded", ...change });
        return;
      }
      case "pass_start":
        log.debug({ event: "autoscaler_pass_start", trigger: e.trigger });
        return;
      case "pass_done": {
        const { type: _t, ...r } = e;
        passes.inc({ outcome: e.outcome });
        for (const f of e.recorded) log.warn({ event: "failed_instance_reported", ...f });
        log[e.outcome === "failed" || e.outcome === "locked" ? "warn" : e.outcome === "no_changes" ? "debug" : "info"]({ event: "autoscaler_pass_done", ...r, durationMs: Math.round(e.durationMs) });
        return;
      }
      case "apply": {
        const a = e.event;
        if (a.type === "apply_progress") log.debug({ event: "apply_step", address: a.address, step: a.step, elapsedMs: Math.round(a.elapsedMs) });
        else if (a.type === "apply_errored" || a.type === "cleanup_errored") log.warn({ event: a.type, ...a, type: undefined });
        else log.info({ event: a.type, ...a, type: undefined });
        return;
      }
    }
  };
  return startAutoscalerProvider(config, {
    env: process.env,
    onEvent,
    serverLog: (line) => {
      const { time: _time, level, ...fields } = line;
      log[level](fields);
    },
  });
}
