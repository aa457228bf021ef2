// Native mode's scale-up simulation at size: 5,000 pending pods across 100 node groups (templates of 2 to 32 vCPUs,
// a quarter of them labelled and tainted for the pods that ask), through computeScaleUp (per group first-fit
// decreasing within max, the least-waste expander, again with the pods left until none fits). Throughput in pods per
// second, against a naive implementation of the same decision measured in the same run (each pod re-checked against
// every node of every group from the start, every group re-packed after each choice) and against Karpenter's
// scheduling benchmark floor of 100 pods/s, a stated reference (its CI fails below it).
import { packPods } from "../kubernetes/native/bin-pack.js";
import type { SimPod } from "../kubernetes/native/cluster-model.js";
import { expand } from "../kubernetes/native/expander.js";
import { groupTemplate, type GroupTemplate } from "../kubernetes/native/group-template.js";
import { fits } from "../kubernetes/native/predicates.js";
import { computeScaleUp, type ScaleUpGroup } from "../kubernetes/native/scale-up.js";
import { testGroup, testPod } from "../kubernetes/native/testing.js";
import { mulberry32 } from "../planner/random.js";
import { median, ms } from "./common.js";

const PODS = Number(process.env.BENCH_PODS ?? 5000);
const GROUPS = Number(process.env.BENCH_GROUPS ?? 100);
const MAX = Number(process.env.BENCH_GROUP_MAX ?? 20);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const KARPENTER_FLOOR = 100;

const rnd = mulberry32(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

const groups: ScaleUpGroup[] = Array.from({ length: GROUPS }, (_, i) => {
  const vcpus = pick([2, 4, 8, 16, 32]);
  const special = i % 4 === 3;
  const g = testGroup(`g${String(i).padStart(3, "0")}`, {
    vcpus,
    memoryMiB: vcpus * pick([2048, 4096, 8192]),
    max: MAX,
    maxPods: pick([30, 110]),
    ...(special ? { labels: { pool: `p${i % 8}` }, taints: [{ key: "dedicated", value: `p${i % 8}`, effect: "NoSchedule" as const }] } : {}),
  });
  return { template: groupTemplate(g, []), current: 0, max: MAX, upcoming: 0 };
});
const SHAPES = [
  [100, 128],
  [250, 256],
  [500, 512],
  [1000, 1024],
  [2000, 4096],
  [4000, 8192],
] as const;
const pods: SimPod[] = Array.from({ length: PODS }, (_, i) => {
  const [cpu, mem] = pick(SHAPES);
  const pool = i % 5 === 0 ? `p${Math.floor(rnd() * 8)}` : undefined;
  return testPod(`pod-${i}`, cpu, mem, {
    unschedulable: { message: "0/10 nodes are available: 10 Insufficient cpu." },
    ...(pool ? { nodeSelector: { pool }, tolerations: [{ key: "dedicated", operator: "Equal", value: pool, effect: "NoSchedule" }] } : {}),
  });
});

/** The same decision, naively: no shape cache, no runs of identical pods, every group re-packed after each choice. */
function naivePack(ps: readonly SimPod[], t: GroupTemplate, limit: number) {
  const order = [...ps].sort((a, b) => Math.max(b.requests.cpuMillis / t.free.cpuMillis, b.requests.memoryBytes / t.free.memoryBytes) - Math.max(a.requests.cpuMillis / t.free.cpuMillis, a.requests.memoryBytes / t.free.memoryBytes));
  const nodes: { cpuMillis: number; memoryBytes: number; pods: number }[] = [];
  const placed: SimPod[] = [];
  for (const p of order) {
    let done = false;
    for (const free of nodes) {
      if (fits(p, t, free) === null) {
        free.cpuMillis -= p.requests.cpuMillis;
        free.memoryBytes -= p.requests.memoryBytes;
        free.pods -= 1;
        done = true;
        break;
      }
    }
    if (!done && nodes.length < limit && fits(p, t, t.free) === null) {
      nodes.push({ cpuMillis: t.free.cpuMillis - p.requests.cpuMillis, memoryBytes: t.free.memoryBytes - p.requests.memoryBytes, pods: t.free.pods - 1 });
      done = true;
    }
    if (done) placed.push(p);
  }
  const total = nodes.length * t.allocatable.cpuMillis;
  const used = placed.reduce((s, p) => s + p.requests.cpuMillis, 0);
  return { newNodes: nodes.length, placed, waste: { cpu: total ? 1 - used / total : 0, memory: 0 } };
}

function naiveScaleUp(): number {
  let remaining = [...pods];
  const added = new Map<string, number>();
  let nodes = 0;
  for (;;) {
    const options = groups.flatMap((g) => {
      const room = g.max - (added.get(g.template.group) ?? 0);
      if (room <= 0) return [];
      const r = naivePack(remaining, g.template, room);
      return r.placed.length > 0 ? [{ group: g.template.group, newNodes: r.newNodes, pods: r.placed, podCount: r.placed.length, waste: r.waste }] : [];
    });
    if (options.length === 0) return nodes;
    const { option } = expand(["least-waste"], options);
    added.set(option.group, (added.get(option.group) ?? 0) + option.newNodes);
    nodes += option.newNodes;
    const taken = new Set(option.pods.map((p) => p.uid));
    remaining = remaining.filter((p) => !taken.has(p.uid));
  }
}

function time(fn: () => unknown, runs: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return out;
}

// Warm both up (JIT), then measure.
let result = computeScaleUp({ pending: pods, nodes: [], bound: [], groups, expander: ["least-waste"] });
naiveScaleUp();
const ours = median(time(() => (result = computeScaleUp({ pending: pods, nodes: [], bound: [], groups, expander: ["least-waste"] })), RUNS));
const naive = median(time(() => naiveScaleUp(), Math.max(1, Math.ceil(RUNS / 2))));
const single = median(time(() => packPods(pods, groups[0]!.template, { limit: 1_000_000 }), RUNS));

const added = result.adds.reduce((s, a) => s + a.add, 0);
const placed = result.adds.reduce((s, a) => s + a.pods.length, 0);
const rate = (t: number) => PODS / (t / 1000);
console.log(`${PODS} pending pods, ${GROUPS} groups (max ${MAX} each): +${added} nodes on ${result.adds.length} groups, ${placed} pods placed, ${result.unplaceable.length} unplaceable`);
console.log(`computeScaleUp: ${ms(ours)} = ${Math.round(rate(ours)).toLocaleString("en")} pods/s`);
console.log(`  vs naive re-scan ${ms(naive)} = ${Math.round(rate(naive)).toLocaleString("en")} pods/s: ${(ours / naive).toFixed(3)}× the time`);
console.log(`  vs Karpenter's floor ${KARPENTER_FLOOR} pods/s (stated reference): ${(rate(ours) / KARPENTER_FLOOR).toFixed(0)}× the throughput`);
console.log(`one group, one packing of all ${PODS} pods: ${ms(single)} = ${Math.round(rate(single)).toLocaleString("en")} pods/s`);
