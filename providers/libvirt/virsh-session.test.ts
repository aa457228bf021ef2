import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { VirshSession, VirshSessionError, isRemoteUri, quoteArg } from "./virsh-session.js";

const FAKE = resolve(import.meta.dirname, "../../test/support/fake-virsh.mjs");
let session: VirshSession | null = null;
afterEach(async () => {
  await session?.close();
  session = null;
});

function fake(timeoutMs = 2000): VirshSession {
  session = new VirshSession({ uri: "test:///default", timeoutMs, virshPath: FAKE });
  return session;
}

describe("VirshSession", () => {
  it("gives each command of a batch its own output and errors", async () => {
    const s = fake();
    const [a, b, c] = await s.runMany(["list", "fail", "nodeinfo"]);
    expect(a).toMatchObject({ ok: true, stdout: "out:list\n", errors: [] });
    expect(b).toMatchObject({ ok: false, stdout: "", errors: ["failed to get domain 'x'"] });
    expect(c).toMatchObject({ ok: true, stdout: "out:nodeinfo\n" });
  });

  it("after a timeout, resets and answers the next call with its own output, not the old one's", async () => {
    const s = fake(300);
    await expect(s.run("hang")).rejects.toMatchObject({ kind: "timeout" });
    const next = await s.run("list");
    expect(next).toMatchObject({ ok: true, stdout: "out:list\n", errors: [] });
    const after = await s.run("dominfo");
    expect(after).toMatchObject({ ok: true, stdout: "out:dominfo\n", errors: [] });
  });

  it("after a timeout, also kills what virsh started (ssh to a host that stopped answering), not only virsh", async () => {
    const dir = await mkdtemp(join(tmpdir(), "premiscale-virsh-child-"));
    let pid = 0;
    try {
      const s = fake(300);
      await expect(s.run(`hang-with-child ${join(dir, "pid")}`)).rejects.toMatchObject({ kind: "timeout" });
      pid = Number(await readFile(join(dir, "pid"), "utf8"));
      // A killed process stays a zombie until something reaps it (here: init, in its own time): that counts as gone.
      const alive = () => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
          return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(alive()).toBe(false);
    } finally {
      // Without the fix the child outlives the test: do not leave it behind.
      if (pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reports a process that died with its last error, and starts a new one for the next call", async () => {
    const s = fake();
    const died = s.run("die");
    await expect(died).rejects.toBeInstanceOf(VirshSessionError);
    await expect(died).rejects.toThrow(/connection went away/);
    expect(await s.run("list")).toMatchObject({ ok: true, stdout: "out:list\n" });
  });

  it("runs batches one at a time, in order", async () => {
    const s = fake();
    const results = await Promise.all([s.run("a"), s.run("b"), s.run("c")]);
    expect(results.map((r) => r.stdout)).toEqual(["out:a\n", "out:b\n", "out:c\n"]);
  });

  it("refuses a command with a newline, which would break the framing", () => {
    const s = fake();
    expect(() => s.runMany(["list\nstart x"])).toThrow(/one line/);
  });

  it("reports a virsh that cannot be started", async () => {
    session = new VirshSession({ uri: "test:///default", timeoutMs: 1000, virshPath: "/nonexistent/virsh" });
    await expect(session.run("list")).rejects.toMatchObject({ kind: "spawn" });
  });
});

describe("quoteArg and isRemoteUri", () => {
  it("leaves plain arguments alone and quotes the rest", () => {
    expect(quoteArg("web-1a2b.qcow2")).toBe("web-1a2b.qcow2");
    expect(quoteArg('/tmp/a b"c')).toBe('"/tmp/a b\\"c"');
  });

  it("tells remote URIs from local ones", () => {
    expect(isRemoteUri("qemu+ssh://admin@kvm1/system")).toBe(true);
    expect(isRemoteUri("qemu+tls://kvm1/system")).toBe(true);
    expect(isRemoteUri("qemu:///system")).toBe(false);
    expect(isRemoteUri("test:///default")).toBe(false);
  });
});

describe("VirshSession against the real virsh (libvirt's test driver)", () => {
  it("frames long batches correctly: every command gets exactly its own output, batch after batch", async () => {
    // Long lines are where readline's sideways scrolling of the echoed input once cut a batch short.
    session = new VirshSession({ uri: "test:///default", timeoutMs: 60_000 });
    // A batch too long for one line is split, and still answers each command with its own output.
    const many = await session.runMany(Array.from({ length: 12_000 }, (_, i) => `echo "m${i}"`));
    expect(many.map((r) => r.stdout)).toEqual(Array.from({ length: 12_000 }, (_, i) => `m${i}`));
    // Lines of every length around and past the 80 columns readline assumes: one of them ends a scrolled piece
    // exactly at the batch's last marker.
    for (let pad = 0; pad < 120; pad++) {
      const text = `p${"x".repeat(pad)}`;
      const [a, b] = await session.runMany([`echo "${text}"`, `echo "${text}-2"`]);
      expect([a!.stdout, b!.stdout]).toEqual([text, `${text}-2`]);
      expect((await session.run("uri")).stdout.trim()).toBe("test:///default");
    }
  });
});
