/**
 * The leader's EndpointSlice: so that cluster-autoscaler dials only the replica that holds the Lease (the only one
 * whose externalgrpc listener runs), the leader writes the `discovery.k8s.io/v1` EndpointSlice of a selector-less
 * Service with its own address and port, and empties it when it stops leading. Kubernetes' own endpointslice
 * controller leaves a selector-less Service's slices alone, and kube-proxy and DNS follow them like any other.
 *
 *   leading ──publish()──▶ slice = [this replica]      (at the start of each term, once the listener is up; again at
 *      │                                                each renewal until one write succeeded)
 *   stopped leading ──clear()──▶ slice = []            (only while it still names this replica)
 *
 * Why it is safe with several replicas:
 * - **Every write is conditional** on the resourceVersion just read (create answers 409 when another created it):
 *   a write based on what someone else has since overwritten fails instead of undoing it.
 * - **Clear only what is ours**: the slice carries the writer's identity (`premiscale.io/leader`); an old leader
 *   whose clear comes after the new leader's publish finds another identity and leaves the slice alone.
 * - **A failure never stops leading**: it is reported (`leader_endpoint_failed`, once per distinct error while it
 *   lasts) and the next renewal tries again.
 *   The cost of a slice that is late or stale is cluster-autoscaler retrying its call, never two leaders.
 *
 * One operation at a time: publish and clear run in order, so a clear always follows a publish still in flight.
 */
import { isIP } from "node:net";
import { PremiscaleError } from "../../config/errors.js";
import { KubeApiError, rbacError, statusMessage, type KubeApi, type KubeResponse } from "../kube-api.js";

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
/** The label saying who manages a slice (Kubernetes' controllers leave slices managed by others alone). */
export const MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by";
/** Our value of `MANAGED_BY_LABEL`. */
export const MANAGED_BY = "premiscale";
/** The annotation naming the identity (leader election's) of the replica the slice points at. */
export const LEADER_ANNOTATION = "premiscale.io/leader";

/** What the endpoint writer reports (serve logs them; nothing here prints). */
export type LeaderEndpointEvent =
  | { type: "leader_endpoint_published"; slice: string; address: string; port: number }
  | { type: "leader_endpoint_cleared"; slice: string; address: string }
  /** clear() found the slice naming another replica (a new leader wrote it): left as it is. */
  | { type: "leader_endpoint_left"; slice: string; holder: string }
  | { type: "leader_endpoint_failed"; slice: string; action: "publish" | "clear"; error: string };

/** Options of `leaderEndpoint`. */
export interface LeaderEndpointOptions {
  api: KubeApi;
  /** The Service's (and the slice's) namespace. */
  namespace: string;
  /** The selector-less Service; its slice has the same name. */
  service: string;
  /** Leader election's identity of this replica. */
  identity: string;
  /** This replica's IP address (IPv4 or IPv6: the slice's addressType follows it). */
  address: string;
  /** The externalgrpc port this replica listens on. */
  port: number;
  /** The Service port's name ("" for a Service with one unnamed port). */
  portName: string;
  onEvent?(e: LeaderEndpointEvent): void;
}

/** A running endpoint writer. */
export interface LeaderEndpoint {
  /** Whether the slice names this replica as far as the last write knows (reset by a failure and by clear). */
  readonly published: boolean;
  /**
   * Makes the slice name this replica, unless the last publish already did (then no call): the leader calls it when
   * its term starts and at each renewal. Nothing is written once `signal` aborted. Resolves to whether the slice
   * names this replica; never rejects (a failure is an event).
   */
  publish(signal: AbortSignal): Promise<boolean>;
  /** Empties the slice if it still names this replica (after any publish in flight). Never rejects. */
  clear(): Promise<void>;
}

/** Conflicting writes retried at once, within one publish or clear, before it counts as failed. */
const ATTEMPTS = 3;

/**
 * This replica's address from `env[name]` (`kubernetes.leaderElection.endpoint.addressEnv`); throws a
 * `PremiscaleError` naming the variable and the fix when it is unset or not an IP address.
 */
export function leaderAddress(env: Record<string, string | undefined>, name: string): string {
  const v = env[name]?.trim() ?? "";
  if (v === "") {
    throw new PremiscaleError(
      `kubernetes.leaderElection.endpoint.addressEnv: the environment variable ${name} is not set, so the leader cannot write its address into the Service's EndpointSlice`,
      "leader_address_unset",
      `set ${name} to this replica's IP (in a pod: env ${name} from fieldRef status.podIP, as the Helm chart does)`,
    );
  }
  if (isIP(v) === 0) {
    throw new PremiscaleError(`kubernetes.leaderElection.endpoint.addressEnv: ${name} is ${JSON.stringify(v.slice(0, 80))}, not an IP address (an EndpointSlice holds addresses, not names)`, "leader_address_invalid", `set ${name} to this replica's IPv4 or IPv6 address`);
  }
  return v;
}

