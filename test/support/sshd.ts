import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { freePort } from "./serve.js";

/** One process as /proc shows it. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  argv: string[];
}

/**
 * Every process on this machine (those that exit while being read are skipped). Read synchronously: a freeze must
 * land within a few milliseconds, before the calls it is meant to catch have finished.
 */
export async function processes(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Field 2 (the command name) may hold spaces and parentheses: the fields after it start after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").filter(Boolean);
      out.push({ pid: Number(name), ppid, argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The pids of `root`'s descendants (children, their children, …), not `root` itself. */
export function descendants(all: ProcInfo[], root: number): number[] {
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of all) {
      if (c.ppid === p && !found.includes(c.pid)) {
        found.push(c.pid);
        queue.push(c.pid);
      }
    }
  }
  return found;
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** A real OpenSSH server on 127.0.0.1 in front of this machine's libvirtd: a remote host as libvirt reaches one. */
export interface SshdHost {
  port: number;
  /**
   * `qemu+ssh://root@127.0.0.1:PORT/system?keyfile=…&no_tty=1&command=…`: the local system libvirtd through this sshd.
   * `command` is an `ssh` that checks the host key against this server's own known_hosts file (see `startSshd`).
   */
  uri: string;
  /** The same URI with a client key this server does not accept. */
  strangerUri: string;
  /** The client's private key (its path also tells this host's `ssh` processes from others). */
  keyfile: string;
  /** Stops (SIGSTOP) the listener and every process serving a connection: the host stops answering, TCP stays up. */
  freeze(): Promise<void>;
  /** Resumes (SIGCONT) what `freeze` stopped, and whatever serves a connection now. */
  thaw(): Promise<void>;
  /** The `ssh` client processes of this host still running on this machine (libvirt's, started by virsh). */
  clients(): Promise<number[]>;
  /** Thaws, stops the server and its connections, removes its directory. */
  stop(): Promise<void>;
}

const SSHD = "/usr/sbin/sshd"; // sshd re-executes itself, so it must be started by its absolute path.

/**
 * Starts `sshd -D` on a free loopback port with a config, host key, client key and authorized_keys of its own in a
 * temporary directory (test/remote/setup-remote.sh installs openssh-server; the system's sshd is never used).
 *
 * Host keys are checked for real: libvirt's `ssh` transport has no `known_hosts` parameter (only libssh/libssh2 do)
 * and `no_verify=1` would add this throwaway key to root's ~/.ssh/known_hosts, so the URI's `command` names a
 * two-line `ssh` wrapper that points ssh at this server's own known_hosts file with strict checking.
 */
export async function startSshd(): Promise<SshdHost> {
  // sshd refuses to start without its privilege separation directory (setup-remote.sh makes it; /run is emptied on boot).
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), "premiscale-sshd-"));
  // libvirt reads the URI's query without a shell; keep paths free of anything that would need escaping.
  if (!/^[\w./-]+$/.test(dir)) throw new Error(`unexpected temporary directory name ${dir}`);
  const keygen = (file: string) => execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "premiscale-test", "-f", join(dir, file)]);
  await Promise.all([keygen("host_key"), keygen("client_key"), keygen("stranger_key")]);
  await writeFile(join(dir, "authorized_keys"), await readFile(join(dir, "client_key.pub"), "utf8"), { mode: 0o600 });
  const wrapper = join(dir, "ssh");
  await writeFile(
    wrapper,
    `#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile=${dir}/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "$@"\n`,
  );
  await chmod(wrapper, 0o755);

  let child: ChildProcess | null = null;
  let port = 0;
  let lastError = "";
  // A port free a moment ago may be taken by the time sshd binds it: then (only then) try another.
  for (let attempt = 0; attempt < 5 && !child && (attempt === 0 || /in use/i.test(lastError)); attempt++) {
    port = await freePort();
    const config = join(dir, "sshd_config");
    await writeFile(
      config,
      [
        `ListenAddress 127.0.0.1:${port}`,
        `HostKey ${dir}/host_key`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        "AllowUsers root",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        // The keys live under /tmp, which is world-writable: StrictModes would refuse them.
        "StrictModes no",
        "PidFile none",
        "UseDNS no",
        "PrintMotd no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "MaxStartups 100",
        "LogLevel ERROR",
        "",
      ].join("\n"),
    );
    await rm(join(dir, "sshd.log"), { force: true });
    const c = spawn(SSHD, ["-D", "-f", config, "-E", join(dir, "sshd.log")], { stdio: "ignore" });
    const up = await waitForBanner(c, port);
    if (up) child = c;
    else lastError = await readFile(join(dir, "sshd.log"), "utf8").catch(() => "");
  }
  if (!child) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`sshd did not start (is openssh-server installed? run test/remote/setup-remote.sh): ${lastError}`);
  }
  const hostKey = (await readFile(join(dir, "host_key.pub"), "utf8")).trim().split(" ").slice(0, 2).join(" ");
  await writeFile(join(dir, "known_hosts"), `[127.0.0.1]:${port} ${hostKey}\n`);
  const listener = child;
  const keyfile = join(dir, "client_key");
  const uriWith = (key: string) => `qemu+ssh://root@127.0.0.1:${port}/system?keyfile=${key}&no_tty=1&command=${wrapper}`;
  const tree = async () => [listener.pid!, ...descendants(await processes(), listener.pid!)];

  return {
    port,
    uri: uriWith(keyfile),
    strangerUri: uriWith(join(dir, "stranger_key")),
    keyfile,
    async freeze() {
      // The listener first, so it forks no new connection; then until no process of the tree is left running.
      signal([listener.pid!], "SIGSTOP");
      const stopped = new Set<number>([listener.pid!]);
      for (;;) {
        const fresh = (await tree()).filter((p) => !stopped.has(p));
        if (fresh.length === 0) break;
        signal(fresh, "SIGSTOP");
        for (const p of fresh) stopped.add(p);
      }
    },
    async thaw() {
      signal(await tree(), "SIGCONT");
    },
    async clients() {
      return (await processes()).filter((p) => p.argv[0]?.endsWith("ssh") && p.argv.includes(keyfile)).map((p) => p.pid);
    },
    async stop() {
      const pids = await tree();
      signal(pids, "SIGCONT");
      const exited = new Promise<void>((res) => (listener.exitCode !== null || listener.signalCode !== null ? res() : listener.once("exit", () => res())));
      signal(pids, "SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** True once the server on `port` sends its SSH banner; false when the process exits first or 10 s pass. */
async function waitForBanner(child: ChildProcess, port: number): Promise<boolean> {
  let exited = false;
  child.once("exit", () => (exited = true));
  child.once("error", () => (exited = true)); // could not be started at all (not installed)
  const deadline = Date.now() + 10_000;
  while (!exited && Date.now() < deadline) {
    const banner = await new Promise<boolean>((res) => {
      const s = connect(port, "127.0.0.1");
      const done = (ok: boolean) => {
        s.destroy();
        res(ok);
      };
      s.setTimeout(1000, () => done(false));
      s.once("data", (d) => done(d.toString("latin1").startsWith("SSH-2.0-")));
      s.once("error", () => done(false));
    });
    if (banner) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!exited) child.kill("SIGKILL");
  return false;
}
