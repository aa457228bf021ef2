import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { compile } from "json-schema-to-typescript";
import { describe, expect, it } from "vitest";
import { configFragments } from "../providers/index.js";
import { configSchema as schemaFor, schemaJson as jsonFor } from "./schema.js";

// The committed schema has every kind premiscale knows.
const configSchema = schemaFor(configFragments);
const schemaJson = () => jsonFor(configFragments);

const committed = fileURLToPath(new URL("./premiscale.schema.json", import.meta.url));

const committedTypes = fileURLToPath(new URL("./schema-types.ts", import.meta.url));

/**
 * The TypeScript type of a document the schema accepted, once ajv filled its defaults (`useDefaults`): every property
 * with a default is present, so it is required here; the rest is json-schema-to-typescript's reading of the schema.
 */
async function schemaTypes(): Promise<string> {
  const schema = structuredClone(configSchema) as Record<string, unknown>;
  const requireDefaulted = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(requireDefaulted);
    if (node === null || typeof node !== "object") return;
    const o = node as Record<string, unknown>;
    const props = o.properties as Record<string, { default?: unknown }> | undefined;
    if (props) {
      const defaulted = Object.keys(props).filter((k) => props[k]?.default !== undefined);
      if (defaulted.length > 0) o.required = [...new Set([...((o.required as string[] | undefined) ?? []), ...defaulted])];
    }
    Object.values(o).forEach(requireDefaulted);
  };
  requireDefaulted(schema);
  const banner = [
    "/**",
    " * The config document as the loader sees it after the schema validated it and ajv filled the defaults: GENERATED",
    " * from config/schema.ts (the one source) by config/schema.test.ts, which fails when this file is out of date.",
    " * Regenerate: UPDATE_SCHEMA=1 npx vitest run --project unit config/schema.test.ts. Do not edit.",
    " * The normalised config every stage reads is config/types.ts (another shape: user-data read, kinds' settings).",
    " */",
  ].join("\n");
  return compile(schema, "ValidatedConfig", { bannerComment: banner, additionalProperties: false, ignoreMinAndMaxItems: true, format: true, style: { printWidth: 120 } });
}

// Regenerate with: UPDATE_SCHEMA=1 npx vitest run --project unit config/schema.test.ts
if (process.env.UPDATE_SCHEMA) {
  writeFileSync(committed, schemaJson());
  writeFileSync(committedTypes, await schemaTypes());
}

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

  it("matches the committed schema-types.ts, so the loader's types are the schema's", async () => {
    expect(readFileSync(committedTypes, "utf8")).toBe(await schemaTypes());
  }, 30_000);

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
