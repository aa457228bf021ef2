// A state commit after one group changes, in a 100,000-instance state (1,000 groups × 100): premiscale's store
// (one file per group) against the same state kept as one JSON file, changed and committed the same way.
import { mkdtemp, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GitStateStore, serializeGroup } from "../state/git-state-store.js";
import { git } from "../state/git.js";
import { makeFleet } from "./fleet.js";
import { median, ratioLine, timeRuns } from "./common.js";

const GROUPS = Number(process.env.BENCH_GROUPS ?? 1000);
const PER_GROUP = Number(process.env.BENCH_PER_GROUP ?? 100);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const fleet = makeFleet(GROUPS, PER_GROUP, 1000);

async function repo(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-bench-state-"));
  await git(dir, ["init", "--quiet", "--initial-branch=main"]);
  await git(dir, ["config", "user.email", "bench@example.invalid"]);
  await git(dir, ["config", "user.name", "bench"]);
  return dir;
}

// premiscale's layout, written once and committed.
const perGroupDir = await repo();
await mkdir(join(perGroupDir, "groups"));
await writeFile(join(perGroupDir, "state.json"), JSON.stringify({ version: 1, lineage: fleet.state.lineage, serial: 7 }, null, 2) + "\n");
for (const g of fleet.state.groups) await writeFile(join(perGroupDir, "groups", `${g.name}.json`), serializeGroup(g));
await writeFile(join(perGroupDir, ".gitignore"), ".premiscale.lock\n*.tmp\n");
await git(perGroupDir, ["add", "."]);
await git(perGroupDir, ["commit", "--quiet", "-m", "initial"]);

// The baseline: the whole state as one sorted JSON file.
const oneFileDir = await repo();
const whole = { ...fleet.state, groups: fleet.state.groups.map((g) => JSON.parse(serializeGroup(g))) };
await writeFile(join(oneFileDir, "state.json"), JSON.stringify(whole, null, 2) + "\n");
await git(oneFileDir, ["add", "."]);
await git(oneFileDir, ["commit", "--quiet", "-m", "initial"]);

console.log(`# commit after one group changes, ${GROUPS * PER_GROUP} instances in ${GROUPS} groups, median of ${RUNS}`);
let n = 0;
const store = new GitStateStore(perGroupDir);
// Taking the lock reads the whole state (apply needs it anyway); measured apart from the write + commit.
const lockRead = median(await timeRuns(RUNS, async () => (await store.lock("bench", 1000)).release()));
const lock = await store.lock("bench", 1000);
const premiscale = median(
  await timeRuns(RUNS, async () => {
    await lock.putInstance("g1", { name: `g1-new${n++}`, uuid: `u${n}`, host: "kvm1", created: "2026-11-23T00:00:00.000Z", status: "running" });
    await lock.commit("one group changed");
  }),
);
await lock.release();

let m = 0;
const baseline = median(
  await timeRuns(RUNS, async () => {
    const g1 = whole.groups.find((g: { name: string }) => g.name === "g1")!;
    g1.instances.push({ name: `g1-new${m++}`, uuid: `u${m}`, host: "kvm1", created: "2026-11-23T00:00:00.000Z", status: "running" });
    whole.serial++;
    await writeFile(join(oneFileDir, "state.json"), JSON.stringify(whole, null, 2) + "\n");
    await git(oneFileDir, ["add", "state.json"]);
    await git(oneFileDir, ["commit", "--quiet", "-m", "one group changed"]);
  }),
);
ratioLine("premiscale write + commit (one group file + serial, atomic, fsynced)", premiscale, "one-file state (write, add, commit)", baseline);
const oneFileRead = median(
  await timeRuns(RUNS, async () => JSON.parse(await (await import("node:fs/promises")).readFile(join(oneFileDir, "state.json"), "utf8"))),
);
ratioLine("premiscale lock + read whole state (1,000 files)", lockRead, "reading the one-file state", oneFileRead);
const stat = async (dir: string) => (await git(dir, ["show", "--stat", "--format=", "HEAD"])).stdout;
console.log(`premiscale commit: ${(await stat(perGroupDir)).trim().split("\n").pop()}`);
console.log(`one-file commit:   ${(await stat(oneFileDir)).trim().split("\n").pop()}`);
