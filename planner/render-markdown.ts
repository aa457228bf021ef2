import type { Change, Plan } from "./plan.js";
import { describeShortfall, poolLine, poolMove, refreshHint, shortfallLine, summaryLine, waitsFor } from "./render-text.js";

/** Options of `renderPlanMarkdown`. */
export interface MarkdownOptions {
  /** First line of the comment. @default "premiscale plan" */
  title?: string;
  /**
   * What the reviewer does next, as markdown (e.g. "Merge this branch to apply it."). @default running
   * `premiscale apply`; for a plan with errors, fixing them and planning again.
   */
  next?: string;
  /** The state moved on since the plan was made: a warning says the plan will be refused and must be made again. */
  baseMoved?: { planSerial: number; currentSerial: number };
  /** A policy backtest, already rendered as markdown by the caller; shown in its own section. */
  backtest?: string;
  /** Extra warnings the caller wants at the top (e.g. why an earlier plan was refused), as markdown. */
  notices?: string[];
  /** Diffs with more lines than this go inside `<details>`. @default 20 */
  collapseAboveLines?: number;
}

/**
 * The plan as a pull-request comment, shaped like Atlantis's: a header, warnings, drift, each changed group with its
 * numbers and reason, the diff in a fenced `diff` block (inside `<details>` when long), the summary line always
 * visible, errors, an optional policy backtest and the next step. Pure.
 */
export function renderPlanMarkdown(plan: Plan, opts: MarkdownOptions = {}): string {
  const out: string[] = [];
  out.push(`### ${opts.title ?? "premiscale plan"}`, "");
  const lineage = plan.based_on.lineage ? `lineage \`${plan.based_on.lineage.slice(0, 8)}\`, ` : "no state yet, ";
  const commit = plan.based_on.config_commit ? `, config commit \`${plan.based_on.config_commit.slice(0, 12)}\`` : "";
  out.push(`Made on ${lineage}state serial ${plan.based_on.serial}${commit}; expires ${plan.expires_at}.`, "");

  if (opts.baseMoved) {
    const { planSerial, currentSerial } = opts.baseMoved;
    out.push(
      "> [!WARNING]",
      `> **The base moved:** this plan was made at state serial ${planSerial}, and state is now at serial ${currentSerial}.`,
      "> Applying it will be refused: run `premiscale plan` again.",
      "",
    );
  }
  for (const notice of opts.notices ?? []) out.push(...quote(`**Note:** ${notice}`), "");
  if (plan.targets) {
    out.push(...quote(`**Targeted:** only ${plan.targets.map(code).join(", ")}; the plan may be incomplete.`), "");
  }
  for (const w of plan.warnings) out.push(...quote(`**Warning:** ${w}`), "");

  if (plan.drift.length > 0) {
    out.push("**Objects changed outside premiscale:**", "");
    for (const d of plan.drift) out.push(`- ${code(`${d.group}[${d.name}]`)} on host ${code(d.host)}: ${escapeInline(d.detail)}`);
    out.push("");
    const hint = refreshHint(plan);
    if (hint) out.push(escapeInline(hint), "");
  }
  if (plan.mode === "refresh-only" && (plan.refresh ?? []).length > 0) {
    out.push("**Refresh-only: recorded in state, no VM is changed:**", "");
    for (const u of plan.refresh ?? []) out.push(`- ${code(u.address)} on host ${code(u.host)}: ${u.action.replace("_", " ")} (${escapeInline(u.detail)})`);
    out.push("");
  }

  const changedGroups = plan.groups.filter(
    (g) => plan.changes.some((c) => c.group === g.name) || plan.errors.some((e) => e.group === g.name) || plan.shortfalls.some((s) => s.group === g.name),
  );
  if (changedGroups.length > 0) {
    out.push("| group | now | desired | why |", "| --- | ---: | ---: | --- |");
    for (const g of changedGroups) out.push(`| ${code(g.name)} | ${g.current} | ${g.desired} | ${escapeCell(g.reason)}${g.pool ? `; warm pool ${escapeCell(poolLine(plan, g))}` : ""} |`);
    const unchanged = plan.groups.length - changedGroups.length;
    if (unchanged > 0) out.push("", `${unchanged} other group${unchanged === 1 ? "" : "s"} unchanged.`);
    out.push("");
  }

  const diff = diffLines(plan);
  if (diff.length > 0) {
    const block = fenced("diff", diff);
    if (diff.length > (opts.collapseAboveLines ?? 20)) {
      out.push(`<details><summary>Show the plan (${diff.length} lines)</summary>`, "", ...block, "", "</details>", "");
    } else out.push(...block, "");
  }

  for (const s of plan.shortfalls) out.push(`**Shortfall:** ${escapeInline(describeShortfall(s))}`, "");
  for (const e of plan.errors) out.push(`**Error:** group ${code(e.group)}: ${escapeInline(e.message)}`, "");
  out.push(`**${summaryLine(plan)}**`, "");
  const shortLine = shortfallLine(plan);
  if (shortLine) out.push(shortLine, "");

  if (opts.backtest?.trim()) out.push("#### Policy backtest", "", opts.backtest.trim(), "");

  const next = opts.next ?? defaultNext(plan);
  if (next) out.push(`* :arrow_forward: ${next}`, "");
  return out.join("\n").replace(/\n+$/, "\n");
}

