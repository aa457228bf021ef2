import { createHash } from "node:crypto";
import { PlanRejectedError } from "../config/errors.js";
import { PLAN_FORMAT_VERSION, type Plan } from "./plan.js";

const AGAIN = "run premiscale plan again";
const READ_MAJOR = Number(PLAN_FORMAT_VERSION.split(".")[0]);

/** A copy with object keys in sorted order at every depth, so equal plans serialise identically. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const record = value as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(record)
      .sort()
      .filter((k) => record[k] !== undefined)
      .map((k) => [k, sortKeys(record[k])]),
  );
}

const checksumOf = (body: unknown): string => createHash("sha256").update(JSON.stringify(sortKeys(body))).digest("hex");

/** The plan as stable, indented JSON with a `checksum` (sha256 of the canonical JSON without it). */
export function serializePlan(plan: Plan): string {
  return JSON.stringify({ ...(sortKeys(plan) as object), checksum: checksumOf(plan) }, null, 2) + "\n";
}

/** Reads a plan written by `serializePlan`, refusing one that is not JSON, of a newer major format, or altered. */
export function parsePlan(text: string): Plan {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new PlanRejectedError(`plan file is not valid JSON: ${(cause as Error).message}`, "plan_invalid", AGAIN, { cause });
  }
  if (data === null || typeof data !== "object" || Array.isArray(data) || !("format_version" in data))
    throw new PlanRejectedError("plan file is not a premiscale plan (no format_version)", "plan_invalid", AGAIN);
  const { checksum, ...body } = data as Record<string, unknown>;
  const version = String(body.format_version);
  const major = /^(\d+)\.\d+$/.exec(version)?.[1];
  if (major === undefined)
    throw new PlanRejectedError(`plan format "${version}" is not one premiscale knows`, "plan_invalid", AGAIN);
  if (Number(major) > READ_MAJOR)
    throw new PlanRejectedError(
      `plan format ${major}.x is newer than this premiscale reads (${READ_MAJOR}.x): upgrade premiscale`,
      "plan_format_newer",
      "upgrade premiscale",
    );
  if (Number(major) < READ_MAJOR)
    throw new PlanRejectedError(
      `plan format ${major}.x was written by an older premiscale (this one reads ${READ_MAJOR}.x, which has warm pool moves and refresh-only plans): ${AGAIN}`,
      "plan_format_older",
      AGAIN,
    );
  if (typeof checksum !== "string" || checksum !== checksumOf(body))
    throw new PlanRejectedError(`plan file was altered after it was written: ${AGAIN}`, "plan_altered", AGAIN);
  return body as unknown as Plan;
}

/**
 * Refuses a plan that may no longer be applied: it has errors, it was made for another state (lineage) or an
 * older one (serial), or it has expired. `state` is null when no state exists yet.
 */
export function checkPlanApplicable(plan: Plan, state: { lineage: string; serial: number } | null, now: Date): void {
  if (plan.errors.length > 0)
    throw new PlanRejectedError(
      `plan has errors, so it cannot be applied: ${plan.errors.map((e) => `group "${e.group}": ${e.message}`).join("; ")}`,
      "plan_has_errors",
      `fix them and ${AGAIN}`,
    );
  const planned = plan.based_on.lineage;
  const actual = state?.lineage ?? null;
  if (planned === null && state)
    throw new PlanRejectedError(
      `Saved plan is stale: it was made before any state existed, and state now exists (serial ${state.serial}): ${AGAIN}`,
      "plan_stale",
      AGAIN,
    );
  if (planned !== actual)
    throw new PlanRejectedError(
      `plan was made for state lineage ${planned ?? "(no state yet)"}, state is ${actual ?? "(none)"}: ${AGAIN}`,
      "plan_lineage_mismatch",
      AGAIN,
    );
  const serial = state?.serial ?? 0;
  if (plan.based_on.serial !== serial)
    throw new PlanRejectedError(
      `Saved plan is stale: state serial is ${serial}, the plan was made at serial ${plan.based_on.serial}: ${AGAIN}`,
      "plan_stale",
      AGAIN,
    );
  const expires = Date.parse(plan.expires_at);
  if (!(expires > now.getTime()))
    throw new PlanRejectedError(
      `plan expired at ${plan.expires_at} (${Math.round((now.getTime() - expires) / 60_000)} min ago; made at ${plan.created_at}): ${AGAIN}`,
      "plan_expired",
      AGAIN,
    );
}
