/**
 * Outbound connection reuse (issue 12; src/outbound/pool.ts): a connection
 * that delivered its mail stays open for the next mail to the same
 * destination under the same TLS requirement and relay credentials, and
 * nothing else.
 *
 * Peers: STARTTLS SMTP sinks on loopback (test/peers/smtp-sink.ts) that
 * record every session with its commands, with certificates from a test CA
 * for 127.0.0.1. One Wardmail (one worker: one connection cache) relays
 * mail from 127.0.0.1 (a trusted network) to them through
 * [[outbound.relays]] given by IP address, so no DNS is asked:
 *   a.test, b.test     sink S1, tls = "encrypt" and tls = "may" (two policies)
 *   u1.test, u2.test   sink S1, tls = "required" with the CA, AUTH as u1 / u2
 *   idle.test          sink S2, which closes a connection idle for 300 ms (421)
 *   rset.test          sink S3, which refuses RSET with 421 (a reused connection)
 * Each message waits for the one before it to arrive, so every message is
 * a batch of its own: without reuse each would open a connection.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CertFactory } from "../src/outbound/mta-sts-testing.ts";
import { QueueAdmin } from "../src/queue/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { startSmtpSink, type SinkSession, type SmtpSink } from "./peers/smtp-sink.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";

let certs: CertFactory | undefined;
let s1: SmtpSink | undefined;
let s2: SmtpSink | undefined;
let s3: SmtpSink | undefined;
let w: Wardmail | undefined;
let n = 0;

before(async () => {
  certs = await CertFactory.create();
  const ca = await certs.caCert("Reuse Test CA");
  const leaf = await certs.make({ names: ["127.0.0.1"], issuer: ca });
  const cert = { key: leaf.key, cert: leaf.chain };
  s1 = await startSmtpSink({ fallback: cert, auth: true });
  s2 = await startSmtpSink({ fallback: cert, idleCloseMs: 300 });
  // The first RSET of a session is the reuse probe: refused, the connection is gone.
  s3 = await startSmtpSink({ fallback: cert, rsetReply: () => "421 4.3.2 sink: shutting down" });
  await writeFile(join(certs.dir, "u1.pw"), "password-one\n");
  await writeFile(join(certs.dir, "u2.pw"), "password-two\n");
  const relay = (domain: string, port: number, tls: string, more: string[] = []): string[] => ["[[outbound.relays]]", `domains = ["${domain}"]`, `host = "127.0.0.1:${port}"`, `tls = "${tls}"`, ...more];
  const auth = (user: string): string[] => [`ca_file = "${ca.certPath}"`, `user = "${user}"`, `password_file = "${join(certs?.dir ?? "", `${user}.pw`)}"`];
  w = await startWardmail({
    workers: 1,
    extra: [
      "[relay]",
      'trusted_networks = ["127.0.0.1/32"]',
      "[outbound]",
      "connection_cache_time = 10",
      ...relay("a.test", s1.port, "encrypt"),
      ...relay("b.test", s1.port, "may"),
      ...relay("u1.test", s1.port, "required", auth("u1")),
      ...relay("u2.test", s1.port, "required", auth("u2")),
      ...relay("idle.test", s2.port, "encrypt"),
      ...relay("rset.test", s3.port, "encrypt"),
      "",
    ].join("\n"),
  });
});

after(async () => {
  await w?.stop();
  await w?.cleanup();
  await s1?.close();
  await s2?.close();
  await s3?.close();
  await certs?.cleanup();
});

/** Sends one message to `to` and waits until `sink` has it; returns the session that carried it. */
async function relayOne(sink: SmtpSink, to: string): Promise<SinkSession> {
  const server = w as Wardmail;
  const token = `reuse-token-${++n}-${to}`;
  const replies = await sendOneMessage({ port: server.smtpPort, from: "a@sender.test", to: [to], body: `From: a@sender.test\r\nSubject: reuse ${n}\r\n\r\n${token}\r\n` });
  assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
  const got = await sink.waitForMessage(token, 20_000);
  assert.ok(got, `${to}: not delivered\n${server.output().slice(-3000)}`);
  assert.ok(got.tls, `${to}: not over TLS`);
  const session = sink.sessions.find((s) => s.messages.some((m) => m.data.includes(token)));
  assert.ok(session);
  return session;
}

