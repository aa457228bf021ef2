import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { applyPlan, commitRecommendations } from "../applier/apply-plan.js";
import { applyRefresh } from "../applier/apply-refresh.js";
import type { InterruptedApply } from "../applier/journal.js";
import type { ServerLogLine } from "../server/check-in-server.js";
import { interruptedApplies, prepareApply, type PreparedApply } from "../pipeline/prepare-apply.js";
import { ConfigError, PlanRejectedError, PremiscaleError, StateError } from "../config/errors.js";
import { checkHosts } from "../pipeline/check-hosts.js";
import { kindOf } from "../providers/index.js";
import { configNotices, loadConfig } from "../pipeline/config.js";
import { checkPlanApplicable, parsePlan, serializePlan } from "../planner/plan-file.js";
import type { Plan } from "../planner/plan.js";
import { renderPlanMarkdown } from "../planner/render-markdown.js";
import { describeShortfall, renderPlanText, shortfallLine, summaryLine } from "../planner/render-text.js";
import { writeFileAtomic } from "../state/atomic-file.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { StateEvent, StateLock } from "../state/state-store.js";
import type { Instance, State } from "../state/types.js";
import { configDigest, configPath, makePlan, openContext, type Context } from "./context.js";
import type { Output } from "./output.js";
import { applySucceeded, chooseMode, createApplyReporter, isCI, outputSink, writePlan, type ApplyReporter } from "./tui/index.js";

const OK = 0;
const ERROR = 1;
const CHANGES = 2;
/** apply: every change that could be made was made, but a group stays short of its size (no room): apply again later. */
const PARTIAL = 3;

/** `premiscale validate`. */
export async function runValidate(io: Output, file: string | undefined, opts: { checkHosts?: boolean; json?: boolean }): Promise<number> {
  const path = configPath(file);
  if (!opts.checkHosts) {
    try {
      const config = await loadConfig(path, process.env, { checkEnv: false });
      const secrets = [...new Set(config.groups.flatMap((g) => [...g.template.secretEnv, ...g.lifecycleHooks.flatMap((h) => (h.http ? [h.http.secretEnv] : []))]))].sort();
      const unset = secrets.filter((n) => process.env[n] === undefined);
      if (opts.json) io.out(JSON.stringify({ valid: true, file: config.file, issues: [], notices: configNotices(config), secretEnv: secrets, secretEnvUnset: unset }));
      else {
        io.out(`Success! ${config.file} is valid: ${config.hosts.length} host(s), ${config.groups.length} group(s).`);
        for (const n of configNotices(config)) io.err(`Note: ${n.file}:${n.line}:${n.column}: ${n.message} (${n.fix})`);
        if (unset.length > 0) io.err(`Note: apply will need the environment variable${unset.length > 1 ? "s" : ""} ${unset.join(", ")} (not set here).`);
      }
      return OK;
    } catch (e) {
      if (opts.json && e instanceof ConfigError) {
        io.out(JSON.stringify({ valid: false, file: resolve(path), issues: e.issues }));
        return ERROR;
      }
      throw e;
    }
  }
  const ctx = await openContext(path, { checkEnv: false });
  try {
    const { config } = ctx;
    const problems = await checkHosts(config, ctx.providers);
    if (opts.json) io.out(JSON.stringify({ valid: problems.length === 0, file: config.file, problems, notices: configNotices(config) }));
    else {
      if (problems.length === 0) io.out(`Success! ${config.file} is valid and every host is ready.`);
      else for (const p of problems) io.err(`Error: ${p}`);
      for (const n of configNotices(config)) io.err(`Note: ${n.file}:${n.line}:${n.column}: ${n.message} (${n.fix})`);
    }
    return problems.length === 0 ? OK : ERROR;
  } finally {
    await ctx.close();
  }
}

