import { createHmac, timingSafeEqual } from "node:crypto";
import { chmod, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git } from "../state/git.js";
import { GitStateStore } from "../state/git-state-store.js";
import { premiscale, projectDir } from "./support/cli.js";
import { freePort, guestConfigText, installGuest, type GuestConfigOptions, type InstalledGuest } from "./support/guests.js";
import { leftovers, virsh } from "./support/libvirt.js";

// Users' lifecycle hooks end to end: the built `premiscale apply` creates and destroys busybox VMs on the real
// libvirtd, and runs the groups' hooks around them: commands (shell scripts in the project directory that append a
// line per run to hooks.log) and HTTP calls (a server in this process on 127.0.0.1). Each test has its own group
// name (prefix `hk`) and check-in port; at most two VMs run at once.

const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const SECRET = "hook-secret-for-tests";
let busybox: InstalledGuest;
const projects: { dir: string; options: GuestConfigOptions }[] = [];
const timings: string[] = [];

/** A busybox group config with these hooks (YAML list items, as they go under `lifecycleHooks:`). */
function configWithHooks(options: GuestConfigOptions, hooks: string): string {
  const items = hooks.trim().split("\n").map((l) => `      ${l}`).join("\n");
  return guestConfigText(options).replace("    template:\n", `    lifecycleHooks:\n${items}\n    template:\n`);
}

/**
 * One run of a hook script, as `record.sh` logs it: what the environment said, whether the VM had checked in and
 * its domain's state when the hook ran, its arguments and the event it read from stdin.
 */
interface Logged {
  env: { event: string; name: string; group: string; instance: string; uuid: string; host: string; address: string };
  checkedIn: "yes" | "no";
  domstate: string;
  args: string;
  stdin: { version: number; event: string; hook: string; group: string; instance: { name: string; uuid: string; host: string }; timeoutSeconds: number; defaultResult: string; time: string };
}

const RECORD = `#!/bin/sh
# One line per run in hooks.log (a single write, so runs at the same time do not mix).
event="$(cat)"
ci=no; [ -e "state/.premiscale/check-ins/$PREMISCALE_HOOK_INSTANCE_UUID.json" ] && ci=yes
dom="$(virsh -q -c qemu:///system domstate "$PREMISCALE_HOOK_INSTANCE_NAME" 2>/dev/null | head -n 1)"
printf '%s\\n' "{\\"env\\":{\\"event\\":\\"$PREMISCALE_HOOK_EVENT\\",\\"name\\":\\"$PREMISCALE_HOOK_NAME\\",\\"group\\":\\"$PREMISCALE_HOOK_GROUP\\",\\"instance\\":\\"$PREMISCALE_HOOK_INSTANCE_NAME\\",\\"uuid\\":\\"$PREMISCALE_HOOK_INSTANCE_UUID\\",\\"host\\":\\"$PREMISCALE_HOOK_HOST\\",\\"address\\":\\"\${PREMISCALE_HOOK_ADDRESS-none}\\"},\\"checkedIn\\":\\"$ci\\",\\"domstate\\":\\"$dom\\",\\"args\\":\\"$*\\",\\"stdin\\":$event}" >> hooks.log
`;

async function project(options: GuestConfigOptions, hooks: string, scripts: Record<string, string> = {}): Promise<string> {
  const dir = await projectDir(configWithHooks(options, hooks));
  projects.push({ dir, options });
  for (const [name, text] of Object.entries({ "record.sh": RECORD, ...scripts })) {
    await writeFile(join(dir, name), text);
    await chmod(join(dir, name), 0o755);
  }
  return dir;
}

const logged = async (dir: string): Promise<Logged[]> =>
  (await readFile(join(dir, "hooks.log"), "utf8").catch(() => "")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as Logged);

async function instancesOf(dir: string, group: string) {
  const state = await new GitStateStore(join(dir, "state")).read();
  return state?.groups.find((g) => g.name === group)?.instances ?? [];
}

