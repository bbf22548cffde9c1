/**
 * sasl.ts: what is advertised, which names createMechanism accepts, and the
 * PLAIN (RFC 4616) and LOGIN mechanisms against a tiny credential store.
 * SCRAM has its own tests in scram.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { advertisedMechanisms, createMechanism, MECHANISMS } from "./sasl.ts";
import { deriveScramKeys } from "./scram-keys.ts";
import type { CredentialStore, SaslContext, SaslMechanism, SaslStep, ScramCredentials } from "./types.ts";

// ---- A tiny credential store: alice (an alias and an app password) and bob. ----

const ACCOUNTS = [
  { account: "alice@example.org", names: ["alice@example.org", "postmaster@example.org"], secrets: ["alice pw", "alice-app-pw"] },
  { account: "bob@example.org", names: ["bob@example.org"], secrets: ["b\u00f6b pw \u20ac"] },
];
const SALT = randomBytes(16);
const SCRAM = new Map<string, ScramCredentials>();
for (const a of ACCOUNTS) {
  const keys = await Promise.all(a.secrets.map((s) => deriveScramKeys(s, SALT)));
  for (const n of a.names) SCRAM.set(n, { account: a.account, salt: SALT, iterations: 10_000, keys });
}

/** Every checkPassword call, to see exactly what reaches the store (and that nothing does for malformed input). */
const checks: [string, string][] = [];
const store: CredentialStore = {
  checkPassword: (username, password) => {
    checks.push([username, password]);
    const a = ACCOUNTS.find((x) => x.names.includes(username.toLowerCase()));
    return Promise.resolve(a?.secrets.includes(password) ? a.account : undefined);
  },
  scramCredentials: (username) => SCRAM.get(username.toLowerCase()),
};
const ctx = (channelBinding: Buffer | undefined = undefined): SaslContext => ({ store, channelBinding, fakeSaltKey: randomBytes(32) });

// ---- Helpers. ----

function mech(name: string, context: SaslContext = ctx()): SaslMechanism {
  const m = createMechanism(name, context);
  assert.ok(m, name);
  return m;
}

const text = (s: string): Buffer => Buffer.from(s, "utf8");
const challenge = (s: string): SaslStep => ({ kind: "challenge", data: text(s) });
const success = (account: string): SaslStep => ({ kind: "success", account });
const MALFORMED: SaslStep = { kind: "failure", reason: "malformed" };
const credentials = (user: string): SaslStep => ({ kind: "failure", reason: "credentials", user });

/** PLAIN as the initial response, in one step. */
const plain = (message: string | Buffer): Promise<SaslStep> => mech("PLAIN").step(typeof message === "string" ? text(message) : message);

// ---- Advertising and creating. ----