/** `premiscale plan`. */
export async function runPlan(
  io: Output,
  file: string | undefined,
  opts: { out?: string; json?: boolean; format?: string; detailedExitcode?: boolean; target?: string[]; replace?: string[]; refreshOnly?: boolean; ttlMs: number },
): Promise<number> {
  const format = opts.json ? "json" : (opts.format ?? "text");
  if (opts.refreshOnly && opts.replace) throw new PremiscaleError("--replace cannot be used with --refresh-only", "usage", "a refresh-only plan changes no VM; plan the replacement without --refresh-only");
  if (!["text", "json", "markdown"].includes(format)) throw new PremiscaleError(`unknown --format "${format}"`, "usage", "use text, json or markdown");
  const ctx = await openContext(configPath(file), { checkEnv: false });
  try {
    checkTargets(ctx, opts.target);
    const state = await ctx.store.read();
    checkReplace(ctx, state, opts.replace);
    const { plan, unreachable } = await makePlan(ctx, state, {
      targets: opts.target ?? null,
      ttlSeconds: Math.round(opts.ttlMs / 1000),
      ...(opts.replace ? { replace: opts.replace } : {}),
      ...(opts.refreshOnly ? { refreshOnly: true } : {}),
    });
    if (format === "json") io.out(serializePlan(plan).trimEnd());
    else if (format === "markdown") io.out(renderPlanMarkdown(plan, opts.out ? { next: `To perform exactly these actions, run \`premiscale apply ${opts.out}\`` } : {}).trimEnd());
    else io.out(renderPlanText(plan, { color: io.color }));
    if (opts.target && format === "text") io.err(targetWarning());
    if (opts.out && plan.errors.length === 0) {
      await writePlanFile(opts.out, serializePlan(plan));
      if (format === "text") io.out(`\nSaved the plan to: ${opts.out}\nTo perform exactly these actions, run: premiscale apply ${opts.out}`);
    }
    if (reportUnreachable(io, ctx, unreachable) || plan.errors.length > 0) return ERROR;
    return opts.detailedExitcode && (plan.changes.length > 0 || (plan.refresh ?? []).length > 0) ? CHANGES : OK;
  } finally {
    await ctx.close();
  }
}

/** `premiscale show PLANFILE`. */
export async function runShow(io: Output, planfile: string, opts: { json?: boolean }): Promise<number> {
  const plan = await readPlanFile(planfile);
  io.out(opts.json ? serializePlan(plan).trimEnd() : renderPlanText(plan, { color: io.color }));
  return OK;
}

