/**
 * The JSON Schema of the config file as users write it: the one source for validation (config/load.ts),
 * for editor completion (config/premiscale.schema.json, generated from here) and for the defaults.
 * Rules that need more than one field (min <= desired <= max, known hosts, address pools) live in load.ts.
 */
import { CONFIG_VERSION } from "./types.js";

type Schema = Record<string, unknown>;

/** Pattern of host names (an RFC 1123 label). Group names use it too, with a shorter maximum length. */
export const NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/** Pattern of absolute paths; kernel boot files live on the host, so relative paths mean nothing there. */
export const ABSOLUTE_PATH_PATTERN = "^/";

const obj = (description: string, properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: "object",
  description,
  additionalProperties: false,
  properties,
  ...extra,
});
const str = (description: string, extra: Schema = {}): Schema => ({ type: "string", minLength: 1, description, ...extra });
const int = (description: string, extra: Schema = {}): Schema => ({ type: "integer", description, ...extra });
const list = (description: string, items: Schema, extra: Schema = {}): Schema => ({ type: "array", description, items, ...extra });

const host = obj(
  "A libvirt host premiscale may place VMs on.",
  {
    name: str("Unique host name, used by groups and in state.", { pattern: NAME_PATTERN, maxLength: 63 }),
    uri: str("libvirt connection URI.", {
      examples: ["qemu:///system", "qemu+ssh://admin@kvm1/system", "test:///default"],
    }),
    pool: str("Storage pool on the host for VM disks and seeds; base images must be volumes in it.", { default: "default" }),
    accelerator: {
      type: "string",
      enum: ["kvm", "qemu"],
      default: "kvm",
      description: "kvm: hardware virtualisation; qemu: plain emulation (TCG), for hosts without /dev/kvm.",
    },
    reservedMemoryMiB: int("Memory kept free for the host itself, never given to VMs.", { minimum: 0, default: 512 }),
    cpuOvercommit: { type: "number", exclusiveMinimum: 0, default: 4, description: "vCPUs of VMs allowed per physical CPU." },
    maxParallel: int("At most this many apply steps run against this host at once.", { minimum: 1, maximum: 64, default: 4 }),
    callTimeoutSeconds: int("Timeout of one libvirt call, in seconds.", { minimum: 1, maximum: 3600, default: 60 }),
  },
  { required: ["name", "uri"] },
);

const template = obj(
  "What every VM of the group looks like.",
  {
    vcpus: int("Virtual CPUs per VM.", { minimum: 1, maximum: 256, default: 1 }),
    memoryMiB: int("Memory per VM, in MiB.", { minimum: 64 }),
    disk: obj(
      "Each VM gets a copy-on-write overlay on a base image.",
      {
        baseImage: str("Name of a qcow2 volume in the host's pool, used as the backing image."),
        sizeGiB: { type: "number", exclusiveMinimum: 0, default: 4, description: "Virtual size of each VM's disk, in GiB." },
      },
      { required: ["baseImage"] },
    ),
    nic: obj(
      "The guest's network interface.",
      {
        type: {
          type: "string",
          enum: ["user", "network", "bridge"],
          default: "user",
          description: "user: QEMU user-mode networking (no host set-up); network: a libvirt network; bridge: a host bridge.",
        },
        source: str("Name of the libvirt network (type network) or host bridge (type bridge)."),
      },
      {
        default: { type: "user" },
        if: { properties: { type: { enum: ["network", "bridge"] } }, required: ["type"] },
        then: { required: ["source"] },
      },
    ),
    boot: obj(
      "Direct kernel boot instead of the disk's bootloader; paths are on the host.",
      {
        kernel: str("Absolute path of the kernel image on the host.", { pattern: ABSOLUTE_PATH_PATTERN }),
        initrd: str("Absolute path of the initrd on the host.", { pattern: ABSOLUTE_PATH_PATTERN }),
        cmdline: { type: "string", description: "Kernel command line, e.g. console=ttyS0." },
      },
      { required: ["kernel"] },
    ),
    userData: {
      type: "string",
      description: "Inline cloud-init user-data. Secrets must be ${env:NAME} placeholders. Not together with userDataFile.",
    },
    userDataFile: str("cloud-init user-data file, relative to this config file. Not together with userData."),
  },
  { required: ["memoryMiB", "disk"] },
);

