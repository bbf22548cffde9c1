/**
 * The header reader: canonical names for every spelling (byte-order mark,
 * folding before the colon, case), removal that leaves everything else
 * byte for byte, address lists (groups, obs-route, comments, encoded
 * words), the author and its problems, the reader's form of a name, and
 * linear time on hostile input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { domainToASCII } from "node:url";
import { authorOf, canonicalDomain, decodeEncodedWords, fieldValues, headerFields, parseAddressList, readerForm, removeFields } from "./index.ts";

const msg = (head: string, body = "body\r\nFrom: body@not.header\r\n"): Buffer => Buffer.from(`${head}\r\n\r\n${body}`);

test("field names: BOM, zero-width characters, folding and white space before the colon, case: one canonical name", () => {
  const m = msg("\uFEFFFrom: a@x.test\r\nFROM\r\n : b@x.test\r\nFr\u200Bom : c@x.test\r\nX-Other: 1\r\n continued\r\nno colon here\r\nSubject: s");
  assert.deepEqual(
    headerFields(m).map((f) => f.name),
    ["from", "from", "from", "x-other", "", "subject"],
  );
  assert.deepEqual(fieldValues(m, "x-other"), [" 1 continued"]);
  // The body is not the header section.
  assert.deepEqual(fieldValues(m, "from").length, 3);
  // A message without an empty line is all header; one that starts with the empty line has none.
  assert.equal(headerFields(Buffer.from("A: 1\r\nB: 2\r\n")).length, 2);
  assert.equal(headerFields(Buffer.from("\r\nA: 1\r\n")).length, 0);
});

test("field values: unfolded (every CRLF removed), a lone CR or LF kept, the last field without its CRLF too", () => {
  const m = Buffer.from("A: one\r\nB: two\r\n  lines\r\n\tthree\r\nC: bare\nlf and\rcr\r\nD:\r\nE: last");
  assert.deepEqual(["a", "b", "c", "d", "e"].map((n) => fieldValues(m, n)), [[" one"], [" two  lines\tthree"], [" bare\nlf and\rcr"], [""], [" last"]]);
  const body = Buffer.from("F: x\r\n\r\nbody\r\n");
  assert.deepEqual(fieldValues(body, "f"), [" x"]);
});

test("removeFields drops whole fields (with their continuation lines) and keeps every other byte", () => {
  const m = msg("A: 1\r\nDrop: x\r\n y\r\nB: 2\r\n\uFEFFdrop : z\r\nC: 3");
  const out = removeFields(m, (f) => f.name === "drop");
  assert.equal(out.toString(), "A: 1\r\nB: 2\r\nC: 3\r\n\r\nbody\r\nFrom: body@not.header\r\n");
  assert.equal(removeFields(m, () => false), m);
});

test("address lists: mailboxes, groups, obs-route, comments and encoded words; anything else is invalid", () => {
  const ok = parseAddressList(' "J. Doe" (boss =?utf-8?Q?of_it?=) <j@Example.ORG>, Team: a@x.test, <@relay.test:b@x.test>;, c@b\u00FCcher.test');
  assert.ok(ok.ok);
  assert.deepEqual(
    ok.mailboxes.map((m) => [m.address, m.name, m.comments]),
    [
      ["j@example.org", "J. Doe", ["boss of it"]],
      ["a@x.test", "Team", []],
      ["b@x.test", "Team", []],
      ["c@xn--bcher-kva.test", "", []],
    ],
  );
  for (const bad of ["ceo", "<>", "Bank of Test", "=?utf-8?Q?ceo=40bank=2Etest?=", "ceo\uFF20bank.test", "a@[192.0.2.1]", "a@b.test.", "a@-b.test", "(open comment a@b.test", '"open a@b.test', "a@b.test c@d.test", "G: H: a@b.test;;"]) {
    const r = parseAddressList(bad);
    assert.equal(r.ok, false, bad);
  }
  // Real-world forms that readers show as intended: a name with "@" before an angle address, dots in a local part.
  const loose = parseAddressList("noreply@site.test <noreply@site.test>, a..b.@carrier.test");
  assert.ok(loose.ok);
  assert.deepEqual(loose.mailboxes.map((m) => [m.address, m.name]), [["noreply@site.test", "noreply @ site . test"], ["a..b.@carrier.test", ""]]);
  assert.equal(readerForm(loose.mailboxes[0]?.name ?? ""), "noreply@site.test");
  // An empty value parses to no mailbox (the author calls that invalid).
  assert.deepEqual(parseAddressList(" "), { ok: true, mailboxes: [] });
});

test("canonical domains: the names that skip domainToASCII get what it would answer (A-labels, names ending in a number, everything else through it)", () => {
  const reference = (text: string): string | undefined => {
    if (text === "" || text.length > 1000) return undefined;
    const ascii = domainToASCII(text.toLowerCase());
    if (ascii === "" || ascii.length > 253) return undefined;
    return ascii.split(".").every((l) => /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/.test(l)) ? ascii : undefined;
  };
  const names = [
    "example.org", "Mail.Example.ORG", "sender123.co.uk", "a-b.c-d.test", "xn--exmple-4nf.org", "xn--a.test", "a.xn--zz", "XN--exmple-4nf.org",
    "1.2.3.4", "a.123", "a.0x7f", "a.0x", "0x7f.1", "a.08", "a.1.", "a.b.", ".a.b", "a..b", "-a.b", "a-.b", "a_b.test", "ab--cd.test",
    `${"a".repeat(63)}.test`, `${"a".repeat(64)}.test`, `${"a.".repeat(130)}test`, "exаmple.org", "ＥＸＡＭＰＬＥ.org", "\u212aelvin.test", "a.b\u3002c",
  ];
  // And every name of up to four characters over an alphabet with the troublesome ones, plus longer random ones (deterministic).
  const alphabet = ["a", "x", "n", "0", "9", "-", ".", "f"];
  for (const a of alphabet) for (const b of alphabet) for (const c of alphabet) for (const d of ["", ...alphabet]) names.push(`${a}${b}${c}${d}`);
  let seed = 7;
  for (let i = 0; i < 2000; i++) {
    let s = "";
    for (let j = 0; j < 4 + (i % 20); j++) s += alphabet[(seed = (seed * 1103515245 + 12345) % 2147483648) % alphabet.length] ?? "";
    names.push(s, `xn--${s}`, `${s}.0x1f`, `${s}.42`);
  }
  for (const n of names) assert.equal(canonicalDomain(n), reference(n), n);
});

test("the author: one From: with mailboxes in one domain, else a problem (and every domain found)", () => {
  const a = (head: string): { problem?: string; domains: readonly string[] } => {
    const r = authorOf(msg(head));
    return { ...(r.problem !== undefined ? { problem: r.problem } : {}), domains: r.domains };
  };
  assert.deepEqual(a("From: Me <me@example.org>"), { domains: ["example.org"] });
  assert.deepEqual(a("From: a@x.test, B <b@X.test>"), { domains: ["x.test"] });
  assert.deepEqual(a("From: Team: a@x.test, b@x.test;"), { domains: ["x.test"] });
  assert.deepEqual(a("From: me@example.org\r\nFrom: ceo@bank.test"), { problem: "duplicate", domains: ["example.org", "bank.test"] });
  assert.deepEqual(a("From: ceo@bank.test\r\nFrom: me@example.org"), { problem: "duplicate", domains: ["bank.test", "example.org"] });
  assert.deepEqual(a("From: me@example.org, Bank <ceo@bank.test>"), { problem: "multiple_domains", domains: ["example.org", "bank.test"] });
  assert.deepEqual(a("From: Friends: me@example.org, ceo@bank.test;"), { problem: "multiple_domains", domains: ["example.org", "bank.test"] });
  assert.deepEqual(a("From:\r\nFrom: ceo@bank.test"), { problem: "duplicate", domains: ["bank.test"] });
  assert.deepEqual(a("From: =?utf-8?Q?ceo=40bank=2Etest?="), { problem: "invalid", domains: [] });
  // A From: whose name other readers may not take for From: (the domain still counts for DMARC).
  assert.deepEqual(a("\uFEFFFrom: ceo@bank.test"), { problem: "invalid", domains: ["bank.test"] });
  assert.deepEqual(a("Fr\u00ADom: ceo@bank.test"), { problem: "invalid", domains: ["bank.test"] });
  // Obsolete white space or folding before the colon is still a From: (RFC 5322 §4.5).
  assert.deepEqual(a("From : ceo@bank.test"), { domains: ["bank.test"] });
  assert.deepEqual(a("FROM\r\n : ceo@bank.test"), { domains: ["bank.test"] });
  assert.deepEqual(a("From\t: ceo@bank.test"), { domains: ["bank.test"] });
  assert.deepEqual(a("Fr\u200Bom: ceo@bank.test"), { problem: "invalid", domains: ["bank.test"] });
  assert.deepEqual(a("From\u00A0: ceo@bank.test").problem, "invalid");
  assert.deepEqual(a("From: me@example.org\r\n\uFEFFFrom: ceo@bank.test"), { problem: "duplicate", domains: ["example.org", "bank.test"] });
  assert.deepEqual(a("Subject: none"), { problem: "missing", domains: [] });
  for (const h of ["From: ceo", "From: <>", "From: Bank of Test", "From: undisclosed:;", "From:"]) assert.deepEqual(a(h), { problem: "invalid", domains: [] }, h);
});

test("encoded words: B and Q, adjacent words joined, unknown charsets read as UTF-8", () => {
  assert.equal(decodeEncodedWords("=?utf-8?B?Y2VvQGJhbmsudGVzdA==?="), "ceo@bank.test");
  assert.equal(decodeEncodedWords("=?UTF-8?Q?ceo=40bank=2Etest?="), "ceo@bank.test");
  assert.equal(decodeEncodedWords("=?iso-8859-1?q?J=F6rg_M?= =?utf-8*de?q?=C3=BCller?= x"), "Jörg Müller x");
  // An unknown charset is read as a reader's fallback would (UTF-8), not left encoded to hide an address.
  assert.equal(decodeEncodedWords("=?x-no-such?q?ceo=40bank.test?="), "ceo@bank.test");
  // UTF-7 (RFC 2152), which TextDecoder does not know and some readers decode: "+" base64 of UTF-16BE "-".
  assert.equal(decodeEncodedWords("=?utf-7?q?ceo+AEA-bank.test?="), "ceo@bank.test");
  assert.equal(decodeEncodedWords("=?UTF-7?B?" + Buffer.from("ceo+AEA-bank.test a+-b").toString("base64") + "?="), "ceo@bank.test a+b");
  assert.equal(decodeEncodedWords("=?unicode-1-1-utf-7?q?J+APY-rg?="), "J\u00f6rg");
});

test("the reader's form: decoded, NFKC, look-alikes of @ and . mapped, format characters dropped, spaces around @ and . ignored", () => {
  for (const s of ["ceo @ bank.test", "ceo\uFF20bank.test", "ceo\uFE6Bbank\uFF0Etest", "c\u200Beo@bank\u3002test", "=?utf-8?Q?ceo=40bank=2Etest?=", "ceo@\u0301bank . test"]) {
    assert.equal(readerForm(s), "ceo@bank.test", s);
  }
  assert.equal(readerForm("Alice   Smith"), "Alice Smith");
});

test("linear on hostile input: 1 MB header sections of the worst shapes take well under 3 s each (quadratic would take minutes)", () => {
  const big = 1 << 20;
  const shapes = [
    `From: ${"(".repeat(big)}`,
    `From: ${"a".repeat(big)}`,
    `From: ${"=?".repeat(big / 2)}`,
    `From: ${"a@".repeat(big / 2)}`,
    `From: "${" ".repeat(big)}`,
    `${"X: 1\r\n".repeat(big / 6)}From: a@b.test`,
    `From: ${" \r\n ".repeat(big / 4)}a@b.test`,
    `From: ${"a.".repeat(big / 2)}`,
  ];
  for (const s of shapes) {
    const t0 = performance.now();
    authorOf(msg(s));
    readerForm(s);
    const ms = performance.now() - t0;
    assert.ok(ms < 3000, `${JSON.stringify(s.slice(0, 20))}: ${ms.toFixed(0)} ms`);
  }
});