/** `premiscale apply [PLANFILE]`. */
export async function runApply(
  io: Output,
  file: string | undefined,
  planfile: string | undefined,
  opts: {
    autoApprove?: boolean;
    parallelism: number;
    lockTimeoutMs: number;
    shutdownTimeoutMs: number;
    target?: string[];
    replace?: string[];
    refreshOnly?: boolean;
    json?: boolean;
  },
): Promise<number> {
  const saved = planfile ? await readPlanFile(planfile) : null;
  if (saved && opts.refreshOnly) throw new PremiscaleError("--refresh-only cannot be used with a saved plan", "usage", "a saved plan carries its mode: make it with premiscale plan --refresh-only --out FILE");
  if (opts.refreshOnly && opts.replace) throw new PremiscaleError("--replace cannot be used with --refresh-only", "usage", "a refresh-only apply changes no VM; replace without --refresh-only");
  if (saved && opts.target) throw new PremiscaleError("--target cannot be used with a saved plan", "usage", "the plan already says what to do");
  if (saved && opts.replace) throw new PremiscaleError("--replace cannot be used with a saved plan", "usage", "make the plan with --replace: premiscale plan --replace ADDRESS --out FILE");
  if (!saved && !opts.autoApprove && !io.interactive) {
    throw new PremiscaleError(
      "apply needs approval, and there is no terminal to ask on",
      "approval_required",
      "run with --auto-approve, or save a plan with `premiscale plan --out FILE` and apply that file",
    );
  }
  const ctx = await openContext(configPath(file), { checkEnv: true });
  let lock: StateLock | null = null;
  let prepared: PreparedApply | null = null;
  let reporter: ApplyReporter | null = null;
  let note = (text: string) => io.err(text);
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
    note("Interrupt received: finishing the changes in flight, then writing state. Press Ctrl-C again to stop at once (state may need `premiscale apply` again).");
  };
  try {
    checkTargets(ctx, opts.target);
    lock = await ctx.store.lock("apply", opts.lockTimeoutMs, (e) => reportStateEvent(io, e));
    for (const a of interruptedApplies(ctx.config)) reportInterrupted(io, a);
    const state = (await ctx.store.read()) ?? null;
    let plan: Plan;
    let unreachable: { host: string; error: string }[] = [];
    if (saved) {
      checkPlanApplicable(saved, state ? { lineage: state.lineage, serial: state.serial } : null, new Date());
      if (saved.based_on.config_digest !== configDigest(ctx.config)) {
        // Hosts' URIs and pools come from the config at apply: a changed config could send the plan elsewhere.
        throw new PlanRejectedError(
          `the config ${ctx.config.file} changed since this plan was made`,
          "plan_config_changed",
          "run premiscale plan again",
        );
      }
      for (const c of saved.changes) {
        if (!ctx.providers.has(c.host)) {
          throw new PlanRejectedError(`the plan uses host ${c.host}, which the config no longer has`, "plan_stale", "run premiscale plan again");
        }
      }
      plan = saved;
    } else {
      checkReplace(ctx, state, opts.replace);
      ({ plan, unreachable } = await makePlan(ctx, state, { targets: opts.target ?? null, ...(opts.replace ? { replace: opts.replace } : {}), ...(opts.refreshOnly ? { refreshOnly: true } : {}) }));
      writePlan({ mode: opts.json ? "json" : "plain", sink: outputSink(io.out), plan, color: io.color });
      if (opts.target && !opts.json) io.err(targetWarning());
      if (plan.errors.length > 0) {
        reportUnreachable(io, ctx, unreachable);
        io.err("Error: the plan has errors (above); nothing was changed.");
        return ERROR;
      }
      if (plan.mode === "refresh-only") {
        if ((plan.refresh ?? []).length === 0) return reportUnreachable(io, ctx, unreachable) ? ERROR : OK;
        if (!opts.autoApprove) {
          io.err("\nWould you like to update the premiscale state to reflect these detected changes?\n  premiscale will write these changes to the state without changing any VM.\n  Only 'yes' will be accepted to confirm.\n");
          if ((await io.ask("  Enter a value: ")) !== "yes") {
            io.err("\nApply cancelled.");
            return ERROR;
          }
        }
      } else if (plan.changes.length === 0) {
        const commit = await commitRecommendations(plan, lock, new Date());
        if (commit) io.err(`Recorded the scaling recommendations (and templates) in state: ${commit.slice(0, 12)}`);
        return reportUnreachable(io, ctx, unreachable) ? ERROR : plan.shortfalls.length > 0 ? PARTIAL : OK;
      }
      if (!opts.autoApprove) {
        io.err("\nDo you want to perform these actions?\n  premiscale will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n");
        const answer = await io.ask("  Enter a value: ");
        if (answer !== "yes") {
          io.err("\nApply cancelled.");
          return ERROR;
        }
      }
    }
    if (plan.mode === "refresh-only") {
      const r = await applyRefresh(plan, lock);
      const n = r.recorded.length;
      if (opts.json) io.out(JSON.stringify({ "@level": "info", "@message": `Apply complete! ${n} recorded in state`, type: "premiscale.refresh_complete", recorded: n, commit: r.commit }));
      else io.out(n === 0 ? summaryLine(plan) : `\nApply complete! ${n} update${n === 1 ? "" : "s"} recorded in state; no VM was changed.`);
      if (r.commit) io.err(`State committed: ${r.commit.slice(0, 12)}`);
      return reportUnreachable(io, ctx, unreachable) ? ERROR : OK;
    }
    if (plan.changes.length === 0) {
      io.out(summaryLine(plan));
      return plan.shortfalls.length > 0 ? PARTIAL : OK;
    }

    const mode = chooseMode({ json: opts.json, isTTY: process.stderr.isTTY === true && io.interactive, ci: isCI(process.env), term: process.env.TERM });
    const live = createApplyReporter({
      mode,
      stream: mode === "tui" ? process.stderr : outputSink(mode === "json" ? io.out : io.err),
      out: outputSink(io.out),
      plan,
      color: io.color,
      statePath: ctx.config.state.path,
    });
    reporter = live;
    note = (text) => live.note(text, "warn");
    process.on("SIGINT", onSigint);
    process.on("SIGTERM", onSigint);
    prepared = await prepareApply(ctx.config, plan, { providers: ctx.providers, lock, env: process.env, serverLog: (l) => reportServerLine(note, l) });
    if (prepared.readiness) live.note(readinessNote(ctx, prepared.readiness));
    const result = await applyPlan(
      plan,
      prepared.deps,
      {
        parallelism: opts.parallelism,
        shutdownTimeoutMs: opts.shutdownTimeoutMs,
        signal: abort.signal,
        onEvent: (e) => live.onEvent(e),
      },
    );
    await prepared.close(true);
    prepared = null;
    await live.finish(result);
    reporter = null;
    const short = shortfallLine(plan);
    if (short) io.err(`${short}\n${plan.shortfalls.map((s) => `  ${describeShortfall(s)}`).join("\n")}`);
    const code = !applySucceeded(result) ? ERROR : short ? PARTIAL : OK;
    // The reachable hosts were served; the unreachable ones still fail the run.
    return reportUnreachable(io, ctx, unreachable) ? ERROR : code;
  } finally {
    reporter?.stop();
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
    // An apply that threw keeps its journal: the next apply reports what it had in flight.
    await prepared?.close(false);
    await lock?.release();
    await ctx.close();
  }
}

