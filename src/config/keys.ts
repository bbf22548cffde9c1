/**
 * Every config key Wardmail knows: its TOML section and name, type, default,
 * limits, one-line meaning, and the check that turns a TOML value into the
 * normalised value (or reports what was expected). The loader, the
 * `CONFIG_KEYS` list and the documentation test all read this one table.
 *
 * The fields themselves are in keys-server.ts, keys-auth.ts, keys-checks.ts
 * and keys-services.ts, a group of sections each; this file joins them in
 * file order and derives SECTIONS and CONFIG_KEYS.
 *
 * Checks are per key; rules that span keys (mailbox domains, alias cycles,
 * listen collisions, group without user) live in semantic.ts.
 */
import type { PathSegment } from "./locate.ts";
import type { LmtpTarget } from "./types.ts";
import { isTable } from "./syntax.ts";
export { VERDICT_DEFAULTS, parseLmtpTarget } from "./checkers.ts";
import { SERVER_FIELDS } from "./keys-server.ts";
import { AUTH_FIELDS } from "./keys-auth.ts";
import { CHECK_FIELDS } from "./keys-checks.ts";
import { SERVICE_FIELDS } from "./keys-services.ts";

/** Collects problems while checking; paths are full key paths. */
export interface CheckContext {
  issue(path: readonly PathSegment[], message: string): void;
  /** Directory relative certificate paths resolve against (the config file's). */
  readonly fileDir: string;
  /** Directory a relative data_dir resolves against. */
  readonly cwd: string;
  /** Joins and normalises like path.resolve. */
  readonly resolve: (base: string, p: string) => string;
}

/** One alias after checking: the key as written, its normalised address and targets (undefined where a target was bad). */
export interface AliasEntry {
  readonly key: string;
  readonly address: string;
  readonly targets: readonly (string | undefined)[];
}

/** One checked [local.lmtp] entry: the key as written, its normalised domain and where to deliver. */
export interface LmtpEntry {
  readonly key: string;
  readonly domain: string;
  readonly target: LmtpTarget;
}

/** The checked [local.lmtp] table (bad entries left out, already reported). */
export interface LmtpTable {
  readonly entries: readonly LmtpEntry[];
}

/** The checked [local.aliases] table; `complete` is false when some entry was dropped as bad. */
export interface AliasTable {
  readonly entries: readonly AliasEntry[];
  readonly complete: boolean;
}

export interface Field {
  readonly section: string;
  readonly name: string;
  /** Type as shown to operators, e.g. "integer", "array of strings". */
  readonly type: string;
  /** Default as a TOML value. */
  readonly default: unknown;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  /**
   * Returns the normalised value, or undefined after reporting through ctx.
   * Arrays come back with `undefined` in place of each bad element, and the
   * alias table without its bad entries, so cross-key rules still run.
   */
  readonly check: (value: unknown, path: readonly PathSegment[], ctx: CheckContext) => unknown;
}

/** Public, data-only description of one key. */
export interface ConfigKey {
  /** Dotted key, e.g. "limits.max_recipients". */
  readonly key: string;
  readonly type: string;
  readonly default: unknown;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
}

// ---------------------------------------------------------------- table

/** Every key, section by section in file order (one file per group of sections). */
export const FIELDS: readonly Field[] = [...SERVER_FIELDS, ...AUTH_FIELDS, ...CHECK_FIELDS, ...SERVICE_FIELDS];

/** Sections in file order, each with its fields. */
export const SECTIONS: ReadonlyMap<string, readonly Field[]> = (() => {
  const m = new Map<string, Field[]>();
  for (const f of FIELDS) {
    const list = m.get(f.section) ?? [];
    list.push(f);
    m.set(f.section, list);
  }
  return m;
})();

/** Every key with its type, default and limits, for tooling and the docs test. */
export const CONFIG_KEYS: readonly ConfigKey[] = Object.freeze(
  FIELDS.map((f) => {
    const k: ConfigKey = {
      key: `${f.section}.${f.name}`, type: f.type, default: f.default, doc: f.doc,
      ...(f.min !== undefined ? { min: f.min } : {}),
      ...(f.max !== undefined ? { max: f.max } : {}),
      ...(f.values !== undefined ? { values: f.values } : {}),
    };
    return Object.freeze(k);
  }),
);

/** A TOML literal for a default value, as written in docs: "a", 1, true, ["x", "y"], {}. */
export function tomlLiteral(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(tomlLiteral).join(", ")}]`;
  if (isTable(value)) {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)} = ${tomlLiteral(v)}`);
    return parts.length === 0 ? "{}" : `{ ${parts.join(", ")} }`;
  }
  return String(value);
}
