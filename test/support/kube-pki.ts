import { execFile } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** A certificate and its private key, as files and as PEM text. */
export interface KeyPair {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

/** A client certificate to issue: its user name (CN) and groups (O). */
export interface ClientSpec {
  /** File name stem, e.g. "admin" → admin.crt, admin.key. */
  name: string;
  user: string;
  groups?: string[];
}

/** The throwaway PKI of one test cluster (see makeKubePki). */
export interface KubePki {
  ca: KeyPair;
  /** "sha256:<hex>" of the CA certificate's DER SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-hash. */
  caCertHash: string;
  /** kube-apiserver's serving certificate. */
  apiserver: KeyPair;
  /** The service-account token signing key (private) and its public half. */
  serviceAccountKeyPath: string;
  serviceAccountPubPath: string;
  clients: Record<string, KeyPair>;
}

// One config for every certificate: openssl's own default config would add its v3_ca extensions to the CA and
// refuse our -addext duplicates, so nothing of it is used.
const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((res, rej) => {
    execFile("openssl", args, { cwd, timeout: 30_000 }, (err, _out, stderr) => {
      if (err) rej(new Error(`openssl ${args[0]} failed in ${cwd}: ${stderr.trim() || err.message} (is Debian's openssl installed?)`));
      else res();
    });
  });
}

const KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function keyPair(dir: string, name: string): Promise<KeyPair> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { certPath, keyPath, certPem: await readFile(certPath, "utf8"), keyPem: await readFile(keyPath, "utf8") };
}

// "/O=a/O=b/CN=c", escaping what openssl's -subj treats specially.
function subject(cn: string, groups: string[] = []): string {
  const esc = (s: string) => s.replace(/[\\/+,=]/g, (c) => `\\${c}`);
  return [...groups.map((g) => `/O=${esc(g)}`), `/CN=${esc(cn)}`].join("");
}

async function issue(dir: string, name: string, subj: string, ext: "server_ext" | "client_ext"): Promise<KeyPair> {
  await openssl(["req", "-new", "-config", "openssl.cnf", ...KEY_ARGS, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj], dir);
  await openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", `0x${randomBytes(12).toString("hex")}`, "-days", "2", "-extfile", "openssl.cnf", "-extensions", ext, "-out", `${name}.crt`],
    dir,
  );
  return keyPair(dir, name);
}

/** "sha256:<hex>" of a certificate's DER SubjectPublicKeyInfo (kubeadm's CA pin). */
export function caCertHashOf(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/**
 * Makes a new PKI in `dir` with the openssl CLI: a cluster CA valid two days, kube-apiserver's serving certificate
 * (127.0.0.1, localhost, kubernetes.default…), one client certificate per `clients` entry, and an EC service-account
 * key pair (node:crypto). Nothing is reused between clusters.
 */
export async function makeKubePki(dir: string, clients: ClientSpec[]): Promise<KubePki> {
  await writeFile(join(dir, "openssl.cnf"), OPENSSL_CNF);
  await openssl(["req", "-x509", "-config", "openssl.cnf", "-extensions", "ca_ext", ...KEY_ARGS, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=premiscale-test-ca"], dir);
  const ca = await keyPair(dir, "ca");
  const [apiserver, ...issued] = await Promise.all([
    issue(dir, "apiserver", "/CN=kube-apiserver", "server_ext"),
    ...clients.map((c) => issue(dir, c.name, subject(c.user, c.groups), "client_ext")),
  ]);
  const sa = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const serviceAccountKeyPath = join(dir, "sa.key");
  const serviceAccountPubPath = join(dir, "sa.pub");
  await writeFile(serviceAccountKeyPath, sa.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  await writeFile(serviceAccountPubPath, sa.publicKey.export({ type: "spki", format: "pem" }));
  return {
    ca,
    caCertHash: caCertHashOf(ca.certPem),
    apiserver: apiserver!,
    serviceAccountKeyPath,
    serviceAccountPubPath,
    clients: Object.fromEntries(clients.map((c, i) => [c.name, issued[i]!])),
  };
}
