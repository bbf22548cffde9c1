/**
 * Encrypt-on-store in the local delivery agent, with the real key store
 * (accounts database) and OpenPGP.js keys: a mailbox with a key gets an
 * encrypted copy that decrypts to the queued content, a mailbox without one
 * the content as queued, an alias the account's encryption; a mailbox whose
 * only key has expired since its import is deferred, never stored in the
 * clear.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as openpgp from "openpgp";
import { Spool } from "../queue/index.ts";
import { captureLogger, routed, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import { AccountStore } from "../accounts/index.ts";
import { KeyStore, StoreEncryption } from "../e2e/index.ts";
import { QueueManager } from "./index.ts";
import { mailboxPath } from "../delivery/index.ts";
import { Router, type LocalConfig } from "../sink/index.ts";

const LOCAL: LocalConfig = {
  domains: ["example.test"],
  mailboxes: ["plain@example.test"],
  aliases: {},
  discard: [],
  maildir: "mail/%d/%n/Maildir",
  lmtp: {},
};

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("mailboxes with keys get an encrypted copy, others the original; an expired key defers instead of storing in the clear", async (t) => {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const accounts = AccountStore.open(dir, { create: true, localDomains: LOCAL.domains });
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const keys = new KeyStore(accounts);
  const agent = new QueueManager({
    spool,
    dataDir: dir,
    logger: log.logger,
    pollMs: 20,
    hostname: "mx.test",
    encryption: new StoreEncryption(keys),
  });
  t.after(async () => {
    await agent.stop();
    spool.close();
    accounts.close();
    cleanup();
  });
  await accounts.addAccount("enc@example.test", "correct horse battery");
  await accounts.addAccount("old@example.test", "correct horse battery");
  const good = await openpgp.generateKey({ type: "curve25519", userIDs: [{ email: "enc@example.test" }], format: "object" });
  await keys.import("enc@example.test", good.publicKey.armor());
  // A key valid when it was imported (8 days ago), expired since (after 5 days).
  const created = new Date(Date.now() - 10 * 86_400_000);
  const old = await openpgp.generateKey({ type: "curve25519", userIDs: [{ email: "old@example.test" }], date: created, keyExpirationTime: 5 * 86_400, format: "armored" });
  await keys.import("old@example.test", old.publicKey, new Date(Date.now() - 8 * 86_400_000));

  const files = (mailbox: string): string[] => {
    const md = join(mailboxPath(dir, LOCAL.maildir, mailbox), "new");
    return existsSync(md) ? readdirSync(md).map((n) => join(md, n)) : [];
  };
  agent.start();
  const msg = sampleMessage({ from: "sender@remote.test", to: ["enc@example.test", "plain@example.test", "old@example.test"], size: 4000 });
  const router = new Router({ local: LOCAL, isAccount: (a) => accounts.resolve(a) === a });
  const id = await spool.enqueue(routed(msg, (a) => router.routeInPlace(a)));
  await waitFor(() => files("enc@example.test").length === 1 && files("plain@example.test").length === 1, "the two copies");
  await waitFor(() => log.has("not stored: the mailbox's encryption keys cannot be used"), "the deferral");
  // The outcome is recorded once every recipient of the message is done (after the log line).
  await waitFor(() => spool.admin.get(id)?.recipients.find((r) => r.address === "old@example.test")?.state === "deferred", "the recorded deferral");

  const plain = readFileSync(files("plain@example.test")[0] ?? "");
  assert.ok(plain.subarray(plain.length - msg.content.length).equals(msg.content));
  const enc = readFileSync(files("enc@example.test")[0] ?? "");
  const text = enc.toString("latin1");
  assert.match(text, /^Return-Path: <sender@remote\.test>\r\nDelivered-To: enc@example\.test\r\nReceived: from client\.example/);
  assert.match(text, /^Subject: \[\.\.\.\]\r$/m);
  assert.doesNotMatch(text, /Subject: test/);
  const armored = /-----BEGIN PGP MESSAGE-----[\s\S]*-----END PGP MESSAGE-----/.exec(text)?.[0] ?? "";
  const decrypted = await openpgp.decrypt({ message: await openpgp.readMessage({ armoredMessage: armored }), decryptionKeys: good.privateKey, format: "binary" });
  assert.ok(Buffer.from(decrypted.data as unknown as Uint8Array).equals(msg.content), "decrypts to the queued content");

  assert.deepEqual(files("old@example.test"), []);
  const rcpts = spool.admin.get(id)?.recipients ?? [];
  assert.equal(rcpts.find((r) => r.address === "old@example.test")?.state, "deferred");
  assert.match(rcpts.find((r) => r.address === "old@example.test")?.lastError ?? "", /no usable encryption key for old@example\.test/);
  assert.equal(agent.stats().encrypted, 1);
  assert.ok(!log.lines.some((l) => JSON.stringify(l).includes("test \u00e9")), "no subject in logs");
});
