// The registry of limits, the code and docs/configuration.md agree: every
// configurable limit has its section with its default, unit and range; every
// fixed limit is the value of the constant it names in the file it names, and
// has its row in the "Fixed limits" table; no row or section is left over.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { DEFAULT_LIMITS, FIXED_LIMITS, LIMIT_SPECS, type FixedLimitSpec } from "./index.ts";

const root = new URL("../../", import.meta.url);
const doc = readFileSync(new URL("docs/configuration.md", root), "utf8");

/** The docs row of one fixed limit (the docs table is written in exactly this form). */
function fixedRow(f: FixedLimitSpec): string {
  return `| \`${f.name}\` | ${f.value} ${f.unit} | ${f.doc} | ${f.reason} | \`${f.file}\` \`${f.constant}\` |`;
}

/** Value of a constant's initialiser: digits with `_`, joined by `*` or `**` (all the code uses). */
function evaluate(expr: string): number {
  const factors = expr.split(/(?<!\*)\*(?!\*)/).map((f) => f.trim());
  let product = 1;
  for (const f of factors) {
    const [base, exp, extra] = f.split("**").map((x) => x.trim());
    assert.ok(base !== undefined && /^\d[\d_]*$/.test(base) && extra === undefined, `cannot evaluate ${JSON.stringify(expr)}`);
    const b = Number(base.replaceAll("_", ""));
    if (exp === undefined) product *= b;
    else {
      assert.match(exp, /^\d[\d_]*$/, `cannot evaluate ${JSON.stringify(expr)}`);
      product *= b ** Number(exp.replaceAll("_", ""));
    }
  }
  return product;
}

/** The value of `const NAME = ...;` at the top level of a file of src/. */
function constantIn(file: string, name: string): number {
  const text = readFileSync(new URL(file, root), "utf8");
  const m = new RegExp(`^(?:export )?const ${name}(?::[^=]+)? = ([^;]+);`, "m").exec(text);
  assert.ok(m?.[1] !== undefined, `${file}: no top-level constant ${name}`);
  return evaluate(m[1]);
}

void test("the evaluator of constants reads the forms the code uses", () => {
  assert.equal(evaluate("64 * 1024 * 1024"), 67108864);
  assert.equal(evaluate("10 * 60_000"), 600000);
  assert.equal(evaluate("2 ** 30"), 1073741824);
  assert.equal(evaluate("1_000_000_000"), 1e9);
  assert.throws(() => evaluate("MiB * 2"), /cannot evaluate/);
});

void test("every fixed limit is the value of the constant it names", () => {
  for (const f of FIXED_LIMITS) assert.equal(constantIn(f.file, f.constant), f.value, `${f.name}: ${f.file} ${f.constant}`);
});

void test("limit names are unique across fixed and configurable limits, and well-formed", () => {
  const names = [...Object.keys(LIMIT_SPECS), ...FIXED_LIMITS.map((f) => f.name)];
  assert.equal(new Set(names).size, names.length);
  for (const n of names) assert.match(n, /^[a-z][a-z0-9_]*$/);
  for (const [k, s] of Object.entries(LIMIT_SPECS)) {
    assert.equal(s.key, k);
    assert.ok(s.min <= s.default && s.default <= s.max, `${k}: default outside its range`);
    assert.equal(DEFAULT_LIMITS[k as keyof typeof DEFAULT_LIMITS], s.default);
  }
  for (const f of FIXED_LIMITS) {
    assert.ok(Number.isSafeInteger(f.value) && f.value > 0, `${f.name}: value`);
    assert.ok(f.doc.length > 0 && f.reason.length > 0 && !f.doc.includes("|") && !f.reason.includes("|"), `${f.name}: doc and reason (no "|")`);
  }
});

void test("docs/configuration.md lists every configurable limit with its default, unit and range", () => {
  for (const s of Object.values(LIMIT_SPECS)) {
    const start = doc.indexOf(`### \`limits.${s.key}\`\n`);
    assert.ok(start >= 0, `limits.${s.key}: no section`);
    const rest = doc.slice(start).split(/\n(?=#{1,3} )/)[0] ?? "";
    assert.ok(rest.includes(s.doc), `limits.${s.key}: doc differs`);
    assert.ok(rest.includes(`- Type: integer (${s.unit}), from ${s.min} to ${s.max}`), `limits.${s.key}: type or range`);
    assert.ok(rest.includes(`- Default: \`${s.default}\``), `limits.${s.key}: default`);
  }
  const documented = [...doc.matchAll(/^### `limits\.([a-z0-9_]+)`$/gm)].map((m) => m[1]);
  assert.deepEqual(documented, Object.keys(LIMIT_SPECS), "the sections follow the registry, in its order, none left over");
});

void test("docs/configuration.md has the fixed limits table: one row per fixed limit, in order, none left over", () => {
  const start = doc.indexOf("### Fixed limits (not configurable)\n");
  assert.ok(start >= 0, "no Fixed limits section");
  const section = doc.slice(start).split(/\n(?=#{1,3} )/)[0] ?? "";
  const rows = section.split("\n").filter((l) => l.startsWith("| `"));
  assert.deepEqual(rows, FIXED_LIMITS.map(fixedRow));
});
