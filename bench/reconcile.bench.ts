// The reconciler's latency, each against the bare git operations it performs (run the same way, in the same run):
// 1. webhook received → reconcile started (the pass holds the lock and has fetched the new commit: `synced`), against
//    pushing a lock ref and fetching the branch with plain git;
// 2. commit pushed → plan branch pushed (review mode: webhook, lock, fetch, load + validate the config, plan,
//    publish), against the plain git commands of that path (lock push, fetch, ls-remote, building the plan commit
//    with a private index, pushing the branch, deleting the lock).
// Hosts are FakeProviders (no libvirt): the figure is the reconciler and git, not VM creation.
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { WEBHOOK_DEBOUNCE_MS } from "../cli/reconcile.js";
import { FakeProvider } from "../providers/fake-provider.js";
import { ConfigRepo } from "../reconciler/config-repo.js";
import { git } from "../state/git.js";
import { reconcileOnce, type ReconcileEvent, type ReconcileMode } from "../reconciler/reconcile.js";
import { RemoteLock } from "../reconciler/remote-lock.js";
import { localSteps } from "../reconciler/steps.js";
import { makeRemote, pushUserCommit, tempDir, userClone } from "../reconciler/testing.js";
import { startWatch } from "../reconciler/watch.js";
import { createWebhookReceiver } from "../reconciler/webhook.js";
import { median, ms, ratioLine } from "./common.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const SECRET = "bench-secret";

const config = (desired: number) =>
  `version: v1alpha1\nstate:\n  path: ./state\nhosts:\n  - name: kvm1\n    uri: test:///default\ngroups:\n  - name: web\n    max: 1000\n    desired: ${desired}\n    hosts: [kvm1]\n    readiness: { checkIn: false }\n    template: { memoryMiB: 128, disk: { baseImage: base.qcow2 } }\n`;

/** A reconciler in watch mode behind a webhook receiver, as `reconcile --watch` runs it; `next(type)` waits for an event. */
async function harness(mode: ReconcileMode) {
  const remote = await makeRemote({ "premiscale.yaml": config(1) });
  const provider = new FakeProvider("kvm1");
  provider.delayMs = 0;
  const repo = new ConfigRepo({ source: remote, workDir: join(await tempDir(), "work") });
  const steps = localSteps({ makeProvider: () => provider, env: {} });
  const deps = { repo, lock: new RemoteLock({ dir: repo.dir, ttlSeconds: 60 }), steps };
  const waiters: { type: ReconcileEvent["type"]; resolve: (at: number) => void }[] = [];
  const onEvent = (e: ReconcileEvent) => {
    const at = performance.now();
    for (const w of waiters.filter((x) => x.type === e.type)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(at);
    }
  };
  const next = (type: ReconcileEvent["type"]) => new Promise<number>((resolve) => waiters.push({ type, resolve }));
  const stop = new AbortController();
  const firstDone = next("pass_done");
  const watcher = startWatch({ intervalMs: 3_600_000, signal: stop.signal, pass: (trigger, signal) => reconcileOnce(deps, { mode, trigger, signal, onEvent }) });
  const hook = createWebhookReceiver({ githubSecret: SECRET, debounceMs: WEBHOOK_DEBOUNCE_MS, branch: "main", onTrigger: () => watcher.trigger("webhook") });
  await hook.listen();
  await firstDone;
  const body = JSON.stringify({ ref: "refs/heads/main" });
  const post = () =>
    fetch(hook.url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}` },
      body,
    });
  const close = async () => {
    stop.abort();
    await watcher.done;
    await hook.close();
    await steps.close();
  };
  return { remote, next, post, close };
}

async function bareLockAndFetch(dir: string): Promise<void> {
  const tree = (await git(dir, ["mktree"], { input: "" })).stdout.trim();
  const sha = (await git(dir, ["commit-tree", tree, "-m", "lock"])).stdout.trim();
  await git(dir, ["push", "--porcelain", "--atomic", "--force-with-lease=refs/premiscale/lock:", "origin", `${sha}:refs/premiscale/lock`]);
  await git(dir, ["fetch", "--no-tags", "--quiet", "origin", "+refs/heads/main:refs/remotes/origin/main"]);
}

async function bareUnlock(dir: string): Promise<void> {
  await git(dir, ["push", "--porcelain", "--atomic", "origin", ":refs/premiscale/lock"]);
}

async function barePublish(dir: string, k: number): Promise<void> {
  await bareLockAndFetch(dir);
  const branch = `refs/heads/bench/plan-${k}-${Date.now()}`;
  await git(dir, ["ls-remote", "--heads", "origin", branch]);
  const index = join(dir, ".git", "bench-index");
  const env = { GIT_INDEX_FILE: index };
  await git(dir, ["read-tree", "refs/remotes/origin/main"], { env });
  for (const [path, text] of [[".premiscale/plan.json", `{"k": ${k}}\n`], [".premiscale/plan.md", `plan ${k}\n`]] as const) {
    const blob = (await git(dir, ["hash-object", "-w", "--stdin"], { input: text })).stdout.trim();
    await git(dir, ["update-index", "--add", "--cacheinfo", `100644,${blob},${path}`], { env });
  }
  const tree = (await git(dir, ["write-tree"], { env })).stdout.trim();
  const commit = (await git(dir, ["commit-tree", tree, "-p", "refs/remotes/origin/main", "-m", "plan"])).stdout.trim();
  await git(dir, ["push", "--porcelain", "--atomic", `--force-with-lease=${branch}:`, "origin", `${commit}:${branch}`]);
  await bareUnlock(dir);
}

console.log(`# reconcile latency, median of ${RUNS}; webhook debounce ${WEBHOOK_DEBOUNCE_MS} ms (included)`);

// 1. webhook → pass started (locked and fetched).
{
  const h = await harness("auto");
  const dir = await userClone(h.remote); // performs the same git operations by hand
  const started: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const synced = h.next("synced");
    const done = h.next("pass_done");
    const t = performance.now();
    const res = await h.post();
    if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
    started.push((await synced) - t);
    await done;
  }
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await bareLockAndFetch(dir);
    bare.push(performance.now() - t);
    await bareUnlock(dir);
  }
  await h.close();
  ratioLine("webhook received → reconcile started (lock held, commit fetched)", median(started), "git lock push + fetch", median(bare));
  console.log(`  without the ${WEBHOOK_DEBOUNCE_MS} ms debounce: ${ms(median(started) - WEBHOOK_DEBOUNCE_MS)}`);
}

// 2. commit pushed → plan branch pushed (review mode).
{
  const h = await harness("review");
  const user = await userClone(h.remote);
  const dir = await userClone(h.remote); // performs the same git operations by hand
  const published: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await pushUserCommit(user, { "premiscale.yaml": config(i + 2) }, `web: ${i + 2}`);
    const t = performance.now();
    const plan = h.next("plan_published");
    const done = h.next("pass_done");
    const res = await h.post();
    if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
    published.push((await plan) - t);
    await done;
  }
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await barePublish(dir, i);
    bare.push(performance.now() - t);
  }
  await h.close();
  ratioLine("commit pushed → plan branch pushed (review mode)", median(published), "the same git operations by hand", median(bare));
}