/** Refuses a --replace that names no group of the config or no instance of its group in state. */
function checkReplace(ctx: Context, state: State | null, replace: string[] | undefined): void {
  for (const r of replace ?? []) {
    const m = /^([^[\]]+)(?:\[([^\]]+)\])?$/.exec(r);
    const group = ctx.config.groups.find((g) => g.name === m?.[1]);
    if (!m || !group) {
      throw new PremiscaleError(`--replace ${r}: no group of that name`, "usage", `write GROUP or GROUP[NAME]; groups: ${ctx.config.groups.map((g) => g.name).join(", ")}`);
    }
    const names = state?.groups.find((g) => g.name === group.name)?.instances.map((i) => i.name) ?? [];
    if (m[2] !== undefined && !names.includes(m[2])) {
      throw new PremiscaleError(`--replace ${r}: group ${group.name} has no instance ${m[2]}`, "usage", names.length ? `its instances: ${names.join(", ")}` : "it has no instances yet");
    }
  }
}

/**
 * `premiscale protect GROUP[NAME]…` / `unprotect`: sets or clears scale-in protection in state (one commit): a
 * protected instance is never chosen by scale-in or replaced for its age or an old template, only by --replace.
 */
export async function runProtect(io: Output, file: string | undefined, addresses: string[], opts: { off?: boolean; lockTimeoutMs: number }): Promise<number> {
  const config = await loadConfig(configPath(file), process.env, { checkEnv: false });
  const store = new GitStateStore(config.state.path);
  const lock = await store.lock(opts.off ? "unprotect" : "protect", opts.lockTimeoutMs, (e) => reportStateEvent(io, e));
  try {
    const state = lock.current();
    const targets = addresses.map((a) => {
      const m = /^([^[\]]+)\[([^\]]+)\]$/.exec(a);
      const inst = m ? state.groups.find((g) => g.name === m[1])?.instances.find((i) => i.name === m[2]) : undefined;
      if (!m || !inst) {
        const known = state.groups.flatMap((g) => g.instances.map((i) => `${g.name}[${i.name}]`));
        throw new PremiscaleError(`${a}: no such instance in state`, "usage", known.length ? `write GROUP[NAME]; instances: ${known.slice(0, 20).join(", ")}${known.length > 20 ? ", …" : ""}` : "state has no instances");
      }
      return { group: m[1]!, inst };
    });
    const changed = targets.filter((t) => Boolean(t.inst.protected) === Boolean(opts.off));
    for (const { group, inst } of changed) {
      const { protected: _was, ...rest } = inst;
      await lock.putInstance(group, opts.off ? rest : { ...rest, protected: true });
    }
    const verb = opts.off ? "unprotect" : "protect";
    const commit = changed.length ? await lock.commit(`premiscale ${verb}: ${changed.map((t) => `${t.group}[${t.inst.name}]`).join(", ")}\n`) : null;
    for (const t of targets) io.out(`${t.group}[${t.inst.name}]: ${opts.off ? "not protected" : "protected from scale-in and replacement (only --replace replaces it)"}${changed.includes(t) ? "" : " (already)"}`);
    if (commit) io.err(`State committed: ${commit.slice(0, 12)}`);
    return OK;
  } catch (e) {
    if (e instanceof StateError && e.code === "state_missing") throw new PremiscaleError("there is no state yet, so no instance to protect", "usage", "run premiscale apply first");
    throw e;
  } finally {
    await lock.release();
  }
}

