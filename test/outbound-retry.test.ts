/**
 * A 4xx from a real peer is retried (issue: outbound): a relay host (a
 * STARTTLS SMTP sink on loopback, test/peers/smtp-sink.ts) answers the first
 * RCPT for a recipient with 451 4.3.0 and the next one with 250. Wardmail
 * defers (the queue shows the peer's reply), retries after queue.retry_min,
 * and the message arrives. Mail comes in on the MX port from a trusted
 * network, and the relay host needs no DNS.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { CertFactory } from "../src/outbound/mta-sts-testing.ts";
import { QueueAdmin } from "../src/queue/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { startSmtpSink, type SmtpSink } from "./peers/smtp-sink.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";

let certs: CertFactory | undefined;
let sink: SmtpSink | undefined;
let w: Wardmail | undefined;
const seen = new Map<string, number>();

before(async () => {
  certs = await CertFactory.create();
  // The relay is verified (tls = "required"): a certificate for its address from a CA in ca_file.
  const ca = await certs.caCert("Retry Test CA");
  const leaf = await certs.make({ names: ["relay.later.test", "127.0.0.1"], issuer: ca });
  sink = await startSmtpSink({
    fallback: { key: leaf.key, cert: leaf.cert },
    rcptReply: (rcpt) => {
      const n = (seen.get(rcpt) ?? 0) + 1;
      seen.set(rcpt, n);
      return n === 1 ? "451 4.3.0 Greylisted, try again later" : undefined;
    },
  });
  w = await startWardmail({
    workers: 1,
    extra: [
      "[relay]",
      'trusted_networks = ["127.0.0.1/32"]',
      "[[outbound.relays]]",
      'domains = ["later.test"]',
      `host = "127.0.0.1:${sink.port}"`,
      'tls = "required"',
      `ca_file = "${ca.certPath}"`,
      "[queue]",
      "retry_min = 1",
      "retry_max = 2",
      "",
    ].join("\n"),
  });
});

after(async () => {
  await w?.stop();
  await w?.cleanup();
  await sink?.close();
  await certs?.cleanup();
});

test("a 451 at RCPT defers the recipient with the peer's reply; the retry delivers it over TLS", async () => {
  const s = sink as SmtpSink;
  const server = w as Wardmail;
  const replies = await sendOneMessage({ port: server.smtpPort, from: "a@sender.test", to: ["bob@later.test"], body: "Subject: retry after 451\r\n\r\nretry-4xx-token\r\n" });
  assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
  // First attempt: deferred with the peer's words.
  let lastError = "";
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !/451 4\.3\.0 Greylisted/.test(lastError)) {
    const admin = QueueAdmin.open(server.dataDir);
    try {
      lastError = admin.list().find((e) => e.recipients.some((r) => r.address === "bob@later.test"))?.recipients[0]?.lastError ?? lastError;
    } finally {
      admin.close();
    }
    if (!/451/.test(lastError)) await sleep(50);
  }
  const got = await s.waitForMessage("retry-4xx-token", 20_000);
  assert.ok(got, `not delivered on retry\n${server.output().slice(-3000)}`);
  assert.deepEqual([...seen.values()], [2], `one refused attempt, then the accepted one: ${JSON.stringify([...seen])}`);
  assert.ok(got.tls, "delivered over TLS");
  assert.deepEqual(got.rcpts, ["bob@later.test"]);
  assert.match(server.output(), /"msg":"delivery deferred".*451 4\.3\.0 Greylisted|451 4\.3\.0 Greylisted[^\n]*"msg":"delivery deferred"/);
  assert.match(lastError === "" ? server.output() : lastError, /451 4\.3\.0 Greylisted/);
});
