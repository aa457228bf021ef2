// The proxmox kind's config fragment through the real loader, and the marker and seed it writes (no PVE involved).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, type ConfigIssue } from "../../config/errors.js";
import { loadConfig } from "../../config/load.js";
import { configFragments } from "../index.js";
import { parseApiUrl, proxmoxHost, proxmoxNode, proxmoxTemplate } from "./config.js";
import { instanceFromTags, markerDescription, parseMarker, vmTags } from "./marker.js";
import { renderNetworkConfig, seedFiles } from "./seed.js";

const dir = mkdtempSync(join(tmpdir(), "premiscale-pve-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
writeFileSync(join(dir, "not-a-cert.pem"), "hello\n");

const FP = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

const BASE = `version: v1alpha1
hosts:
  - name: pve1
    kind: proxmox
    api: &lab
      cluster: lab
      endpoints:
        - { node: pve1, url: "https://10.0.0.11:8006" }
        - { node: pve2, url: "https://10.0.0.12", fingerprint: "${FP.replace(/:/g, "").toLowerCase()}" }
      tokenId: premiscale@pve!autoscaler
      tokenSecretEnv: PVE_TOKEN_SECRET
      caFile: ./ca.pem
  - name: web-b
    kind: proxmox
    node: pve2
    api: *lab
    isoStorage: cephfs
    taskTimeoutSeconds: 1800
groups:
  - name: web
    max: 3
    hosts: [pve1, web-b]
    template:
      memoryMiB: 1024
      proxmox:
        template: debian-12-cloud
`;

async function load(text: string) {
  const file = join(dir, `c-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, text);
  return loadConfig(file, {}, { kinds: configFragments });
}

async function issues(text: string): Promise<ConfigIssue[]> {
  try {
    await load(text);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error("the config loaded");
}

describe("the proxmox config fragment", () => {
  it("normalises hosts that share one api block through a YAML alias, with the defaults filled", async () => {
    const c = await load(BASE);
    const [a, b] = c.hosts;
    expect(proxmoxNode(a!)).toBe("pve1");
    expect(proxmoxNode(b!)).toBe("pve2");
    expect(proxmoxHost(a!)).toEqual({
      api: {
        cluster: "lab",
        endpoints: [
          { node: "pve1", url: "https://10.0.0.11:8006", host: "10.0.0.11", port: 8006 },
          { node: "pve2", url: "https://10.0.0.12", host: "10.0.0.12", port: 8006, fingerprint: FP },
        ],
        tokenId: "premiscale@pve!autoscaler",
        tokenSecretEnv: "PVE_TOKEN_SECRET",
        caFile: join(dir, "ca.pem"),
      },
      isoStorage: "local",
      taskTimeoutSeconds: 900,
    });
    expect(proxmoxHost(b!)).toMatchObject({ node: "pve2", isoStorage: "cephfs", taskTimeoutSeconds: 1800 });
    expect(proxmoxHost(a!).api).toEqual(proxmoxHost(b!).api);
    expect(proxmoxTemplate(c.groups[0]!.template)).toEqual({ template: { name: "debian-12-cloud" }, clone: "linked", cloudInit: "seed", sshKeys: [], searchDomains: [] });
  });

  it("refuses bad API settings, each at its line with a fix", async () => {
    const text = BASE.replace('url: "https://10.0.0.11:8006"', 'url: "http://10.0.0.11:8006/api"')
      .replace(`fingerprint: "${FP.replace(/:/g, "").toLowerCase()}"`, 'fingerprint: "AB:CD"')
      .replace("premiscale@pve!autoscaler", "premiscale@pve")
      .replace("caFile: ./ca.pem", "caFile: ./not-a-cert.pem")
      .replace("{ node: pve2,", "{ node: pve1,");
    const found = (await issues(text)).filter((i) => i.path.startsWith("hosts[0]"));
    expect(found.map((i) => `${i.line} ${i.path}: ${i.message}`)).toEqual([
      '8 hosts[0].api.endpoints[0].url: "http://10.0.0.11:8006/api" is not https:// (the PVE API speaks only TLS)',
      "9 hosts[0].api.endpoints[1].node: node pve1 is listed twice (endpoints[0])",
      '9 hosts[0].api.endpoints[1].fingerprint: "AB:CD" is not a SHA-256 fingerprint',
      '10 hosts[0].api.tokenId: "premiscale@pve" is not an API token id (USER@REALM!TOKENID)',
      `12 hosts[0].api.caFile: ${join(dir, "not-a-cert.pem")} is not a PEM certificate`,
    ]);
    expect(found.every((i) => i.fix)).toBe(true);
    const missing = await issues(BASE.replace("caFile: ./ca.pem", "caFile: ./nope.pem"));
    expect(missing[0]).toMatchObject({ path: "hosts[0].api.caFile", message: `${join(dir, "nope.pem")} does not exist` });
    expect(missing[0]!.fix).toMatch(/pve-root-ca\.pem/);
  });

  it("refuses template settings that contradict each other", async () => {
    const text = BASE.replace(
      "        template: debian-12-cloud\n",
      "        template: debian-12-cloud\n        templateTag: web\n        storage: ceph\n        ciUser: debian\n        sshKeys: [\"not a key\"]\n",
    );
    expect((await issues(text)).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "groups[0].template.proxmox.templateTag: template and templateTag are mutually exclusive",
      "groups[0].template.proxmox.storage: storage is only for full clones (a linked clone's disks stay on the template's storage)",
      "groups[0].template.proxmox.ciUser: ciUser is only used with cloudInit: proxmox (with seed, put users and keys in the user-data)",
      "groups[0].template.proxmox.sshKeys: sshKeys is only used with cloudInit: proxmox (with seed, put users and keys in the user-data)",
      "groups[0].template.proxmox.sshKeys[0]: not an OpenSSH public key on one line",
    ]);
    const none = await issues(BASE.replace("        template: debian-12-cloud\n", "        clone: full\n"));
    expect(none.map((i) => `${i.path}: ${i.message} (${i.fix})`)).toEqual([
      "groups[0].template.proxmox: which PVE template to clone is missing (add template: NAME (the PVE template's name) or templateTag: TAG)",
    ]);
  });

  it("requires api on a proxmox host and proxmox in the template of a group on one", async () => {
    const text = BASE.replace("    api: *lab\n", "").replace("      proxmox:\n        template: debian-12-cloud\n", "");
    expect((await issues(text)).map((i) => `${i.path}: ${i.message}`)).toEqual([
      'hosts[1].api: missing required field "api" (proxmox hosts need it)',
      'groups[0].template.proxmox: missing required field "proxmox" (the group has proxmox hosts)',
    ]);
  });

  it("reads API addresses as PVE's web interface shows them", () => {
    expect(parseApiUrl("https://pve1.example:8006/")).toEqual({ host: "pve1.example", port: 8006 });
    expect(parseApiUrl("https://[fd00::11]:8443/api2/json")).toEqual({ host: "fd00::11", port: 8443 });
    expect(parseApiUrl("https://root:pw@pve1:8006")).toEqual({ problem: '"https://root:pw@pve1:8006" carries credentials; the API token goes in tokenId and tokenSecretEnv' });
    expect(parseApiUrl("pve1:8006")).toMatchObject({ problem: expect.stringMatching(/not https/) });
  });
});

describe("the ownership marker", () => {
  const m = { instance: "3f2a9c1e-0b4d-4e6f-8a1b-2c3d4e5f6a7b", group: "web", lineage: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", createdAt: "2026-12-03T09:00:00.000Z" };

  it("writes the record in the description and reads it back, whatever people add around it", () => {
    expect(parseMarker(markerDescription(m))).toEqual(m);
    expect(parseMarker(`Notes by ops.\n\n${markerDescription(m)}More notes.`)).toEqual(m);
    expect(parseMarker("premiscale:v1 instance=x group=web")).toBeNull();
    expect(parseMarker(undefined)).toBeNull();
  });

  it("keeps the template's own tags and adds premiscale's, once", () => {
    expect(vmTags("debian;web-tmpl", m.instance)).toEqual(["debian", "web-tmpl", "premiscale", `premiscale-${m.instance}`]);
    expect(vmTags(`debian;premiscale;premiscale-${m.instance}`, m.instance)).toEqual(["debian", "premiscale", `premiscale-${m.instance}`]);
    expect(instanceFromTags(`premiscale;premiscale-${m.instance};x`)).toBe(m.instance);
    expect(instanceFromTags("premiscale;premiscale-web")).toBeNull();
  });
});

describe("the seed", () => {
  it("renders network-config for the NIC PVE made, DHCP or static, with DNS and search domains", () => {
    expect(renderNetworkConfig("BC:24:11:AA:BB:CC", { mode: "dhcp" }, [])).toBe(
      'version: 2\nethernets:\n  eth0:\n    match: {macaddress: "bc:24:11:aa:bb:cc"}\n    set-name: eth0\n    dhcp4: true\n',
    );
    expect(renderNetworkConfig("bc:24:11:aa:bb:cc", { mode: "static", address: "10.0.0.5", prefix: 24, gateway: "10.0.0.1", dns: ["10.0.0.53"] }, ["lab.example"])).toBe(
      'version: 2\nethernets:\n  eth0:\n    match: {macaddress: "bc:24:11:aa:bb:cc"}\n    set-name: eth0\n    dhcp4: false\n    addresses: [10.0.0.5/24]\n' +
        "    routes:\n      - to: default\n        via: 10.0.0.1\n    nameservers:\n      addresses: [10.0.0.53]\n      search: [lab.example]\n",
    );
  });

  it("names the instance in meta-data and keeps empty user-data a valid cloud-config", () => {
    expect(seedFiles({ uuid: "u-1", name: "web-1", userData: "" }, "version: 2")).toEqual({
      "meta-data": "instance-id: u-1\nlocal-hostname: web-1\n",
      "user-data": "#cloud-config\n{}\n",
      "network-config": "version: 2\n",
    });
  });
});