/** `premiscale state list`. */
export async function runStateList(io: Output, file: string | undefined, opts: { json?: boolean }): Promise<number> {
  const config = await loadConfig(configPath(file), process.env, { checkEnv: false });
  const state = await new GitStateStore(config.state.path).read();
  if (opts.json) {
    io.out(JSON.stringify(state ?? { version: 1, lineage: null, serial: 0, groups: [] }, null, 2));
    return OK;
  }
  if (!state) {
    io.out(`No state yet in ${config.state.path}: the first apply creates it.`);
    return OK;
  }
  // A warm pool's VMs are listed with their group, marked in POOL with how apply left them waiting (stopped, running,
  // paused); STATUS says when refresh-only accepted a stop. `plan` shows what the hosts say now.
  const status = (i: Instance) => (i.stopped ? `${i.status}, ${i.stopped.state} (accepted ${i.stopped.at})` : i.status);
  const pool = (i: Instance) => (i.pool ? `${i.pool}${i.poolState ? ` (${i.poolState})` : ""}` : "");
  const rows = state.groups.flatMap((g) => g.instances.map((i) => [g.name, i.name, i.host, status(i), pool(i), i.created, i.address ?? "", i.protected ? "yes" : "", i.uuid]));
  io.out(`State ${config.state.path} (lineage ${state.lineage}, serial ${state.serial})`);
  if (rows.length === 0) {
    io.out("No instances.");
    return OK;
  }
  io.out(table([["GROUP", "NAME", "HOST", "STATUS", "POOL", "CREATED", "ADDRESS", "PROTECTED", "UUID"], ...rows]));
  for (const g of state.groups) {
    const pooled = g.instances.filter((i) => i.pool === "warm");
    if (pooled.length === 0) continue;
    const by = new Map<string, number>();
    for (const i of pooled) by.set(i.poolState ?? "state not recorded", (by.get(i.poolState ?? "state not recorded") ?? 0) + 1);
    const how = [...by].map(([k, n]) => `${n} ${k}`).join(", ");
    io.out(`group ${g.name}: ${pooled.length} VM${pooled.length === 1 ? "" : "s"} waiting in the warm pool (not members): ${how}`);
  }
  for (const g of state.groups.filter((x) => x.rollout)) {
    const r = g.rollout!;
    const back = r.rollback
      ? `; rolled back to template ${r.previous?.digest ?? "?"} at ${r.rollback.at}: ${r.rollback.reason}${r.rollback.failed ? `; the roll-back stopped at ${r.rollback.failed.at}: ${r.rollback.failed.message}` : ""}`
      : "";
    io.out(`group ${g.name}: roll-out ${r.replaced} of ${r.total} replaced${r.failed ? `, stopped at ${r.failed.at}: ${r.failed.message}` : r.checkpointAt ? `, checkpoint reached at ${r.checkpointAt}` : ""}${back}`);
  }
  return OK;
}

/** `premiscale force-unlock ID`. */
export async function runForceUnlock(io: Output, file: string | undefined, id: string, opts: { force?: boolean }): Promise<number> {
  const config = await loadConfig(configPath(file), process.env, { checkEnv: false });
  const store = new GitStateStore(config.state.path);
  const holder = await store.lockHolder();
  if (holder && !opts.force) {
    if (!io.interactive) {
      throw new PremiscaleError("force-unlock needs confirmation, and there is no terminal to ask on", "approval_required", "add --force");
    }
    io.err(`Lock ${holder.ID}: ${holder.Operation} by ${holder.Who} since ${holder.Created}.`);
    io.err("Removing a lock that is still in use can corrupt state. Only 'yes' will be accepted to confirm.");
    if ((await io.ask("  Enter a value: ")) !== "yes") {
      io.err("force-unlock cancelled.");
      return ERROR;
    }
  }
  const removed = await store.forceUnlock(id);
  io.out(`premiscale state has been successfully unlocked (lock ${removed.ID} held by ${removed.Who}).`);
  return OK;
}

