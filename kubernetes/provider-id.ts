/**
 * How a premiscale VM is named to Kubernetes: its Node's `spec.providerID` (kubelet --provider-id) and its
 * cluster-autoscaler instance id are both `premiscale://<group>/<instance uuid>`. cluster-autoscaler matches
 * instances to Nodes by this string, and names the fake Node of an instance that never registered after it.
 */

/** The scheme of premiscale's provider IDs. */
export const PROVIDER_ID_PREFIX = "premiscale://";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The provider ID of a group's instance. */
export function providerIdOf(group: string, uuid: string): string {
  return `${PROVIDER_ID_PREFIX}${group}/${uuid}`;
}

/** The group and instance uuid of a premiscale provider ID, or null when it is not one. */
export function parseProviderId(id: string): { group: string; uuid: string } | null {
  if (!id.startsWith(PROVIDER_ID_PREFIX)) return null;
  const rest = id.slice(PROVIDER_ID_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return null;
  const group = rest.slice(0, slash);
  const uuid = rest.slice(slash + 1).toLowerCase();
  return UUID.test(uuid) ? { group, uuid } : null;
}
