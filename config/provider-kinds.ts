/**
 * How a provider kind owns its part of the config. Hosts have a `kind`; each kind (libvirt today, Proxmox VE next)
 * brings the fields it adds to a host and to a group's template, as JSON Schema, and the rules and defaults that turn
 * them into its `settings`. The loader knows no kind by itself: the caller passes the fragments in (see
 * providers/index.ts), so config/ stays the base layer every other folder may import.
 */
import type { Seg } from "./yaml-source.js";

/** A JSON Schema object. */
export type Schema = Record<string, unknown>;

/** Where a fragment reports what it found wrong; paths are relative to the host or template being normalised. */
export interface FragmentContext {
  /** An issue at `path` (relative); `key` points at the field's name rather than its value. */
  issue(path: Seg[], message: string, fix?: string, key?: boolean): void;
  /** Directory of the config file (relative paths resolve against it). */
  dir: string;
}

/** The fields a kind adds to one kind of object (a host, or a group's template). */
export interface FragmentFields<Settings> {
  /** JSON Schema of each field (no `default`: the kind fills its defaults in `normalise`, per kind). */
  properties: Record<string, Schema>;
  /** Fields an object of this kind must have. */
  required: string[];
  /** The kind's fields as written (schema-valid) → its settings, with defaults filled; reports rule violations. */
  normalise(fields: Record<string, unknown>, ctx: FragmentContext): Settings;
}

/** A provider kind's part of the config. */
export interface ProviderConfigFragment<HostSettings = unknown, TemplateSettings = unknown> {
  /** The value of `hosts[].kind`. */
  kind: string;
  /** One line for the schema and `--help`: what such a host is. */
  description: string;
  host: FragmentFields<HostSettings>;
  template: FragmentFields<TemplateSettings>;
}