function checkTargets(ctx: Context, targets: string[] | undefined): void {
  for (const t of targets ?? []) {
    if (!ctx.config.groups.some((g) => g.name === t)) {
      throw new PremiscaleError(
        `--target ${t}: no group of that name in ${ctx.config.file}`,
        "usage",
        `groups are: ${ctx.config.groups.map((g) => g.name).join(", ")}`,
      );
    }
  }
}

/** Prints an error per host that could not be observed; true when there was one. */
function reportUnreachable(io: Output, ctx: Context, unreachable: { host: string; error: string }[]): boolean {
  for (const u of unreachable) {
    const host = ctx.config.hosts.find((h) => h.name === u.host);
    const kind = host ? kindOf(host) : undefined;
    io.err(`Error: host ${u.host}${host && kind ? ` (${kind.where(host)})` : ""} could not be observed: ${u.error.replace(/^host \S+: /, "")}`);
    io.err(`  its VMs were left as they are${host && kind ? `; ${kind.unreachableHint(host)}` : ""}`);
  }
  return unreachable.length > 0;
}

function targetWarning(): string {
  return "\nWarning: Resource targeting is in effect: the plan may be incomplete. Use --target for exceptional situations, not routinely.";
}

async function readPlanFile(planfile: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(planfile, "utf8");
  } catch (e) {
    throw new PremiscaleError(`cannot read plan file ${planfile}: ${(e as Error).message}`, "plan_unreadable", "check the path");
  }
  try {
    return parsePlan(text);
  } catch (e) {
    if (e instanceof PremiscaleError) throw new PlanRejectedError(`${planfile}: ${e.message}`, e.code, e.hint);
    throw e;
  }
}

async function writePlanFile(path: string, text: string): Promise<void> {
  try {
    await writeFileAtomic(path, text, { mode: 0o600 });
  } catch (e) {
    throw new PremiscaleError(`cannot write the plan to ${path}: ${(e as Error).message}`, "plan_write_failed", "check that the directory exists and is writable");
  }
}

function reportStateEvent(io: Output, e: StateEvent): void {
  if (e.type === "lock_wait") io.err(`Waiting for the state lock held by ${e.holder.Who} (${e.holder.Operation}, ID ${e.holder.ID})...`);
  if (e.type === "lock_stale_removed") io.err(`Removed a stale state lock: its holder (pid ${e.holder.Pid}, ${e.holder.Operation}) no longer runs.`);
  if (e.type === "leftovers_removed") io.err(`Removed temporary files left by a premiscale that died while writing: ${e.files.join(", ")}.`);
  if (e.type === "recovered_uncommitted") io.err(`Found state written but not committed by an interrupted apply (${e.files.join(", ")}); it is included in this apply's commit.`);
}

function reportInterrupted(io: Output, a: InterruptedApply): void {
  io.err(
    `An earlier apply (pid ${a.pid}, started ${a.startedAt}) stopped before it finished: ${a.finished} change(s) had finished, ${a.inFlight.length} were in flight:`,
  );
  for (const c of a.inFlight) io.err(`  ${c.action} ${c.address} on ${c.host}${c.lastStep ? `, at step ${c.lastStep}` : ", before its first step"}`);
  io.err("The plan below finishes or undoes them (state recorded each before its first host call).");
}

function readinessNote(ctx: Context, mode: "own" | "shared"): string {
  const { host, port, advertiseUrl } = ctx.config.server;
  return mode === "own"
    ? `Waiting for new VMs to check in: serving check-ins on ${host}:${port} (guests use ${advertiseUrl}) until apply ends.`
    : `Waiting for new VMs to check in with premiscale serve on ${host}:${port}.`;
}

function reportServerLine(note: (text: string) => void, l: ServerLogLine): void {
  if (l.level !== "info") note(`check-in server: ${l.event}${l.reason ? `: ${l.reason}` : ""}${l.instanceId ? ` (instance ${l.instanceId})` : ""}`);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}
