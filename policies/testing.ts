/**
 * Builders for policy tests: members, metric traces, decide inputs and a small simulator that applies each decision.
 * Pure like the rest of policies/ (the PRNG is seeded).
 */
import type { MetricName, ScalingSpec } from "../config/scaling.js";
import type { GroupMetrics, Sample } from "../metrics/types.js";
import type { History } from "../state/types.js";
import type { Member } from "./aggregate.js";
import { decideGroup, type DecideInput } from "./decide-group.js";
import type { Decision } from "./decision.js";
import { emptyHistory, recordDecision } from "./history.js";

/** The clock of the tests: a Monday, 12:00 UTC. */
export const TEST_NOW = new Date("2025-06-02T12:00:00Z");

/** `seconds` before `now` (default TEST_NOW), as ISO 8601. */
export function ago(seconds: number, now: Date = TEST_NOW): string {
  return new Date(now.getTime() - seconds * 1000).toISOString();
}

/** `count` ready members `web-1…`, created a day before `now` unless `createdAt` says otherwise. */
export function makeMembers(count: number, over: Partial<Member> = {}, now: Date = TEST_NOW): Member[] {
  return Array.from({ length: count }, (_, i) => ({ name: `web-${i + 1}`, createdAt: ago(86_400, now), ready: true, ...over }));
}

/** A sample every `intervalSeconds` over the last `windowSeconds` (ending at `now`), valued by `value(at)`. */
export function trace(value: number | ((at: number) => number), now: Date = TEST_NOW, windowSeconds = 600, intervalSeconds = 15): Sample[] {
  const f = typeof value === "number" ? () => value : value;
  const n = Math.floor(windowSeconds / intervalSeconds);
  return Array.from({ length: n }, (_, i) => {
    const at = now.getTime() - (n - 1 - i) * intervalSeconds * 1000;
    return { at, value: f(at) };
  });
}

/** Metrics where every member has a steady value per metric (`values[i]` for member i, or one value for all). */
export function steadyMetrics(members: Member[], metric: MetricName, values: number | number[], now: Date = TEST_NOW): GroupMetrics {
  return {
    members: Object.fromEntries(members.map((m, i) => [m.name, { [metric]: trace(typeof values === "number" ? values : (values[i] ?? 0), now) }])),
  };
}

/** A decide input for group `web` (min 1, max 10, three ready members) with the given overrides. */
export function makeInput(over: Partial<Omit<DecideInput, "group">> & { group?: Partial<DecideInput["group"]> } = {}): DecideInput {
  const members = over.group?.members ?? makeMembers(over.group?.current ?? 3);
  return {
    scaling: {},
    metrics: { members: {} },
    history: emptyHistory(),
    now: TEST_NOW,
    ...over,
    group: { name: "web", min: 1, max: 10, current: members.length, members, ...over.group },
  };
}

/** What `simulate` returns: the size after every step and every decision. */
export interface Simulation {
  sizes: number[];
  decisions: Decision[];
  history: History;
}

/**
 * Runs the engine every `intervalSeconds` for `steps` steps and applies each decision at once: new members are
 * created ready at that moment, scale-in removes the newest. `value(step, member)` gives each member's sample.
 */
export function simulate(opts: {
  scaling: ScalingSpec;
  metric: MetricName;
  min: number;
  max: number;
  start: number;
  steps: number;
  value: (step: number, member: number) => number;
  intervalSeconds?: number;
}): Simulation {
  const interval = (opts.intervalSeconds ?? 15) * 1000;
  let members: Member[] = makeMembers(opts.start);
  let history = emptyHistory();
  let nextId = opts.start + 1;
  const samples = new Map<string, Sample[]>();
  const out: Simulation = { sizes: [], decisions: [], history };
  for (let step = 0; step < opts.steps; step++) {
    const now = new Date(TEST_NOW.getTime() + step * interval);
    members.forEach((m, i) => {
      const list = [...(samples.get(m.name) ?? []), { at: now.getTime(), value: opts.value(step, i) }];
      samples.set(m.name, list.filter((s) => s.at > now.getTime() - 3600_000));
    });
    const metrics: GroupMetrics = { members: Object.fromEntries(members.map((m) => [m.name, { [opts.metric]: samples.get(m.name) ?? [] }])) };
    const group = { name: "web", min: opts.min, max: opts.max, current: members.length, members };
    const d = decideGroup({ group, scaling: opts.scaling, metrics, history, now });
    history = recordDecision(history, d, now);
    while (members.length < d.desired) members = [...members, { name: `web-${nextId++}`, createdAt: now.toISOString(), ready: true }];
    if (members.length > d.desired) members = members.slice(0, d.desired);
    out.sizes.push(d.desired);
    out.decisions.push(d);
  }
  out.history = history;
  return out;
}