function defaultNext(plan: Plan): string | null {
  if (plan.errors.length > 0) return "Fix the errors above, then run `premiscale plan` again.";
  if (plan.changes.length === 0) return null;
  return "To perform these actions, run `premiscale apply` (or save the plan with `premiscale plan --out FILE` and apply that file).";
}

/** One line per change, `+`/`-` in the first column so `diff` highlighting colours them, under a line per group. */
function diffLines(plan: Plan): string[] {
  const lines: string[] = [];
  for (const g of plan.groups) {
    const changes = plan.changes.filter((c) => c.group === g.name);
    if (changes.length === 0) continue;
    if (lines.length > 0) lines.push("");
    lines.push(`# group ${g.name}: ${g.current} -> ${g.desired} (${g.reason})`);
    for (const c of changes) lines.push(changeLine(c));
  }
  return lines;
}

function changeLine(c: Change): string {
  const why = `   # ${c.reason.replaceAll("_", " ")}: ${c.detail}${waitsFor(c)}`;
  if (c.action === "take" || c.action === "return") return `! ${c.address} on host ${c.host}: ${poolMove(c)}${why}`;
  if (c.action === "create") {
    const size = `${c.vm.vcpus} vCPU${c.vm.vcpus === 1 ? "" : "s"}, ${c.vm.memoryMiB} MiB${c.address_v4 ? `, ${c.address_v4}` : ""}`;
    return `+ ${c.address} on host ${c.host} (${size})${c.pool ? ` into the warm pool${c.pool.state === "running" ? "" : `, ${c.pool.state} once ready`}` : ""}${why}`;
  }
  return `- ${c.address} on host ${c.host}${c.pool ? " (warm pool)" : ""}${c.gone ? " (already gone: forget it)" : ""}${why}`;
}

/** A code fence longer than any backtick run inside, so no text can close it early. */
function fenced(lang: string, lines: string[]): string[] {
  const longest = Math.max(0, ...lines.map((l) => Math.max(0, ...(l.match(/`+/g) ?? []).map((m) => m.length))));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return [fence + lang, ...lines, fence];
}

function quote(text: string): string[] {
  return text.split("\n").map((l) => `> ${l}`);
}

/** Inline code that survives backticks in the text. */
function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** Keeps text from becoming markup: HTML tags and line breaks. */
function escapeInline(text: string): string {
  return text.replace(/[<>]/g, (ch) => (ch === "<" ? "&lt;" : "&gt;")).replace(/\r?\n/g, " ");
}

function escapeCell(text: string): string {
  return escapeInline(text).replaceAll("|", "\\|");
}
