import type { Change, GroupPlan, Plan, RefreshUpdate, Shortfall } from "./plan.js";

const ansi = { green: "\x1b[32m", red: "\x1b[31m", yellow: "\x1b[33m", bold: "\x1b[1m", reset: "\x1b[0m" } as const;

/**
 * The line users grep for: `Plan: 2 to add, 0 to change, 1 to destroy.`, or
 * `No changes. Your infrastructure matches the configuration.` when there is nothing to do and no error.
 */
export function summaryLine(plan: Plan): string {
  if (plan.mode === "refresh-only") {
    const n = plan.refresh?.length ?? 0;
    if (n === 0 && plan.errors.length === 0) return "No changes. Your infrastructure still matches the configuration.";
    return `Refresh-only: ${n} update${n === 1 ? "" : "s"} to record in state; no VM is changed.`;
  }
  if (plan.changes.length === 0 && plan.errors.length === 0 && plan.shortfalls.length === 0)
    return "No changes. Your infrastructure matches the configuration.";
  const { add, change, destroy } = plan.summary;
  return `Plan: ${add} to add, ${change} to change, ${destroy} to destroy.`;
}

/** One shortfall in words: "group web: 2 of 3 new VMs cannot be made yet: host a: …". */
export function describeShortfall(s: Shortfall): string {
  return `group ${s.group}: ${s.missing} of ${s.wanted} new VM${s.wanted === 1 ? "" : "s"} cannot be made yet: ${s.reason}`;
}

/** The line after the summary when groups stay short, or null. */
export function shortfallLine(plan: Plan): string | null {
  const short = plan.shortfalls;
  if (short.length === 0) return null;
  const n = short.reduce((k, s) => k + s.missing, 0);
  return `Short: ${n} VM${n === 1 ? "" : "s"} of ${short.map((s) => s.group).join(", ")} cannot be made yet; the rest of the plan goes ahead, and the next plan tries again.`;
}

/** The plan as Terraform-style text: drift, warnings, actions per group, errors, then the summary line. */
export function renderPlanText(plan: Plan, opts: { color?: boolean } = {}): string {
  const paint = (color: keyof typeof ansi, text: string): string => (opts.color ? `${ansi[color]}${text}${ansi.reset}` : text);
  const out: string[] = [];

  if (plan.drift.length > 0) {
    out.push(paint("bold", "Note: Objects have changed outside of premiscale"), "");
    for (const d of plan.drift) out.push(`  ${paint("yellow", "~")} ${d.group}[${d.name}] on host ${d.host}: ${d.detail}`);
    out.push("");
    const hint = refreshHint(plan);
    if (hint) out.push(hint, "");
  }
  if (plan.mode === "refresh-only") {
    const updates = plan.refresh ?? [];
    if (updates.length > 0) {
      out.push("premiscale will record these in state, as the hosts have them:", "");
      for (const u of updates) out.push(`  ${paint("yellow", "~")} ${u.address} on host ${u.host}: ${REFRESH_WORDS[u.action]} (${u.detail})`);
      out.push(
        "",
        "This is a refresh-only plan, so premiscale will not create, start, stop or destroy any VM to undo these.",
        "If you were expecting these changes, apply this plan to record them in state without changing any VM.",
        "",
      );
    }
    for (const warning of plan.warnings) out.push(`${paint("yellow", "Warning:")} ${warning}`);
    if (plan.warnings.length > 0) out.push("");
    for (const e of plan.errors) out.push(`${paint("red", "Error:")} group "${e.group}": ${e.message}`);
    if (plan.errors.length > 0) out.push("");
    out.push(paint("bold", summaryLine(plan)));
    return out.join("\n") + "\n";
  }
  for (const warning of plan.warnings) out.push(`${paint("yellow", "Warning:")} ${warning}`);
  if (plan.warnings.length > 0) out.push("");

  if (plan.changes.length > 0) {
    out.push("premiscale will perform the following actions:", "");
    for (const g of plan.groups) {
      const changes = plan.changes.filter((c) => c.group === g.name);
      if (changes.length === 0) continue;
      out.push(`  # group ${g.name}: ${g.current} → ${g.desired} (${g.reason})${g.pool ? `; warm pool ${poolLine(plan, g)}` : ""}`);
      for (const c of changes) out.push(changeLine(c, paint));
      out.push("");
    }
  }

  // Why a policy-driven group did not scale (stabilised, cooldown, at max, no data) is worth as much as why one did.
  const kept = plan.groups.filter((g) => g.decision && !plan.changes.some((c) => c.group === g.name));
  if (kept.length > 0) {
    out.push("Scaling policies kept these groups at their size:", "");
    for (const g of kept) out.push(`  # group ${g.name}: ${g.current} (${g.reason})`);
    out.push("");
  }

  const pools = plan.groups.filter((g) => g.pool && !plan.changes.some((c) => c.group === g.name));
  if (pools.length > 0) {
    out.push("Warm pools:", "");
    for (const g of pools) out.push(`  # group ${g.name}: ${poolLine(plan, g)}`);
    out.push("");
  }

  const short = plan.shortfalls;
  if (short.length > 0) {
    out.push("Shortfall: these groups stay below their desired size until there is room:", "");
    for (const s of short) out.push(`  ${paint("yellow", "!")} ${describeShortfall(s)}`);
    out.push("");
  }

  for (const e of plan.errors) out.push(`${paint("red", "Error:")} group "${e.group}": ${e.message}`);
  if (plan.errors.length > 0) out.push("");
  out.push(paint("bold", summaryLine(plan)));
  const shortLine = shortfallLine(plan);
  if (shortLine) out.push(paint("yellow", shortLine));
  return out.join("\n") + "\n";
}

