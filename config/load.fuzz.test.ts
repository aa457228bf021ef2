import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { premiscale } from "../test/support/cli.js";
import { startLoaderWorker, workerWarnings, type LoaderHang, type LoaderResult, type LoaderWorker } from "../test/support/fuzz-config-loader.js";
import { fuzzCaseArb, renderCase, USER_DATA_FIXTURES, type FuzzCase } from "../test/support/fuzz-config.js";

// Fuzzing the loader: config files generated from the JSON Schema and then broken (test/support/fuzz-config.ts).
// PREMISCALE_FUZZ_RUNS (10,000), PREMISCALE_FUZZ_SEED (fixed, so a run is reproducible; fast-check prints the seed
// and path of a failure to replay it), PREMISCALE_FUZZ_CASE_MS (per-case limit, 10 s: a hang detector with room for a loaded machine, not a speed check; plus 1 ms per KiB of the file:
// loading is linear, so only a super-linear path or a hang passes it) and PREMISCALE_FUZZ_CLI_RUNS (25: each costs a process start) change it.
const RUNS = Number(process.env.PREMISCALE_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.PREMISCALE_FUZZ_SEED ?? 15_04);
const CASE_MS = Number(process.env.PREMISCALE_FUZZ_CASE_MS ?? 10_000);
const CLI_RUNS = Number(process.env.PREMISCALE_FUZZ_CLI_RUNS ?? 25);

/** The variables `${env:…}` placeholders in generated user-data may name; others are unset on purpose. */
const ENV = { FOO: "foo", WEB_PASSWORD: "pw", A: "a", WEBHOOK_SECRET: "s" };
const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;

let dir: string;
let file: string;
let worker: LoaderWorker;

/** A folder with the files generated configs may point `userDataFile` at: plain ones, a folder and a FIFO. */
function prepareConfigDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), "premiscale-fuzz-"));
  for (const [name, content] of Object.entries(USER_DATA_FIXTURES)) writeFileSync(path.join(d, name), content);
  mkdirSync(path.join(d, "folder"));
  execFileSync("mkfifo", [path.join(d, "fifo")]);
  return d;
}

beforeAll(async () => {
  dir = prepareConfigDir();
  file = path.join(dir, "premiscale.yaml");
  worker = startLoaderWorker(file);
  // Starting the worker and compiling the loader are not part of any case's time.
  await worker.run({ id: -1, bytes: Buffer.from("version: v1alpha1\n"), env: {}, checkEnv: false }, 60_000);
}, 90_000);

