/**
 * premiscale's ownership marker on a PVE VM. The description carries the record (instance id, group, lineage,
 * created-at): written by the clone itself, so a VM is marked from the moment it exists, even when premiscale dies
 * right after. The tags `premiscale` and `premiscale-<instance id>`, written when the VM is configured, let observe
 * recognise the VMs state knows from `/cluster/resources` alone (which lists tags but not descriptions).
 */

/** What the marker records. */
export interface Marker {
  instance: string;
  group: string;
  lineage: string;
  createdAt: string;
}

/** The tag on every VM premiscale made. */
export const OWNER_TAG = "premiscale";

const INSTANCE_TAG_RE = /^premiscale-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const MARKER_LINE_RE = /^premiscale:v1 (.*)$/m;

/** The tag naming a VM's instance id. */
export function instanceTag(uuid: string): string {
  return `premiscale-${uuid.toLowerCase()}`;
}

/** Splits a PVE tag list (`;`-separated as PVE stores it; `,` and spaces are accepted on input). */
export function splitTags(tags: string | undefined): string[] {
  return (tags ?? "").split(/[;, ]+/).filter(Boolean);
}

/** The instance id a VM's tags name, or null. */
export function instanceFromTags(tags: string | undefined): string | null {
  for (const t of splitTags(tags)) {
    const m = INSTANCE_TAG_RE.exec(t.toLowerCase());
    if (m) return m[1]!;
  }
  return null;
}

/** The tags of a new VM: the template's own ones (except premiscale's), then premiscale's two. */
export function vmTags(templateTags: string | undefined, uuid: string): string[] {
  const own = splitTags(templateTags).filter((t) => t.toLowerCase() !== OWNER_TAG && !INSTANCE_TAG_RE.test(t.toLowerCase()));
  return [...own, OWNER_TAG, instanceTag(uuid)];
}

/** The description a VM is cloned with: a sentence for people, and the marker line. */
export function markerDescription(m: Marker): string {
  return (
    `Made by premiscale for group ${m.group}. premiscale replaces or removes it as the group needs: change the group's config, not this VM.\n` +
    `premiscale:v1 instance=${m.instance} group=${m.group} lineage=${m.lineage} created=${m.createdAt}\n`
  );
}

/** The marker in a VM's description, or null when it has none (or a broken one). */
export function parseMarker(description: string | undefined): Marker | null {
  const m = MARKER_LINE_RE.exec(description ?? "");
  if (!m) return null;
  const kv = new Map<string, string>();
  for (const part of m[1]!.trim().split(/\s+/)) {
    const i = part.indexOf("=");
    if (i > 0) kv.set(part.slice(0, i), part.slice(i + 1));
  }
  const instance = kv.get("instance");
  const group = kv.get("group");
  const lineage = kv.get("lineage");
  const createdAt = kv.get("created");
  if (!instance || !group || !lineage || !createdAt) return null;
  return { instance, group, lineage, createdAt };
}
