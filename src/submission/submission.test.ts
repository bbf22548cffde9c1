/**
 * Unit tests of the submission policy parts: the hourly limits (on a real
 * SQLite database, with an injected clock), client keys (IPv6 /64), trusted
 * networks, and the From: header ownership check. The brute-force guard is
 * tested in guard.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AuthGuard, serverSecret } from "./guard.ts";
import { clientKey, Networks } from "./networks.ts";
import { addressesIn } from "../message/index.ts";
import { checkFromHeader, fromAddresses } from "./sender.ts";

const AUTH = {
  mechanisms: ["PLAIN"],
  onMx: false,
  failureDelay: 100,
  maxFailureDelay: 1000,
  ipMaxFailures: 5,
  ipWindow: 60,
  ipBlock: 120,
  accountMaxFailures: 3,
  accountWindow: 60,
  accountLock: 300,
  knownNetworkWindow: 86400,
};
const ACCOUNTS = { maxMessagesPerHour: 3, maxRecipientsPerHour: 10 };

function guard(start = 1_000_000_000_000): { g: AuthGuard; clock: { t: number } } {
  const clock = { t: start };
  const g = new AuthGuard(new DatabaseSync(":memory:"), { auth: AUTH, accounts: ACCOUNTS }, () => clock.t);
  return { g, clock };
}

test("hourly limits: messages and recipients over a sliding hour", () => {
  const { g, clock } = guard(3_600_000 * 500);
  for (let i = 0; i < 3; i++) {
    assert.ok(g.mayStartMessage("a@x.test"));
    g.recordMessage("a@x.test", 3);
  }
  assert.equal(g.mayStartMessage("a@x.test"), false);
  assert.ok(g.mayStartMessage("b@x.test"));
  assert.ok(g.mayAddRecipient("a@x.test", 0));
  assert.equal(g.mayAddRecipient("a@x.test", 1), false); // 9 recorded + 1 pending + 1 = 11 > 10
  // Half an hour into the next hour, last hour's 3 messages count half.
  clock.t += 3_600_000 * 1.5;
  assert.ok(g.mayStartMessage("a@x.test"));
  clock.t += 3_600_000;
  assert.ok(g.mayAddRecipient("a@x.test", 9));
});

test("the server secret is created once and kept", () => {
  const db = new DatabaseSync(":memory:");
  const a = serverSecret(db, "k");
  assert.equal(a.length, 32);
  assert.ok(serverSecret(db, "k").equals(a));
  assert.ok(!serverSecret(db, "other").equals(a));
});

test("client keys: IPv4 as is (mapped form too), IPv6 by /64", () => {
  assert.equal(clientKey("192.0.2.1"), "ip:192.0.2.1");
  assert.equal(clientKey("::ffff:192.0.2.1"), "ip:192.0.2.1");
  assert.equal(clientKey("2001:db8:1:2:3:4:5:6"), "net:2001:db8:1:2::/64");
  assert.equal(clientKey("2001:db8:1:2::9"), "net:2001:db8:1:2::/64");
  assert.equal(clientKey("2001:0db8:0001:0002:ffff::1"), "net:2001:db8:1:2::/64");
  assert.equal(clientKey("::1"), "net:0:0:0:0::/64");
  assert.notEqual(clientKey("2001:db8:1:3::1"), clientKey("2001:db8:1:2::1"));
});

test("trusted networks", () => {
  const n = new Networks(["127.0.0.3/32", "10.0.0.0/8", "2001:db8::/32"]);
  assert.ok(n.has("127.0.0.3"));
  assert.ok(n.has("::ffff:127.0.0.3"));
  assert.ok(!n.has("127.0.0.1"));
  assert.ok(n.has("10.200.1.1"));
  assert.ok(n.has("2001:db8:ffff::1"));
  assert.ok(!n.has("2001:db9::1"));
  assert.ok(!n.has("not an ip"));
  assert.ok(!new Networks([]).has("127.0.0.1"));
});

const msg = (headers: string): Buffer => Buffer.from(`${headers}\r\n\r\nbody\r\nFrom: evil@bad.test\r\n`);
const owns = (a: string): boolean => ["alice@example.test", "sales@example.test"].includes(a.toLowerCase());

test("From: header ownership", () => {
  assert.equal(checkFromHeader(msg("From: alice@example.test\r\nTo: x@y.test"), owns), undefined);
  assert.equal(checkFromHeader(msg("From: Alice <ALICE@example.test>"), owns), undefined);
  assert.equal(checkFromHeader(msg("from:\r\n  =?utf-8?q?Al?= <alice@example.test>,\r\n sales@example.test"), owns), undefined);
  const refuse = (h: string, code: number): void => assert.equal(checkFromHeader(msg(h), owns)?.code, code, h);
  refuse("From: evil@bad.test", 550);
  refuse('From: "alice@example.test" <evil@bad.test>', 550);
  refuse("From: alice@example.test, evil@bad.test", 550);
  refuse("From: friends: alice@example.test, evil@bad.test;", 550);
  refuse("From: <alice@example.test> (x) evil@bad.test", 550);
  refuse("From: alice@example.test@bad.test", 550);
  refuse('From: "alice@example.test"@bad.test', 550);
  refuse("To: x@y.test", 550);
  refuse("From: alice@example.test\r\nFrom: alice@example.test", 550);
  refuse("From: undisclosed:;", 550);
  refuse('From: "ceo@bank.test" <alice@example.test>', 550);
  assert.equal(checkFromHeader(msg('From: "alice@example.test" <alice@example.test>'), owns), undefined);
  assert.equal(checkFromHeader(msg('From: "Alice (sales)" <alice@example.test>'), owns), undefined);
  assert.equal(checkFromHeader(msg("To: x@y.test"), owns)?.status, "5.6.0");
  // Only the header block counts: a From: line in the body is not a header.
  assert.deepEqual(fromAddresses(msg("From: alice@example.test")), ["alice@example.test"]);
});

test("From: ownership sees what a reader sees: encoded words, look-alikes, spaces, a BOM-hidden From:, other originators", () => {
  const ok = (h: string): void => assert.equal(checkFromHeader(msg(h), owns), undefined, h);
  const refuse = (h: string, status: string): void => assert.equal(checkFromHeader(msg(h), owns)?.status, status, h);
  // Names that decode or normalise to another address.
  refuse("From: =?utf-8?B?Y2VvQGJhbmsudGVzdA==?= <alice@example.test>", "5.7.1");
  refuse("From: =?utf-8?Q?ceo=40bank=2Etest?= <alice@example.test>", "5.7.1");
  refuse('From: "=?utf-8?Q?ceo=40bank=2Etest?=" <alice@example.test>', "5.7.1");
  refuse("From: alice@example.test (=?utf-8?B?Y2VvQGJhbmsudGVzdA==?=)", "5.7.1");
  refuse('From: "ceo\uFF20bank.test" <alice@example.test>', "5.7.1");
  refuse('From: "ceo @ bank.test" <alice@example.test>', "5.7.1");
  refuse('From: "ceo@bank\u3002test" <alice@example.test>', "5.7.1");
  refuse('From: "c\u200Beo@bank.test" <alice@example.test>', "5.7.1");
  // The whole From: as an encoded word is no address at all.
  refuse("From: =?utf-8?Q?ceo=40bank=2Etest?=", "5.6.0");
  // A second From: behind a byte-order mark, or folded before its colon.
  refuse("From: alice@example.test\r\n\uFEFFFrom: ceo@bank.test", "5.6.0");
  refuse("From: alice@example.test\r\nFrom\r\n : ceo@bank.test", "5.6.0");
  // A single originator field in a spelling the DKIM signer, the next hop or a reader may not take for it.
  refuse("\uFEFFFrom: alice@example.test", "5.6.0");
  refuse("From : alice@example.test", "5.6.0");
  refuse("From\r\n : alice@example.test", "5.6.0");
  refuse("Fr\u00ADom: alice@example.test", "5.6.0");
  refuse("From: alice@example.test\r\nSender\t: alice@example.test", "5.6.0");
  ok("FROM: alice@example.test\r\nresent-from: alice@example.test");
  // Sender:, Resent-From:, Resent-Sender: are originators too.
  refuse("From: alice@example.test\r\nSender: ceo@bank.test", "5.7.1");
  refuse("From: alice@example.test\r\nResent-From: Bank <ceo@bank.test>", "5.7.1");
  refuse("From: alice@example.test\r\nResent-Sender: ceo@bank.test", "5.7.1");
  refuse("From: alice@example.test\r\nSender: alice@example.test\r\nSender: sales@example.test", "5.6.0");
  refuse("From: alice@example.test\r\nSender: Bank of Test", "5.6.0");
  ok("From: alice@example.test\r\nSender: sales@example.test\r\nResent-From: Sales <sales@example.test>");
  ok("From: =?utf-8?Q?Alice_M=C3=BCller?= <alice@example.test>\r\nReply-To: someone@else.test");
  ok('From: "Alice @ Home" <alice@example.test>');
  ok('From: "alice\uFF20example.test" <alice@example.test>');
});

test("From: ownership reads the whole field: encoded words split at specials or over several words, quoted local parts in names", () => {
  const ok = (h: string): void => assert.equal(checkFromHeader(msg(h), owns), undefined, h);
  const refuse = (h: string): void => assert.equal(checkFromHeader(msg(h), owns)?.status, "5.7.1", h);
  // The tokenizer splits an unquoted encoded word at "." or "_": decoded whole, it is an address.
  refuse("From: =?utf-8?q?ceo=40bank.test?= <alice@example.test>");
  refuse("From: =?utf-8?q?ceo?= =?utf-8?q?=40bank.test?= <alice@example.test>");
  refuse("From: =?UTF-8*en?Q?ceo=40bank.test?= <alice@example.test>");
  refuse("From: =?UTF-8?Q?ceo_=40_bank_._test?= <alice@example.test>");
  refuse("Sender: =?utf-8?q?ceo=40bank.test?= <alice@example.test>\r\nFrom: alice@example.test");
  // Quotation marks around the local part do not hide the address from a reader.
  refuse(`From: "'ceo'@bank.test" <alice@example.test>`);
  refuse('From: "\\"ceo\\"@bank.test" <alice@example.test>');
  refuse('From: "\u201Cceo\u201D@bank.test" <alice@example.test>');
  // UTF-7, a charset TextDecoder does not know but some readers decode.
  refuse("From: =?utf-7?q?ceo+AEA-bank.test?= <alice@example.test>");
  // A charset nobody knows: readers fall back to a default one.
  refuse("From: =?x-no-such?q?ceo=40bank=2Etest?= <alice@example.test>");
  refuse("From: =?iso-2022-kr?q?ceo=40bank=2Etest?= <alice@example.test>");
  // More Resent- fields than are parsed: refused, never an unchecked eleventh.
  const resent = "From: alice@example.test\r\n" + "Resent-From: alice@example.test\r\n".repeat(10);
  assert.equal(checkFromHeader(msg(`${resent}Resent-From: CEO <ceo@bank.test>`), owns)?.status, "5.6.0");
  assert.equal(checkFromHeader(msg(`${resent}Resent-From: Alice <alice@example.test>`), owns)?.status, "5.6.0");
  assert.equal(checkFromHeader(msg(resent), owns), undefined);
  // A field that shows more than MAX_MAILBOXES addresses is refused without asking about each.
  let asked = 0;
  const counting = (a: string): boolean => (asked++, owns(a));
  const many = `From: "${Array.from({ length: 150 }, (_, i) => `x${i}@example.test`).join(" ")}" <alice@example.test>`;
  assert.equal(checkFromHeader(msg(many), counting)?.status, "5.6.0");
  assert.ok(asked <= 1, String(asked));
  // An IDN in a name is compared in its A-label form.
  refuse('From: "ceo@b\u00e4nk.test" <alice@example.test>');
  // Owned addresses in every form a field may take still pass.
  ok("From: =?utf-8?q?Alice_M=C3=BCller?= <alice@example.test>");
  ok("From: Alice . Smith <alice@example.test>");
  ok("From: <@relay.test,@other.test:alice@example.test>");
  ok("From: alice@example.test(Alice)");
  ok('From: "Alice \'Al\' Smith" <alice@example.test>');
  ok("From: alice @ example.test");
});

test("addressesIn: linear time on long names", () => {
  // 100 KB without "@" (and with one at the end, and many): a backtracking regex took seconds here.
  for (const name of ["a".repeat(100_000), "a".repeat(100_000) + "@", "a@".repeat(50_000)]) {
    const t0 = performance.now();
    addressesIn(name);
    assert.ok(performance.now() - t0 < 200);
  }
});
