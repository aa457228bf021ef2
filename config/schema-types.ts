/**
 * The config document as the loader sees it after the schema validated it and ajv filled the defaults: GENERATED
 * from config/schema.ts (the one source) by config/schema.test.ts, which fails when this file is out of date.
 * Regenerate: UPDATE_SCHEMA=1 npx vitest run --project unit config/schema.test.ts. Do not edit.
 * The normalised config every stage reads is config/types.ts (another shape: user-data read, kinds' settings).
 */

/**
 * Autoscaling groups of VMs and the hosts they run on.
 */
export interface PremiscaleConfig {
  /**
   * Config format version.
   */
  version: "v1alpha1";
  /**
   * Where premiscale keeps its git-tracked state.
   */
  state: {
    /**
     * State directory, relative to this config file.
     */
    path: string;
  };
  /**
   * The check-in server (`premiscale serve`, or apply itself while no server runs) that new VMs phone home to.
   */
  server: {
    /**
     * Address and port to listen on.
     */
    listen: string;
    /**
     * The server as guests reach it. Default: http://10.0.2.2:<port>, the host's loopback seen from QEMU user-mode networking.
     */
    advertiseUrl?: string;
  };
  /**
   * Where VM metrics come from. sqlite: premiscale collects them itself (premiscale serve); prometheus and influxdb are read-only sources.
   */
  metrics: {
    /**
     * How often the collector samples every host.
     */
    intervalSeconds: number;
    /**
     * The metrics store.
     */
    store: {
      /**
       * sqlite (embedded, default), prometheus (also VictoriaMetrics) or influxdb (1.x).
       */
      type: "sqlite" | "prometheus" | "influxdb";
    };
  };
  /**
   * premiscale reconcile: the config repository it follows and what it does on a new commit.
   */
  gitops: {
    /**
     * Remote URL or path of the config repository; absent: the repository holding this file.
     */
    repo?: string;
    /**
     * Branch to follow.
     */
    branch: string;
    /**
     * The config file inside the repository (with repo).
     */
    path: string;
    /**
     * auto: apply; review: push the plan to a branch premiscale/plan/<id> for a pull request.
     */
    mode: "auto" | "review";
    /**
     * Reconcile at least this often (metrics, drift).
     */
    intervalSeconds: number;
    /**
     * Where the repository is cloned (with repo).
     */
    workDir: string;
    /**
     * A published plan expires after this long.
     */
    planTtlSeconds: number;
    /**
     * The lock ref on the remote that lets one reconciler apply at a time.
     */
    lock: {
      /**
       * A lock not renewed for this long may be taken over.
       */
      ttlSeconds: number;
    };
    /**
     * Receive push events so a commit reconciles within a second.
     */
    webhook?: {
      /**
       * Address and port.
       */
      listen: string;
      /**
       * github: X-Hub-Signature-256 HMAC; gitlab: X-Gitlab-Token.
       */
      provider: "github" | "gitlab";
      /**
       * Environment variable with the webhook secret (GitHub) or token (GitLab).
       */
      secretEnv: string;
    };
  };
  /**
   * Kubernetes: premiscale serve becomes cluster-autoscaler's externalgrpc cloud provider for the groups with a kubernetes block, and their VMs join this cluster.
   */
  kubernetes?: {
    /**
     * kubeconfig premiscale uses (relative to this file): it creates bootstrap tokens in kube-system and reads and deletes Nodes. Default: the service account of the pod premiscale runs in (in-cluster config).
     */
    kubeconfig?: string;
    /**
     * Context of the kubeconfig. Default: its current-context.
     */
    context?: string;
    /**
     * host:port that joining VMs dial (kubeadm discovery). Default: the kubeconfig's server.
     */
    apiServerEndpoint?: string;
    /**
     * sha256:<64 hex> pin of the cluster CA's public key for joins. Default: computed from the kubeconfig's CA.
     */
    caCertHash?: string;
    /**
     * Timeout of one Kubernetes API call, in seconds.
     */
    callTimeoutSeconds: number;
    /**
     * cluster-autoscaler's externalgrpc endpoint (its --cloud-config `address`).
     */
    externalGrpc: {
      /**
       * Address and port. Plaintext is allowed only on a loopback address; elsewhere set tls.
       */
      listen: string;
      /**
       * Mutual TLS, as cluster-autoscaler's cloud-config cert/key/cacert expect.
       */
      tls?: {
        /**
         * Server certificate (PEM), relative to this file; its names must include the host cluster-autoscaler dials.
         */
        cert: string;
        /**
         * The server certificate's private key (PEM).
         */
        key: string;
        /**
         * CA certificate (PEM) that cluster-autoscaler's client certificate must chain to.
         */
        clientCa: string;
        /**
         * Common names of client certificates allowed (empty: any certificate from clientCa).
         */
        allowedClients: string[];
      };
    };
    /**
     * Who decides the node groups' sizes: cluster-autoscaler over externalgrpc, or premiscale itself from pending pods and node utilisation (native).
     */
    mode: "cluster-autoscaler" | "native";
    /**
     * Native mode (mode: native): premiscale scales the node groups itself, up for pods the scheduler could not place, down for under-used nodes. Defaults are cluster-autoscaler's.
     */
    native?: {
      /**
       * How often the cluster is scanned (--scan-interval).
       */
      scanIntervalSeconds: number;
      /**
       * Expander chain (--expander=priority,least-waste): which group grows when several could take the pods.
       *
       * @minItems 1
       *
       * Items: An expander.
       */
      expander: ("least-waste" | "priority" | "random" | "most-pods" | "least-nodes")[];
      /**
       * The priority expander's rules, as cluster-autoscaler's priority ConfigMap: an integer priority → regular expressions on group names; the highest priority that matches wins.
       */
      priorities: {
        /**
         * Regular expressions with this priority.
         *
         * @minItems 1
         *
         * This interface was referenced by `undefined`'s JSON-Schema definition
         * via the `patternProperty` "^-?[0-9]{1,9}$".
         *
         * Items: A regular expression on group names.
         */
        [k: string]: string[];
      };
      /**
       * Scale-down and consolidation.
       */
      scaleDown: {
        /**
         * Remove under-used nodes (--scale-down-enabled).
         */
        enabled: boolean;
        /**
         * A node under this utilisation (max of cpu and memory requests ÷ allocatable) may go.
         */
        utilizationThreshold: number;
        /**
         * How long a node must be unneeded before it goes (--scale-down-unneeded-time).
         */
        unneededSeconds: number;
        /**
         * No scale-down this long after a scale-up.
         */
        delayAfterAddSeconds: number;
        /**
         * No scale-down this long after a scale-down (0: the scan interval).
         */
        delayAfterDeleteSeconds: number;
        /**
         * No scale-down this long after a failure.
         */
        delayAfterFailureSeconds: number;
        /**
         * Disruption budget per group: how many of its nodes may go at once, a count (2) or a share of its nodes (10%, rounded up).
         */
        budget: string;
        /**
         * Disruption budgets on a schedule, per group unless the group sets kubernetes.autoscaling.disruptionBudgets: while one is in force, the most restrictive of it and budget applies (nodes: "0" on "0 9 * * 1-5" for 8h: no scale-down in business hours).
         *
         * @maxItems 50
         *
         * Items: A disruption budget in force for `duration` after each time `schedule` fires; the most restrictive budget in force wins.
         */
        budgets: {
          /**
           * How many of the group's nodes may go at once while it is in force: a count (0 stops scale-down) or a share of its nodes (10%, rounded up).
           */
          nodes: string;
          /**
           * When it comes into force: a five-field cron (minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5") or @daily, @weekly...
           */
          schedule: string;
          /**
           * IANA time zone the schedule is read in (Europe/Berlin).
           */
          timezone: string;
          /**
           * How long it stays in force after each run of the schedule: hours and minutes (8h, 30m, 1h30m).
           */
          duration: string;
        }[];
      };
      /**
       * Halt scaling when more than this share of nodes is unready (and more than okTotalUnreadyCount).
       */
      maxTotalUnreadyPercentage: number;
      /**
       * Unready nodes always tolerated.
       */
      okTotalUnreadyCount: number;
      /**
       * Pending pods arriving together make one decision: a batch closes when no new pod came for idleMs, or after maxMs.
       */
      batch: {
        /**
         * Idle window.
         */
        idleMs: number;
        /**
         * Maximum window.
         */
        maxMs: number;
      };
      /**
       * How often the pending pods are listed (the batches see new pods this often).
       */
      pollMs: number;
    };
    /**
     * After an intent from cluster-autoscaler, wait this long for more before planning.
     */
    debounceMs: number;
    /**
     * Also plan this often without an intent (drift, retries).
     */
    resyncSeconds: number;
    /**
     * Several premiscale serve replicas: only the holder of a coordination.k8s.io/v1 Lease runs the node-group loops (client-go's algorithm and defaults).
     */
    leaderElection: {
      /**
       * Elect a leader (needs get, create, update on leases in the namespace).
       */
      enabled: boolean;
      /**
       * The Lease's namespace. Default: the credentials' namespace (in a pod: its own), else default.
       */
      namespace?: string;
      /**
       * The Lease's name.
       */
      leaseName: string;
      /**
       * Others take the Lease over when it has not changed for this long, as they observed it.
       */
      leaseDurationSeconds: number;
      /**
       * The leader stops leading when it could not renew for this long (less than leaseDurationSeconds).
       */
      renewDeadlineSeconds: number;
      /**
       * Candidates retry and the leader renews this often (renewDeadlineSeconds must exceed 1.2 times it).
       */
      retryPeriodSeconds: number;
      /**
       * Where cluster-autoscaler finds the leader: the leader writes the EndpointSlice of this selector-less Service with its own address and the externalgrpc port when it takes the Lease, and empties it when it stops (needs get, create, update on endpointslices.discovery.k8s.io in the namespace).
       */
      endpoint?: {
        /**
         * The Service (selector-less) whose EndpointSlice names the leader; the slice has the same name.
         */
        service: string;
        /**
         * The Service's namespace. Default: the Lease's.
         */
        namespace?: string;
        /**
         * Environment variable holding this replica's IP address (in a pod: status.podIP through the downward API).
         */
        addressEnv: string;
        /**
         * The Service port's name the slice's port carries ("" for a Service with one unnamed port).
         */
        portName: string;
      };
    };
  };
  /**
   * Hosts VMs run on.
   *
   * @minItems 1
   *
   * Items: A host premiscale may place VMs on; its kind says how premiscale talks to it and which other fields it has.
   */
  hosts?: {
    /**
     * Unique host name, used by groups and in state.
     */
    name: string;
    /**
     * Memory kept free for the host itself, never given to VMs.
     */
    reservedMemoryMiB: number;
    /**
     * vCPUs of VMs allowed per physical CPU.
     */
    cpuOvercommit: number;
    /**
     * At most this many apply steps run against this host at once.
     */
    maxParallel: number;
    /**
     * Timeout of one call to the host, in seconds.
     */
    callTimeoutSeconds: number;
    /**
     * How premiscale talks to the host: libvirt: a libvirt daemon (KVM or QEMU), reached through virsh over any libvirt URI (local, qemu+ssh, qemu+tls); proxmox: a Proxmox VE node (one host per node; the nodes of a cluster share its API connection), reached through the PVE REST API with an API token. Default: libvirt.
     */
    kind: "libvirt" | "proxmox";
    /**
     * (libvirt, required) libvirt connection URI.
     */
    uri?: string;
    /**
     * (libvirt) Storage pool on the host for VM disks and seeds; base images must be volumes in it. Default: default.
     */
    pool?: string;
    /**
     * (libvirt) kvm: hardware virtualisation; qemu: plain emulation (TCG), for hosts without working KVM; auto: kvm where providers/libvirt/setup-host.sh proved KVM boots a kernel on this machine, else qemu (hosts on this machine only). Default: kvm.
     */
    accelerator?: "kvm" | "qemu" | "auto";
    /**
     * (proxmox) The Proxmox VE node this host is (`pvecm nodes`). Default: the host's name.
     */
    node?: string;
    /**
     * (proxmox, required) How premiscale reaches the PVE cluster. Hosts on one cluster write it once with an anchor (`api: &lab`) and repeat it with an alias (`api: *lab`); they share one connection.
     */
    api?: {
      /**
       * Name of the cluster in messages. Default: proxmox.
       */
      cluster?: string;
      /**
       * API addresses of the cluster's nodes. Give each node premiscale uses its own, so that a node that hangs stalls only its own calls; a node without one is reached through the first.
       *
       * @minItems 1
       *
       * Items: One node's API address.
       */
      endpoints: {
        /**
         * The node's name in the cluster (`pvecm nodes`).
         */
        node: string;
        /**
         * Its API address, as in the web interface: https://HOST:8006.
         */
        url: string;
        /**
         * SHA-256 fingerprint of the node's certificate (`pvenode cert info`); when set it alone decides, instead of caFile.
         */
        fingerprint?: string;
      }[];
      /**
       * API token, USER@REALM!TOKENID (`pveum user token list`), e.g. premiscale@pve!autoscaler.
       */
      tokenId: string;
      /**
       * Name of the environment variable that holds the token's secret; the secret never goes into the config, plans or state.
       */
      tokenSecretEnv: string;
      /**
       * The cluster's CA certificate (a copy of /etc/pve/pve-root-ca.pem), relative to this file. Without it and without fingerprints, the system's trust store (ACME certificates).
       */
      caFile?: string;
    };
    /**
     * (proxmox) Storage on the node for premiscale's cloud-init seed ISOs (content iso, a file-based storage). Default: local.
     */
    isoStorage?: string;
    /**
     * (proxmox) How long premiscale waits for one PVE task (a clone, start or delete) and for a VM's lock. Default: 900.
     */
    taskTimeoutSeconds?: number;
  }[];
  /**
   * Autoscaling groups.
   *
   * @minItems 1
   *
   * Items: An autoscaling group of identical VMs.
   */
  groups?: {
    /**
     * Unique group name.
     */
    name: string;
    /**
     * The group never shrinks below this many VMs.
     */
    min: number;
    /**
     * The group never grows beyond this many VMs.
     */
    max: number;
    /**
     * Size the planner aims for until a policy decides; defaults to min.
     */
    desired?: number;
    /**
     * Names of hosts (from `hosts`) this group may place VMs on.
     *
     * @minItems 1
     */
    hosts: string[];
    /**
     * How new VMs are spread over the group's hosts.
     */
    placement: "round-robin" | "most-free" | "fill-first" | "random";
    /**
     * What every VM of the group looks like.
     */
    template: {
      /**
       * Virtual CPUs per VM.
       */
      vcpus: number;
      /**
       * Memory per VM, in MiB.
       */
      memoryMiB: number;
      /**
       * Inline cloud-init user-data. Secrets must be ${env:NAME} placeholders. Not together with userDataFile.
       */
      userData?: string;
      /**
       * cloud-init user-data file, relative to this config file. Not together with userData.
       */
      userDataFile?: string;
      /**
       * (libvirt, required) Each VM gets a copy-on-write overlay on a base image.
       */
      disk?: {
        /**
         * Name of a qcow2 volume in the host's pool, used as the backing image.
         */
        baseImage: string;
        /**
         * Virtual size of each VM's disk, in GiB.
         */
        sizeGiB: number;
      };
      /**
       * (libvirt) The guest's network interface. Default: {type: user}.
       */
      nic?: {
        /**
         * user: QEMU user-mode networking (no host set-up); network: a libvirt network; bridge: a host bridge.
         */
        type: "user" | "network" | "bridge";
        /**
         * Name of the libvirt network (type network) or host bridge (type bridge).
         */
        source?: string;
      };
      /**
       * (libvirt) Direct kernel boot instead of the disk's bootloader; paths are on the host.
       */
      boot?: {
        /**
         * Absolute path of the kernel image on the host.
         */
        kernel: string;
        /**
         * Absolute path of the initrd on the host.
         */
        initrd?: string;
        /**
         * Kernel command line, e.g. console=ttyS0.
         */
        cmdline?: string;
      };
      /**
       * (proxmox, required) How each VM is made on a Proxmox VE node: a clone of a PVE template.
       */
      proxmox?: {
        /**
         * Name of the PVE template to clone. With local storage, put one on every node the group uses (same name); on shared storage one is enough.
         */
        template?: string;
        /**
         * Instead of template: the PVE template carrying this tag.
         */
        templateTag?: string;
        /**
         * linked: shares the template's disks (fast, thin); full: a copy. Default: linked.
         */
        clone?: "linked" | "full";
        /**
         * Full clones only: storage for the new disks. Default: the template's.
         */
        storage?: string;
        /**
         * Grow the boot disk to this size, in GiB (PVE never shrinks disks). Default: the template's size.
         */
        diskGiB?: number;
        /**
         * seed: premiscale's own NoCloud seed (user-data with the check-in, network-config), uploaded as an ISO and attached as a CD-ROM; proxmox: PVE's cloud-init drive of the template (ipconfig0, nameserver, searchdomain, ciuser, sshkeys), which cannot carry user-data, so no check-in either. Default: seed.
         */
        cloudInit?: "seed" | "proxmox";
        /**
         * cloudInit proxmox only: the user cloud-init creates (ciuser).
         */
        ciUser?: string;
        /**
         * cloudInit proxmox only: OpenSSH public keys for ciUser, one per entry.
         */
        sshKeys?: string[];
        /**
         * DNS search domains.
         */
        searchDomains?: string[];
        /**
         * Readiness through the QEMU guest agent, for templates without cloud-init phone_home: after start, wait until the agent reports an IPv4 address and `systemctl is-system-running` says running or degraded.
         */
        guestAgent?: {
          /**
           * Wait for the guest agent. Default: false.
           */
          wait?: boolean;
          /**
           * How long, counted from the clone's end. Default: 600.
           */
          timeoutSeconds?: number;
        };
      };
    };
    /**
     * How guests get their IPv4 address.
     */
    networking: {
      /**
       * dhcp: from the network; static: one address per VM from `addresses`.
       */
      mode: "dhcp" | "static";
      /**
       * Static pool: IPv4 addresses or ranges like 192.168.10.50-192.168.10.60. Needs at least `max` addresses.
       *
       * @minItems 1
       */
      addresses?: string[];
      /**
       * Prefix length of the guests' subnet, e.g. 24.
       */
      prefix?: number;
      /**
       * Default gateway; must be in the guests' subnet.
       */
      gateway?: string;
      /**
       * DNS servers (IPv4).
       */
      dns: string[];
    };
    /**
     * Scaling policies: the group's size follows its VMs' metrics (without policies, `desired` sets it).
     */
    scaling?: {
      /**
       * on: both ways; off: keep the size; scale-out-only: never scale in.
       */
      mode: "on" | "off" | "scale-out-only";
      /**
       * New VMs are left out of the metrics this long.
       */
      warmupSeconds: number;
      /**
       * Policies; several combine by taking the highest recommendation.
       *
       * @minItems 1
       *
       * Items: A scaling policy; several combine by taking the highest recommendation.
       */
      policies: {
        /**
         * The kind of policy.
         */
        type: "target-tracking" | "step" | "threshold" | "schedule";
      }[];
      /**
       * Stabilisation windows and rate limits.
       */
      behavior?: {
        /**
         * Stabilisation and rate limits when scaling up (HPA behavior).
         */
        scaleUp?: {
          /**
           * The lowest recommendation of this window is used.
           */
          stabilizationWindowSeconds: number;
          /**
           * Rate limits per period.
           *
           * Items: At most `value` VMs (Pods) or percent of the size (Percent) per period.
           */
          policies?: {
            /**
             * Pods: a number of VMs; Percent: of the size at the start of the period.
             */
            type: "Pods" | "Percent";
            /**
             * VMs or percent.
             */
            value: number;
            /**
             * Period, in seconds.
             */
            periodSeconds: number;
          }[];
          /**
           * Max: the limit allowing most change; Min: least; Disabled: no scaling this way.
           */
          selectPolicy: "Max" | "Min" | "Disabled";
        };
        /**
         * Stabilisation and rate limits when scaling down (HPA behavior).
         */
        scaleDown?: {
          /**
           * The highest recommendation of this window is used.
           */
          stabilizationWindowSeconds: number;
          /**
           * Rate limits per period.
           *
           * Items: At most `value` VMs (Pods) or percent of the size (Percent) per period.
           */
          policies?: {
            /**
             * Pods: a number of VMs; Percent: of the size at the start of the period.
             */
            type: "Pods" | "Percent";
            /**
             * VMs or percent.
             */
            value: number;
            /**
             * Period, in seconds.
             */
            periodSeconds: number;
          }[];
          /**
           * Max: the limit allowing most change; Min: least; Disabled: no scaling this way.
           */
          selectPolicy: "Max" | "Min" | "Disabled";
        };
      };
      /**
       * Delays and health limits (cluster-autoscaler, proxmox-autoscaler).
       */
      delays?: {
        /**
         * Scale in only after the size has been unneeded this long.
         */
        scaleDownUnneededSeconds: number;
        /**
         * No scale-out this soon after the last scale-out.
         */
        scaleUpCooldownSeconds: number;
        /**
         * No scale-in this soon after the last scale-out.
         */
        delayAfterAddSeconds: number;
        /**
         * No scale-in this soon after the last scale-in.
         */
        delayAfterDeleteSeconds: number;
        /**
         * No scaling this soon after an error.
         */
        delayAfterErrorSeconds: number;
        /**
         * A VM not ready this long after creation counts as unready. Defaults to readiness.timeoutSeconds.
         */
        maxProvisionSeconds?: number;
        /**
         * Stop scaling when more than this percent of members are unready...
         */
        maxUnreadyPercent: number;
        /**
         * ...and more than this many.
         */
        maxUnreadyCount: number;
      };
    };
    /**
     * Leave the group as it is: no plan changes it (reconcile skips it).
     */
    suspend: boolean;
    /**
     * What happens to running VMs made from an older template: rolling replaces them (create, wait for ready, then delete), manual only shows them until `apply -replace`.
     */
    rollout: {
      /**
       * rolling: replaced by plans, a batch at a time; manual: shown as out of date, replaced only by apply -replace.
       */
      strategy: "rolling" | "manual";
      /**
       * VMs above the desired size while replacing: a number or a percentage of the size (rounded up).
       */
      maxSurge: number | string;
      /**
       * VMs that may be gone before their replacement is ready: a number or a percentage (rounded down).
       */
      maxUnavailable: number | string;
      /**
       * Percentages of the roll-out after which it pauses (AWS instance refresh), e.g. [20, 50, 100].
       */
      checkpoints: number[];
      /**
       * How long a roll-out pauses at each checkpoint.
       */
      checkpointPauseSeconds: number;
      /**
       * When a roll-out's new VMs fail (no check-in, a hook abandons one, the host refuses one), replace the VMs it already replaced with the template the group ran before, and refuse the failed template until the config's template changes (AWS instance refresh's auto roll-back). false: a failed roll-out stops where it is.
       */
      rollback: boolean;
    };
    /**
     * VMs older than this are replaced through the roll-out path (protected ones excepted).
     */
    maxInstanceLifetimeSeconds?: number;
    /**
     * VMs made ahead of need (booted once and checked in), kept outside the group; a scale-out takes one instead of creating a VM, and the pool is refilled (AWS warm pools). Give size or maxPrepared, or neither (then maxPrepared is max).
     */
    warmPool?: {
      /**
       * Pool VMs to keep.
       */
      size?: number;
      /**
       * Members and pool VMs together at most: the pool holds maxPrepared minus the desired size.
       */
      maxPrepared?: number;
      /**
       * stopped: shut off after their first boot, started when taken (the guest signals each boot); running: kept running, ready at once when taken; paused: suspended in memory after their first boot (no guest CPU while waiting, their memory held), resumed when taken.
       */
      state: "stopped" | "running" | "paused";
      /**
       * Scale-in returns members to the pool (stopped or paused, as the pool keeps them) instead of destroying them, while the pool has room.
       */
      reuseOnScaleIn: boolean;
    };
    /**
     * Users' hooks around each VM's launch and termination, run in this order at each point.
     *
     * Items: A lifecycle hook: a command or a signed HTTP call that runs when a VM of the group is launching (after it is up, before it counts as ready) or terminating (before it is destroyed). Give exactly one of command and http.
     */
    lifecycleHooks: {
      /**
       * Unique in the group; apply shows it as the step hook:<name>.
       */
      name: string;
      /**
       * launching: after the VM started and checked in; abandon gives the VM up (it is destroyed). terminating: before the VM is destroyed; abandon keeps it (the scale-in fails, the next apply asks again).
       */
      on: "launching" | "terminating";
      /**
       * Program and arguments, run without a shell, in the config file's directory, with the event as JSON on stdin and as PREMISCALE_HOOK_* variables. Exit 0: continue; else abandon. A line `heartbeat` on stdout restarts the timeout. A relative program is relative to this file, a bare name is looked up on PATH.
       *
       * @minItems 1
       */
      command?: string[];
      /**
       * POST the event as JSON, signed like GitHub webhooks (X-Premiscale-Signature-256: sha256=HMAC of the body). 2xx: continue, or the body's {"result": "continue"|"abandon", "message"}; 202: still working, asked again after Retry-After (or 5 s); no connection, 408, 429 or 5xx: retried until the timeout.
       */
      http?: {
        /**
         * http:// or https:// URL, without credentials.
         */
        url: string;
        /**
         * Environment variable holding the HMAC secret; read by apply only.
         */
        secretEnv: string;
      };
      /**
       * Heartbeat timeout: how long the hook may run without finishing or a heartbeat; then its defaultResult is taken.
       */
      timeoutSeconds: number;
      /**
       * The result when the hook times out or its HTTP endpoint cannot be reached in time.
       */
      defaultResult: "continue" | "abandon";
    }[];
    /**
     * This group is a cluster-autoscaler node group: cluster-autoscaler decides its size and which VMs go, and each new VM joins the cluster (needs the top-level kubernetes block).
     */
    kubernetes?: {
      /**
       * How VMs join: a kubeadm JoinConfiguration, a k3s or rke2 agent config, or none (the image joins by itself; premiscale only waits for its Node).
       */
      join: "kubeadm" | "k3s" | "rke2" | "none";
      /**
       * k3s / rke2: the server URL agents register with (https://host:6443; rke2: https://host:9345).
       */
      server?: string;
      /**
       * Labels every node of the group has (kubelet --node-labels, and the scale-from-zero template); keys are Kubernetes label keys.
       */
      labels: {
        /**
         * A label value.
         *
         * This interface was referenced by `undefined`'s JSON-Schema definition
         * via the `patternProperty` "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$".
         */
        [k: string]: string;
      };
      /**
       * Taints every node of the group registers with.
       *
       * Items: A taint.
       */
      taints: {
        /**
         * Taint key.
         */
        key: string;
        /**
         * Taint value.
         */
        value?: string;
        /**
         * Effect.
         */
        effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
      }[];
      /**
       * Pods per node (kubelet --max-pods; the template's pods capacity).
       */
      maxPods: number;
      /**
       * Held back from the node's allocatable (kube-reserved + system-reserved), as the kubelet is configured.
       */
      reserved: {
        /**
         * CPU, in millicores.
         */
        cpuMillis: number;
        /**
         * Memory, in MiB.
         */
        memoryMiB: number;
      };
      /**
       * The node's ephemeral-storage capacity in the scale-from-zero template (absent: not declared).
       */
      ephemeralStorageGiB?: number;
      /**
       * auth-extra-groups of each VM's bootstrap token. Default: system:bootstrappers:kubeadm:default-node-token (kubeadm), system:bootstrappers:k3s:default-node-token (k3s, rke2).
       *
       * @minItems 1
       */
      tokenGroups?: string[];
      /**
       * Lifetime of each VM's bootstrap token. Default: readiness.timeoutSeconds.
       */
      tokenTtlSeconds?: number;
      /**
       * Overrides of cluster-autoscaler's options for this group (NodeGroupGetOptions); the rest are its own defaults, echoed.
       */
      autoscaling: {
        /**
         * Scale a node down below this utilisation.
         */
        scaleDownUtilizationThreshold?: number;
        /**
         * The same for GPU nodes.
         */
        scaleDownGpuUtilizationThreshold?: number;
        /**
         * A node must be unneeded this long before it goes.
         */
        scaleDownUnneededSeconds?: number;
        /**
         * An unready node must be unneeded this long before it goes.
         */
        scaleDownUnreadySeconds?: number;
        /**
         * How long cluster-autoscaler waits for a new node. Default: readiness.timeoutSeconds + 60, so premiscale gives up on a VM (and reports it) first.
         */
        maxNodeProvisionSeconds?: number;
        /**
         * Scale the group between 0 and max at once.
         */
        zeroOrMaxNodeScaling?: boolean;
        /**
         * Leave DaemonSet pods out of the utilisation.
         */
        ignoreDaemonSetsUtilization?: boolean;
        /**
         * Native mode: how many of this group's nodes may go at once, a count (2) or a share of its nodes (10%). Default: kubernetes.native.scaleDown.budget.
         */
        disruptionBudget?: string;
        /**
         * Native mode: this group's disruption budgets on a schedule, instead of kubernetes.native.scaleDown.budgets (an empty list: none).
         *
         * @maxItems 50
         *
         * Items: A disruption budget in force for `duration` after each time `schedule` fires; the most restrictive budget in force wins.
         */
        disruptionBudgets?: {
          /**
           * How many of the group's nodes may go at once while it is in force: a count (0 stops scale-down) or a share of its nodes (10%, rounded up).
           */
          nodes: string;
          /**
           * When it comes into force: a five-field cron (minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5") or @daily, @weekly...
           */
          schedule: string;
          /**
           * IANA time zone the schedule is read in (Europe/Berlin).
           */
          timezone: string;
          /**
           * How long it stays in force after each run of the schedule: hours and minutes (8h, 30m, 1h30m).
           */
          duration: string;
        }[];
      };
    };
    /**
     * When a new VM counts as ready. Apply waits for it; one that is not ready in time is destroyed and reported.
     */
    readiness: {
      /**
       * true: wait for the VM to check in (premiscale adds cloud-init phone_home with a per-VM token to its user-data; needs a #cloud-config user-data and a guest running cloud-init). false: ready once started.
       */
      checkIn: boolean;
      /**
       * How long a new VM has to check in (max provision time).
       */
      timeoutSeconds: number;
      /**
       * 0: off. Else the VM's user-data gets a loop that POSTs a heartbeat this often (curl or wget), and a VM not heard from for unhealthyAfterSeconds is replaced.
       */
      heartbeatSeconds: number;
      /**
       * A VM without a heartbeat (or check-in) for this long is unhealthy and replaced (at most a quarter of the group per plan).
       */
      unhealthyAfterSeconds: number;
    };
  }[];
}
