/**
 * DANE for outbound SMTP (RFC 7672) end to end, with real DNSSEC:
 * ldns-signzone signs the test zones (test/peers/dnssec.ts), Knot serves
 * them (test/peers/knot.ts), Unbound validates them against their keys as
 * trust anchors (test/peers/unbound.ts), and Wardmail's resolver asks
 * Unbound and trusts its AD bit. Mail is submitted with swaks (AUTH PLAIN
 * over implicit TLS) and goes to a STARTTLS SMTP sink on loopback
 * (test/peers/smtp-sink.ts), which is every zone's MX (mx.DOMAIN A
 * 127.0.0.1) and records what arrives. outbound.port is the sink's port, so
 * the TLSA records live at _PORT._tcp.mx.DOMAIN.
 *
 * The sink presents, by SNI: for mx.ta.test a leaf issued by a test CA (with
 * the CA in the chain); for every other name one self-signed certificate
 * ("the sink's key"). Another certificate's key ("another key") is never
 * served.
 *
 *   dane.test     signed   TLSA 3 1 1 the sink's key             → delivered, DANE
 *   ta.test       signed   TLSA 2 1 1 the test CA's key          → delivered, DANE
 *   badtlsa.test  signed   TLSA 3 1 1 another key                → deferred after the handshake
 *   notlsa.test   signed   no TLSA (NSEC-proven)                 → delivered, opportunistic
 *   plain.test    unsigned TLSA 3 1 1 another key               → delivered, opportunistic (TLSA not trusted)
 *   bogus.test    signed with TLSA for another key, then the TLSA changed to the sink's key
 *                 (its old RRSIG kept): the TLSA answer is bogus → SERVFAIL → deferred, no session
 *   expired.test  signed, every signature expired, TLSA 3 1 1 the sink's key
 *                 → the MX answer is bogus → deferred, no session
 *
 * In bogus.test and expired.test the (unauthenticated) TLSA would match the
 * sink: a client that ignored validation would deliver, and fail the test.
 *
 * A second Wardmail with dns.trust_ad = "never" asks the same Unbound: it
 * does not believe the AD bit, warns at start-up that DANE is off, and
 * delivers badtlsa.test opportunistically (the TLSA is not applied).
 *
 * One of each (sink, knot, unbound, Wardmail with one worker) for the file,
 * started in before(). Retries are an hour away, so a deferred message stays
 * deferred with its first error while the file runs.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { AccountStore } from "../src/accounts/index.ts";
import { CertFactory, tlsaData, type Issued } from "../src/outbound/mta-sts-testing.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";
import { ldnsMissing, replaceRdata, signZone } from "./peers/dnssec.ts";
import { kdig, knotMissing, startKnot, zoneText, type Knot } from "./peers/knot.ts";
import { startSmtpSink, type SinkMessage, type SmtpSink } from "./peers/smtp-sink.ts";
import { logLines, queueList, swaks, waitForLog } from "./peers/submission.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { startUnbound, unboundMissing, type Unbound } from "./peers/unbound.ts";

const skip = peerSkip(knotMissing(), unboundMissing(), ldnsMissing(), binaryMissing("swaks", ["--version"], "swaks"), binaryMissing("openssl", ["version"], "openssl"));

const SENDER = "alice@example.test";
const PASSWORD = "alice-dane-password-1";

let certs: CertFactory | undefined;
let sink: SmtpSink | undefined;
let knot: Knot | undefined;
let unbound: Unbound | undefined;
let w: Wardmail | undefined;

function up(): { sink: SmtpSink; unbound: Unbound; w: Wardmail } {
  assert.ok(sink && unbound && w, "peers not started");
  return { sink, unbound, w };
}

const token = (what: string): string => `dane-${what}-${randomBytes(6).toString("hex")}`;

/** Submits one message to rcpt; resolves with its queue id. */
async function submit(rcpt: string, tok: string): Promise<string> {
  const { w } = up();
  const r = await swaks([
    "--server", `127.0.0.1:${w.submissionsPort}`, "--tlsc",
    "--auth", "PLAIN", "--auth-user", SENDER, "--auth-password", PASSWORD,
    "--from", SENDER, "--to", rcpt,
    "--header", `Subject: ${tok}`, "--body", `${tok}\n`,
  ]);
  assert.equal(r.code, 0, r.out);
  const id = /250 2\.0\.0 Ok: queued as (\S+)/.exec(r.out)?.[1];
  assert.ok(id !== undefined, r.out);
  return id;
}

