/**
 * The JSON Schema of the config file as users write it: the one source for validation (config/load.ts),
 * for editor completion (config/premiscale.schema.json, generated from here) and for the defaults.
 * Rules that need more than one field (min <= desired <= max, known hosts, address pools) live in load.ts.
 */
import { groupKubernetesSchema, kubernetesSchema } from "./kubernetes-config.js";
import type { ProviderConfigFragment, Schema } from "./provider-kinds.js";
import { CONFIG_VERSION } from "./types.js";

/** Pattern of host names (an RFC 1123 label). Group names use it too, with a shorter maximum length. */
export const NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/** Pattern of absolute paths; kernel boot files live on the host, so relative paths mean nothing there. */
export const ABSOLUTE_PATH_PATTERN = "^/";

/** An object schema that allows only the given fields. */
export const obj = (description: string, properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: "object",
  description,
  additionalProperties: false,
  properties,
  ...extra,
});
/** A non-empty string schema. */
export const str = (description: string, extra: Schema = {}): Schema => ({ type: "string", minLength: 1, description, ...extra });
/** An integer schema. */
export const int = (description: string, extra: Schema = {}): Schema => ({ type: "integer", description, ...extra });
const list = (description: string, items: Schema, extra: Schema = {}): Schema => ({ type: "array", description, items, ...extra });

/** A number of VMs, or a percentage of a group's size written "25%". */
const countOrPercent = (description: string, dflt: number): Schema => ({
  description,
  default: dflt,
  anyOf: [
    { type: "integer", minimum: 0, description: "A number of VMs." },
    { type: "string", pattern: "^[0-9]{1,3}%$", description: "A percentage of the group's size, e.g. 25%." },
  ],
});

/** A host's fields that every kind has; each kind adds its own (see provider-kinds.ts). */
const hostBase = {
  name: str("Unique host name, used by groups and in state.", { pattern: NAME_PATTERN, maxLength: 63 }),
  reservedMemoryMiB: int("Memory kept free for the host itself, never given to VMs.", { minimum: 0, default: 512 }),
  cpuOvercommit: { type: "number", exclusiveMinimum: 0, default: 4, description: "vCPUs of VMs allowed per physical CPU." },
  maxParallel: int("At most this many apply steps run against this host at once.", { minimum: 1, maximum: 64, default: 4 }),
  callTimeoutSeconds: int("Timeout of one call to the host, in seconds.", { minimum: 1, maximum: 3600, default: 60 }),
};

/** Fields of a kind, described as belonging to it. */
const ofKind = (kind: string, fields: Record<string, Schema>, required: string[]): Record<string, Schema> =>
  Object.fromEntries(
    Object.entries(fields).map(([k, v]) => [k, { ...v, description: `(${kind}${required.includes(k) ? ", required" : ""}) ${String(v.description ?? "")}` }]),
  );

function host(kinds: readonly ProviderConfigFragment[]): Schema {
  const names = kinds.map((k) => k.kind);
  return obj(
    "A host premiscale may place VMs on; its kind says how premiscale talks to it and which other fields it has.",
    {
      ...hostBase,
      kind: {
        type: "string",
        enum: names,
        default: DEFAULT_KIND,
        description: `How premiscale talks to the host: ${kinds.map((k) => `${k.kind}: ${k.description}`).join("; ")}. Default: ${DEFAULT_KIND}.`,
      },
      ...Object.assign({}, ...kinds.map((k) => ofKind(k.kind, k.host.properties, k.host.required))),
    },
    { required: ["name"] },
  );
}

function template(kinds: readonly ProviderConfigFragment[]): Schema {
  return obj(
  "What every VM of the group looks like.",
  {
    vcpus: int("Virtual CPUs per VM.", { minimum: 1, maximum: 256, default: 1 }),
    memoryMiB: int("Memory per VM, in MiB.", { minimum: 64 }),
    userData: {
      type: "string",
      description: "Inline cloud-init user-data. Secrets must be ${env:NAME} placeholders. Not together with userDataFile.",
    },
    userDataFile: str("cloud-init user-data file, relative to this config file. Not together with userData."),
    ...Object.assign({}, ...kinds.map((k) => ofKind(k.kind, k.template.properties, k.template.required))),
  },
  { required: ["memoryMiB"] },
  );
}

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

