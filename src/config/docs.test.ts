// docs/configuration.md must describe every key of CONFIG_KEYS with its real
// default, range and allowed values, and every limit's doc from LIMIT_SPECS.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { LIMIT_SPECS } from "../limits/index.ts";
import { CONFIG_KEYS, tomlLiteral } from "./index.ts";

const doc = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");

/** Text from the "### `key`" heading to the next heading. */
function sectionOf(key: string): string | undefined {
  const heading = `### \`${key}\`\n`;
  const start = doc.indexOf(heading);
  if (start < 0) return undefined;
  const rest = doc.slice(start + heading.length);
  const next = rest.search(/^#{1,3} /m);
  return next < 0 ? rest : rest.slice(0, next);
}

void test("every key has its own section in docs/configuration.md", () => {
  const missing = CONFIG_KEYS.filter((k) => sectionOf(k.key) === undefined).map((k) => k.key);
  assert.deepEqual(missing, []);
});

void test("each key's section states its real default", () => {
  for (const k of CONFIG_KEYS) {
    const text = sectionOf(k.key) ?? "";
    assert.ok(text.includes(`Default: \`${tomlLiteral(k.default)}\``), `${k.key}: default ${tomlLiteral(k.default)} not documented`);
  }
});

void test("each key's section states its range and allowed values", () => {
  for (const k of CONFIG_KEYS) {
    const text = sectionOf(k.key) ?? "";
    if (k.min !== undefined && k.max !== undefined) {
      assert.ok(text.includes(`from ${k.min} to ${k.max}`), `${k.key}: range ${k.min}..${k.max} not documented`);
    }
    for (const v of k.values ?? []) {
      assert.ok(text.includes(`\`${JSON.stringify(v)}\``), `${k.key}: value ${v} not documented`);
    }
  }
});

void test("each limit's section carries its doc from LIMIT_SPECS", () => {
  for (const spec of Object.values(LIMIT_SPECS)) {
    const text = sectionOf(`limits.${spec.key}`) ?? "";
    assert.ok(text.includes(spec.doc), `limits.${spec.key}: doc text differs from LIMIT_SPECS`);
    assert.ok(text.includes(`integer (${spec.unit})`), `limits.${spec.key}: unit not documented`);
  }
});

void test("every documented key exists in the code", () => {
  const known = new Set(CONFIG_KEYS.map((k) => k.key));
  const documented = [...doc.matchAll(/^### `([a-z_0-9]+\.[a-z_0-9]+)`$/gm)].map((m) => m[1] ?? "");
  assert.deepEqual(documented.filter((k) => !known.has(k)), []);
  assert.equal(documented.length, known.size);
});

void test("the config check command and its exit codes are documented", () => {
  assert.match(doc, /wardmail config check FILE/);
  for (const code of ["0", "1", "2"]) assert.match(doc, new RegExp(`^\\| ${code} \\|`, "m"));
});
