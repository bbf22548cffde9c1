/**
 * Connection reuse against a real receiving MTA: Postfix (mailbox mode, with
 * STARTTLS) stores mail for rcpt@far.test; Wardmail (one worker) relays
 * far.test to it ([[outbound.relays]], tls = "encrypt"). Six messages, each
 * sent after the one before is stored, so each is a batch of its own:
 * Postfix's log shows one connection and one TLS handshake for all six;
 * with outbound.connection_cache_time = 0 (a second Wardmail) every message
 * has its own connection.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CertFactory } from "../src/outbound/mta-sts-testing.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { peerSkip } from "./helpers/peers.ts";
import { postfixMissing, startPostfix, type PostfixInstance } from "./peers/postfix.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";

const SKIP = peerSkip(postfixMissing());
const RCPT = "rcpt@far.test";

let certs: CertFactory | undefined;
let pf: PostfixInstance | undefined;
const servers: Wardmail[] = [];

before(async () => {
  if (SKIP !== false) return;
  certs = await CertFactory.create();
  const ca = await certs.caCert("Postfix Reuse CA");
  const leaf = await certs.make({ names: ["127.0.0.1"], issuer: ca });
  const certFile = join(certs.dir, "pf-cert.pem");
  const keyFile = join(certs.dir, "pf-key.pem");
  await writeFile(certFile, leaf.chain);
  await writeFile(keyFile, leaf.key, { mode: 0o600 });
  pf = await startPostfix({ mode: "mailbox", mailboxes: [RCPT], tls: { certFile, keyFile } });
});

after(async () => {
  for (const w of servers) {
    await w.stop();
    await w.cleanup();
  }
  await pf?.stop();
  await certs?.cleanup();
});

async function wardmail(cacheTime: number): Promise<Wardmail> {
  const w = await startWardmail({
    workers: 1,
    extra: ["[relay]", 'trusted_networks = ["127.0.0.1/32"]', "[outbound]", `connection_cache_time = ${cacheTime}`, "[[outbound.relays]]", 'domains = ["far.test"]', `host = "127.0.0.1:${pf?.port ?? 0}"`, 'tls = "encrypt"', ""].join("\n"),
  });
  servers.push(w);
  return w;
}

/** Sends `count` messages through `w`, each after the one before is in the mailbox; returns Postfix's connections meanwhile. */
async function sendSequentially(w: Wardmail, count: number): Promise<{ connects: number; tls: number }> {
  const postfix = pf as PostfixInstance;
  const count0 = (await postfix.mailbox(RCPT)).length;
  const log0 = await postfix.readLog();
  for (let i = 1; i <= count; i++) {
    const replies = await sendOneMessage({ port: w.smtpPort, from: "a@sender.test", to: [RCPT], body: `From: a@sender.test\r\nSubject: reuse ${i}\r\n\r\npostfix reuse ${i}\r\n` });
    assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
    const got = await postfix.waitForMailbox(RCPT, count0 + i, 20_000);
    assert.equal(got.length, count0 + i, `message ${i} not stored\n${w.output().slice(-2000)}`);
  }
  const log = (await postfix.readLog()).slice(log0.length);
  return { connects: (log.match(/smtpd\[\d+\]: connect from /g) ?? []).length, tls: (log.match(/TLS connection established from /g) ?? []).length };
}

test("six messages, one after another, to a Postfix relay: one connection and one TLS handshake; without the cache, six", { skip: SKIP }, async () => {
  const reusing = await wardmail(10);
  const r = await sendSequentially(reusing, 6);
  assert.deepEqual(r, { connects: 1, tls: 1 });
  await reusing.stop(); // QUITs the cached connection

  const plain = await wardmail(0);
  const p = await sendSequentially(plain, 6);
  assert.deepEqual(p, { connects: 6, tls: 6 });
});
