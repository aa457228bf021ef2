import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A key and certificate in PEM, and the certificate's SHA-256 fingerprint as Node prints it (`AA:BB:…`). */
export interface TestCert {
  key: string;
  cert: string;
  fingerprint256: string;
}

/** Certificates for a test PVE cluster, shaped like PVE's own: a cluster CA that signs one certificate per node. */
export interface TestClusterCerts {
  /** The cluster CA (PVE: /etc/pve/pve-root-ca.pem). */
  caPem: string;
  /** Per node: signed by the CA, names the node, `localhost` and 127.0.0.1 (PVE: /etc/pve/nodes/NODE/pve-ssl.pem). */
  nodes: Record<string, TestCert>;
  /** Signed by the same CA but naming only `elsewhere.invalid`: the chain is good, the hostname is not. */
  wrongName: TestCert;
  /** Self-signed for 127.0.0.1: what an impostor (or a node before it joined the cluster) would present. */
  impostor: TestCert;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function finish(dir: string, name: string): TestCert {
  const cert = readFileSync(join(dir, `${name}.crt`), "utf8");
  return { key: readFileSync(join(dir, `${name}.key`), "utf8"), cert, fingerprint256: new X509Certificate(cert).fingerprint256 };
}

function signed(dir: string, name: string, san: string): TestCert {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=${name}`, "-out", `${name}.csr`]);
  writeFileSync(
    join(dir, `${name}.ext`),
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
    "-days", "30", "-extfile", `${name}.ext`, "-out", `${name}.crt`,
  ]);
  return finish(dir, name);
}

/** Makes a cluster CA and node certificates with the openssl CLI (EC keys: fast), in a temporary folder removed after. */
export function makeClusterCerts(nodes: readonly string[]): TestClusterCerts {
  const dir = mkdtempSync(join(tmpdir(), "premiscale-pve-certs-"));
  try {
    openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(dir, [
      "req", "-x509", "-new", "-key", "ca.key", "-days", "30", "-subj", "/CN=Proxmox Virtual Environment/OU=test/O=PVE Cluster Manager CA",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt",
    ]);
    const out: Record<string, TestCert> = {};
    for (const n of nodes) out[n] = signed(dir, n, `DNS:${n},DNS:localhost,IP:127.0.0.1`);
    const wrongName = signed(dir, "wrongname", "DNS:elsewhere.invalid");
    openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "impostor.key"]);
    openssl(dir, ["req", "-x509", "-new", "-key", "impostor.key", "-days", "30", "-subj", "/CN=impostor", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-out", "impostor.crt"]);
    return { caPem: readFileSync(join(dir, "ca.crt"), "utf8"), nodes: out, wrongName, impostor: finish(dir, "impostor") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
