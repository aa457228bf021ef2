import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runHook, type HookContext } from "../applier/lifecycle.js";
import { commandHook, type CommandHookConfig } from "./command-hook.js";

// Real programs in a real directory, run by the real runner. Waiting for a program to get somewhere polls a file it
// writes, with a deadline (these are processes of their own; there is no event to wait on).

const target = { address: "web[web-1a2b3c4d]", group: "web", name: "web-1a2b3c4d", uuid: "0f9e8d7c-aaaa-4bbb-8ccc-123456789abc", host: "kvm1", addressV4: "10.0.0.51" };
const NOW = new Date("2026-12-03T10:00:00.000Z");
let dir: string;

async function script(name: string, body: string): Promise<string> {
  const file = join(dir, "hooks", name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return `./hooks/${name}`;
}

function hookOf(command: string[], o: Partial<CommandHookConfig> = {}) {
  const config = { name: "lb", on: "launching", command, timeoutSeconds: 5, defaultResult: "abandon", ...o } as CommandHookConfig;
  return commandHook(config, { dir, env: { PATH: process.env.PATH, HOME: "/nonexistent" }, now: () => NOW });
}

function context(over: Partial<HookContext> = {}): HookContext {
  return { point: "until-ready", vm: target, signal: new AbortController().signal, heartbeat: () => undefined, ...over };
}

/** Alive, and not a zombie waiting to be reaped. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

async function until<T>(what: string, get: () => Promise<T | null>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** The pids a hook script wrote to `file` (itself and a child it started), once both are there. */
const pidsIn = (file: string) => until(`pids in ${file}`, async () => {
  const pids = (await readFile(file, "utf8").catch(() => "")).split(/\s+/).filter(Boolean).map(Number);
  return pids.length >= 2 ? pids : null;
});

/** Whether a guard process watches the process group `pgid` (see command-hook.ts). */
async function guardOf(pgid: number): Promise<boolean> {
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (argv.includes("premiscale-hook-guard") && argv.includes(String(pgid))) return true;
  }
  return false;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "premiscale-command-hook-"));
  await mkdir(join(dir, "hooks"));
});

afterEach(() => {
  vi.useRealTimers();
});

