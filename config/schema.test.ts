import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { configFragments } from "../providers/index.js";
import { configSchema as schemaFor, schemaJson as jsonFor } from "./schema.js";

// The committed schema has every kind premiscale knows.
const configSchema = schemaFor(configFragments);
const schemaJson = () => jsonFor(configFragments);

const committed = fileURLToPath(new URL("./premiscale.schema.json", import.meta.url));

// Regenerate with: UPDATE_SCHEMA=1 npx vitest run --project unit config/schema.test.ts
if (process.env.UPDATE_SCHEMA) writeFileSync(committed, schemaJson());

/** Every property schema under `schema`, with its path. */
function properties(schema: Record<string, unknown>, at = "#"): [string, Record<string, unknown>][] {
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const items = schema.items as Record<string, unknown> | undefined;
  const branches = (schema.allOf ?? []) as { then?: Record<string, unknown> }[];
  return [
    ...Object.entries(props).flatMap(([k, v]) => [[`${at}.${k}`, v] as [string, Record<string, unknown>], ...properties(v, `${at}.${k}`)]),
    ...(items ? properties(items, `${at}[]`) : []),
    // Objects whose fields depend on their `type` (policies, metrics stores) list them per branch.
    ...branches.flatMap((b, i) => (b.then ? properties(b.then, `${at}{${i}}`) : [])),
  ];
}

describe("config schema", () => {
  it("matches the committed premiscale.schema.json, so editors see what the loader enforces", () => {
    expect(readFileSync(committed, "utf8")).toBe(schemaJson());
  });

  it("compiles in ajv's strict mode", () => {
    expect(() => new Ajv({ strict: true, strictRequired: false }).compile(configSchema)).not.toThrow();
  });

  it("describes every property and forbids unknown fields in every object", () => {
    const all = properties(configSchema);
    expect(all.length).toBeGreaterThan(30);
    for (const [at, p] of all) {
      expect(p.description, at).toEqual(expect.any(String));
      if (p.type === "object") {
        const branches = (p.allOf ?? []) as { then?: { additionalProperties?: unknown } }[];
        const closed = p.additionalProperties === false || (branches.length > 0 && branches.every((b) => b.then?.additionalProperties === false));
        expect(closed, `${at} must forbid unknown fields (directly, or in every type branch)`).toBe(true);
      }
    }
  });
});
