/**
 * What a user's lifecycle hook is told, in both of its forms: the JSON event (a command's stdin, an HTTP call's body)
 * and the `PREMISCALE_HOOK_*` environment variables of a command. The JSON is versioned: fields are only added.
 */
import type { HookContext, HookPoint, HookTarget } from "../applier/lifecycle.js";
import type { LifecycleHookConfig } from "../config/types.js";

/** Where each user hook event runs among the lifecycle points (applier/lifecycle.ts). */
export const HOOK_POINT: Record<LifecycleHookConfig["on"], HookPoint> = {
  // After the VM is up and, when the group waits for it, checked in: the built-in check-in hook runs first.
  launching: "until-ready",
  terminating: "before-destroy",
};

/** The event a user's hook receives. */
export interface HookEvent {
  /** Format of this object; a change that is not an addition bumps it. */
  version: 1;
  event: LifecycleHookConfig["on"];
  /** The hook's name in the config. */
  hook: string;
  group: string;
  instance: {
    name: string;
    uuid: string;
    /** The host (config `hosts[].name`) the VM is on. */
    host: string;
    /** Its static IPv4 address, when the group has a static pool (absent with DHCP). */
    address?: string;
  };
  /** The hook's heartbeat timeout and what happens when it runs out. */
  timeoutSeconds: number;
  defaultResult: LifecycleHookConfig["defaultResult"];
  /** When this run of the hook started (ISO 8601, UTC). */
  time: string;
}

/** The event of one run of `hook` for `vm`. */
export function hookEvent(hook: LifecycleHookConfig, vm: HookTarget, now: Date): HookEvent {
  return {
    version: 1,
    event: hook.on,
    hook: hook.name,
    group: vm.group,
    instance: { name: vm.name, uuid: vm.uuid, host: vm.host, ...(vm.addressV4 ? { address: vm.addressV4 } : {}) },
    timeoutSeconds: hook.timeoutSeconds,
    defaultResult: hook.defaultResult,
    time: now.toISOString(),
  };
}

/** The event as environment variables for a command (PREMISCALE_HOOK_ADDRESS only with a static address). */
export function hookEnv(e: HookEvent): Record<string, string> {
  return {
    PREMISCALE_HOOK_EVENT: e.event,
    PREMISCALE_HOOK_NAME: e.hook,
    PREMISCALE_HOOK_GROUP: e.group,
    PREMISCALE_HOOK_INSTANCE_NAME: e.instance.name,
    PREMISCALE_HOOK_INSTANCE_UUID: e.instance.uuid,
    PREMISCALE_HOOK_HOST: e.instance.host,
    ...(e.instance.address ? { PREMISCALE_HOOK_ADDRESS: e.instance.address } : {}),
    PREMISCALE_HOOK_TIMEOUT_SECONDS: String(e.timeoutSeconds),
    PREMISCALE_HOOK_DEFAULT_RESULT: e.defaultResult,
  };
}

/** A hook may keep a VM waiting with heartbeats at most this many times its timeout (AWS's limit too). */
export const MAX_HEARTBEAT_TIMEOUTS = 100;

/**
 * `ctx.heartbeat`, except that heartbeats stop counting once the hook has run `MAX_HEARTBEAT_TIMEOUTS` times its
 * timeout: a hook that beats forever and never answers then times out like one that went silent. Returns whether
 * the beat counted.
 */
export function boundedHeartbeat(ctx: Pick<HookContext, "heartbeat">, timeoutMs: number, clock: () => number): () => boolean {
  const until = clock() + MAX_HEARTBEAT_TIMEOUTS * timeoutMs;
  return () => {
    if (clock() >= until) return false;
    ctx.heartbeat();
    return true;
  };
}

/** The words a message starts with: `hook lb (launching)`. */
export function hookLabel(hook: Pick<LifecycleHookConfig, "name" | "on">): string {
  return `hook ${hook.name} (${hook.on})`;
}