describe("commandHook", () => {
  it("runs argv in the config's directory with the event as JSON on stdin and as PREMISCALE_HOOK_* variables; exit 0 continues", async () => {
    const prog = await script("record.sh", 'pwd > out.txt; printf "%s\\n" "$@" >> out.txt; cat >> out.txt; env | grep ^PREMISCALE_HOOK_ | sort >> out.txt');
    const h = hookOf([prog, "two words", "$HOME;*"]);
    expect(h).toMatchObject({ name: "lb", point: "until-ready", defaultResult: "abandon" });
    expect(h.timeoutMs({ point: "until-ready", vm: target })).toBe(5000);
    expect(await h.run(context())).toEqual({ result: "continue" });
    const [cwd, a1, a2, json, ...env] = (await readFile(join(dir, "out.txt"), "utf8")).trimEnd().split("\n");
    expect(cwd).toBe(dir);
    expect([a1, a2]).toEqual(["two words", "$HOME;*"]); // no shell between the config and the program
    expect(JSON.parse(json!)).toEqual({
      version: 1,
      event: "launching",
      hook: "lb",
      group: "web",
      instance: { name: "web-1a2b3c4d", uuid: target.uuid, host: "kvm1", address: "10.0.0.51" },
      timeoutSeconds: 5,
      defaultResult: "abandon",
      time: "2026-12-03T10:00:00.000Z",
    });
    expect(env).toEqual([
      "PREMISCALE_HOOK_ADDRESS=10.0.0.51",
      "PREMISCALE_HOOK_DEFAULT_RESULT=abandon",
      "PREMISCALE_HOOK_EVENT=launching",
      "PREMISCALE_HOOK_GROUP=web",
      "PREMISCALE_HOOK_HOST=kvm1",
      `PREMISCALE_HOOK_INSTANCE_NAME=web-1a2b3c4d`,
      `PREMISCALE_HOOK_INSTANCE_UUID=${target.uuid}`,
      "PREMISCALE_HOOK_NAME=lb",
      "PREMISCALE_HOOK_TIMEOUT_SECONDS=5",
    ]);
  });

  it("runs terminating hooks before destroy and leaves PREMISCALE_HOOK_ADDRESS out for a DHCP VM", async () => {
    const prog = await script("env.sh", "env | grep ^PREMISCALE_HOOK_ > env.txt");
    const h = hookOf([prog], { on: "terminating", defaultResult: "continue" });
    expect(h.point).toBe("before-destroy");
    const { addressV4: _, ...dhcp } = target;
    expect(await h.run(context({ point: "before-destroy", vm: dhcp }))).toEqual({ result: "continue" });
    const env = await readFile(join(dir, "env.txt"), "utf8");
    expect(env).toContain("PREMISCALE_HOOK_EVENT=terminating\n");
    expect(env).not.toContain("PREMISCALE_HOOK_ADDRESS");
  });

  it("abandons on any other exit, with stderr's last lines as the reason", async () => {
    const prog = await script("fail.sh", 'for i in 1 2 3 4 5 6 7; do echo "line $i" >&2; done; echo >&2; exit 3');
    expect(await hookOf([prog]).run(context())).toEqual({
      result: "abandon",
      message: "hook lb (launching): ./hooks/fail.sh exited with code 3: line 3 / line 4 / line 5 / line 6 / line 7",
    });
    const killed = await script("killed.sh", 'echo "about to die" >&2; kill -TERM $$');
    expect(await hookOf([killed]).run(context())).toEqual({ result: "abandon", message: "hook lb (launching): ./hooks/killed.sh was killed by SIGTERM: about to die" });
  });

  it("abandons with a clear reason when the program is gone by the time it runs", async () => {
    expect(await hookOf(["./hooks/never-written.sh"]).run(context())).toEqual({
      result: "abandon",
      message: `hook lb (launching): hook program ${join(dir, "hooks", "never-written.sh")} does not exist (check the path; a relative path is relative to the config file's directory, ${dir})`,
    });
  });

  it("calls heartbeat for each `heartbeat` line on stdout and ignores other output", async () => {
    const prog = await script("beats.sh", "echo starting; echo heartbeat; echo '  heartbeat  '; echo heartbeats; echo heartbeat; cat >/dev/null");
    let beats = 0;
    expect(await hookOf([prog]).run(context({ heartbeat: () => beats++ }))).toEqual({ result: "continue" });
    expect(beats).toBe(3);
  });

  it("kills the hook's whole process group when apply stops waiting, and says so", async () => {
    const pids = join(dir, "abort.pids");
    const prog = await script("block.sh", `sleep 300 & echo $$ $! > ${pids}; wait`);
    const stop = new AbortController();
    const running = hookOf([prog]).run(context({ signal: stop.signal }));
    const [leader, child] = await pidsIn(pids);
    expect(await alive(leader!)).toBe(true);
    stop.abort(new Error("apply was interrupted"));
    expect(await running).toEqual({ result: "abandon", message: "hook lb (launching): stopped (apply was interrupted); its process group was killed" });
    expect(await alive(leader!)).toBe(false);
    await until("the background sleep to die", async () => ((await alive(child!)) ? null : true));
  });

  it("on its timeout, runHook takes the default result and the process group is killed", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const pids = join(dir, "timeout.pids");
    const prog = await script("silent.sh", `sleep 300 & echo $$ $! > ${pids}; wait`);
    const running = runHook(hookOf([prog], { defaultResult: "continue" }), { point: "until-ready", vm: target });
    const [leader, child] = await pidsIn(pids);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await running).toMatchObject({ hook: "lb", result: "continue", timedOut: true });
    await until("the hook's processes to die", async () => ((await alive(leader!)) || (await alive(child!)) ? null : true));
  });

  it("keeps a hook that sends heartbeats alive past its timeout", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const beat = join(dir, "beat.fifo");
    await new Promise<void>((res, rej) => spawn("mkfifo", [beat]).once("exit", (c) => (c === 0 ? res() : rej(new Error("mkfifo")))));
    // Each line written to the fifo makes the hook print a heartbeat; the end of the fifo ends it.
    const prog = await script("beat.sh", `exec 3< ${beat}; while read -r l <&3; do echo heartbeat; done`);
    const inner = hookOf([prog]);
    let beats = 0;
    const counted = { ...inner, run: (ctx: HookContext) => inner.run({ ...ctx, heartbeat: () => (beats++, ctx.heartbeat()) }) };
    const running = runHook(counted, { point: "until-ready", vm: target });
    const feed = await open(beat, "w");
    for (let i = 1; i <= 4; i++) {
      await feed.write("go\n");
      await until(`heartbeat ${i}`, async () => (beats >= i ? true : null));
      await vi.advanceTimersByTimeAsync(4000); // 16 s in all, against a 5 s timeout
    }
    await feed.close();
    expect(await running).toMatchObject({ result: "continue", timedOut: false });
    expect(beats).toBe(4);
  });

  it("kills the hook's process group when the process that ran it dies (kill -9)", async () => {
    const pids = join(dir, "orphan.pids");
    const prog = await script("orphan.sh", `sleep 300 & echo $$ $! > ${pids}; wait`);
    // A process of its own runs the hook, then is killed with SIGKILL: it gets no chance to clean up.
    const runner = join(dir, "runner.mts");
    await writeFile(
      runner,
      `import { commandHook } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, "command-hook.ts")).href)};
const h = commandHook({ name: "lb", on: "launching", command: [${JSON.stringify(prog)}], timeoutSeconds: 300, defaultResult: "abandon" }, { dir: ${JSON.stringify(dir)}, env: process.env });
await h.run({ point: "until-ready", vm: ${JSON.stringify(target)}, signal: new AbortController().signal, heartbeat() {} });
`,
    );
    const tsx = createRequire(import.meta.url).resolve("tsx/esm");
    const apply = spawn(process.execPath, ["--import", pathToFileURL(tsx).href, runner], { stdio: "ignore" });
    const [leader, child] = await pidsIn(pids);
    expect(await alive(leader!)).toBe(true);
    await until("the hook's guard", async () => ((await guardOf(leader!)) ? true : null));
    apply.kill("SIGKILL");
    await until("the orphaned hook to be killed", async () => ((await alive(leader!)) || (await alive(child!)) ? null : true));
  });
});