const num = (description: string, extra: Schema = {}): Schema => ({ type: "number", description, ...extra });
const metric = { type: "string", enum: ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"], description: "cpu: percent per vCPU; memory: used percent (guest-reported); the rest: bytes per second." };
const windowSeconds = int("Each member's samples are averaged over this window, in seconds.", { minimum: 1, default: 60 });

const policy: Schema = {
  type: "object",
  description: "A scaling policy; several combine by taking the highest recommendation.",
  required: ["type"],
  properties: { type: { type: "string", enum: ["target-tracking", "step", "threshold", "schedule"], description: "The kind of policy." } },
  allOf: [
    {
      if: { properties: { type: { const: "target-tracking", description: "The kind (target-tracking)." } }, required: ["type"] },
      then: obj("Keeps the average of a metric near a target (HPA): desired = ceil(members × average / target).", {
        type: { const: "target-tracking", description: "The kind (target-tracking)." },
        metric,
        target: num("Average per member to aim for, in the metric's unit (percent for cpu and memory).", { exclusiveMinimum: 0 }),
        tolerance: num("Relative band around the target where nothing happens (0.1 = ±10%).", { minimum: 0, maximum: 0.99, default: 0.1 }),
        disableScaleIn: { type: "boolean", default: false, description: "Only ever scale out." },
        windowSeconds,
      }, { required: ["type", "metric", "target"] }),
    },
    {
      if: { properties: { type: { const: "step", description: "The kind (step)." } }, required: ["type"] },
      then: obj("Adjusts the size by the step the group average falls into (AWS step scaling).", {
        type: { const: "step", description: "The kind (step)." },
        metric,
        threshold: num("Step bounds are relative to this value.", { default: 0 }),
        steps: list(
          "Contiguous steps: each step's upper is the next one's lower; no gaps, no overlaps.",
          obj("One step: applies when lower <= average - threshold < upper.", {
            lower: num("Lower bound (missing: none)."),
            upper: num("Upper bound (missing: none)."),
            adjustment: int("VMs to add (negative: remove), the size itself, or a percentage, after adjustmentType."),
          }, { required: ["adjustment"] }),
          { minItems: 1 },
        ),
        adjustmentType: { type: "string", enum: ["ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity"], default: "ChangeInCapacity", description: "How adjustment changes the size." },
        minAdjustmentMagnitude: int("With PercentChangeInCapacity: change at least this many VMs.", { minimum: 1 }),
        windowSeconds,
      }, { required: ["type", "metric", "steps"] }),
    },
    {
      if: { properties: { type: { const: "threshold", description: "The kind (threshold)." } }, required: ["type"] },
      then: obj("Adds or removes `change` VMs when M of the last N datapoints are above or below a value.", {
        type: { const: "threshold", description: "The kind (threshold)." },
        metric,
        above: num("Scale out when the group average is above this."),
        below: num("Scale in when the group average is below this."),
        datapointsToAlarm: int("M: datapoints that must breach.", { minimum: 1, default: 3 }),
        evaluationPeriods: int("N: datapoints looked at.", { minimum: 1, default: 3 }),
        periodSeconds: int("Length of one datapoint, in seconds.", { minimum: 1, default: 60 }),
        change: int("VMs added or removed.", { minimum: 1, default: 1 }),
      }, { required: ["type", "metric"] }),
    },
    {
      if: { properties: { type: { const: "schedule", description: "The kind (schedule)." } }, required: ["type"] },
      then: obj("A cron schedule that sets a floor, a ceiling or a starting size while in effect.", {
        type: { const: "schedule", description: "The kind (schedule)." },
        cron: str("Five fields (minute hour day-of-month month day-of-week) or a nickname such as @daily.", { examples: ["0 8 * * 1-5"] }),
        timezone: str("IANA time zone the cron is read in.", { default: "UTC" }),
        minSize: int("Floor while in effect.", { minimum: 0 }),
        maxSize: int("Ceiling while in effect.", { minimum: 0 }),
        desired: int("A recommendation like any policy's.", { minimum: 0 }),
        durationSeconds: int("In effect this long after each run; without it, until the next duration-less schedule runs.", { minimum: 1 }),
      }, { required: ["type", "cron"] }),
    },
  ],
};

const rules = (dir: string): Schema =>
  obj(`Stabilisation and rate limits when scaling ${dir} (HPA behavior).`, {
    stabilizationWindowSeconds: int(`${dir === "up" ? "The lowest" : "The highest"} recommendation of this window is used.`, { minimum: 0, maximum: 3600, default: dir === "up" ? 0 : 300 }),
    policies: list(
      "Rate limits per period.",
      obj("At most `value` VMs (Pods) or percent of the size (Percent) per period.", {
        type: { type: "string", enum: ["Pods", "Percent"], description: "Pods: a number of VMs; Percent: of the size at the start of the period." },
        value: num("VMs or percent.", { exclusiveMinimum: 0 }),
        periodSeconds: int("Period, in seconds.", { minimum: 1, maximum: 1800 }),
      }, { required: ["type", "value", "periodSeconds"] }),
    ),
    selectPolicy: { type: "string", enum: ["Max", "Min", "Disabled"], default: "Max", description: "Max: the limit allowing most change; Min: least; Disabled: no scaling this way." },
  });

const scaling = obj(
  "Scaling policies: the group's size follows its VMs' metrics (without policies, `desired` sets it).",
  {
    mode: { type: "string", enum: ["on", "off", "scale-out-only"], default: "on", description: "on: both ways; off: keep the size; scale-out-only: never scale in." },
    warmupSeconds: int("New VMs are left out of the metrics this long.", { minimum: 0, default: 60 }),
    policies: list("Policies; several combine by taking the highest recommendation.", policy, { minItems: 1 }),
    behavior: obj("Stabilisation windows and rate limits.", { scaleUp: rules("up"), scaleDown: rules("down") }),
    delays: obj("Delays and health limits (cluster-autoscaler, proxmox-autoscaler).", {
      scaleDownUnneededSeconds: int("Scale in only after the size has been unneeded this long.", { minimum: 0, default: 600 }),
      scaleUpCooldownSeconds: int("No scale-out this soon after the last scale-out.", { minimum: 0, default: 300 }),
      delayAfterAddSeconds: int("No scale-in this soon after the last scale-out.", { minimum: 0, default: 600 }),
      delayAfterDeleteSeconds: int("No scale-in this soon after the last scale-in.", { minimum: 0, default: 600 }),
      delayAfterErrorSeconds: int("No scaling this soon after an error.", { minimum: 0, default: 600 }),
      maxProvisionSeconds: int("A VM not ready this long after creation counts as unready. Defaults to readiness.timeoutSeconds.", { minimum: 1 }),
      maxUnreadyPercent: num("Stop scaling when more than this percent of members are unready...", { minimum: 0, maximum: 100, default: 45 }),
      maxUnreadyCount: int("...and more than this many.", { minimum: 0, default: 3 }),
    }),
  },
  { required: ["policies"] },
);

/** Pattern of environment variable names (`secretEnv`, `passwordEnv`). */
export const ENV_NAME_PATTERN = "^[A-Z_][A-Z0-9_]*$";

/** A user's lifecycle hook (AWS Auto Scaling lifecycle hooks): hooks/README.md has what the hook is told and answers. */
const lifecycleHook = obj(
  "A lifecycle hook: a command or a signed HTTP call that runs when a VM of the group is launching (after it is up, before it counts as ready) or terminating (before it is destroyed). Give exactly one of command and http.",
  {
    name: str("Unique in the group; apply shows it as the step hook:<name>.", { pattern: NAME_PATTERN, maxLength: 63 }),
    on: {
      type: "string",
      enum: ["launching", "terminating"],
      description: "launching: after the VM started and checked in; abandon gives the VM up (it is destroyed). terminating: before the VM is destroyed; abandon keeps it (the scale-in fails, the next apply asks again).",
    },
    command: list(
      "Program and arguments, run without a shell, in the config file's directory, with the event as JSON on stdin and as PREMISCALE_HOOK_* variables. Exit 0: continue; else abandon. A line `heartbeat` on stdout restarts the timeout. A relative program is relative to this file, a bare name is looked up on PATH.",
      { type: "string", minLength: 1 },
      { minItems: 1 },
    ),
    http: obj(
      "POST the event as JSON, signed like GitHub webhooks (X-Premiscale-Signature-256: sha256=HMAC of the body). 2xx: continue, or the body's {\"result\": \"continue\"|\"abandon\", \"message\"}; 202: still working, asked again after Retry-After (or 5 s); no connection, 408, 429 or 5xx: retried until the timeout.",
      {
        url: str("http:// or https:// URL, without credentials.", { pattern: "^https?://" }),
        secretEnv: str("Environment variable holding the HMAC secret; read by apply only.", { pattern: ENV_NAME_PATTERN }),
      },
      { required: ["url", "secretEnv"] },
    ),
    timeoutSeconds: int("Heartbeat timeout: how long the hook may run without finishing or a heartbeat; then its defaultResult is taken.", { minimum: 1, maximum: 86400, default: 300 }),
    defaultResult: { type: "string", enum: ["continue", "abandon"], default: "abandon", description: "The result when the hook times out or its HTTP endpoint cannot be reached in time." },
  },
  { required: ["name", "on"] },
);

function group(kinds: readonly ProviderConfigFragment[]): Schema {
  return obj(
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
    template: template(kinds),
    networking,
    scaling,
    suspend: { type: "boolean", default: false, description: "Leave the group as it is: no plan changes it (reconcile skips it)." },
    rollout: obj(
      "What happens to running VMs made from an older template: rolling replaces them (create, wait for ready, then delete), manual only shows them until `apply -replace`.",
      {
        strategy: { type: "string", enum: ["rolling", "manual"], default: "rolling", description: "rolling: replaced by plans, a batch at a time; manual: shown as out of date, replaced only by apply -replace." },
        maxSurge: countOrPercent("VMs above the desired size while replacing: a number or a percentage of the size (rounded up).", 1),
        maxUnavailable: countOrPercent("VMs that may be gone before their replacement is ready: a number or a percentage (rounded down).", 0),
        checkpoints: list("Percentages of the roll-out after which it pauses (AWS instance refresh), e.g. [20, 50, 100].", { type: "integer", minimum: 1, maximum: 100 }, { default: [] }),
        checkpointPauseSeconds: int("How long a roll-out pauses at each checkpoint.", { minimum: 0, default: 0 }),
        rollback: {
          type: "boolean",
          default: true,
          description:
            "When a roll-out's new VMs fail (no check-in, a hook abandons one, the host refuses one), replace the VMs it already replaced with the template the group ran before, and refuse the failed template until the config's template changes (AWS instance refresh's auto roll-back). false: a failed roll-out stops where it is.",
        },
      },
      { default: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true } },
    ),
    maxInstanceLifetimeSeconds: int("VMs older than this are replaced through the roll-out path (protected ones excepted).", { minimum: 60 }),
    warmPool: obj(
      "VMs made ahead of need (booted once and checked in), kept outside the group; a scale-out takes one instead of creating a VM, and the pool is refilled (AWS warm pools). Give size or maxPrepared, or neither (then maxPrepared is max).",
      {
        size: int("Pool VMs to keep.", { minimum: 0 }),
        maxPrepared: int("Members and pool VMs together at most: the pool holds maxPrepared minus the desired size.", { minimum: 1 }),
        state: {
          type: "string",
          enum: ["stopped", "running", "paused"],
          default: "stopped",
          description:
            "stopped: shut off after their first boot, started when taken (the guest signals each boot); running: kept running, ready at once when taken; paused: suspended in memory after their first boot (no guest CPU while waiting, their memory held), resumed when taken.",
        },
        reuseOnScaleIn: { type: "boolean", default: false, description: "Scale-in returns members to the pool (stopped or paused, as the pool keeps them) instead of destroying them, while the pool has room." },
      },
    ),
    lifecycleHooks: list("Users' hooks around each VM's launch and termination, run in this order at each point.", lifecycleHook, { default: [] }),
    kubernetes: groupKubernetesSchema,
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
        heartbeatSeconds: int(
          "0: off. Else the VM's user-data gets a loop that POSTs a heartbeat this often (curl or wget), and a VM not heard from for unhealthyAfterSeconds is replaced.",
          { minimum: 0, maximum: 3600, default: 0 },
        ),
        unhealthyAfterSeconds: int("A VM without a heartbeat (or check-in) for this long is unhealthy and replaced (at most a quarter of the group per plan).", { minimum: 10, default: 180 }),
      },
      { default: { checkIn: true, timeoutSeconds: 900, heartbeatSeconds: 0, unhealthyAfterSeconds: 180 } },
    ),
  },
  { required: ["name", "max", "hosts", "template"] },
  );
}

