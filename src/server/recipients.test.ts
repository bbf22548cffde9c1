/**
 * RCPT verdicts: local users (config and accounts), unknown users, relay
 * denied without permission, relay allowed with it, and relay tricks refused
 * for everyone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalRecipients } from "./recipients.ts";

const local = {
  domains: ["example.test", "localhost"],
  mailboxes: ["user@example.test"],
  aliases: { "team@example.test": ["user@example.test"] },
  discard: ["noreply@example.test"],
  maildir: "/tmp/%d/%n",
  lmtp: {},
};
const accounts = { resolve: (a: string): string | undefined => ({ "alice@example.test": "alice@example.test", "al@example.test": "alice@example.test", "postmaster@localhost": "alice@example.test" })[a.toLowerCase()] };
const r = new LocalRecipients(local, accounts);
const verdict = (a: string, relay = false): string => {
  const v = r.check(a, relay);
  return v.ok ? `ok ${v.address}` : `${v.reply.code} ${v.reply.status}`;
};

test("local recipients: config, accounts (aliases become the account), case-insensitive", () => {
  assert.equal(verdict("user@example.test"), "ok user@example.test");
  assert.equal(verdict("USER@Example.TEST"), "ok user@example.test");
  assert.equal(verdict("team@example.test"), "ok team@example.test");
  assert.equal(verdict("noreply@example.test"), "ok noreply@example.test");
  assert.equal(verdict("Alice@example.test"), "ok alice@example.test");
  assert.equal(verdict("al@example.test"), "ok alice@example.test");
  assert.equal(verdict("postmaster"), "ok postmaster@localhost");
  assert.equal(verdict("nobody@example.test"), "550 5.1.1");
  assert.equal(verdict("nobody@example.test", true), "550 5.1.1");
});

test("other domains: relay denied unless the client may relay", () => {
  assert.equal(verdict("bob@remote.test"), "554 5.7.1");
  assert.equal(verdict("bob@sub.example.test"), "554 5.7.1");
  assert.equal(verdict("bob@notexample.test"), "554 5.7.1");
  assert.equal(verdict("Bob@Remote.TEST", true), "ok Bob@remote.test");
});

test("relay tricks are refused whoever asks", () => {
  for (const a of ["user%remote.test@example.test", "remote.test!user@example.test", '"user@remote.test"@example.test', "user@[127.0.0.1]", "user@[IPv6:::1]", "bob%remote.test@remote2.test"]) {
    assert.equal(verdict(a), "550 5.7.1", a);
    assert.equal(verdict(a, true), "550 5.7.1", a);
  }
});

test("without a postmaster anywhere, <postmaster> is unknown", () => {
  const bare = new LocalRecipients({ ...local, mailboxes: [], aliases: {}, discard: [] });
  assert.equal(bare.check("postmaster").ok, false);
});
