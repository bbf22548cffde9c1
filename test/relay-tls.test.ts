/**
 * A smarthost with tls = "required" is verified (issue 10, Outbound): two
 * relay hosts, both STARTTLS SMTP sinks on loopback that offer AUTH PLAIN
 * (test/peers/smtp-sink.ts), both with certificates from the test CA named
 * in the relays' ca_file. One certificate is for another name than the
 * relay's address (an active man in the middle with a valid certificate of
 * its own): the mail is deferred, and the sink never sees AUTH or MAIL.
 * The other is for the relay's address: the mail is delivered after AUTH
 * over TLS. Two more relay domains: one whose ca_file cannot be read (its
 * mail waits, nothing is sent), and one with tls = "encrypt", the explicit
 * opt-out, to the wrong-name relay without AUTH (delivered). Mail comes in
 * on the MX port from a trusted network; the relay hosts are IP addresses,
 * so no DNS is asked.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CertFactory } from "../src/outbound/mta-sts-testing.ts";
import { TlsRptStore, utcDay } from "../src/outbound/tlsrpt.ts";
import { QueueAdmin } from "../src/queue/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { startSmtpSink, type SmtpSink } from "./peers/smtp-sink.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";

const PASSWORD = "relay-secret-Pw9";
let certs: CertFactory | undefined;
let good: SmtpSink | undefined;
let mitm: SmtpSink | undefined;
let w: Wardmail | undefined;

before(async () => {
  certs = await CertFactory.create();
  const ca = await certs.caCert("Relay Test CA");
  const right = await certs.make({ names: ["127.0.0.1"], issuer: ca });
  const wrong = await certs.make({ names: ["relay.elsewhere.test"], issuer: ca });
  good = await startSmtpSink({ fallback: { key: right.key, cert: right.chain }, auth: true });
  mitm = await startSmtpSink({ fallback: { key: wrong.key, cert: wrong.chain }, auth: true });
  await writeFile(join(certs.dir, "relay.pw"), `${PASSWORD}\n`);
  const relay = (domain: string, port: number): string[] => [
    "[[outbound.relays]]",
    `domains = ["${domain}"]`,
    `host = "127.0.0.1:${port}"`,
    `ca_file = "${ca.certPath}"`,
    'user = "me@relay.test"',
    `password_file = "${join(certs?.dir ?? "", "relay.pw")}"`,
  ];
  w = await startWardmail({
    workers: 1,
    extra: [
      "[relay]",
      'trusted_networks = ["127.0.0.1/32"]',
      ...relay("good.test", good.port),
      ...relay("mitm.test", mitm.port),
      "[[outbound.relays]]",
      'domains = ["noca.test"]',
      `host = "127.0.0.1:${good.port}"`,
      `ca_file = "${join(certs.dir, "missing-ca.pem")}"`,
      "[[outbound.relays]]",
      'domains = ["optout.test"]',
      `host = "127.0.0.1:${mitm.port}"`,
      'tls = "encrypt"',
      "",
    ].join("\n"),
  });
});

after(async () => {
  await w?.stop();
  await w?.cleanup();
  await good?.close();
  await mitm?.close();
  await certs?.cleanup();
});

async function lastErrorOf(server: Wardmail, address: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const admin = QueueAdmin.open(server.dataDir);
    let err = "";
    try {
      err = admin.list().find((e) => e.recipients.some((r) => r.address === address))?.recipients[0]?.lastError ?? "";
    } finally {
      admin.close();
    }
    if (err !== "" || Date.now() > deadline) return err;
    await sleep(50);
  }
}

test("a relay whose certificate is for another name: deferred, no AUTH and no mail sent; the right certificate: AUTH over TLS, delivered", async () => {
  const server = w as Wardmail;
  for (const to of ["bob@mitm.test", "bob@good.test"]) {
    const replies = await sendOneMessage({ port: server.smtpPort, from: "a@sender.test", to: [to], body: `Subject: relay tls\r\n\r\nrelay-token ${to}\r\n` });
    assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
  }
  const got = await (good as SmtpSink).waitForMessage("relay-token bob@good.test", 20_000);
  assert.ok(got, `not delivered to the verified relay\n${server.output().slice(-3000)}`);
  assert.ok(got.tls);
  assert.deepEqual((good as SmtpSink).sessions.flatMap((s) => s.auths), [{ decoded: `\0me@relay.test\0${PASSWORD}`, tls: true }]);

  const err = await lastErrorOf(server, "bob@mitm.test", 20_000);
  assert.match(err, /certificate-host-mismatch/, err);
  const sessions = (mitm as SmtpSink).sessions;
  assert.ok(sessions.length >= 1 && sessions.every((s) => s.tls !== undefined || s.closed), JSON.stringify(sessions));
  assert.deepEqual(sessions.flatMap((s) => s.auths), [], "AUTH sent to a relay whose certificate did not verify");
  assert.ok(!sessions.some((s) => s.commands.some((c) => /^(tls:)?(AUTH|MAIL)/.test(c))), JSON.stringify(sessions.map((s) => s.commands)));
  assert.equal((mitm as SmtpSink).messages().length, 0);
  assert.ok(!server.output().includes(PASSWORD), "the password reached the log");
  // A smarthost is not the destination's MX: nothing for the destinations' TLS-RPT.
  const store = TlsRptStore.open(server.dataDir);
  try {
    for (const d of ["good.test", "mitm.test"]) assert.equal(store.report(utcDay(Date.now()), d, { name: "x.test", contact: "postmaster@x.test" }), undefined, d);
  } finally {
    store.close();
  }
});

test('a relay whose ca_file cannot be read: its mail waits, no session; tls = "encrypt" (opt-out): sent to the unverified relay, without AUTH', async () => {
  const server = w as Wardmail;
  const goodSessions = (good as SmtpSink).sessions.length;
  for (const to of ["carl@noca.test", "olga@optout.test"]) {
    const replies = await sendOneMessage({ port: server.smtpPort, from: "a@sender.test", to: [to], body: `Subject: relay tls\r\n\r\nrelay-token ${to}\r\n` });
    assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
  }
  const got = await (mitm as SmtpSink).waitForMessage("relay-token olga@optout.test", 20_000);
  assert.ok(got?.tls, `not delivered over TLS to the opt-out relay\n${server.output().slice(-3000)}`);
  assert.deepEqual((mitm as SmtpSink).sessions.flatMap((s) => s.auths), []);
  const err = await lastErrorOf(server, "carl@noca.test", 20_000);
  assert.match(err, /ca_file .*missing-ca\.pem unreadable/, err);
  assert.match(server.output(), /"msg":"relay ca_file unreadable; mail for this relay stays queued"/);
  assert.equal((good as SmtpSink).sessions.length, goodSessions, "a session was opened to the relay without its CA");
});