/** Waits (at most timeoutMs) for the first log line with message msg whose field `key` is value; its fields. */
async function logLine(msg: string, key: string, value: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const { w } = up();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(w.output(), msg).find((l) => l[key] === value);
    if (line !== undefined) return line;
    assert.ok(Date.now() < deadline, `no "${msg}" log line with ${key} ${value} within ${timeoutMs} ms\n${w.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The first "outbound session" log line for mx (waits for it). */
const sessionLog = (mx: string): Promise<Record<string, unknown>> => logLine("outbound session", "mx", mx);

/**
 * Waits for message `id` to be deferred: first for the "delivery deferred"
 * log line (cheap to poll), then for `wardmail queue list` to show it
 * deferred with its last error; returns the queue entry.
 */
async function deferred(id: string, timeoutMs = 15_000): Promise<{ state: string; lastError: string; attempts: number; to: string[] }> {
  const { w } = up();
  const deadline = Date.now() + timeoutMs;
  await logLine("delivery deferred", "queueId", id, timeoutMs);
  for (;;) {
    const e = (await queueList(w)).find((x) => x.id === id) as { state: string; lastError?: string; attempts: number; to: string[] } | undefined;
    if (e !== undefined && e.state === "deferred" && e.lastError !== undefined) return { ...e, lastError: e.lastError };
    assert.ok(Date.now() < deadline, `message ${id} not deferred within ${timeoutMs} ms: ${JSON.stringify(e)}\n${w.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Waits for the sink to receive the message holding tok. */
async function received(tok: string): Promise<SinkMessage> {
  const { sink, w } = up();
  const m = await sink.waitForMessage(tok);
  assert.ok(m, `the sink did not receive ${tok}\n${w.output().slice(-4000)}`);
  return m;
}

/** No session so far sent MAIL before STARTTLS (the sink always offers it; Wardmail always takes it). */
function noPlaintextMail(): void {
  const { sink } = up();
  for (const s of sink.sessions) assert.ok(!s.commands.some((c) => /^(MAIL|RCPT|DATA)\b/i.test(c)), `session ${s.id} without TLS: ${s.commands.join(" | ")}`);
}

/** Nothing for rcpt reached the sink: no message, no command naming it, nothing in plaintext. */
function nothingSentTo(rcpt: string): void {
  const { sink } = up();
  assert.equal(sink.messages().filter((m) => m.rcpts.includes(rcpt)).length, 0);
  for (const s of sink.sessions) {
    assert.ok(!s.commands.some((c) => c.toLowerCase().includes(rcpt)), `session ${s.id} named ${rcpt}: ${s.commands.join(" | ")}`);
  }
  noPlaintextMail();
}

/** kdig through unbound with DO set: status, flags and answer types. */
async function ask(name: string, type: string): Promise<{ status: string; ad: boolean; types: string[]; out: string }> {
  const { unbound } = up();
  const r = await kdig(["@127.0.0.1", "-p", String(unbound.port), "+dnssec", "+time=2", "+retry=1", name, type]);
  const status = /status: (\w+)/.exec(r.out)?.[1] ?? `no answer (kdig exit ${r.code})`;
  const flags = /;; Flags: ([^;]*);/.exec(r.out)?.[1] ?? "";
  const answer = r.out.split(";; ANSWER SECTION:")[1]?.split("\n\n")[0] ?? "";
  const types = answer.split("\n").map((l) => l.split(/\s+/)[3] ?? "").filter((t) => t !== "");
  return { status, ad: flags.split(/\s+/).includes("ad"), types, out: r.out };
}

describe("DANE: signed zones (ldns-signzone), Knot, a validating Unbound, Wardmail delivering to a STARTTLS sink", { skip }, () => {
  const hex = new Map<string, string>();
  let port = 0;

  before(async () => {
    certs = await CertFactory.create();
    const sinkCert = await certs.make({ names: ["mx.dane.test"] });
    const other = await certs.make({ names: ["mx.dane.test"] });
    const ca = await certs.caCert("Wardmail DANE test CA");
    const taLeaf: Issued = await certs.make({ names: ["mx.ta.test"], issuer: ca });
    for (const [name, c] of [["sink", sinkCert], ["other", other], ["ca", ca]] as const) hex.set(name, (await tlsaData(c, 1, 1)).toString("hex"));
    const h = (name: string): string => hex.get(name) ?? assert.fail(name);

    sink = await startSmtpSink({
      fallback: { key: sinkCert.key, cert: sinkCert.cert },
      // DANE-TA: the server must send the TA certificate (RFC 7672 §3.1.2).
      certFor: (name) => (name === "mx.ta.test" ? { key: taLeaf.key, cert: taLeaf.cert + ca.cert } : undefined),
    });
    port = sink.port;

    const zone = (origin: string, tlsa?: string): string =>
      zoneText(origin, ["@ IN MX 10 mx", "mx IN A 127.0.0.1", ...(tlsa !== undefined ? [`_${port}._tcp.mx IN TLSA ${tlsa}`] : [])]);
    const now = Date.now();
    const [dane, ta, badtlsa, notlsa, bogusSigned, expired] = await Promise.all([
      signZone("dane.test", zone("dane.test", `3 1 1 ${h("sink")}`)),
      signZone("ta.test", zone("ta.test", `2 1 1 ${h("ca")}`)),
      signZone("badtlsa.test", zone("badtlsa.test", `3 1 1 ${h("other")}`)),
      signZone("notlsa.test", zone("notlsa.test")),
      signZone("bogus.test", zone("bogus.test", `3 1 1 ${h("other")}`)),
      signZone("expired.test", zone("expired.test", `3 1 1 ${h("sink")}`), { inception: new Date(now - 30 * 86400_000), expiration: new Date(now - 86400_000) }),
    ]);
    // The attacker's TLSA (matching the sink) under the signature made for the real one.
    const bogus = replaceRdata(bogusSigned.text, `_${port}._tcp.mx.bogus.test`, "TLSA", `3 1 1 ${h("sink")}`);
    assert.notEqual(bogus, bogusSigned.text);

    const k = await startKnot({
      zones: {
        "dane.test": dane.text,
        "ta.test": ta.text,
        "badtlsa.test": badtlsa.text,
        "notlsa.test": notlsa.text,
        "bogus.test": bogus,
        "expired.test": expired.text,
        "plain.test": zone("plain.test", `3 1 1 ${h("other")}`),
      },
    });
    knot = k;
    const stubs = Object.fromEntries(["dane.test", "ta.test", "badtlsa.test", "notlsa.test", "bogus.test", "expired.test", "plain.test"].map((z) => [z, k.port]));
    // plain.test is under no trust anchor: insecure, answered without AD.
    unbound = await startUnbound({ stubs, trustAnchors: [dane, ta, badtlsa, notlsa, bogusSigned, expired].map((z) => z.dnskey) });

    w = await startWardmail({
      workers: 1,
      mailboxes: [SENDER, "postmaster@example.test"],
      checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${unbound.port}"]\ntimeout = 2000\nattempts = 2\n`,
      extra: `[outbound]\nport = ${port}\n[queue]\nretry_min = 3600\nretry_max = 7200\n`,
    });
    const st = AccountStore.open(w.dataDir, { create: true, localDomains: ["example.test", "localhost"] });
    try {
      await st.addAccount(SENDER, PASSWORD);
    } finally {
      st.close();
    }
  });

  after(async () => {
    if (w !== undefined) {
      await w.stop();
      await w.cleanup();
    }
    await unbound?.stop();
    await knot?.stop();
    await sink?.close();
    await certs?.cleanup();
  });

  test("the resolver validates: AD for the signed zones, none for plain.test, SERVFAIL for the bogus and expired data", async () => {
    const { unbound } = up();
    const diag = (r: { out: string }): string => `${r.out}\n--- unbound log:\n${unbound.log().slice(-3000)}`;
    for (const d of ["dane.test", "ta.test", "badtlsa.test"]) {
      const mx = await ask(d, "MX");
      assert.equal(mx.status, "NOERROR", diag(mx));
      assert.ok(mx.ad, `MX ${d} without AD\n${diag(mx)}`);
      const a = await ask(`mx.${d}`, "A");
      assert.ok(a.ad && a.types.includes("A"), diag(a));
      const t = await ask(`_${port}._tcp.mx.${d}`, "TLSA");
      assert.equal(t.status, "NOERROR", diag(t));
      assert.ok(t.ad, `TLSA in ${d} without AD\n${diag(t)}`);
      assert.deepEqual(t.types.filter((x) => x === "TLSA").length, 1, diag(t));
    }
    const none = await ask(`_${port}._tcp.mx.notlsa.test`, "TLSA");
    assert.equal(none.status, "NXDOMAIN", diag(none));
    assert.ok(none.ad, `authenticated denial expected\n${diag(none)}`);
    const plain = await ask(`_${port}._tcp.mx.plain.test`, "TLSA");
    assert.equal(plain.status, "NOERROR", diag(plain));
    assert.equal(plain.ad, false, diag(plain));
    const plainMx = await ask("plain.test", "MX");
    assert.equal(plainMx.ad, false, diag(plainMx));
    const bogusMx = await ask("bogus.test", "MX");
    assert.ok(bogusMx.status === "NOERROR" && bogusMx.ad, `the rest of bogus.test is intact\n${diag(bogusMx)}`);
    const bogus = await ask(`_${port}._tcp.mx.bogus.test`, "TLSA");
    assert.equal(bogus.status, "SERVFAIL", diag(bogus));
    const expired = await ask("expired.test", "MX");
    assert.equal(expired.status, "SERVFAIL", diag(expired));
  });

  test("dane.test, TLSA 3 1 1 matching the MX's key: delivered over TLS under the DANE policy", async () => {
    const tok = token("ee");
    const id = await submit("rcpt@dane.test", tok);
    const m = await received(tok);
    assert.deepEqual(m.rcpts, ["rcpt@dane.test"]);
    assert.equal(m.from, SENDER);
    assert.equal(m.tls, true);
    assert.equal(m.servername, "mx.dane.test");
    const s = await sessionLog("mx.dane.test");
    assert.equal(s.tlsPolicy, "dane", JSON.stringify(s));
    assert.equal(s.tlsSource, "dane", JSON.stringify(s));
    assert.match(String(s.tls), /^TLSv1\.[23]$/);
    assert.equal(s.error, undefined, JSON.stringify(s));
    const done = await logLine("delivered to the remote MX", "rcpt", "rcpt@dane.test");
    assert.equal(done.mx, "mx.dane.test");
    assert.equal(done.queueId, id);
    noPlaintextMail();
  });

  test(
    'the "outbound session" log line says verified for a DANE-authenticated session',
    async () => {
      const s = await sessionLog("mx.dane.test");
      assert.equal(s.verified, true, JSON.stringify(s));
    },
  );

  test("ta.test, TLSA 2 1 1 matching the issuing CA (sent in the chain): delivered under the DANE policy", async () => {
    const tok = token("ta");
    await submit("rcpt@ta.test", tok);
    const m = await received(tok);
    assert.deepEqual(m.rcpts, ["rcpt@ta.test"]);
    assert.equal(m.tls, true);
    assert.equal(m.servername, "mx.ta.test");
    const s = await sessionLog("mx.ta.test");
    assert.equal(s.tlsPolicy, "dane", JSON.stringify(s));
    assert.equal(s.error, undefined, JSON.stringify(s));
  });

  test("badtlsa.test, TLSA for another key: TLS comes up, the key does not match, nothing is sent, the message is deferred", async () => {
    const { sink } = up();
    const tok = token("bad");
    const id = await submit("rcpt@badtlsa.test", tok);
    const q = await deferred(id);
    assert.deepEqual(q.to, ["rcpt@badtlsa.test"]);
    assert.match(q.lastError, /mx\.badtlsa\.test/);
    assert.match(q.lastError, /tlsa-invalid/);
    const s = await sessionLog("mx.badtlsa.test");
    assert.equal(s.tlsPolicy, "dane", JSON.stringify(s));
    assert.match(String(s.tls), /^TLSv1\.[23]$/);
    assert.match(String(s.error), /TLS peer refused: tlsa-invalid/);
    // The sink saw the handshake (SNI mx.badtlsa.test) and then no mail command at all.
    const sessions = sink.sessions.filter((x) => x.servername === "mx.badtlsa.test");
    assert.ok(sessions.length >= 1, "no TLS session for mx.badtlsa.test");
    for (const x of sessions) assert.ok(!x.commands.some((c) => /^(tls:)?(MAIL|RCPT|DATA)\b/i.test(c)), x.commands.join(" | "));
    nothingSentTo("rcpt@badtlsa.test");
    assert.equal(await sink.waitForMessage(tok, 500), undefined);
  });

  test("notlsa.test, signed but no TLSA (authenticated denial): delivered opportunistically", async () => {
    const tok = token("notlsa");
    await submit("rcpt@notlsa.test", tok);
    const m = await received(tok);
    assert.equal(m.tls, true);
    const s = await sessionLog("mx.notlsa.test");
    assert.equal(s.tlsPolicy, "may", JSON.stringify(s));
    assert.equal(s.tlsSource, "opportunistic", JSON.stringify(s));
  });

  test("plain.test, unsigned: its TLSA (another key) is not trusted, delivered opportunistically", async () => {
    const tok = token("plain");
    await submit("rcpt@plain.test", tok);
    const m = await received(tok);
    assert.deepEqual(m.rcpts, ["rcpt@plain.test"]);
    assert.equal(m.tls, true);
    const s = await sessionLog("mx.plain.test");
    assert.equal(s.tlsPolicy, "may", JSON.stringify(s));
    assert.equal(s.tlsSource, "opportunistic", JSON.stringify(s));
    assert.equal(s.error, undefined, JSON.stringify(s));
  });

  test("bogus.test, TLSA changed after signing: the resolver says SERVFAIL, deferred for DANE (dnssec-invalid), no connection", async () => {
    const { w } = up();
    const tok = token("bogus");
    const id = await submit("rcpt@bogus.test", tok);
    const q = await deferred(id);
    assert.match(q.lastError, /DANE: TLSA lookup for mx\.bogus\.test failed \(dnssec-invalid: .*ESERVFAIL/);
    const refused = logLines(w.output(), "TLS policy cannot be met; not sending").filter((l) => l.mx === "mx.bogus.test");
    assert.ok(refused.length >= 1, w.output().slice(-3000));
    assert.equal(logLines(w.output(), "outbound session").filter((l) => l.mx === "mx.bogus.test").length, 0);
    nothingSentTo("rcpt@bogus.test");
  });

  test('dns.trust_ad = "never": the AD bit is not believed, DANE is off (start-up warning), badtlsa.test goes opportunistically', async () => {
    const { unbound, sink } = up();
    const w2 = await startWardmail({
      workers: 1,
      checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${unbound.port}"]\ntimeout = 2000\nattempts = 2\ntrust_ad = "never"\n`,
      extra: `[relay]\ntrusted_networks = ["127.0.0.1/32"]\n[outbound]\nport = ${port}\n[queue]\nretry_min = 3600\nretry_max = 7200\n`,
    });
    try {
      // The worker logs it while it builds its outbound transport, which can be just after "ready".
      const warnings = (): Record<string, unknown>[] => w2.output().split("\n").filter((l) => l.includes("DANE is off: the AD bit of the DNS servers is not trusted")).map((l) => JSON.parse(l) as Record<string, unknown>);
      for (let i = 0; i < 100 && warnings().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const warned = warnings();
      assert.ok(warned.length >= 1, w2.output().slice(-3000));
      for (const l of warned) assert.ok((l.level === 40 || l.level === "warn") && l.trustAd === "never", JSON.stringify(l));
      const tok = token("untrusted-ad");
      const replies = await sendOneMessage({ port: w2.smtpPort, from: "a@sender.test", to: ["rcpt2@badtlsa.test"], body: `Subject: ${tok}\r\n\r\n${tok}\r\n` });
      assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
      const m = await sink.waitForMessage(tok, 15_000);
      assert.ok(m, `not delivered\n${w2.output().slice(-3000)}`);
      assert.equal(m.tls, true);
      // Logged when the session ends, after the sink has the message: wait for the line.
      const s = await waitForLog(() => w2.output(), "outbound session", (l) => l.mx === "mx.badtlsa.test");
      assert.equal(s?.tlsPolicy, "may", JSON.stringify(s));
      assert.equal(s?.tlsSource, "opportunistic", JSON.stringify(s));
      // The first Wardmail (trust_ad "loopback", Unbound on 127.0.0.1) logged no such warning.
      assert.ok(!up().w.output().includes("DANE is off"));
    } finally {
      await w2.stop();
      await w2.cleanup();
    }
  });

  test("expired.test, every signature expired: the MX lookup fails (SERVFAIL), deferred, no connection", async () => {
    const { w } = up();
    const tok = token("expired");
    const id = await submit("rcpt@expired.test", tok);
    const q = await deferred(id);
    assert.equal(q.lastError, "MX lookup for expired.test failed: ESERVFAIL");
    const unavailable = await logLine("destination unavailable", "domain", "expired.test");
    assert.match(String(unavailable.reason), /ESERVFAIL/);
    assert.equal(logLines(w.output(), "outbound session").filter((l) => l.mx === "mx.expired.test").length, 0);
    nothingSentTo("rcpt@expired.test");
  });
});
