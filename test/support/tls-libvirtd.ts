import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { freePort } from "./serve.js";

/** The unprivileged user the second libvirtd runs as. */
const DAEMON_USER = { uid: 65534, gid: 65534 }; // nobody:nogroup

/** A second libvirtd with libvirt's TLS listener on 127.0.0.1: a host reached over `qemu+tls://`. */
export interface TlsLibvirtd {
  /** `qemu+tls://127.0.0.1:PORT/session?pkipath=…` with a client certificate its CA signed. */
  uri: string;
  /** The same with a client certificate from another CA, which the daemon must refuse. */
  untrustedUri: string;
  /** Its storage pool ("default", in the fixture's directory) holds this empty base image. */
  baseImage: string;
  /** Runs virsh once against it. */
  virsh(...args: string[]): Promise<string>;
  /** Its domains and volumes whose names start with `prefix`. */
  leftovers(prefix: string): Promise<string[]>;
  /** What the daemon logged (errors only) on stderr. */
  daemonLog(): string;
  /** Destroys whatever domains are left, stops the daemon, removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts a libvirtd of its own, listening with TLS (`--listen`, `listen_tls = 1`, `ca_file`/`cert_file`/`key_file`
 * of throwaway certificates made with GnuTLS's certtool) on a free loopback port; clients authenticate with a client
 * certificate (`?pkipath=`). The machine's libvirtd is shared with every other test and runs without `--listen`;
 * restarting it would cut their connections, and a second privileged daemon would fight it over /run/libvirt and
 * /var/lib/libvirt. So this one runs unprivileged, as `nobody`, with its sockets, config, pool and QEMU logs in the
 * fixture's directory: a session daemon (`/session`, plain QEMU, user-mode networking), reached only over TLS.
 */
export async function startTlsLibvirtd(): Promise<TlsLibvirtd> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-tls-"));
  if (!/^[\w./-]+$/.test(dir)) throw new Error(`unexpected temporary directory name ${dir}`);
  await chmod(dir, 0o755);
  const pki = join(dir, "pki");
  const server = join(pki, "server");
  const client = join(pki, "client");
  const stranger = join(pki, "stranger");
  const home = join(dir, "home");
  const run = join(dir, "run");
  const pool = join(dir, "pool");
  for (const d of [server, client, stranger, home, run, pool, join(home, ".config", "libvirt")]) await mkdir(d, { recursive: true });

  const template = async (name: string, lines: string[]) => {
    const file = join(pki, `${name}.info`);
    await writeFile(file, [...lines, "expiration_days = 2", ""].join("\n"));
    return file;
  };
  const certtool = (args: string[]) => execa("certtool", args, { stderr: "pipe" });
  const key = (file: string) => certtool(["--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--no-text", "--outfile", file]);
  const ca = async (name: string) => {
    await key(join(pki, `${name}key.pem`));
    await certtool([
      "--generate-self-signed", "--load-privkey", join(pki, `${name}key.pem`),
      "--template", await template(name, [`cn = premiscale test ${name}`, "ca", "cert_signing_key"]),
      "--outfile", join(pki, `${name}cert.pem`),
    ]);
  };
  const issue = async (caName: string, keyFile: string, certFile: string, lines: string[], name: string) => {
    await key(keyFile);
    await certtool([
      "--generate-certificate", "--load-privkey", keyFile,
      "--load-ca-certificate", join(pki, `${caName}cert.pem`), "--load-ca-privkey", join(pki, `${caName}key.pem`),
      "--template", await template(name, lines), "--outfile", certFile,
    ]);
  };
  await Promise.all([ca("ca"), ca("otherca")]);
  // libvirt checks the server's certificate against the URI's host (here an IP address) and each side's key usage
  // (RSA keys: libvirt insists on key encipherment, which ECDSA certificates do not carry).
  await issue("ca", join(server, "serverkey.pem"), join(server, "servercert.pem"),
    ["organization = premiscale test", "cn = 127.0.0.1", "ip_address = 127.0.0.1", "tls_www_server", "encryption_key", "signing_key"], "server");
  const clientLines = ["organization = premiscale test", "cn = premiscale-client", "tls_www_client", "encryption_key", "signing_key"];
  await issue("ca", join(client, "clientkey.pem"), join(client, "clientcert.pem"), clientLines, "client");
  // A client whose certificate another CA signed. It trusts both CAs, so its own sanity check of its certificate
  // passes and the server's verifies: only the server can refuse it (GnuTLS offers no certificate from a CA the
  // server does not name, so the daemon sees none: "Failed to verify peer's certificate").
  await issue("otherca", join(stranger, "clientkey.pem"), join(stranger, "clientcert.pem"), clientLines, "stranger");
  const caCert = await readFile(join(pki, "cacert.pem"), "utf8");
  for (const d of [server, client]) await writeFile(join(d, "cacert.pem"), caCert);
  await writeFile(join(stranger, "cacert.pem"), caCert + (await readFile(join(pki, "othercacert.pem"), "utf8")));

