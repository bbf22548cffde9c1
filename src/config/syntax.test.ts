// Domain, address, listen-address and account syntax used by the config checks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { describe, listenOverlaps, parseAccount, parseAddress, parseDomain, parseListen } from "./syntax.ts";

const value = <T>(p: { ok: true; value: T } | { ok: false; expected: string }): T | undefined => (p.ok ? p.value : undefined);

void test("domains: lowercased, trailing dot dropped, bad labels refused", () => {
  assert.equal(value(parseDomain("MX.Example.ORG.")), "mx.example.org");
  assert.equal(value(parseDomain("localhost")), "localhost");
  assert.equal(value(parseDomain("xn--bcher-kva.example")), "xn--bcher-kva.example");
  for (const bad of ["", ".", "a..b", "-a.example", "a-.example", "a b.example", "a_b.example", "bücher.example",
    "1.2.3.4", `${"a".repeat(64)}.example`, `${"a.".repeat(127)}ab`]) {
    assert.equal(parseDomain(bad).ok, false, bad);
  }
});

void test("addresses: local@domain, lowercased, no slash in the local part", () => {
  assert.equal(value(parseAddress("Post.Master@Example.ORG")), "post.master@example.org");
  assert.equal(value(parseAddress("a+tag@x.test")), "a+tag@x.test");
  for (const bad of ["", "a", "@x.test", "a@", "a@@x.test", "a..b@x.test", ".a@x.test", "a.@x.test", "a/b@x.test",
    "a\\b@x.test", "a b@x.test", '"a"@x.test', "a@bad_domain", `${"a".repeat(65)}@x.test`]) {
    assert.equal(parseAddress(bad).ok, false, bad);
  }
});

void test("listen addresses: IP literal and port 1..65535, IPv6 in brackets and canonical", () => {
  assert.deepEqual(value(parseListen("127.0.0.1:25")), { host: "127.0.0.1", port: 25 });
  assert.deepEqual(value(parseListen("[::1]:587")), { host: "::1", port: 587 });
  assert.deepEqual(value(parseListen("[0:0:0:0:0:0:0:1]:587")), { host: "::1", port: 587 });
  assert.deepEqual(value(parseListen("0.0.0.0:65535")), { host: "0.0.0.0", port: 65535 });
  for (const bad of ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:2x", "localhost:25",
    "::1:25", "[::1]25", "[localhost]:25", "[127.0.0.1]:25", "127.0.0.01:25", "[fe80::1%eth0]:25", ":25", ""]) {
    assert.equal(parseListen(bad).ok, false, bad);
  }
  const r = parseListen("::1:25");
  assert.ok(!r.ok && r.expected.includes("brackets"));
});

void test("listen overlap: same address, or a wildcard of the same family, on the same port", () => {
  const a = (host: string, port = 25) => ({ host, port });
  assert.equal(listenOverlaps(a("127.0.0.1"), a("127.0.0.1")), true);
  assert.equal(listenOverlaps(a("0.0.0.0"), a("127.0.0.1")), true);
  assert.equal(listenOverlaps(a("::1"), a("::")), true);
  assert.equal(listenOverlaps(a("127.0.0.1"), a("127.0.0.2")), false);
  assert.equal(listenOverlaps(a("0.0.0.0"), a("0.0.0.0", 26)), false);
  assert.equal(listenOverlaps(a("0.0.0.0"), a("::1")), false);
});

void test("accounts: names, numeric ids or empty", () => {
  for (const ok of ["", "wardmail", "_mail", "mail-1.x", "1000", "machine$"]) assert.equal(parseAccount(ok).ok, true, ok);
  for (const bad of ["1abc", "a b", "a:b", "a/b", "x".repeat(40)]) assert.equal(parseAccount(bad).ok, false, bad);
});

void test("describe: short readable value descriptions", () => {
  assert.equal(describe("x"), '"x"');
  assert.equal(describe(3), "3");
  assert.equal(describe(false), "false");
  assert.equal(describe([1]), "an array");
  assert.equal(describe({}), "a table");
  assert.equal(describe(new Date(0)), "a date");
  assert.equal(describe("y".repeat(100)).length, 62);
});