const networking = obj(
  "How guests get their IPv4 address.",
  {
    mode: {
      type: "string",
      enum: ["dhcp", "static"],
      default: "dhcp",
      description: "dhcp: from the network; static: one address per VM from `addresses`.",
    },
    addresses: list(
      "Static pool: IPv4 addresses or ranges like 192.168.10.50-192.168.10.60. Needs at least `max` addresses.",
      { type: "string", minLength: 1 },
      { minItems: 1 },
    ),
    prefix: int("Prefix length of the guests' subnet, e.g. 24.", { minimum: 1, maximum: 32 }),
    gateway: str("Default gateway; must be in the guests' subnet."),
    dns: list("DNS servers (IPv4).", { type: "string", minLength: 1 }, { default: [] }),
  },
  {
    default: { mode: "dhcp" },
    if: { properties: { mode: { const: "static" } }, required: ["mode"] },
    then: { required: ["addresses", "prefix"] },
  },
);

const group = obj(
  "An autoscaling group of identical VMs.",
  {
    name: str("Unique group name.", { pattern: NAME_PATTERN, maxLength: 40 }),
    min: int("The group never shrinks below this many VMs.", { minimum: 0, default: 0 }),
    max: int("The group never grows beyond this many VMs.", { minimum: 1 }),
    desired: int("Size the planner aims for until a policy decides; defaults to min.", { minimum: 0 }),
    hosts: list("Names of hosts (from `hosts`) this group may place VMs on.", { type: "string", minLength: 1 }, {
      minItems: 1,
      uniqueItems: true,
    }),
    placement: {
      type: "string",
      enum: ["round-robin", "most-free", "fill-first", "random"],
      default: "round-robin",
      description: "How new VMs are spread over the group's hosts.",
    },
    template,
    networking,
    readiness: obj(
      "When a new VM counts as ready. Apply waits for it; one that is not ready in time is destroyed and reported.",
      {
        checkIn: {
          type: "boolean",
          default: true,
          description:
            "true: wait for the VM to check in (premiscale adds cloud-init phone_home with a per-VM token to its user-data; needs a #cloud-config user-data and a guest running cloud-init). false: ready once started.",
        },
        timeoutSeconds: int("How long a new VM has to check in (max provision time).", { minimum: 5, maximum: 86400, default: 900 }),
      },
      { default: { checkIn: true, timeoutSeconds: 900 } },
    ),
  },
  { required: ["name", "max", "hosts", "template"] },
);

/** The config file schema (JSON Schema draft-07). */
export const configSchema: Schema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  title: "premiscale config",
  ...obj(
    "Autoscaling groups of libvirt VMs and the hosts they run on.",
    {
      version: { type: "string", const: CONFIG_VERSION, description: "Config format version." },
      state: obj(
        "Where premiscale keeps its git-tracked state.",
        {
          path: str("State directory, relative to this config file.", { default: "./premiscale-state" }),
        },
        { default: { path: "./premiscale-state" } },
      ),
      server: obj(
        "The check-in server (`premiscale serve`, or apply itself while no server runs) that new VMs phone home to.",
        {
          listen: str("Address and port to listen on.", { pattern: "^[^\\s]+:[0-9]{1,5}$", default: "127.0.0.1:8970" }),
          advertiseUrl: str(
            "The server as guests reach it. Default: http://10.0.2.2:<port>, the host's loopback seen from QEMU user-mode networking.",
            { pattern: "^https?://" },
          ),
        },
        { default: { listen: "127.0.0.1:8970" } },
      ),
      hosts: list("libvirt hosts.", host, { minItems: 1 }),
      groups: list("Autoscaling groups.", group, { minItems: 1 }),
    },
    { required: ["version", "hosts", "groups"] },
  ),
};

/** The text of config/premiscale.schema.json, exactly as committed. */
export function schemaJson(): string {
  return JSON.stringify(configSchema, null, 2) + "\n";
}