  // Without virtlogd: a session daemon would start one of its own that outlives it by two minutes.
  await writeFile(join(home, ".config", "libvirt", "qemu.conf"), 'stdio_handler = "file"\n');
  await execa("chown", ["-R", `${DAEMON_USER.uid}:${DAEMON_USER.gid}`, server, home, run, pool]);
  await chmod(run, 0o700);

  let child: ChildProcess | null = null;
  let port = 0;
  let log = "";
  // A port free a moment ago may be taken by the time libvirtd binds it: then (only then) try another.
  for (let attempt = 0; attempt < 5 && !child && (attempt === 0 || /in use/i.test(log)); attempt++) {
    port = await freePort();
    const conf = join(dir, "libvirtd.conf");
    await writeFile(
      conf,
      [
        "listen_tls = 1",
        "listen_tcp = 0",
        'listen_addr = "127.0.0.1"',
        `tls_port = "${port}"`,
        'auth_tls = "none"',
        `ca_file = "${server}/cacert.pem"`,
        `cert_file = "${server}/servercert.pem"`,
        `key_file = "${server}/serverkey.pem"`,
        'log_outputs = "3:stderr"',
        "",
      ].join("\n"),
    );
    const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: home, XDG_RUNTIME_DIR: run, XDG_CONFIG_HOME: join(home, ".config"), XDG_CACHE_HOME: join(home, ".cache"), LC_ALL: "C" };
    const c = spawn("setpriv", [`--reuid=${DAEMON_USER.uid}`, `--regid=${DAEMON_USER.gid}`, "--clear-groups", "libvirtd", "--listen", "-f", conf], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    log = "";
    c.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
    const uri = `qemu+tls://127.0.0.1:${port}/session?pkipath=${client}`;
    if (await waitForDaemon(c, uri)) child = c;
  }
  if (!child) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`the TLS libvirtd did not start: ${log.split("\n").filter((l) => / error : /.test(l)).slice(-3).join("\n") || log}`);
  }
  const daemon = child;
  const uri = `qemu+tls://127.0.0.1:${port}/session?pkipath=${client}`;
  const virsh = async (...args: string[]) => {
    const r = await execa("virsh", ["-q", "-c", uri, ...args], { reject: false, env: { LC_ALL: "C" } });
    if (r.exitCode !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const baseImage = "premiscale-blank.qcow2";
  await virsh("pool-define-as", "default", "dir", "--target", pool);
  await virsh("pool-start", "default");
  await virsh("vol-create-as", "default", baseImage, "64M", "--format", "qcow2");

  const names = async (...args: string[]) => (await virsh(...args)).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter(Boolean);
  return {
    uri,
    untrustedUri: `qemu+tls://127.0.0.1:${port}/session?pkipath=${stranger}`,
    baseImage,
    virsh,
    daemonLog: () => log,
    async leftovers(prefix) {
      return [...(await names("list", "--all", "--name")), ...(await names("vol-list", "default"))].filter((n) => n.startsWith(prefix));
    },
    async stop() {
      // Its QEMU processes would outlive it.
      for (const name of await names("list", "--all", "--name").catch(() => [])) {
        await virsh("destroy", name).catch(() => undefined);
        await virsh("undefine", name).catch(() => undefined);
      }
      const exited = new Promise<void>((res) => (daemon.exitCode !== null || daemon.signalCode !== null ? res() : daemon.once("exit", () => res())));
      daemon.kill("SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** True once `virsh -c uri uri` answers; false when the daemon exits first or 30 s pass. */
async function waitForDaemon(child: ChildProcess, uri: string): Promise<boolean> {
  let exited = false;
  child.once("exit", () => (exited = true));
  child.once("error", () => (exited = true)); // could not be started at all (not installed)
  const deadline = Date.now() + 30_000;
  while (!exited && Date.now() < deadline) {
    const r = await execa("virsh", ["-q", "-c", uri, "uri"], { reject: false, timeout: 10_000 });
    if (r.exitCode === 0) return true;
    await new Promise((res) => setTimeout(res, 100));
  }
  if (!exited) child.kill("SIGKILL");
  return false;
}