/** Queue entries left (a deferred message stays queued: queue.retry_min is 300 s). */
function queued(server: Wardmail): number {
  const admin = QueueAdmin.open(server.dataDir);
  try {
    return admin.list().length;
  } finally {
    admin.close();
  }
}

async function drained(server: Wardmail, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = queued(server);
    if (left === 0 || Date.now() > deadline) return left;
    await sleep(50);
  }
}

test("five messages to one destination, one after another: one connection, RSET between them", async () => {
  const sink = s1 as SmtpSink;
  const before = sink.sessions.length;
  const sessions = [];
  for (let i = 0; i < 5; i++) sessions.push(await relayOne(sink, `bob${i}@a.test`));
  assert.equal(sink.sessions.length - before, 1, `connections: ${sink.sessions.length - before}`);
  const s = sessions[0] as SinkSession;
  assert.ok(sessions.every((x) => x === s));
  assert.equal(s.messages.length, 5);
  assert.equal(s.commands.filter((c) => c === "tls:RSET").length, 4, s.commands.join(" | "));
  assert.equal(s.commands.filter((c) => /^(tls:)?STARTTLS/.test(c) || c === "STARTTLS").length, 1);
  assert.ok(!s.closed, "the cached connection was closed");
});

test("different TLS requirements and different relay credentials never share a connection", async () => {
  const sink = s1 as SmtpSink;
  const a = await relayOne(sink, "carl@a.test");
  const b = await relayOne(sink, "carl@b.test");
  assert.notEqual(b, a, 'mail under tls = "may" went over the connection opened under "encrypt"');
  const u1 = await relayOne(sink, "dora@u1.test");
  const u2 = await relayOne(sink, "dora@u2.test");
  assert.notEqual(u1, u2, "mail for the u2 relay went over the connection authenticated as u1");
  assert.ok(u1 !== a && u1 !== b && u2 !== a && u2 !== b);
  assert.deepEqual(u1.auths.map((x) => x.decoded), ["\0u1\0password-one"]);
  assert.deepEqual(u2.auths.map((x) => x.decoded), ["\0u2\0password-two"]);
  // Each goes back to its own connection, with no second AUTH.
  assert.equal(await relayOne(sink, "eve@a.test"), a);
  assert.equal(await relayOne(sink, "eve@b.test"), b);
  assert.equal(await relayOne(sink, "eve@u1.test"), u1);
  assert.equal(await relayOne(sink, "eve@u2.test"), u2);
  assert.equal(u1.auths.length, 1);
  assert.equal(u2.auths.length, 1);
});

test("a peer that closes the idle cached connection: the next message goes on a new one, not deferred", async () => {
  const server = w as Wardmail;
  const sink = s2 as SmtpSink;
  const first = await relayOne(sink, "fred@idle.test");
  const deadline = Date.now() + 5000;
  while (!first.closed && Date.now() < deadline) await sleep(50);
  assert.ok(first.closed, "the sink did not close the idle connection");
  const second = await relayOne(sink, "gina@idle.test");
  assert.notEqual(second, first);
  assert.equal(await drained(server, 5000), 0, "a message was deferred");
  assert.doesNotMatch(server.output(), /"msg":"[^"]*defer[^"]*"[^\n]*idle\.test/i);
});

test("a cached connection that refuses RSET: the message is sent again on a new connection at once, not deferred", async () => {
  const server = w as Wardmail;
  const sink = s3 as SmtpSink;
  const first = await relayOne(sink, "hugo@rset.test");
  const second = await relayOne(sink, "ida@rset.test");
  assert.notEqual(second, first);
  assert.ok(first.commands.includes("tls:RSET"), first.commands.join(" | "));
  assert.ok(first.closed);
  assert.equal(first.messages.length, 1);
  assert.equal(second.messages.length, 1);
  assert.equal(await drained(server, 5000), 0, "a message was deferred");
  assert.match(server.output(), /cached outbound connection unusable; sending on a new one/);
  // Each message arrived exactly once.
  assert.equal(sink.messages().length, 2);
});
