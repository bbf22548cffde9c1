/**
 * Unit tests of the submission policy parts: the brute-force guard and the
 * hourly limits (on a real SQLite database, with an injected clock), client
 * keys (IPv6 /64), trusted networks, and the From: header ownership check.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AuthGuard, serverSecret } from "./guard.ts";
import { clientKey, Networks } from "./networks.ts";
import { addressesIn, checkFromHeader, fromAddresses } from "./sender.ts";

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
};
const ACCOUNTS = { maxMessagesPerHour: 3, maxRecipientsPerHour: 10 };

function guard(start = 1_000_000_000_000): { g: AuthGuard; clock: { t: number } } {
  const clock = { t: start };
  const g = new AuthGuard(new DatabaseSync(":memory:"), { auth: AUTH, accounts: ACCOUNTS }, () => clock.t);
  return { g, clock };
}

test("failure delays double per failure of the client, capped", () => {
  const { g } = guard();
  const delays = [1, 2, 3, 4].map(() => g.failure("ip:192.0.2.1", undefined).delayMs);
  assert.deepEqual(delays, [100, 200, 400, 800]);
  // Another client starts again at the base delay.
  assert.equal(g.failure("ip:192.0.2.2", undefined).delayMs, 100);
  const { g: g2 } = guard();
  for (let i = 0; i < 4; i++) g2.failure("ip:192.0.2.9", `u${i}`);
});

test("a client is blocked at ip_max_failures for ip_block seconds; others are not", () => {
  const { g, clock } = guard();
  for (let i = 1; i <= 4; i++) assert.equal(g.failure("ip:192.0.2.1", `user${i}@x.test`).blocked, undefined);
  assert.equal(g.failure("ip:192.0.2.1", "user5@x.test").blocked, "client");
  assert.equal(g.blocked("ip:192.0.2.1"), "client");
  assert.equal(g.blocked("ip:192.0.2.2"), undefined);
  clock.t += 119_000;
  assert.equal(g.blocked("ip:192.0.2.1"), "client");
  clock.t += 2_000;
  assert.equal(g.blocked("ip:192.0.2.1"), undefined);
});

test("failures outside the window do not add up", () => {
  const { g, clock } = guard();
  for (let i = 0; i < 4; i++) g.failure("ip:192.0.2.1", undefined);
  clock.t += 61_000;
  for (let i = 0; i < 4; i++) assert.equal(g.failure("ip:192.0.2.1", undefined).blocked, undefined);
  assert.equal(g.blocked("ip:192.0.2.1"), undefined);
});

test("a name is locked after account_max_failures from any clients, unknown names too; success clears the name only", () => {
  const { g, clock } = guard();
  g.failure("ip:192.0.2.1", "Bob@Example.test");
  g.failure("ip:192.0.2.2", "bob@example.test");
  assert.equal(g.failure("ip:192.0.2.3", "bob@example.test").blocked, "user");
  assert.equal(g.blocked("ip:192.0.2.4", "BOB@example.test"), "user");
  assert.equal(g.blocked("ip:192.0.2.4", "alice@example.test"), undefined);
  clock.t += 301_000;
  assert.equal(g.blocked("ip:192.0.2.4", "bob@example.test"), undefined);
  // Success forgets the name's failures, never the client's.
  g.failure("ip:192.0.2.7", "carol@example.test");
  g.failure("ip:192.0.2.7", "carol@example.test");
  g.success("carol@example.test");
  assert.equal(g.failure("ip:192.0.2.7", "carol@example.test").blocked, undefined);
  assert.equal(g.failure("ip:192.0.2.7", "carol@example.test").blocked, undefined);
  assert.equal(g.failure("ip:192.0.2.7", "carol@example.test").blocked, "client");
});

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

test("addressesIn: what the display-name regex finds, in linear time", () => {
  const re = /[^\s<>"'(),;:@]+@[^\s<>"'(),;:@]+\.[^\s<>"'(),;:@]+/g;
  const alphabet = ["a", "b", ".", "@", " ", "<", '"', ":", "x.y", "@@", ".."];
  let seed = 11;
  const rand = (n: number): number => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed % n;
  };
  for (let i = 0; i < 20_000; i++) {
    let s = "";
    for (let j = rand(16); j > 0; j--) s += alphabet[rand(alphabet.length)];
    assert.deepEqual(addressesIn(s), [...s.matchAll(re)].map((m) => m[0]), JSON.stringify(s));
  }
  // 100 KB without "@" (and with one at the end): the regex took seconds here.
  for (const name of ["a".repeat(100_000), "a".repeat(100_000) + "@"]) {
    const t0 = performance.now();
    assert.deepEqual(addressesIn(name), []);
    assert.ok(performance.now() - t0 < 100);
  }
});
