import { createHmac } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FakeProvider } from "../providers/fake-provider.js";
import { ConfigRepo } from "./config-repo.js";
import { reconcileOnce, type ReconcileResult } from "./reconcile.js";
import { RemoteLock } from "./remote-lock.js";
import { localSteps } from "./steps.js";
import { makeRemote, pushUserCommit, remoteRef, tempDir, userClone } from "./testing.js";
import { startWatch } from "./watch.js";
import { createWebhookReceiver } from "./webhook.js";

const config = (desired: number) =>
  `version: v1alpha1\nhosts:\n  - name: kvm1\n    uri: test:///default\ngroups:\n  - name: web\n    max: 10\n    desired: ${desired}\n    hosts: [kvm1]\n    readiness: { checkIn: false }\n    template: { memoryMiB: 128, disk: { baseImage: base.qcow2 } }\n`;

describe("watch + webhook + reconcile", () => {
  it("reconciles a pushed commit as soon as the signed webhook arrives, long before the interval; stops cleanly on abort", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(1) });
    const provider = new FakeProvider("kvm1");
    const repo = new ConfigRepo({ source: remote, workDir: join(await tempDir(), "work") });
    const deps = { repo, lock: new RemoteLock({ dir: repo.dir, ttlSeconds: 60 }), steps: localSteps({ makeProvider: () => provider, env: {} }) };
    const ac = new AbortController();
    const results: { trigger: string; result: ReconcileResult }[] = [];
    const waiters: { n: number; resolve: () => void }[] = [];
    /** Resolves once `n` passes are done; fails after `ms` (a deadline, not a pause). */
    const passesDone = (n: number, ms = 10_000) =>
      new Promise<void>((resolve, reject) => {
        if (results.length >= n) return resolve();
        const timer = setTimeout(() => reject(new Error(`${results.length} passes done after ${ms} ms, expected ${n}`)), ms);
        waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
      });
    const watcher = startWatch({
      intervalMs: 600_000,
      signal: ac.signal,
      pass: async (trigger, signal) => {
        const result = await reconcileOnce(deps, { mode: "auto", trigger, signal });
        results.push({ trigger, result });
        for (const w of waiters.filter((w) => results.length >= w.n)) w.resolve();
        return result;
      },
    });
    const hook = createWebhookReceiver({ githubSecret: "hook-secret", debounceMs: 20, branch: "main", onTrigger: () => watcher.trigger("webhook") });
    await hook.listen();
    try {
      await passesDone(1, 20_000);
      expect(results[0]).toMatchObject({ trigger: "start", result: { outcome: "applied" } });

      await pushUserCommit(await userClone(remote), { "premiscale.yaml": config(3) }, "web: 3");
      const body = JSON.stringify({ ref: "refs/heads/main" });
      const sent = Date.now();
      const res = await fetch(hook.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": `sha256=${createHmac("sha256", "hook-secret").update(body).digest("hex")}` },
        body,
      });
      expect(res.status).toBe(202);
      await passesDone(2);
      expect(results[1]).toMatchObject({ trigger: "webhook", result: { outcome: "applied", applied: { added: 2 } } });
      expect(Date.now() - sent).toBeLessThan(5_000);
      expect(provider.domains.size).toBe(3);
    } finally {
      ac.abort();
      await watcher.done;
      await hook.close();
    }
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();
  });
});
