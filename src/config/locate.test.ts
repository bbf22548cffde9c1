// The key-line scanner: headers, dotted and quoted keys, inline tables,
// multi-line arrays and strings, and the nearest-parent fallback.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { keyPath, lineOf, scanKeyLines } from "./locate.ts";

void test("keyPath quotes non-bare segments and writes indexes", () => {
  assert.equal(keyPath(["limits", "max_recipients"]), "limits.max_recipients");
  assert.equal(keyPath(["local", "aliases", "a@b.test", 0]), 'local.aliases."a@b.test"[0]');
  assert.equal(keyPath(["tls", "certificates", 1, "cert"]), "tls.certificates[1].cert");
});

void test("tables, dotted keys and quoted keys get their lines", () => {
  const src = [
    "# comment", //                                  1
    'server.hostname = "mx.example.org"', //         2
    "", //                                           3
    "[limits]  # the limits", //                     4
    "max_recipients = 50", //                        5
    "  'max_errors' = 3", //                         6
    "[local.aliases]", //                            7
    '"a@x.test" = ["b@x.test"]', //                  8
    '"c.d@x.test" = ["e@y.test", "f@y.test"]', //    9
  ].join("\n");
  const lines = scanKeyLines(src);
  assert.equal(lines.get("server"), 2);
  assert.equal(lines.get("server.hostname"), 2);
  assert.equal(lines.get("limits"), 4);
  assert.equal(lines.get("limits.max_recipients"), 5);
  assert.equal(lines.get("limits.max_errors"), 6);
  assert.equal(lines.get("local"), 7);
  assert.equal(lines.get("local.aliases"), 7);
  assert.equal(lines.get('local.aliases."a@x.test"'), 8);
  assert.equal(lines.get('local.aliases."c.d@x.test"'), 9);
  assert.equal(lines.get('local.aliases."c.d@x.test"[1]'), 9);
});

void test("multi-line arrays give each element its line; strings may hide brackets and hashes", () => {
  const src = [
    "[smtp]", //                                      1
    "listen = [", //                                  2
    '  "127.0.0.1:25",  # first ]', //                3
    '  "[::1]:25",', //                               4
    "", //                                            5
    '  "]#,{",', //                                   6
    "]", //                                           7
    "[tls]", //                                       8
    'ciphers = """', //                               9
    "A:B", //                                         10
    '"""', //                                         11
    "watch = false", //                               12
  ].join("\r\n");
  const lines = scanKeyLines(src);
  assert.equal(lines.get("smtp.listen"), 2);
  assert.equal(lines.get("smtp.listen[0]"), 3);
  assert.equal(lines.get("smtp.listen[1]"), 4);
  assert.equal(lines.get("smtp.listen[2]"), 6);
  assert.equal(lines.get("smtp.listen[3]"), undefined);
  assert.equal(lines.get("tls.ciphers"), 9);
  assert.equal(lines.get("tls.watch"), 12);
});

void test("inline tables, across lines too, and arrays of tables", () => {
  const src = [
    "[tls]", //                                                   1
    'certificates = [{ cert = "a.pem", key = "a.key" },', //      2
    '  { cert = "b.pem",', //                                     3
    '    key = "b.key", bad = 1 }]', //                           4
    "[[x.y]]", //                                                 5
    "k = 1", //                                                   6
    "[[x.y]]", //                                                 7
    "k = 2", //                                                   8
  ].join("\n");
  const lines = scanKeyLines(src);
  assert.equal(lines.get("tls.certificates[0]"), 2);
  assert.equal(lines.get("tls.certificates[0].key"), 2);
  assert.equal(lines.get("tls.certificates[1]"), 3);
  assert.equal(lines.get("tls.certificates[1].cert"), 3);
  assert.equal(lines.get("tls.certificates[1].key"), 4);
  assert.equal(lines.get("tls.certificates[1].bad"), 4);
  assert.equal(lines.get("x.y[0].k"), 6);
  assert.equal(lines.get("x.y[1]"), 7);
  assert.equal(lines.get("x.y[1].k"), 8);
});

void test("lineOf falls back to the nearest parent, then 0", () => {
  const lines = scanKeyLines("[limits]\nmax_errors = 2\n");
  assert.equal(lineOf(lines, ["limits", "max_errors"]), 2);
  assert.equal(lineOf(lines, ["limits", "max_recipients"]), 1);
  assert.equal(lineOf(lines, ["server", "hostname"]), 0);
});

void test("property: generated documents map every key to the line it was written on", () => {
  const bare = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);
  const value = fc.oneof(
    fc.integer().map(String),
    fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
    fc.constant("true"),
    fc.array(fc.integer().map(String), { maxLength: 3 }).map((a) => `[${a.join(", ")}]`),
  );
  const table = fc.record({
    name: bare,
    keys: fc.uniqueArray(fc.tuple(bare, value, fc.boolean(), fc.boolean()), { selector: (t) => t[0], maxLength: 5 }),
  });
  fc.assert(
    fc.property(fc.uniqueArray(table, { selector: (t) => t.name, maxLength: 4 }), (tables) => {
      const out: string[] = [];
      const want = new Map<string, number>();
      for (const t of tables) {
        out.push(`[${t.name}]`);
        want.set(t.name, out.length);
        for (const [k, v, quoted, blankBefore] of t.keys) {
          if (blankBefore) out.push("# note = 1");
          out.push(`${quoted ? JSON.stringify(k) : k} = ${v}`);
          want.set(`${t.name}.${k}`, out.length);
        }
      }
      const got = scanKeyLines(out.join("\n"));
      for (const [k, line] of want) assert.equal(got.get(k), line, k);
    }),
  );
});