function changeLine(c: Change, paint: (color: keyof typeof ansi, text: string) => string): string {
  const why = `   # ${c.reason.replace("_", " ")}${waitsFor(c)}`;
  if (c.action === "take") return `  ${paint("yellow", "~")} ${c.address} on host ${c.host}: ${poolMove(c)}${why}`;
  if (c.action === "return") return `  ${paint("yellow", "~")} ${c.address} on host ${c.host}: ${poolMove(c)}${why}`;
  if (c.action === "create") {
    const size = `${c.vm.vcpus} vCPU${c.vm.vcpus === 1 ? "" : "s"}, ${c.vm.memoryMiB} MiB${c.address_v4 ? `, ${c.address_v4}` : ""}`;
    // A roll-out's replacement is Terraform's create-before-destroy `+/-`.
    if (c.replaces) return `${paint("yellow", "+/-")} ${c.address} on host ${c.host} (${size}) replaces ${c.replaces}${why}`;
    return `  ${paint("green", "+")} ${c.address} on host ${c.host} (${size})${c.pool ? ` into the warm pool${c.pool.state === "running" ? "" : `, ${c.pool.state} once ready`}` : ""}${why}`;
  }
  return `  ${paint("red", "-")} ${c.address} on host ${c.host}${c.pool ? " (warm pool)" : ""}${c.gone ? " (already gone: forget it)" : ""}${why}`;
}

/** What a take or a return does, in words: "take from the warm pool and start it", "… and resume it". */
export function poolMove(c: Extract<Change, { action: "take" | "return" }>): string {
  if (c.action === "take") return `take from the warm pool${c.resume ? " and resume it" : c.start ? " and start it" : ""}`;
  return `return to the warm pool${c.stop ? " and stop it" : c.pause ? " and pause it" : ""}`;
}

/**
 * A group's warm pool before and after the plan, and how each of its VMs is now: "2 → 1 waiting of 2 (paused):
 * web-1a2b3c4d paused, web-5e6f7a8b running".
 */
export function poolLine(plan: Plan, g: GroupPlan): string {
  const p = g.pool!;
  const fills = plan.changes.filter((c) => c.group === g.name && c.action === "create" && c.pool).length;
  const after = p.vms.length - p.take - p.trim + p.return + fills;
  const now = p.states && p.vms.length > 0 ? `: ${p.vms.map((n) => `${n} ${p.states![n] ?? "unknown"}`).join(", ")}` : "";
  return `${p.vms.length === after ? `${after}` : `${p.vms.length} → ${after}`} waiting of ${p.size} (${p.state})${now}`;
}

const REFRESH_WORDS: Record<RefreshUpdate["action"], string> = {
  forget: "forget it",
  mark_stopped: "record it as stopped",
  mark_running: "record it as running again",
  adopt: "adopt it",
};

/**
 * The note under drift when `apply --refresh-only` could accept it (VMs gone, stopped or left by an interrupted apply),
 * or null when none of the drift is of that kind.
 */
export function refreshHint(plan: Plan): string | null {
  if (plan.mode === "refresh-only") return null;
  const n = plan.drift.filter((d) => d.kind === "missing" || d.kind === "stopped" || d.kind === "not_in_state").length;
  if (n === 0) return null;
  return `To accept ${n === 1 ? "it" : "them"} into state, changing no VM: premiscale apply --refresh-only`;
}

/** ", waits for web[web-2], db[db-1]" for a change that must wait for others of the same plan, else "". */
export function waitsFor(c: Change): string {
  return c.waits_for?.length ? `, waits for ${c.waits_for.join(", ")}` : "";
}
