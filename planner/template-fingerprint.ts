/**
 * What an instance was made from, kept in state beside it so that a changed template shows as drift with the fields
 * that changed (`memoryMiB 128 → 256`), like Terraform's `-/+ replace`. Pure.
 */
import { createHash } from "node:crypto";
import type { GroupConfig, VmTemplate } from "../config/types.js";
import type { ProviderSettings } from "../providers/provider.js";

/** Field path → value (numbers and short strings as they are, long strings as a short hash). */
export type TemplateFingerprint = Record<string, string | number | boolean>;

const short = (text: string): string => `sha256:${createHash("sha256").update(text).digest("hex").slice(0, 12)}`;

function flatten(value: unknown, at: string, out: TemplateFingerprint): void {
  if (value === undefined || value === null) return;
  if (typeof value === "number" || typeof value === "boolean") out[at] = value;
  else if (typeof value === "string") out[at] = value.length > 64 || value.includes("\n") ? short(value) : value;
  else if (Array.isArray(value)) out[at] = value.every((v) => typeof v !== "object") && JSON.stringify(value).length <= 64 ? JSON.stringify(value) : short(JSON.stringify(value));
  else for (const [k, v] of Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) flatten(v, at ? `${at}.${k}` : k, out);
}

/**
 * The fingerprint of a group's template as made on a host: its vCPUs, memory, user-data (hashed) and the provider
 * settings the host's adapter gave for it (base image, pool, accelerator…), which is where most roll-outs start.
 */
export function templateFingerprint(group: GroupConfig, settings: ProviderSettings): TemplateFingerprint {
  const out: TemplateFingerprint = {};
  flatten({ vcpus: group.template.vcpus, memoryMiB: group.template.memoryMiB, userData: group.template.userData, settings }, "", out);
  return out;
}

/** The fields that differ between what an instance was made from and what the template is now, for people. */
export function fingerprintChanges(was: TemplateFingerprint, now: TemplateFingerprint): string[] {
  const keys = [...new Set([...Object.keys(was), ...Object.keys(now)])].sort();
  const show = (v: string | number | boolean | undefined) => (v === undefined ? "(none)" : typeof v === "string" && !v.startsWith("sha256:") ? JSON.stringify(v) : String(v));
  return keys.filter((k) => was[k] !== now[k]).map((k) => (String(was[k]).startsWith("sha256:") || String(now[k]).startsWith("sha256:") ? `${k} changed` : `${k} ${show(was[k])} → ${show(now[k])}`));
}

/** A short stable id of a fingerprint (for roll-out records). */
export function fingerprintId(fp: TemplateFingerprint): string {
  return short(JSON.stringify(Object.entries(fp).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/**
 * A short stable id of a config template itself (size, user-data, the kinds' settings): the same whatever the hosts
 * answer, so roll-out records and roll-backs name templates by it.
 */
export function templateDigest(template: VmTemplate): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v !== null && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])])) : v;
  const { vcpus, memoryMiB, userData, secretEnv, settings } = template;
  return short(JSON.stringify(canonical({ vcpus, memoryMiB, userData, secretEnv, settings })));
}