afterAll(async () => {
  await worker?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Why a result breaks the property, or undefined when it holds. */
function violation(r: LoaderResult | LoaderHang, input: string, limitMs: number): string | undefined {
  if ("hang" in r) return `loadConfig did not finish within ${Math.round(r.ms)} ms (a hang)`;
  if (r.ms > limitMs) return `loadConfig took ${Math.round(r.ms)} ms, over the ${Math.round(limitMs)} ms limit for ${input.length} characters`;
  if (r.outcome === "config") {
    if (r.stage !== "rules") return `loadConfig accepted a file that fails at the ${r.stage} stage`;
    if (r.configFile !== file) return `the Config names ${r.configFile}, not ${file}`;
    if (!r.serialisable) return "the Config cannot be serialised to JSON";
    return undefined;
  }
  if (r.outcome !== "config-error") return `loadConfig threw ${r.name} (not a ConfigError): ${r.message}\n${r.stack}`;
  const issues = r.issues ?? [];
  if (issues.length === 0) return "a ConfigError without issues";
  if (!r.message?.includes(file)) return `the message does not name the file: ${r.message}`;
  if (STACK_FRAME.test(r.message)) return `the message holds a stack trace: ${r.message}`;
  if (r.hint !== undefined && (typeof r.hint !== "string" || r.hint.trim() === "")) return `an empty hint: ${JSON.stringify(r.hint)}`;
  for (const i of issues) {
    if (i.file !== file) return `an issue names ${i.file}, not ${file}`;
    // Once the YAML parsed, every issue points at a place in it.
    if (r.stage !== "yaml" && (i.line < 1 || i.column < 1)) return `an issue without a position although the YAML parsed: ${JSON.stringify(i)}`;
    if (i.line < 0 || i.column < 0 || !Number.isInteger(i.line) || !Number.isInteger(i.column)) return `a bad position: ${JSON.stringify(i)}`;
    if (!i.message.trim()) return `an issue without a message: ${JSON.stringify(i)}`;
    // Values in messages are cut (a 1 MB value once made a 1 MB message): an issue stays readable on a terminal.
    if (i.message.length + (i.fix ?? "").length > 2_000) return `an issue of ${i.message.length + (i.fix ?? "").length} characters: ${JSON.stringify(i).slice(0, 300)}…`;
    // (NaN may be right: under %YAML 1.1 a plain "." is the float NaN.)
    for (const junk of ["[object ", "undefined"]) {
      if ((i.message + (i.fix ?? "")).includes(junk) && !input.includes(junk.trim())) {
        return `an issue mentions ${JSON.stringify(junk)}: ${JSON.stringify(i)}`;
      }
    }
  }
  return undefined;
}

/** Counts per outcome and per kind of mutation, printed after the run (and written into test/README.md). */
class Tally {
  readonly byStage = new Map<string, number>();
  readonly byMutation = new Map<string, number>();
  readonly times: number[] = [];
  longestMessage = 0;

  add(c: FuzzCase, r: LoaderResult): void {
    const key = r.outcome === "config" ? "valid" : `${r.stage} error`;
    this.byStage.set(key, (this.byStage.get(key) ?? 0) + 1);
    const kinds = [...new Set([...c.mutations.map((m) => m.kind), ...c.textMutations.map((m) => `text:${m.kind}`)])];
    for (const k of kinds.length ? kinds : ["none"]) this.byMutation.set(k, (this.byMutation.get(k) ?? 0) + 1);
    this.times.push(r.ms);
    this.longestMessage = Math.max(this.longestMessage, r.message?.length ?? 0);
  }

  summary(): string {
    const sorted = [...this.times].sort((a, b) => a - b);
    const q = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(1);
    const list = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ");
    return [
      `config fuzz: ${this.times.length} cases, seed ${SEED}`,
      `  outcomes: ${list(this.byStage)}`,
      `  mutations (cases using each): ${list(this.byMutation)}`,
      `  process warnings: ${[...workerWarnings].map(([w, n]) => `${n}× ${w}`).join("; ") || "none"}`,
      `  loadConfig time per case: median ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms; longest error message ${this.longestMessage} characters`,
    ].join("\n");
  }
}

describe("loadConfig under structure-aware fuzzing", () => {
  it(`returns a Config or throws a ConfigError naming the file, never another error, never a hang (${RUNS} cases)`, async () => {
    const tally = new Tally();
    let id = 0;
    await fc.assert(
      fc.asyncProperty(fuzzCaseArb, fc.boolean(), async (c, checkEnv) => {
        const bytes = renderCase(c);
        const limitMs = CASE_MS + bytes.length / 1024;
        const r = await worker.run({ id: id++, bytes, env: ENV, checkEnv }, limitMs * 3);
        const problem = violation(r, bytes.toString("utf8"), limitMs);
        if (problem) throw new Error(problem);
        tally.add(c, r as LoaderResult);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    console.log(tally.summary());
    // The generator must reach every stage of the loader, valid files included, or the run proves little.
    if (RUNS >= 2_000) {
      for (const stage of ["valid", "yaml error", "alias error", "schema error", "rules error"]) {
        expect(tally.byStage.get(stage) ?? 0, `${stage} cases`).toBeGreaterThanOrEqual(RUNS / 200);
      }
    }
    // The whole run's bound is not a speed check (each case has its own hang limit above): 10,000 files took
    // 73-106 s when the schema was smaller, and 2.8 min on 2026-12-03 once cohere() knew the kubernetes rules.
  }, 1_800_000);

  it(`exits 0 or 1 without a stack trace when the built CLI validates ${CLI_RUNS} such files`, async () => {
    const cases = fc.sample(fuzzCaseArb, { numRuns: CLI_RUNS, seed: SEED + 1 });
    const codes = new Map<number, number>();
    const queue = cases.map((c, i) => ({ c, name: `case-${String(i).padStart(3, "0")}.yaml` }));
    const failures: string[] = [];
    const runOne = async ({ c, name }: (typeof queue)[number]): Promise<void> => {
      writeFileSync(path.join(dir, name), renderCase(c));
      const r = await premiscale(dir, ["validate", "-c", name], {}, { timeoutMs: 60_000 });
      codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
      if (r.code !== 0 && r.code !== 1) failures.push(`${name}: exit ${r.code}\n${r.stderr}`);
      if (STACK_FRAME.test(r.stderr) || /internal error/.test(r.stderr)) failures.push(`${name}: ${r.stderr}`);
      if (r.code === 1 && !r.stderr.includes(path.join(dir, name))) failures.push(`${name}: the error does not name the file: ${r.stderr}`);
    };
    const workers = Array.from({ length: 3 }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await runOne(next);
    });
    await Promise.all(workers);
    console.log(`config fuzz through the CLI: ${cases.length} files, exit codes ${[...codes].map(([k, n]) => `${k}: ${n}`).join(", ")}`);
    expect(failures).toEqual([]);
    if (CLI_RUNS >= 50) expect([...codes.keys()].sort()).toEqual([0, 1]);
  }, 600_000);
});