/** Creates the writer (no call yet). */
export function leaderEndpoint(o: LeaderEndpointOptions): LeaderEndpoint {
  const slice = `${o.namespace}/${o.service}`;
  const path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(o.namespace)}/endpointslices`;
  const addressType = isIP(o.address) === 6 ? "IPv6" : "IPv4";
  const emit = (e: LeaderEndpointEvent) => {
    try {
      o.onEvent?.(e);
    } catch {
      // a broken listener must not break leading
    }
  };
  const failure = (verb: string, res: KubeResponse): Error =>
    res.status === 403 ? rbacError(res, { verb, resource: "endpointslices", group: "discovery.k8s.io", namespace: o.namespace }) : new KubeApiError(`${verb} EndpointSlice ${slice}: ${statusMessage(res)}`, res.status);

  let published = false;
  // A publish failing the same way at every renewal is said once (until it succeeds or fails otherwise).
  let lastPublishError = "";
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    const next = queue.then(op);
    queue = next.catch(() => undefined);
    return next;
  };

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  type Slice = any;
  const read = async (): Promise<Slice | null> => {
    const r = await o.api.request("GET", `${path}/${encodeURIComponent(o.service)}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw failure("get", r);
    return r.body;
  };
  const ours = (s: Slice | null): boolean => s?.metadata?.annotations?.[LEADER_ANNOTATION] === o.identity;
  const names = (s: Slice | null): boolean =>
    ours(s) &&
    s.addressType === addressType &&
    s.endpoints?.length === 1 &&
    s.endpoints[0].addresses?.length === 1 &&
    s.endpoints[0].addresses[0] === o.address &&
    s.endpoints[0].conditions?.ready === true &&
    s.ports?.length === 1 &&
    (s.ports[0].name ?? "") === o.portName &&
    s.ports[0].port === o.port;

  /** The slice as this replica wants it, keeping the labels and annotations others put on it. */
  const body = (current: Slice | null, endpoints: unknown[], holder: string | null): Slice => {
    const annotations: Record<string, string> = { ...(current?.metadata?.annotations ?? {}) };
    if (holder === null) delete annotations[LEADER_ANNOTATION];
    else annotations[LEADER_ANNOTATION] = holder;
    return {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: o.service,
        namespace: o.namespace,
        labels: { ...(current?.metadata?.labels ?? {}), [SERVICE_NAME_LABEL]: o.service, [MANAGED_BY_LABEL]: MANAGED_BY },
        ...(Object.keys(annotations).length ? { annotations } : {}),
        ...(current?.metadata?.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}),
      },
      addressType,
      endpoints,
      ports: [{ ...(o.portName ? { name: o.portName } : {}), port: o.port, protocol: "TCP" }],
    };
  };
  const endpoint = { addresses: [o.address], conditions: { ready: true, serving: true, terminating: false } };

  /** One write: true when done, false on a conflict (someone wrote since the read: read again). */
  const write = async (current: Slice | null, next: Slice): Promise<boolean> => {
    const r = current ? await o.api.request("PUT", `${path}/${encodeURIComponent(o.service)}`, next) : await o.api.request("POST", path, next);
    if (r.status === 200 || r.status === 201) return true;
    if (r.status === 409) return false;
    throw failure(current ? "update" : "create", r);
  };

  /** The error after ATTEMPTS conflicts in a row, in a publish or a clear. */
  const conflicts = () => new KubeApiError(`EndpointSlice ${slice}: ${ATTEMPTS} conflicting writes in a row (another writer keeps changing it)`, 409, "check what else writes this slice: only premiscale's leader should");
  const publishedNow = (): true => {
    published = true;
    lastPublishError = "";
    emit({ type: "leader_endpoint_published", slice, address: o.address, port: o.port });
    return true;
  };

  const doPublish = async (signal: AbortSignal): Promise<boolean> => {
    if (published) return true;
    try {
      for (let i = 0; i < ATTEMPTS; i++) {
        if (signal.aborted) return false;
        const current = await read();
        if (names(current)) return publishedNow();
        if (current && current.addressType !== addressType) {
          throw new KubeApiError(
            `EndpointSlice ${slice} has addressType ${current.addressType}, but this replica's address ${o.address} is ${addressType} (addressType cannot change)`,
            null,
            `delete EndpointSlice ${slice}: the leader makes it again`,
          );
        }
        if (signal.aborted) return false;
        if (await write(current, body(current, [endpoint], o.identity))) return publishedNow();
      }
      throw conflicts();
    } catch (e) {
      const error = (e as Error).message;
      if (error !== lastPublishError) emit({ type: "leader_endpoint_failed", slice, action: "publish", error });
      lastPublishError = error;
      return false;
    }
  };

  const doClear = async (): Promise<void> => {
    published = false;
    try {
      for (let i = 0; i < ATTEMPTS; i++) {
        const current = await read();
        if (current === null) return;
        if (!ours(current)) {
          const holder = current.metadata?.annotations?.[LEADER_ANNOTATION] ?? "";
          if (holder) emit({ type: "leader_endpoint_left", slice, holder });
          return;
        }
        if (await write(current, body(current, [], null))) {
          emit({ type: "leader_endpoint_cleared", slice, address: o.address });
          return;
        }
      }
      throw conflicts();
    } catch (e) {
      emit({ type: "leader_endpoint_failed", slice, action: "clear", error: (e as Error).message });
    }
  };

  return {
    get published() {
      return published;
    },
    publish: (signal) => serial(() => doPublish(signal)),
    clear: () => serial(doClear),
  };
}