/** Alive, and not a zombie waiting to be reaped. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

/** Polls a condition of a real process or file, with a deadline. */
async function until<T>(what: string, get: () => Promise<T | null | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Host, state and git agree on exactly `desired` running VMs of the group, and nothing else of it is left. */
async function expectConverged(dir: string, group: string, desired: number): Promise<void> {
  const instances = await instancesOf(dir, group);
  expect(instances.map((i) => i.status)).toEqual(Array(desired).fill("running"));
  const domains = (await virsh("list", "--all", "--name")).split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${group}-`));
  expect(domains.sort()).toEqual(instances.map((i) => i.name).sort());
  const volumes = (await virsh("vol-list", "default")).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter((n) => n.startsWith(`${group}-`));
  expect(volumes.sort()).toEqual(instances.flatMap((i) => [`${i.name}-seed.iso`, `${i.name}.qcow2`]).sort());
  const status = await git(join(dir, "state"), ["status", "--porcelain", "-z", "--untracked-files=all"]);
  expect(status.stdout.split("\0").filter(Boolean)).toEqual([]);
  const files = (await readdir(join(dir, "state"), { recursive: true })).map(String);
  expect(files.filter((f) => f.includes(".lock") || f.endsWith(".tmp") || f.includes(".stale"))).toEqual([]);
}

/** A POST the hook server received. */
interface Delivery {
  headers: IncomingMessage["headers"];
  body: string;
  event: Logged["stdin"];
}

/** An HTTP endpoint for hooks on 127.0.0.1 that answers with `answer` and keeps what it got. */
async function hookServer(answer: (d: Delivery, res: ServerResponse) => void): Promise<{ url: string; got: Delivery[]; close(): Promise<void> }> {
  const got: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => (body += d));
    req.on("end", () => {
      const d = { headers: req.headers, body, event: JSON.parse(body) as Logged["stdin"] };
      got.push(d);
      answer(d, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/premiscale-hook`,
    got,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** What a receiver does: the HMAC of the raw body with the shared secret, compared in constant time. */
function signedWith(d: Delivery, secret: string): boolean {
  const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(d.body).digest("hex")}`);
  const given = Buffer.from(String(d.headers["x-premiscale-signature-256"] ?? ""));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await f();
  } finally {
    timings.push(`${label}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

beforeAll(async () => {
  busybox = await installGuest("busybox");
}, 600_000);

afterAll(async () => {
  // Without hooks: an endpoint of a test may be gone, and a terminating hook must not keep a VM of a failed test.
  for (const { dir, options } of projects) {
    await writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...options, desired: 0 }));
    await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "5s"]);
  }
  console.log(`hooks.libvirt timings:\n  ${timings.join("\n  ")}`);
}, 300_000);

