/**
 * Roll-backs of failed roll-outs (issue 14): which template a group goes back to, and the group as plans then see it.
 * Pure; the pipeline uses `rolledBackTo` and `previousFitKey` to ask the hosts about the previous template too.
 */
import type { GroupConfig, VmTemplate } from "../config/types.js";
import type { GroupState, TemplateRecord } from "../state/types.js";
import { templateDigest } from "./template-fingerprint.js";

/**
 * The key under which hosts are asked about a group's previous template (observe `templates`, answered in `fits`):
 * never a group name, as `@` is not allowed in one.
 */
export function previousFitKey(group: string): string {
  return `${group}@previous`;
}

/** A config template kept whole, with its digest: what state records as a group's template. */
export function templateRecord(template: VmTemplate): TemplateRecord {
  const { vcpus, memoryMiB, userData, secretEnv, settings } = template;
  return { digest: templateDigest(template), vcpus, memoryMiB, userData, secretEnv: [...secretEnv], settings: structuredClone(settings) };
}

/**
 * The template a group goes back to: its state records that a roll-out of the config's current template failed and
 * is rolled back (`rollout.rollback`, with the pinned previous template), and the group has roll-back on. Null
 * otherwise: the config's template is the group's.
 */
export function rolledBackTo(group: GroupConfig, state: GroupState | undefined): TemplateRecord | null {
  const r = state?.rollout;
  if (!group.rollout.rollback || !r?.rollback || !r.previous || r.config === undefined) return null;
  if (r.config !== templateDigest(group.template) || r.previous.digest === r.config) return null;
  return r.previous;
}

/** The group as plans see it while it is rolled back: its config with the previous template in place of the refused one. */
export function effectiveGroup(group: GroupConfig, previous: TemplateRecord): GroupConfig {
  const { vcpus, memoryMiB, userData, secretEnv, settings } = previous;
  return { ...group, template: { vcpus, memoryMiB, userData, secretEnv: [...secretEnv], settings: structuredClone(settings) } };
}

