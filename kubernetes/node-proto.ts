/**
 * A k8s.io/api core/v1 Node in protobuf, as cluster-autoscaler's NodeGroupTemplateNodeInfo wants it (v1.Node
 * bytes that Go's `Node.Unmarshal` reads). Written by hand to the field numbers of protos/k8s-node.proto: a few
 * dozen lines of wire format instead of a second protobuf runtime; the tests decode the bytes with a decoder
 * generated from that file. Maps are written sorted by key, so the same Node always gives the same bytes.
 */

/** The parts of a Node premiscale writes. */
export interface NodeObject {
  name: string;
  uid?: string;
  creationTimestamp?: Date;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  providerID?: string;
  unschedulable?: boolean;
  taints: { key: string; value?: string; effect: string }[];
  /** Resource name → canonical quantity ("2", "4096Mi", "110"). */
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
  phase?: string;
  conditions: { type: string; status: string; lastHeartbeatTime?: Date; lastTransitionTime?: Date; reason?: string; message?: string }[];
  nodeInfo?: { operatingSystem: string; architecture: string };
}

/** Protobuf wire format, only what a Node needs: varints, length-delimited fields, nested messages. */
class Writer {
  private readonly chunks: Buffer[] = [];

  private varint(n: bigint): void {
    const out: number[] = [];
    let v = BigInt.asUintN(64, n);
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.chunks.push(Buffer.from(out));
  }

  private key(field: number, wireType: 0 | 2): void {
    this.varint(BigInt((field << 3) | wireType));
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(BigInt(b.length));
    this.chunks.push(Buffer.from(b));
    return this;
  }

  /** A string field; proto2 optional: written when defined (also when empty, as Go's gogo marshaller does). */
  string(field: number, s: string | undefined): this {
    return s === undefined ? this : this.bytes(field, Buffer.from(s, "utf8"));
  }

  int(field: number, n: number | bigint | undefined): this {
    if (n === undefined) return this;
    this.key(field, 0);
    this.varint(BigInt(n));
    return this;
  }

  bool(field: number, b: boolean | undefined): this {
    return b === undefined ? this : this.int(field, b ? 1 : 0);
  }

  message(field: number, build: ((w: Writer) => void) | undefined): this {
    if (!build) return this;
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  /** A map field: one entry message {key = 1, value = 2} per pair, by key. */
  map<V>(field: number, m: Record<string, V> | undefined, value: (w: Writer, v: V) => void): this {
    for (const k of Object.keys(m ?? {}).sort()) this.message(field, (e) => (e.string(1, k), value(e, m![k]!)));
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** meta/v1 Time {seconds = 1, nanos = 2}. */
function time(d: Date | undefined): ((w: Writer) => void) | undefined {
  if (!d) return undefined;
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return (w) => void w.int(1, seconds).int(2, (ms - seconds * 1000) * 1_000_000);
}

/** resource.Quantity {string = 1}. */
const quantity = (w: Writer, q: string): void => void w.string(1, q);

/** The v1.Node's protobuf bytes (k8s.io/api core/v1 field numbers; see protos/k8s-node.proto). */
export function encodeNode(n: NodeObject): Buffer {
  return new Writer()
    .message(1, (m) =>
      m
        .string(1, n.name)
        .string(5, n.uid)
        .message(8, time(n.creationTimestamp))
        .map(11, n.labels, (e, v) => void e.string(2, v))
        .map(12, n.annotations, (e, v) => void e.string(2, v)),
    )
    .message(2, (s) => {
      s.string(3, n.providerID).bool(4, n.unschedulable);
      for (const t of n.taints) s.message(5, (w) => void w.string(1, t.key).string(2, t.value ?? "").string(3, t.effect));
    })
    .message(3, (st) => {
      st.map(1, n.capacity, (e, q) => void e.message(2, (w) => quantity(w, q)))
        .map(2, n.allocatable, (e, q) => void e.message(2, (w) => quantity(w, q)))
        .string(3, n.phase);
      for (const c of n.conditions) {
        st.message(4, (w) =>
          void w
            .string(1, c.type)
            .string(2, c.status)
            .message(3, time(c.lastHeartbeatTime))
            .message(4, time(c.lastTransitionTime))
            .string(5, c.reason)
            .string(6, c.message),
        );
      }
      if (n.nodeInfo) st.message(7, (w) => void w.string(9, n.nodeInfo!.operatingSystem).string(10, n.nodeInfo!.architecture));
    })
    .finish();
}