void test("MECHANISMS in the order we advertise them", () => {
  assert.deepEqual(MECHANISMS, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"]);
  assert.ok(Object.isFrozen(MECHANISMS));
});

void test("advertisedMechanisms: -PLUS only with channel binding", () => {
  assert.deepEqual(advertisedMechanisms(true), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"]);
  assert.deepEqual(advertisedMechanisms(false), ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);
  // A fresh array: a caller that edits it does not change the next answer.
  advertisedMechanisms(false).pop();
  assert.equal(advertisedMechanisms(false).length, 3);
});

void test("createMechanism: names are case-insensitive (ASCII only), unknown ones are undefined", () => {
  for (const [asked, name] of [["plain", "PLAIN"], ["Login", "LOGIN"], ["scram-sha-256", "SCRAM-SHA-256"], ["SCRAM-SHA-256-plus", "SCRAM-SHA-256-PLUS"]] as const) {
    assert.equal(createMechanism(asked, ctx(randomBytes(32)))?.name, name, asked);
  }
  for (const unknown of ["", "CRAM-MD5", "SCRAM-SHA-1", "XOAUTH2", "PLAIN ", "PLA\u0130N", "LOG\u0131N", "SCRAM-SHA-256-PLUS-X"]) {
    assert.equal(createMechanism(unknown, ctx(randomBytes(32))), undefined, unknown);
  }
});

void test("createMechanism: -PLUS is unavailable without channel binding; every call is a fresh instance", async () => {
  assert.equal(createMechanism("SCRAM-SHA-256-PLUS", ctx()), undefined);
  assert.ok(createMechanism("SCRAM-SHA-256", ctx()));
  const a = mech("PLAIN");
  const b = mech("PLAIN");
  assert.notEqual(a, b);
  assert.deepEqual(await a.step(text("\0alice@example.org\0alice pw")), success("alice@example.org"));
  assert.deepEqual(await b.step(text("\0bob@example.org\0b\u00f6b pw \u20ac")), success("bob@example.org"));
});

// ---- PLAIN. ----

void test("PLAIN: the right password gives the canonical account; the store gets authcid and password as sent", async () => {
  checks.length = 0;
  assert.deepEqual(await plain("\0Alice@Example.org\0alice pw"), success("alice@example.org"));
  assert.deepEqual(await plain("\0postmaster@example.org\0alice-app-pw"), success("alice@example.org"));
  assert.deepEqual(await plain("\0bob@example.org\0b\u00f6b pw \u20ac"), success("bob@example.org"));
  assert.deepEqual(checks, [["Alice@Example.org", "alice pw"], ["postmaster@example.org", "alice-app-pw"], ["bob@example.org", "b\u00f6b pw \u20ac"]]);
});

void test("PLAIN: a wrong password or unknown user fails with credentials, naming the user", async () => {
  assert.deepEqual(await plain("\0alice@example.org\0bob pw"), credentials("alice@example.org"));
  assert.deepEqual(await plain("\0nobody@example.org\0alice pw"), credentials("nobody@example.org"));
  assert.deepEqual(await plain("\0alice@example.org\0Alice pw"), credentials("alice@example.org"));
});

void test("PLAIN without an initial response: an empty challenge, then the message", async () => {
  const m = mech("PLAIN");
  assert.deepEqual(await m.step(undefined), challenge(""));
  assert.deepEqual(await m.step(text("\0alice@example.org\0alice pw")), success("alice@example.org"));
  // The exchange is over.
  assert.deepEqual(await m.step(text("\0alice@example.org\0alice pw")), MALFORMED);

  const failed = mech("PLAIN");
  await failed.step(undefined);
  assert.deepEqual(await failed.step(text("\0alice@example.org\0wrong")), credentials("alice@example.org"));
  assert.deepEqual(await failed.step(text("\0alice@example.org\0alice pw")), MALFORMED, "no second try within one exchange");
  // undefined is only meaningful as the first step.
  const twice = mech("PLAIN");
  await twice.step(undefined);
  assert.deepEqual(await twice.step(undefined), MALFORMED);
});

void test("PLAIN: malformed messages never reach the store", async () => {
  checks.length = 0;
  const bad: (string | Buffer)[] = [
    "", // "AUTH PLAIN =" : an empty initial response
    "alice@example.org\0alice pw", // 2 fields
    "\0alice@example.org\0alice pw\0", // 4 fields
    "\0alice@example.org\0alice\0pw",
    "\0\0alice pw", // empty authcid
    "\0alice@example.org\0", // empty password
    "\0\0",
    Buffer.concat([text("\0alice@example.org\0"), Buffer.from([0xc3, 0x28])]), // bad UTF-8 in the password
    Buffer.concat([text("\0"), Buffer.from([0xff]), text("alice@example.org\0alice pw")]),
    Buffer.concat([text("\0alice@example.org\0"), Buffer.from([0xed, 0xa0, 0x80])]), // an encoded surrogate
    `\0${"a".repeat(256)}\0alice pw`, // authcid over 255 bytes
    `${"\u00e9".repeat(128)}\0alice@example.org\0alice pw`, // authzid of 256 bytes in 128 characters
    `\0alice@example.org\0${"p".repeat(1025)}`, // password over 1024 bytes
    `\0alice@example.org\0${"p".repeat(5000)}`, // whole message over 4096 bytes
  ];
  for (const msg of bad) assert.deepEqual(await plain(msg), MALFORMED, JSON.stringify(msg.toString()));
  assert.deepEqual(checks, []);
});

void test("PLAIN: the length limits are inclusive", async () => {
  checks.length = 0;
  assert.deepEqual(await plain(`${"z".repeat(255)}\0${"a".repeat(255)}\0${"p".repeat(1024)}`), credentials("a".repeat(255)));
  assert.equal(checks.length, 1);
});

void test("PLAIN authzid: empty, the same name in any case, or the account; anything else fails, but only after the password", async () => {
  assert.deepEqual(await plain("alice@example.org\0alice@example.org\0alice pw"), success("alice@example.org"));
  assert.deepEqual(await plain("ALICE@example.org\0alice@Example.org\0alice pw"), success("alice@example.org"));
  // Logged in through the alias, acting as the account it resolves to.
  assert.deepEqual(await plain("alice@example.org\0postmaster@example.org\0alice pw"), success("alice@example.org"));
  assert.deepEqual(await plain("Alice@Example.org\0postmaster@example.org\0alice pw"), success("alice@example.org"));
  assert.deepEqual(await plain("POSTMASTER@example.org\0postmaster@example.org\0alice pw"), success("alice@example.org"));
  assert.deepEqual(await plain("bob@example.org\0alice@example.org\0alice pw"), { kind: "failure", reason: "authzid", user: "alice@example.org" });
  // Names are compared, aliases not resolved.
  assert.deepEqual(await plain("postmaster@example.org\0alice@example.org\0alice pw"), { kind: "failure", reason: "authzid", user: "alice@example.org" });
  // A wrong password with a foreign authzid says only "credentials".
  assert.deepEqual(await plain("bob@example.org\0alice@example.org\0wrong"), credentials("alice@example.org"));
  assert.deepEqual(await plain("bob@example.org\0nobody@example.org\0x"), credentials("nobody@example.org"));
});

void test("PLAIN: a step while the store is still checking is refused", async () => {
  const m = mech("PLAIN");
  const first = m.step(text("\0alice@example.org\0alice pw"));
  assert.deepEqual(await m.step(text("\0alice@example.org\0alice pw")), MALFORMED);
  assert.deepEqual(await first, success("alice@example.org"));
});

// ---- LOGIN. ----

void test("LOGIN without an initial response: Username:, Password:, success", async () => {
  const m = mech("LOGIN");
  assert.deepEqual(await m.step(undefined), challenge("Username:"));
  assert.deepEqual(await m.step(text("alice@example.org")), challenge("Password:"));
  assert.deepEqual(await m.step(text("alice-app-pw")), success("alice@example.org"));
  assert.deepEqual(await m.step(text("alice pw")), MALFORMED, "nothing after the end");
});

void test("LOGIN with the user name as initial response: straight to Password:", async () => {
  checks.length = 0;
  const m = mech("LOGIN");
  assert.deepEqual(await m.step(text("Bob@Example.org")), challenge("Password:"));
  assert.deepEqual(await m.step(text("b\u00f6b pw \u20ac")), success("bob@example.org"));
  assert.deepEqual(checks, [["Bob@Example.org", "b\u00f6b pw \u20ac"]]);
});

void test("LOGIN: a wrong password fails with credentials, and the exchange is over", async () => {
  const m = mech("LOGIN");
  await m.step(undefined);
  await m.step(text("alice@example.org"));
  assert.deepEqual(await m.step(text("bob pw")), credentials("alice@example.org"));
  assert.deepEqual(await m.step(text("alice pw")), MALFORMED);
});

void test("LOGIN: empty, NUL-bearing, over-long or non-UTF-8 answers are malformed and never reach the store", async () => {
  checks.length = 0;
  const badUser = [text(""), text("a\0b"), Buffer.from([0x61, 0xff]), text("a".repeat(256))];
  for (const user of badUser) {
    const m = mech("LOGIN");
    await m.step(undefined);
    assert.deepEqual(await m.step(user), MALFORMED, JSON.stringify(user.toString()));
    // And as initial response ("AUTH LOGIN =" is the empty one).
    assert.deepEqual(await mech("LOGIN").step(user), MALFORMED);
  }
  for (const password of [text(""), text("p\0w"), Buffer.from([0xc3]), text("p".repeat(1025))]) {
    const m = mech("LOGIN");
    await m.step(text("alice@example.org"));
    assert.deepEqual(await m.step(password), MALFORMED, JSON.stringify(password.toString()));
  }
  assert.deepEqual(checks, []);
  const twice = mech("LOGIN");
  await twice.step(undefined);
  assert.deepEqual(await twice.step(undefined), MALFORMED);
});

void test("PLAIN and LOGIN ask admit once, with the user name as sent, before the store; refused, nothing is checked and any password fails alike", async () => {
  for (const allow of [true, false]) {
    const asked: string[] = [];
    const context: SaslContext = { ...ctx(), admit: (u) => (asked.push(u), allow) };
    checks.length = 0;
    const results: SaslStep[] = [];
    for (const pw of ["alice pw", "wrong pw"]) {
      results.push(await mech("PLAIN", context).step(text(`\0Alice@example.org\0${pw}`)));
      const login = mech("LOGIN", context);
      await login.step(text("Alice@example.org"));
      results.push(await login.step(text(pw)));
    }
    assert.deepEqual(asked, ["Alice@example.org", "Alice@example.org", "Alice@example.org", "Alice@example.org"]);
    if (allow) {
      assert.deepEqual(results.map((r) => r.kind), ["success", "success", "failure", "failure"]);
      assert.equal(checks.length, 4);
    } else {
      const refused: SaslStep = { kind: "failure", reason: "refused", user: "Alice@example.org" };
      assert.deepEqual(results, [refused, refused, refused, refused]);
      assert.deepEqual(checks, []);
    }
  }
  // Malformed messages never get as far as admit.
  const asked: string[] = [];
  await mech("PLAIN", { ...ctx(), admit: (u) => (asked.push(u), true) }).step(text("no separators"));
  assert.deepEqual(asked, []);
});
