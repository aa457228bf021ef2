// Planning at fleet size: 1,000 groups × 100 instances over 1,000 hosts. Time and peak memory of computePlan,
// against reading (JSON-parsing) the same state, each in a fresh child process so peak RSS is comparable.
import { execa } from "execa";
import { randomUUID } from "node:crypto";
import { serializeGroup } from "../state/git-state-store.js";
import { computePlan } from "../planner/compute-plan.js";
import { decideWith } from "../policies/decision.js";
import { configSource } from "../policies/static.js";
import { makeFleet } from "./fleet.js";
import { ratioLine } from "./common.js";

const GROUPS = Number(process.env.BENCH_GROUPS ?? 1000);
const PER_GROUP = Number(process.env.BENCH_PER_GROUP ?? 100);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const mode = process.argv[2];

if (mode === "parse" || mode === "plan") {
  const fleet = makeFleet(GROUPS, PER_GROUP, HOSTS);
  // The state as the git store keeps it: one text per group.
  const texts = fleet.state.groups.map(serializeGroup);
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const groups = texts.map((t) => JSON.parse(t));
  const parseMs = performance.now() - t0;
  let ms = parseMs;
  let changes = 0;
  if (mode === "plan") {
    const state = { ...fleet.state, groups };
    const t1 = performance.now();
    const plan = computePlan({
      config: fleet.config, configDigest: "d", configCommit: null, state, observations: fleet.observations,
      decide: decideWith([configSource]), now: new Date("2026-11-23T00:00:00Z"), newLineage: "x", newUuid: randomUUID,
    });
    ms = performance.now() - t1;
    changes = plan.changes.length;
    if (plan.errors.length) throw new Error(JSON.stringify(plan.errors.slice(0, 2)));
  }
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ ms, parseMs, maxRssMiB, baseRssMiB: rssBefore / 2 ** 20, changes }));
} else {
  const run = async (m: string) => JSON.parse((await execa("npx", ["tsx", "bench/plan.bench.ts", m], { env: process.env })).stdout.trim().split("\n").pop()!);
  console.log(`# plan: ${GROUPS} groups × ${PER_GROUP} instances over ${HOSTS} hosts (${GROUPS * PER_GROUP} instances)`);
  const parse = await run("parse");
  const plan = await run("plan");
  ratioLine(`computePlan (${plan.changes} changes)`, plan.ms, "parsing the state", parse.ms);
  console.log(
    `peak RSS: planning process ${plan.maxRssMiB.toFixed(0)} MiB vs parse-only process ${parse.maxRssMiB.toFixed(0)} MiB = ${(plan.maxRssMiB / parse.maxRssMiB).toFixed(2)}×` +
      ` (both include building the fleet in memory: ~${parse.baseRssMiB.toFixed(0)} MiB before parsing)`,
  );
}