describe("users' lifecycle hooks with real VMs (real libvirtd, busybox guests)", () => {
  it(
    "runs a command hook on launching (after the check-in) and on terminating (before the destroy), with the event on stdin and in the environment",
    async () => {
      const group = "hkcmd";
      const options: GuestConfigOptions = { group, desired: 2, max: 2, guest: busybox, port: await freePort(), timeoutSeconds: 90 };
      const hooks = `
- { name: announce, on: launching, command: [./record.sh, up], timeoutSeconds: 60 }
- { name: retire, on: terminating, command: [./record.sh, down], timeoutSeconds: 60, defaultResult: continue }`;
      const dir = await project(options, hooks);

      const up = await timed("scale-out 0 → 2 with a launching command hook", () => premiscale(dir, ["apply", "--auto-approve"]));
      expect(up.stderr + up.stdout).not.toMatch(/Error:/);
      expect(up.code, `apply said:\n${up.stdout}\n${up.stderr}`).toBe(0);
      expect(up.stderr).toMatch(new RegExp(`${group}\\[${group}-[0-9a-f]{8}\\]: running hook announce`));
      const vms = await instancesOf(dir, group);
      expect(vms.map((i) => i.status)).toEqual(["running", "running"]);
      const ups = await logged(dir);
      expect(ups.map((l) => `${l.env.event} ${l.env.instance}`).sort()).toEqual(vms.map((v) => `launching ${v.name}`).sort());
      for (const l of ups) {
        const vm = vms.find((v) => v.name === l.env.instance)!;
        expect(l).toMatchObject({
          env: { event: "launching", name: "announce", group, uuid: vm.uuid, host: "local", address: "none" },
          checkedIn: "yes", // the check-in wait ran first
          domstate: "running",
          args: "up",
          stdin: { version: 1, event: "launching", hook: "announce", group, instance: { name: vm.name, uuid: vm.uuid, host: "local" }, timeoutSeconds: 60, defaultResult: "abandon" },
        });
        expect(Date.parse(l.stdin.time)).toBeGreaterThan(Date.parse(vm.created));
      }

      await writeFile(join(dir, "premiscale.yaml"), configWithHooks({ ...options, desired: 0 }, hooks));
      const down = await timed("scale-in 2 → 0 with a terminating command hook", () => premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "10s"]));
      expect(down.code, `apply said:\n${down.stdout}\n${down.stderr}`).toBe(0);
      const downs = (await logged(dir)).filter((l) => l.env.event === "terminating");
      expect(downs.map((l) => l.env.instance).sort()).toEqual(vms.map((v) => v.name).sort());
      for (const l of downs) {
        // Before the destroy: the VM was still running when its hook ran.
        expect(l).toMatchObject({ env: { name: "retire", group, host: "local" }, domstate: "running", args: "down", stdin: { event: "terminating", hook: "retire", defaultResult: "continue" } });
      }
      expect(await leftovers(`${group}-`)).toEqual([]);
      await expectConverged(dir, group, 0);
    },
    300_000,
  );

  it(
    "signs an HTTP hook's call with the secret; its abandon on launching gives the VM up (destroyed, exit 1, the hook's message reported)",
    async () => {
      const group = "hkhttp";
      const endpoint = await hookServer((d, res) => {
        if (d.event.event === "launching") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ result: "abandon", message: "load balancer pool web is full" }));
        else res.writeHead(204).end();
      });
      try {
        const options: GuestConfigOptions = { group, desired: 1, max: 1, guest: busybox, port: await freePort(), timeoutSeconds: 90 };
        const dir = await project(
          options,
          `
- { name: lb, on: launching, http: { url: "${endpoint.url}", secretEnv: LB_HOOK_SECRET }, timeoutSeconds: 30 }
- { name: lb-out, on: terminating, http: { url: "${endpoint.url}", secretEnv: LB_HOOK_SECRET }, timeoutSeconds: 30, defaultResult: continue }`,
        );
        // validate says which variable apply will need; apply without it stops before it changes anything.
        const validate = await premiscale(dir, ["validate"]);
        expect(validate.code).toBe(0);
        expect(validate.stderr).toContain("apply will need the environment variable LB_HOOK_SECRET (not set here)");
        const unset = await premiscale(dir, ["apply", "--auto-approve"]);
        expect(unset.code, `apply said:\n${unset.stdout}\n${unset.stderr}`).toBe(1);
        expect(unset.stderr).toMatch(/premiscale\.yaml:\d+:\d+: groups\[0\]\.lifecycleHooks\[0\]\.http\.secretEnv: lifecycle hook lb of group hkhttp signs its calls with the secret in LB_HOOK_SECRET, which is not set/);
        expect(endpoint.got).toEqual([]);
        expect(await leftovers(`${group}-`)).toEqual([]);

        const r = await timed("HTTP hook abandons a launching VM", () => premiscale(dir, ["apply", "--auto-approve"], { LB_HOOK_SECRET: SECRET }));
        expect(r.code, `apply said:\n${r.stdout}\n${r.stderr}`).toBe(1);
        expect(r.stderr + r.stdout).toMatch(new RegExp(`${group}\\[${group}-[0-9a-f]{8}\\]: create failed \\(\\d+s\\): hook lb \\(launching\\) answered abandon: load balancer pool web is full`));
        // Told on launching, then on terminating (the VM being given up), both signed with the secret.
        expect(endpoint.got.map((d) => d.event.event)).toEqual(["launching", "terminating"]);
        const [launching, terminating] = endpoint.got;
        for (const d of endpoint.got) {
          expect(signedWith(d, SECRET)).toBe(true);
          expect(signedWith(d, "another secret")).toBe(false);
          expect(d.headers["x-premiscale-event"]).toBe(d.event.event);
          expect(d.headers["content-type"]).toBe("application/json");
        }
        expect(terminating!.event.instance).toEqual(launching!.event.instance);
        expect(launching!.event).toMatchObject({ hook: "lb", group, instance: { name: expect.stringMatching(new RegExp(`^${group}-[0-9a-f]{8}$`)), host: "local" } });
        expect(await leftovers(`${group}-`)).toEqual([]);
        expect(await instancesOf(dir, group)).toEqual([]);
        // Nothing counts as made: the next plan creates the VM again.
        expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(2);
      } finally {
        await endpoint.close();
      }
    },
    300_000,
  );

  it(
    "a launching hook that never answers times out: with defaultResult abandon the VM is destroyed, its process killed and the apply reports it",
    async () => {
      const group = "hkto";
      const options: GuestConfigOptions = { group, desired: 1, max: 1, guest: busybox, port: await freePort(), timeoutSeconds: 90 };
      const dir = await project(
        options,
        `
- { name: stuck, on: launching, command: [./hang.sh], timeoutSeconds: 4, defaultResult: abandon }
- { name: retire, on: terminating, command: [./record.sh], timeoutSeconds: 30 }`,
        { "hang.sh": "#!/bin/sh\necho $$ > hang.pid\nexec sleep 600\n" },
      );
      const r = await timed("launching hook times out (4 s)", () => premiscale(dir, ["apply", "--auto-approve"]));
      expect(r.code, `apply said:\n${r.stdout}\n${r.stderr}`).toBe(1);
      expect(r.stderr + r.stdout).toMatch(new RegExp(`${group}\\[${group}-[0-9a-f]{8}\\]: create failed \\(\\d+s\\): hook stuck did not finish within 4 s \\(no heartbeat either\\): its default result is abandon`));
      const pid = Number(await readFile(join(dir, "hang.pid"), "utf8"));
      expect(await alive(pid)).toBe(false);
      // The terminating hook was told while the VM still ran, then it was destroyed.
      expect((await logged(dir)).map((l) => [l.env.event, l.domstate])).toEqual([["terminating", "running"]]);
      expect(await leftovers(`${group}-`)).toEqual([]);
      expect(await instancesOf(dir, group)).toEqual([]);
    },
    300_000,
  );

  it(
    "after kill -9 of apply while a launching hook runs, the hook dies with it and the next apply removes the half-made VM (running its terminating hook) and converges",
    async () => {
      const group = "hkkill";
      const options: GuestConfigOptions = { group, desired: 1, max: 1, guest: busybox, port: await freePort(), timeoutSeconds: 90 };
      const dir = await project(
        options,
        `
- { name: announce, on: launching, command: [./block.sh], timeoutSeconds: 300 }
- { name: retire, on: terminating, command: [./record.sh], timeoutSeconds: 60 }`,
        // While the file `block` exists, the launching hook logs its run and then blocks until it is killed.
        { "block.sh": "#!/bin/sh\n./record.sh\nif [ -e block ]; then echo $$ > blocked.pid; exec sleep 600; fi\n" },
      );
      await writeFile(join(dir, "block"), "");
      const t0 = Date.now();
      const apply = execa("node", [BIN, "apply", "--auto-approve"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "" });
      const hookPid = await until("the launching hook to block", async () => Number((await readFile(join(dir, "blocked.pid"), "utf8").catch(() => "")) || 0) || null, 150_000);
      apply.kill("SIGKILL");
      expect((await apply).signal).toBe("SIGKILL");
      timings.push(`apply up to the blocked launching hook, then kill -9: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      // No orphan: the hook's guard killed it when apply died.
      await until("the orphaned hook to be killed", async () => !(await alive(hookPid)), 10_000);
      const [half] = await instancesOf(dir, group);
      expect(half).toMatchObject({ status: "creating" });
      expect((await virsh("domstate", half!.name)).trim()).toBe("running");

      await rm(join(dir, "block"));
      const again = await timed("next apply: remove the half-made VM, create and launch its replacement", () => premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "10s"]));
      expect(again.stderr + again.stdout).not.toMatch(/Error:/);
      expect(again.code, `apply said:\n${again.stdout}\n${again.stderr}`).toBe(0);
      expect(again.stdout).toContain(`- ${group}[${half!.name}]`);
      const [vm] = await instancesOf(dir, group);
      expect(vm!.name).not.toBe(half!.name);
      const runs = (await logged(dir)).map((l) => `${l.env.event} ${l.env.instance}`);
      // Launching for the first VM (cut short), terminating for it before it was removed, launching for the new one.
      expect(runs).toEqual(expect.arrayContaining([`launching ${half!.name}`, `terminating ${half!.name}`, `launching ${vm!.name}`]));
      expect(runs).toHaveLength(3);
      expect((await logged(dir)).find((l) => l.env.event === "terminating")?.domstate).toBe("running");
      await expectConverged(dir, group, 1);
      expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);
    },
    300_000,
  );

  it(
    "bad input: validate names a hook command that does not exist; a hook URL that refuses gives the VM up with abandon, keeps it with continue, and says why",
    async () => {
      const group = "hkbad";
      const options: GuestConfigOptions = { group, desired: 1, max: 1, guest: busybox, port: await freePort(), timeoutSeconds: 90 };
      const dir = await project(options, "- { name: lb, on: launching, command: [./hooks/register.sh, --pool, web] }");
      const missing = await premiscale(dir, ["validate"]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`premiscale.yaml:23:46: groups[0].lifecycleHooks[0].command[0]: hook program ${join(dir, "hooks", "register.sh")} does not exist`);
      expect(missing.stderr).toContain(`check the path; a relative path is relative to the config file's directory, ${dir}`);
      expect(missing.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(1);
      expect(await leftovers(`${group}-`)).toEqual([]);

      const refused = `http://127.0.0.1:${await freePort()}/premiscale-hook`;
      const hook = (result: string) => `- { name: lb, on: launching, http: { url: "${refused}", secretEnv: LB_HOOK_SECRET }, timeoutSeconds: 4, defaultResult: ${result} }`;
      await writeFile(join(dir, "premiscale.yaml"), configWithHooks(options, hook("abandon")));
      const given = await timed("refused hook URL, default abandon", () => premiscale(dir, ["apply", "--auto-approve"], { LB_HOOK_SECRET: SECRET }));
      expect(given.code, `apply said:\n${given.stdout}\n${given.stderr}`).toBe(1);
      expect(given.stderr + given.stdout).toMatch(
        new RegExp(`create failed \\(\\d+s\\): hook lb \\(launching\\): POST ${refused} failed \\(cannot connect: ECONNREFUSED\\) when its 4 s ran out; took its default result, abandon`),
      );
      expect(await leftovers(`${group}-`)).toEqual([]);
      expect(await instancesOf(dir, group)).toEqual([]);

      await writeFile(join(dir, "premiscale.yaml"), configWithHooks(options, hook("continue")));
      const kept = await timed("refused hook URL, default continue", () => premiscale(dir, ["apply", "--auto-approve"], { LB_HOOK_SECRET: SECRET }));
      expect(kept.code, `apply said:\n${kept.stdout}\n${kept.stderr}`).toBe(0);
      expect(kept.stderr + kept.stdout).toMatch(new RegExp(`hook lb \\(launching\\): POST ${refused} failed \\(cannot connect: ECONNREFUSED\\) when its 4 s ran out; took its default result, continue`));
      await expectConverged(dir, group, 1);
    },
    300_000,
  );
});
