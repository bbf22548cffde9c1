// Lookalike domains (confusable skeleton, one edit, other TLD) and local
// display names in the From: of mail from outside.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ImpersonationCheck, isOurs, lookalikeOf, nameKey, oneEditApart, skeleton } from "./index.ts";
import { TransactionState } from "../policy/index.ts";

const LOCAL = ["example.org", "wardmail.test"];

test("skeletons: Cyrillic, Greek, digits, rn/vv and punycode read as the Latin name", () => {
  assert.equal(skeleton("exаmple.org"), skeleton("example.org")); // Cyrillic а
  assert.equal(skeleton("xn--exmple-4nf.org"), skeleton("example.org")); // the same, as an A-label
  assert.equal(skeleton("exarnple.org"), skeleton("example.org"));
  assert.equal(skeleton("examp1e.org"), skeleton("example.org"));
  assert.equal(skeleton("wardrnaiI.test"), skeleton("wardmail.test"));
  assert.equal(skeleton("ехаmрlе.org"), skeleton("example.org")); // mostly Cyrillic
  assert.notEqual(skeleton("sample.org"), skeleton("example.org"));
});

test("one edit: insert, delete, substitute, swap; not two, not equal", () => {
  for (const d of ["exmaple.org", "exampe.org", "examplle.org", "exbmple.org", "xeample.org"]) assert.ok(oneEditApart(d, "example.org"), d);
  for (const d of ["example.org", "exmapel.org", "ex.org", "eaxmpel.org"]) assert.equal(oneEditApart(d, "example.org"), false, d);
});

test("lookalikeOf: the three kinds; our own domains and subdomains are not lookalikes; strangers are not", () => {
  assert.deepEqual(lookalikeOf("xn--exmple-4nf.org", LOCAL), { of: "example.org", kind: "skeleton" });
  assert.deepEqual(lookalikeOf("mail.exarnple.org", LOCAL), { of: "example.org", kind: "skeleton" });
  assert.deepEqual(lookalikeOf("exmaple.org", LOCAL), { of: "example.org", kind: "one edit" });
  assert.deepEqual(lookalikeOf("example.net", LOCAL), { of: "example.org", kind: "other TLD" });
  assert.deepEqual(lookalikeOf("example.co.uk", LOCAL), { of: "example.org", kind: "other TLD" });
  assert.deepEqual(lookalikeOf("wardmall.test", LOCAL), { of: "wardmail.test", kind: "skeleton" });
  for (const d of ["example.org", "lists.example.org", "gmail.com", "sample.net", "exampleshop.org"]) assert.equal(lookalikeOf(d, LOCAL), undefined, d);
  assert.ok(isOurs("a.b.example.org", LOCAL));
  // Short names: one edit away from too much to count.
  assert.equal(lookalikeOf("abd.org", ["abc.org"]), undefined);
});

test("lookalikeOf stays linear on long names", () => {
  const long = `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(60)}.org`;
  const t = performance.now();
  for (let i = 0; i < 2000; i++) lookalikeOf(long, LOCAL);
  assert.ok(performance.now() - t < 2000);
});

test("nameKey folds case, quotes, dots and spaces; encoded words decoded", () => {
  assert.equal(nameKey(" Alice  Martin "), "alice martin");
  assert.equal(nameKey("alice.martin"), "alice martin");
  assert.equal(nameKey("=?utf-8?q?Alice_Martin?="), "alice martin");
  assert.equal(nameKey("'ＡＬＩＣＥ'"), "alice");
});

function check(opts: { externalTag?: boolean; enabled?: boolean } = {}) {
  return new ImpersonationCheck({
    localDomains: LOCAL,
    enabled: opts.enabled ?? true,
    externalTag: opts.externalTag ?? false,
    localAddresses: () => ["alice.martin@example.org", "bob@example.org", "jo@example.org"],
  });
}

const run = (c: ImpersonationCheck, from: string) =>
  c.data({ clientIp: "192.0.2.1", helo: "h", mailFrom: "x@y.test", recipients: ["bob@example.org"], content: Buffer.from(`From: ${from}\r\nSubject: s\r\n\r\nb\r\n`), state: new TransactionState(), signal: new AbortController().signal });

test("the check: verdicts and a clear header", () => {
  const c = check();
  const a = run(c, "Payroll <payroll@exarnple.org>");
  assert.deepEqual(a.verdicts, ["impersonation.domain"]);
  assert.deepEqual(a.headers, ["X-Wardmail-Impersonation: domain exarnple.org looks like example.org (skeleton)"]);
  const b = run(c, '"Alice Martin" <alice.martin.ceo@gmail.test>');
  assert.deepEqual(b.verdicts, ["impersonation.name"]);
  assert.deepEqual(b.headers, ['X-Wardmail-Impersonation: name "Alice Martin" is local alice.martin@example.org']);
  const both = run(c, "Bob <bob@example.net>");
  assert.deepEqual(both.verdicts, ["impersonation.domain", "impersonation.name"]);
  assert.match(both.headers?.[0] ?? "", /^X-Wardmail-Impersonation: domain example\.net looks like example\.org \(other TLD\);\r\n\tname "Bob" is local bob@example\.org$/);
  // Our own domain with the name: not this check's business (DMARC, local.from are).
  assert.deepEqual((run(c, "Bob <bob@example.org>")).verdicts, []);
  // A two-letter local part is too common a word; a stranger's own name is fine.
  assert.deepEqual((run(c, "Jo <jo@gmail.test>")).verdicts, []);
  assert.deepEqual((run(c, "Carol <carol@gmail.test>")).verdicts, []);
  assert.deepEqual((run(c, "not an address")).verdicts, []);
});

test("external tag: on every message through the check, even with detection off", () => {
  const c = check({ externalTag: true, enabled: false });
  const r = run(c, "Bob <bob@example.net>");
  assert.deepEqual(r.verdicts, []);
  assert.deepEqual(r.headers, ["X-Wardmail-External: yes"]);
  assert.deepEqual((run(check(), "Carol <carol@gmail.test>")).headers, []);
});