/** The kind of a host that does not say: what premiscale had before hosts had kinds. */
export const DEFAULT_KIND = "libvirt";

/** The config file schema (JSON Schema draft-07) with the fields of the given provider kinds. */
export function configSchema(kinds: readonly ProviderConfigFragment[]): Schema {
  return {
  $schema: "http://json-schema.org/draft-07/schema#",
  title: "premiscale config",
  ...obj(
    "Autoscaling groups of VMs and the hosts they run on.",
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
      metrics: obj(
        "Where VM metrics come from. sqlite: premiscale collects them itself (premiscale serve); prometheus and influxdb are read-only sources.",
        {
          intervalSeconds: int("How often the collector samples every host.", { minimum: 1, maximum: 3600, default: 15 }),
          store: {
            type: "object",
            description: "The metrics store.",
            required: ["type"],
            properties: { type: { type: "string", enum: ["sqlite", "prometheus", "influxdb"], description: "sqlite (embedded, default), prometheus (also VictoriaMetrics) or influxdb (1.x)." } },
            default: { type: "sqlite" },
            allOf: [
              {
                if: { properties: { type: { const: "sqlite", description: "The kind (sqlite)." } }, required: ["type"] },
                then: obj("The embedded store: a SQLite file on this machine, fed by premiscale's collector.", {
                  type: { const: "sqlite", description: "The kind (sqlite)." },
                  path: str("Database file, relative to this config file. Default: <state>/.premiscale/metrics.db (never committed)."),
                  rawRetentionSeconds: int("Raw samples are kept this long.", { minimum: 60, default: 86400 }),
                  rollupRetentionSeconds: int("1-minute roll-ups are kept this long.", { minimum: 60, default: 2592000 }),
                }),
              },
              {
                if: { properties: { type: { const: "prometheus", description: "The kind (prometheus)." } }, required: ["type"] },
                then: obj("A Prometheus HTTP API (Prometheus, VictoriaMetrics), read-only.", {
                  type: { const: "prometheus", description: "The kind (prometheus)." },
                  url: str("Base URL, e.g. http://127.0.0.1:9090 (VictoriaMetrics: http://127.0.0.1:8428).", { pattern: "^https?://" }),
                  queries: obj("PromQL per metric; variables {{members}} {{group}} {{rate}} {{step}}. Defaults follow prometheus-libvirt-exporter.", Object.fromEntries(["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"].map((m) => [m, str(`Query for ${m}.`)]))),
                  memberLabel: str("Label holding the domain name.", { default: "domain" }),
                  stepSeconds: int("Resolution of range queries.", { minimum: 1, default: 15 }),
                  rateWindow: str("Window of rate() in the default queries.", { default: "1m" }),
                  timeoutSeconds: int("Timeout of one query.", { minimum: 1, default: 10 }),
                }, { required: ["type", "url"] }),
              },
              {
                if: { properties: { type: { const: "influxdb", description: "The kind (influxdb)." } }, required: ["type"] },
                then: obj("An InfluxDB 1.x server (InfluxQL), read-only.", {
                  type: { const: "influxdb", description: "The kind (influxdb)." },
                  url: str("Base URL, e.g. http://127.0.0.1:8086.", { pattern: "^https?://" }),
                  database: str("Database name."),
                  retentionPolicy: str("Retention policy."),
                  username: str("User name."),
                  passwordEnv: str("Name of the environment variable holding the password.", { pattern: "^[A-Z_][A-Z0-9_]*$" }),
                  queries: obj("InfluxQL per metric; variables {{members}} {{group}} {{timeFilter}} {{interval}}. Defaults follow Telegraf's inputs.libvirt.", Object.fromEntries(["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"].map((m) => [m, str(`Query for ${m}.`)]))),
                  memberTag: str("Tag holding the domain name.", { default: "domain_name" }),
                  intervalSeconds: int("GROUP BY time() interval.", { minimum: 1, default: 15 }),
                  timeoutSeconds: int("Timeout of one query.", { minimum: 1, default: 10 }),
                }, { required: ["type", "url", "database"] }),
              },
            ],
          },
        },
        { default: {} },
      ),
      gitops: obj(
        "premiscale reconcile: the config repository it follows and what it does on a new commit.",
        {
          repo: str("Remote URL or path of the config repository; absent: the repository holding this file."),
          branch: str("Branch to follow.", { default: "main" }),
          path: str("The config file inside the repository (with repo).", { default: "premiscale.yaml" }),
          mode: { type: "string", enum: ["auto", "review"], default: "auto", description: "auto: apply; review: push the plan to a branch premiscale/plan/<id> for a pull request." },
          intervalSeconds: int("Reconcile at least this often (metrics, drift).", { minimum: 5, default: 60 }),
          workDir: str("Where the repository is cloned (with repo).", { default: "/var/lib/premiscale/repo" }),
          planTtlSeconds: int("A published plan expires after this long.", { minimum: 60, default: 86400 }),
          lock: obj("The lock ref on the remote that lets one reconciler apply at a time.", { ttlSeconds: int("A lock not renewed for this long may be taken over.", { minimum: 30, default: 300 }) }, { default: { ttlSeconds: 300 } }),
          webhook: obj("Receive push events so a commit reconciles within a second.", {
            listen: str("Address and port.", { pattern: "^[^\\s]+:[0-9]{1,5}$", default: "127.0.0.1:8971" }),
            provider: { type: "string", enum: ["github", "gitlab"], default: "github", description: "github: X-Hub-Signature-256 HMAC; gitlab: X-Gitlab-Token." },
            secretEnv: str("Environment variable with the webhook secret (GitHub) or token (GitLab).", { pattern: "^[A-Z_][A-Z0-9_]*$" }),
          }, { required: ["secretEnv"] }),
        },
        { default: {} },
      ),
      kubernetes: kubernetesSchema,
      hosts: list("Hosts VMs run on.", host(kinds), { minItems: 1 }),
      groups: list("Autoscaling groups.", group(kinds), { minItems: 1 }),
    },
    {
      required: ["version"],
      // A file with gitops.repo may be only a bootstrap for `premiscale reconcile` (the config is in the repository).
      if: { type: "object", properties: { gitops: { type: "object", required: ["repo"] } }, required: ["gitops"] },
      else: { type: "object", required: ["hosts", "groups"] },
    },
  ),
  };
}

/** The text of config/premiscale.schema.json for these kinds (all of premiscale's: see providers/index.ts). */
export function schemaJson(kinds: readonly ProviderConfigFragment[]): string {
  return JSON.stringify(configSchema(kinds), null, 2) + "\n";
}
