/**
 * Transcript tests of the outbound client core against a scripted server
 * (test/helpers/client-transcript.ts): the dialogue, pipelining, replies
 * cut anywhere, refusals, STARTTLS and TLS policies, AUTH to a relay, LMTP.
 * What the client encodes (parameters, xtext, content) is in
 * client-session-encoding.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientSession } from "./client-session.ts";
import { EHLO_BARE, EHLO_FULL, env, finals, msg, run, type Handler, type Run } from "../../test/helpers/client-transcript.ts";

test("pipelined: two messages on one connection, MAIL + RCPTs + DATA in one write", () => {
  const r = run({ messages: [msg("one\r\n", env({}, ["b@example.org", "c@example.org"])), msg("two\r\n")] });
  assert.deepEqual(r.writes, [
    "EHLO out.test\r\n",
    "MAIL FROM:<a@wardmail.test> SIZE=5\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
    "one\r\n.\r\n",
    "MAIL FROM:<a@wardmail.test> SIZE=5\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
    "two\r\n.\r\n",
    "QUIT\r\n",
  ]);
  assert.deepEqual(finals(r, 0), ["delivered 250 2.0.0", "delivered 250 2.0.0"]);
  assert.deepEqual(finals(r, 1), ["delivered 250 2.0.0"]);
  assert.equal(r.result?.messages[0]?.recipients[0]?.text, "Ok: queued");
  const c = r.result?.connection;
  assert.equal(c?.greeting?.code, 220);
  assert.equal(c?.esmtp, true);
  assert.equal(c?.extensions.size, 1000);
  assert.deepEqual(c?.extensions.keywords, ["PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "CHUNKING"]);
  assert.equal(c?.error, undefined);
  assert.ok(r.closed);
});

test("without PIPELINING one command per write; every byte split gives the same transcript", () => {
  const messages = [msg("x\r\n", env({}, ["b@example.org", "c@example.org"]))];
  const expected = ["EHLO out.test\r\n", "MAIL FROM:<a@wardmail.test>\r\n", "RCPT TO:<b@example.org>\r\n", "RCPT TO:<c@example.org>\r\n", "DATA\r\n", "x\r\n.\r\n", "QUIT\r\n"];
  const multi = "250-2.0.0 queued\r\n250-2.0.0 as\r\n250 2.0.0 ABC\r\n";
  for (const split of ["whole", "byte"] as const) {
    const r = run({ messages, ehlo: EHLO_BARE, split, handler: (c) => (c === "." ? multi : undefined) });
    assert.deepEqual(r.writes, expected);
    assert.deepEqual(finals(r), ["delivered 250 2.0.0", "delivered 250 2.0.0"]);
    assert.equal(r.result?.messages[0]?.recipients[0]?.text, "queued as ABC");
  }
});

test("a multi-line EHLO reply cut at every byte is read the same", () => {
  const ehlo = Buffer.from("250-mx.test\r\n250-PIPELINING\n250-SIZE\r\n250-DSN\r\n250 8BITMIME\r\n");
  for (let cut = 0; cut <= ehlo.length; cut++) {
    const s = new ClientSession({ helo: "out.test", tls: "none", messages: [] });
    s.feed(Buffer.from("220 hi\r\n"));
    const out = [...s.feed(ehlo.subarray(0, cut)), ...s.feed(ehlo.subarray(cut))];
    assert.deepEqual(out.map((a) => (a.kind === "send" ? a.data.toString() : a.kind)), ["QUIT\r\n"], `cut ${cut}`);
    const ext = s.result().connection.extensions;
    assert.ok(ext.pipelining && ext.dsn && ext.eightBitMime && !ext.smtputf8, `cut ${cut}`);
    assert.equal(ext.size, 0);
  }
});

test("RCPT partial failures: each recipient gets its own verdict", () => {
  const handler: Handler = (c) => (c.includes("<bad@") ? "550 5.1.1 No such user\r\n" : c.includes("<later@") ? "450 4.2.1 Try later\r\n" : undefined);
  for (const ehlo of [EHLO_FULL, EHLO_BARE]) {
    const r = run({ ehlo, handler, messages: [msg("x\r\n", env({}, ["bad@example.org", "ok@example.org", "later@example.org"]))] });
    assert.deepEqual(finals(r), ["permanent 550 5.1.1", "delivered 250 2.0.0", "temporary 450 4.2.1"]);
    assert.equal(r.contents.length, 1);
  }
});

test("all RCPT refused: RSET, no content; pipelined DATA refused then RSET; a 354 anyway gets a lone dot", () => {
  const refuse: Handler = (c) => (c.startsWith("RCPT") ? "550 5.1.1 No\r\n" : undefined);
  const plain = run({ ehlo: EHLO_BARE, handler: refuse, messages: [msg()] });
  assert.deepEqual(plain.writes, ["EHLO out.test\r\n", "MAIL FROM:<a@wardmail.test>\r\n", "RCPT TO:<b@example.org>\r\n", "RSET\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(plain), ["permanent 550 5.1.1"]);

  const piped = run({ handler: (c) => refuse(c) ?? (c === "DATA" ? "554 5.5.1 No valid recipients\r\n" : undefined), messages: [msg(), msg()] });
  assert.deepEqual(piped.writes.slice(2), ["RSET\r\n", piped.writes[1], "RSET\r\n", "QUIT\r\n"]);
  assert.deepEqual(piped.contents, []);

  const broken = run({ handler: refuse, messages: [msg()] });
  assert.deepEqual(broken.writes.slice(2), [".\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(broken), ["permanent 550 5.1.1"]);
});

test("MAIL refused: every recipient gets the MAIL reply; the next message still goes", () => {
  const handler: Handler = (c) => (c.startsWith("MAIL FROM:<a@") ? "451 4.3.0 Greylisted\r\n" : undefined);
  for (const ehlo of [EHLO_FULL, EHLO_BARE]) {
    const r = run({ ehlo, handler, messages: [msg("x\r\n", env({}, ["b@example.org", "c@example.org"])), msg("y\r\n", env({ mailFrom: "" }))] });
    assert.deepEqual(finals(r, 0), ["temporary 451 4.3.0", "temporary 451 4.3.0"]);
    assert.deepEqual(finals(r, 1), ["delivered 250 2.0.0"]);
    assert.ok(r.writes.some((w) => w.startsWith("MAIL FROM:<> ") || w === "MAIL FROM:<>\r\n"));
  }
});

test("DATA 4xx / 5xx and a refusal after the content", () => {
  const t = run({ handler: (c) => (c === "DATA" ? "451 4.3.0 Later\r\n" : undefined), messages: [msg()] });
  assert.deepEqual(finals(t), ["temporary 451 4.3.0"]);
  assert.deepEqual(t.writes.slice(-2), ["RSET\r\n", "QUIT\r\n"]);
  const p = run({ ehlo: EHLO_BARE, handler: (c) => (c === "DATA" ? "554 5.7.1 Go away\r\n" : undefined), messages: [msg()] });
  assert.deepEqual(finals(p), ["permanent 554 5.7.1"]);
  const after = run({ handler: (c) => (c === "." ? "550 5.7.1 Spam\r\n" : undefined), messages: [msg(), msg()] });
  assert.deepEqual([finals(after, 0), finals(after, 1)], [["permanent 550 5.7.1"], ["permanent 550 5.7.1"]]);
  const noEnhanced = run({ handler: (c) => (c === "." ? "452 Disk full\r\n" : undefined), messages: [msg()] });
  assert.deepEqual(finals(noEnhanced), ["temporary 452 4.0.0"]);
});

test("hostile replies end the connection with a protocol error, never a crash", () => {
  const hostile: [string, string][] = [
    ["too many lines", "250-x\r\n".repeat(100) + "250 x\r\n"],
    ["over-long line", "250 " + "x".repeat(2100) + "\r\n"],
    ["over-long without end", "250-" + "x".repeat(5000)],
    ["mixed codes", "250-a\r\n251 b\r\n"],
    ["garbage", "HTTP/1.1 400 Bad Request\r\n"],
    ["short code", "25 x\r\n"],
    ["bad separator", "250x\r\n"],
    ["control character", "250 a\0b\r\n"],
    ["bare CR inside", "250 a\rb\r\n"],
    ["class 1", "150 x\r\n"],
  ];
  for (const [name, ehlo] of hostile) {
    const r = run({ ehlo, messages: [msg()] });
    assert.deepEqual(finals(r), ["temporary 0 4.5.0"], name);
    assert.match(r.result?.connection.error ?? "", /protocol error/, name);
    assert.ok(r.closed, name);
    assert.deepEqual(r.writes, ["EHLO out.test\r\n"], name);
  }
  // An extra reply desynchronises the pipeline: caught as a protocol error, never a false delivery.
  const extra = run({ handler: (c) => (c === "." ? "250 2.0.0 ok\r\n250 2.0.0 extra\r\n" : undefined), messages: [msg(), msg()] });
  assert.deepEqual(finals(extra, 0), ["delivered 250 2.0.0"]);
  assert.deepEqual(finals(extra, 1), ["temporary 0 4.5.0"]);
  // Liberal on input: bare LF line endings and empty text.
  const lf = run({ greeting: "220\n", ehlo: "250-mx\n250-PIPELINING\n250 \n", handler: (c) => (c === "." ? "250\n" : undefined), messages: [msg()] });
  assert.deepEqual(finals(lf), ["delivered 250 2.0.0"]);
});

test("greeting other than 220, EHLO refused, HELO fallback, 421 at any point", () => {
  const g = run({ greeting: "554 5.3.2 No service\r\n", messages: [msg()] });
  assert.deepEqual(g.writes, ["QUIT\r\n"]);
  assert.deepEqual(finals(g), ["temporary 554 5.3.2"]);
  const helo = run({ handler: (c) => (c.startsWith("EHLO") ? "502 5.5.1 No EHLO\r\n" : undefined), messages: [msg("caf\u00e9"), msg()] });
  assert.deepEqual(helo.writes.slice(0, 3), ["EHLO out.test\r\n", "HELO out.test\r\n", "MAIL FROM:<a@wardmail.test>\r\n"]);
  assert.equal(helo.result?.connection.esmtp, false);
  assert.deepEqual([finals(helo, 0), finals(helo, 1)], [["permanent 0 5.6.3"], ["delivered 250 2.0.0"]]);
  const busy = run({ handler: (c) => (c.startsWith("EHLO") ? "450 4.3.2 Busy\r\n" : undefined), messages: [msg()] });
  assert.deepEqual(finals(busy), ["temporary 450 4.3.2"]);
  const closing = run({ handler: (c) => (c.startsWith("RCPT TO:<c@") ? "421 4.4.2 Closing\r\n" : undefined), ehlo: EHLO_BARE, messages: [msg("x", env({}, ["b@example.org", "c@example.org"])), msg()] });
  assert.deepEqual([finals(closing, 0), finals(closing, 1)], [["temporary 421 4.4.2", "temporary 421 4.4.2"], ["temporary 421 4.4.2"]]);
  assert.ok(!closing.writes.includes("QUIT\r\n"));
  assert.ok(closing.closed);
});

test("STARTTLS: plaintext after the 220 is dropped, EHLO again, extensions learnt anew", () => {
  const before = "250-mx.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n";
  let ehlos = 0;
  const handler: Handler = (c) => {
    if (c.startsWith("EHLO")) return ehlos++ === 0 ? before : "250-mx.test\r\n250-8BITMIME\r\n250 REQUIRETLS\r\n";
    if (c === "STARTTLS") return "220 2.0.0 Ready\r\n";
    return undefined;
  };
  const r = run({ tls: "opportunistic", handler, afterStarttls: "250 smuggled\r\n", messages: [msg("caf\u00e9\r\n", env(), { requireTls: true })] });
  assert.equal(r.starttls, 1);
  assert.deepEqual(r.writes, ["EHLO out.test\r\n", "STARTTLS\r\n", "EHLO out.test\r\n", "MAIL FROM:<a@wardmail.test> BODY=8BITMIME REQUIRETLS\r\n", "RCPT TO:<b@example.org>\r\n", "DATA\r\n", "caf\u00c3\u00a9\r\n.\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(r), ["delivered 250 2.0.0"]);
  assert.equal(r.result?.connection.tls?.version, "TLSv1.3");
  assert.equal(r.result?.connection.extensions.pipelining, false);
  // tls "none" ignores STARTTLS.
  assert.equal(run({ tls: "none", ehlo: before, messages: [msg()] }).starttls, 0);
});

test("TLS required: not offered or refused → nothing sent; opportunistic goes on after a refusal", () => {
  const notOffered = run({ tls: "required", ehlo: EHLO_FULL, messages: [msg()] });
  assert.deepEqual(notOffered.writes, ["EHLO out.test\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(notOffered), ["temporary 0 4.7.10"]);
  assert.match(notOffered.result?.messages[0]?.recipients[0]?.text ?? "", /^TLS required but not available/);
  const offers = "250-mx.test\r\n250 STARTTLS\r\n";
  const refuse: Handler = (c) => (c === "STARTTLS" ? "454 4.7.0 TLS not available\r\n" : undefined);
  const required = run({ tls: "required", ehlo: offers, handler: refuse, messages: [msg()] });
  assert.deepEqual(required.writes, ["EHLO out.test\r\n", "STARTTLS\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(required), ["temporary 0 4.7.10"]);
  const opportunistic = run({ tls: "opportunistic", ehlo: offers, handler: refuse, messages: [msg()] });
  assert.deepEqual(finals(opportunistic), ["delivered 250 2.0.0"]);
});

test("REQUIRETLS without TLS: 5.7.10, without the extension: 5.7.30; nothing sent", () => {
  const r = run({ messages: [msg("x\r\n", env(), { requireTls: true })] });
  assert.deepEqual(finals(r), ["permanent 0 5.7.10"]);
  assert.deepEqual(r.writes, ["EHLO out.test\r\n", "QUIT\r\n"]);
  const s = new ClientSession({ helo: "out.test", tls: "opportunistic", messages: [msg("x\r\n", env(), { requireTls: true })] });
  s.feed(Buffer.from("220 hi\r\n"));
  s.feed(Buffer.from("250-mx\r\n250 STARTTLS\r\n"));
  assert.deepEqual(s.feed(Buffer.from("220 go\r\n")), [{ kind: "starttls" }]);
  assert.equal(s.waitingFor(), "tls");
  s.tlsStarted({ version: "TLSv1.3", cipher: "x" });
  const out = s.feed(Buffer.from("250 mx\r\n"));
  assert.equal(out[0]?.kind === "send" && out[0].data.toString(), "QUIT\r\n");
  assert.deepEqual(s.result().messages[0]?.recipients.map((x) => x.status), ["5.7.30"]);
});

test("the host's TLS policy refuses the peer: QUIT over TLS, nothing sent", () => {
  const s = new ClientSession({ helo: "out.test", tls: "required", messages: [msg()] });
  s.feed(Buffer.from("220 hi\r\n"));
  s.feed(Buffer.from("250-mx\r\n250 STARTTLS\r\n"));
  s.feed(Buffer.from("220 go\r\n"));
  const out = s.tlsRejected({ version: "TLSv1.2", cipher: "x", verified: false, error: "self-signed" }, "MTA-STS: certificate not valid");
  assert.deepEqual(out.map((a) => (a.kind === "send" ? a.data.toString() : a.kind)), ["QUIT\r\n"]);
  const end = s.feed(Buffer.from("221 bye\r\n"));
  assert.deepEqual(end.map((a) => a.kind), ["done", "close"]);
  const result = s.result();
  assert.deepEqual(result.messages[0]?.recipients.map((x) => `${x.final} ${x.status}`), ["temporary 4.7.5"]);
  assert.equal(result.connection.tls?.verified, false);
  assert.deepEqual(s.feed(Buffer.from("250 more\r\n")), []);
});

test("lost connection, timeouts and failed TLS leave undecided recipients temporary", () => {
  const s = new ClientSession({ helo: "out.test", tls: "none", messages: [msg(), msg()] });
  assert.equal(s.waitingFor(), "greeting");
  s.feed(Buffer.from("220 hi\r\n250 mx\r\n"));
  s.feed(Buffer.from("250 ok\r\n250 ok\r\n354 go\r\n"));
  assert.equal(s.waitingFor(), "data");
  s.feed(Buffer.from("250 ok\r\n250 ok\r\n250 ok\r\n"));
  assert.equal(s.waitingFor(), "reply");
  const out = s.connectionLost("connection reset");
  assert.deepEqual(out.map((a) => a.kind), ["done", "close"]);
  assert.deepEqual(s.result().messages.map((m) => m.recipients[0]?.final), ["delivered", "temporary"]);
  assert.deepEqual(s.timeout(), []);
  const t = new ClientSession({ helo: "out.test", tls: "none", messages: [msg()] });
  t.timeout();
  assert.deepEqual(t.result().messages[0]?.recipients.map((x) => `${x.final} ${x.status} ${x.text}`), ["temporary 4.4.2 timeout waiting for the greeting"]);
  const f = new ClientSession({ helo: "out.test", tls: "opportunistic", messages: [msg()] });
  f.feed(Buffer.from("220 hi\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n"));
  assert.deepEqual(f.tlsFailed("handshake failure").map((a) => a.kind), ["done", "close"]);
  assert.equal(f.result().messages[0]?.recipients[0]?.text, "TLS handshake failed: handshake failure");
});

// ------------------------------------------------------------------ AUTH PLAIN to a relay (RFC 4954, 4616)

const AUTH = { user: "relay-user", password: "s3cret pw" };
/** base64("\0relay-user\0s3cret pw"), written out so the test pins the exact bytes. */
const AUTH_LINE = "AUTH PLAIN AHJlbGF5LXVzZXIAczNjcmV0IHB3\r\n";

/** A relay: STARTTLS before TLS; after it the given EHLO reply; AUTH answered by `auth`. */
function relay(after: string, auth: (c: string) => string | undefined = () => "235 2.7.0 Authentication successful\r\n"): Handler {
  let ehlos = 0;
  return (c) => {
    if (c.startsWith("EHLO")) return ehlos++ === 0 ? "250-relay.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n" : after;
    if (c === "STARTTLS") return "220 2.0.0 Ready\r\n";
    if (c.startsWith("AUTH ") || c === "*") return auth(c);
    return undefined;
  };
}

/** Nothing the session hands back (results, errors, facts) may hold the password, plain or encoded. */
function assertNoSecret(r: Run): void {
  const text = JSON.stringify(r.result);
  for (const s of [AUTH.password, Buffer.from(AUTH.password).toString("base64"), AUTH_LINE.slice(11, -2)]) assert.ok(!text.includes(s), `secret in ${text}`);
}

test("AUTH PLAIN after STARTTLS and the second EHLO: the exact bytes, 235 goes on to the mail", () => {
  for (const split of ["whole", "byte"] as const) {
    const r = run({ tls: "required", auth: AUTH, split, handler: relay("250-relay.test\r\n250-PIPELINING\r\n250-AUTH=PLAIN LOGIN\r\n250 AUTH LOGIN PLAIN\r\n"), messages: [msg("x\r\n")] });
    assert.deepEqual(r.writes, ["EHLO out.test\r\n", "STARTTLS\r\n", "EHLO out.test\r\n", AUTH_LINE, "MAIL FROM:<a@wardmail.test>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", "x\r\n.\r\n", "QUIT\r\n"]);
    assert.deepEqual(finals(r), ["delivered 250 2.0.0"]);
    assert.deepEqual(r.result?.connection.extensions.auth, ["PLAIN", "LOGIN"]);
    assertNoSecret(r);
  }
  // The old "AUTH=" form alone is understood too.
  const old = run({ tls: "required", auth: AUTH, handler: relay("250-relay.test\r\n250 AUTH=LOGIN PLAIN\r\n"), messages: [msg()] });
  assert.equal(old.writes[3], AUTH_LINE);
  assert.deepEqual(finals(old), ["delivered 250 2.0.0"]);
});

test("AUTH is never sent without TLS: STARTTLS missing or refused, tls none, HELO → temporary 4.7.11", () => {
  const offersAuth = "250-relay.test\r\n250 AUTH PLAIN LOGIN\r\n";
  const cases = [
    run({ tls: "opportunistic", auth: AUTH, ehlo: offersAuth, messages: [msg()] }),
    run({ tls: "none", auth: AUTH, ehlo: "250-relay.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", messages: [msg()] }),
    run({ tls: "opportunistic", auth: AUTH, ehlo: "250-relay.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", handler: (c) => (c === "STARTTLS" ? "454 4.7.0 TLS not available\r\n" : undefined), messages: [msg()] }),
  ];
  for (const r of cases) {
    assert.ok(!r.writes.some((w) => w.startsWith("AUTH") || w.startsWith("MAIL")), JSON.stringify(r.writes));
    assert.equal(r.writes.at(-1), "QUIT\r\n");
    assert.deepEqual(finals(r), ["temporary 0 4.7.11"]);
    assert.match(r.result?.messages[0]?.recipients[0]?.text ?? "", /^AUTH needs TLS/);
    assertNoSecret(r);
  }
  const helo = run({ tls: "none", auth: AUTH, ehlo: "500 5.5.1 no EHLO\r\n", messages: [msg()] });
  assert.deepEqual(helo.writes, ["EHLO out.test\r\n", "HELO out.test\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(helo), ["temporary 0 4.7.11"]);
});

test("AUTH is never sent over TLS whose certificate was not verified (a man in the middle would get it) → temporary 4.7.11", () => {
  const after = "250-relay.test\r\n250 AUTH PLAIN\r\n";
  for (const facts of [
    { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", verified: false, error: "ERR_TLS_CERT_ALTNAME_INVALID" },
    { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256" },
  ]) {
    const r = run({ tls: "required", auth: AUTH, tlsFacts: facts, handler: relay(after), messages: [msg()] });
    assert.deepEqual(r.writes, ["EHLO out.test\r\n", "STARTTLS\r\n", "EHLO out.test\r\n", "QUIT\r\n"]);
    assert.deepEqual(finals(r), ["temporary 0 4.7.11"]);
    assert.match(r.result?.messages[0]?.recipients[0]?.text ?? "", /^AUTH needs a verified certificate/);
    assertNoSecret(r);
  }
});

test("AUTH refused: 535 is temporary 4.7.8 (a config mistake must not bounce), 4xx temporary, PLAIN missing, a challenge cancelled", () => {
  const after = "250-relay.test\r\n250 AUTH PLAIN\r\n";
  const refused = run({ tls: "required", auth: AUTH, handler: relay(after, () => "535 5.7.8 Error: authentication failed\r\n"), messages: [msg("x\r\n", env({}, ["b@example.org", "c@example.org"]))] });
  assert.deepEqual(refused.writes.slice(3), [AUTH_LINE, "QUIT\r\n"]);
  assert.deepEqual(finals(refused), ["temporary 535 4.7.8", "temporary 535 4.7.8"]);
  assert.equal(refused.result?.messages[0]?.recipients[0]?.text, "relay refused our credentials: 535 5.7.8 Error: authentication failed");
  assert.match(refused.result?.connection.error ?? "", /relay refused our credentials/);
  assertNoSecret(refused);

  const other5xx = run({ tls: "required", auth: AUTH, handler: relay(after, () => "504 5.5.4 Unrecognized authentication type\r\n"), messages: [msg()] });
  assert.deepEqual(finals(other5xx), ["temporary 504 4.7.0"]);

  const busy = run({ tls: "required", auth: AUTH, handler: relay(after, () => "454 4.7.0 Temporary authentication failure\r\n"), messages: [msg()] });
  assert.deepEqual(finals(busy), ["temporary 454 4.7.0"]);
  assert.match(busy.result?.messages[0]?.recipients[0]?.text ?? "", /^AUTH PLAIN failed: 454/);

  const noPlain = run({ tls: "required", auth: AUTH, handler: relay("250-relay.test\r\n250 AUTH LOGIN CRAM-MD5\r\n"), messages: [msg()] });
  assert.deepEqual(noPlain.writes.slice(3), ["QUIT\r\n"]);
  assert.deepEqual(finals(noPlain), ["temporary 0 4.7.0"]);
  assert.match(noPlain.result?.messages[0]?.recipients[0]?.text ?? "", /does not offer AUTH PLAIN \(offers LOGIN CRAM-MD5\)/);

  const challenge = run({ tls: "required", auth: AUTH, handler: relay(after, (c) => (c === "*" ? "501 5.7.0 cancelled\r\n" : "334 \r\n")), messages: [msg()] });
  assert.deepEqual(challenge.writes.slice(3), [AUTH_LINE, "*\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(challenge), ["temporary 0 4.7.0"]);
});

test("AUTH credentials with NUL or empty are refused at construction, without the secret in the error", () => {
  for (const auth of [{ user: "u", password: "pw\0x" }, { user: "u\0", password: "pw" }, { user: "", password: "pw" }, { user: "u", password: "" }]) {
    assert.throws(() => new ClientSession({ helo: "out.test", tls: "required", messages: [], auth }), (e: Error) => !e.message.includes("pw"));
  }
});

// ------------------------------------------------------------------ LMTP (RFC 2033)

const LHLO = "250-dovecot.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";

test("LMTP: LHLO, pipelined RCPTs, then one reply per accepted recipient in RCPT order", () => {
  for (const split of ["whole", "byte"] as const) {
    let dots = 0;
    const handler: Handler = (c) => {
      if (c.startsWith("LHLO")) return LHLO;
      if (c === "RCPT TO:<gone@example.org>") return "550 5.1.1 <gone@example.org> User doesn't exist\r\n";
      // First message: replies for b, c (quota) and d (full), in RCPT order; second: its one recipient.
      if (c === ".") return dots++ === 0 ? "250 2.0.0 <b@example.org> Saved\r\n452 4.2.2 <c@example.org> Quota exceeded\r\n552 5.2.2 <d@example.org> Mailbox full\r\n" : "250 2.0.0 <b@example.org> Saved\r\n";
      return undefined;
    };
    const rcpts = ["b@example.org", "gone@example.org", "c@example.org", "d@example.org"];
    const r = run({ lmtp: true, split, handler, messages: [msg("x\r\n", env({}, rcpts)), msg("y\r\n")] });
    assert.equal(r.writes[0], "LHLO out.test\r\n");
    assert.equal(r.writes[1], "MAIL FROM:<a@wardmail.test>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<gone@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\nDATA\r\n");
    assert.deepEqual(finals(r, 0), ["delivered 250 2.0.0", "permanent 550 5.1.1", "temporary 452 4.2.2", "permanent 552 5.2.2"]);
    assert.deepEqual(finals(r, 1), ["delivered 250 2.0.0"]);
    assert.deepEqual(r.contents, ["x\r\n.\r\n", "y\r\n.\r\n"]);
    assert.equal(r.writes.at(-1), "QUIT\r\n");
    assert.equal(r.result?.connection.error, undefined);
  }
});

test("LMTP: no HELO fall-back, no STARTTLS; losing the connection between per-recipient replies", () => {
  const refused = run({ lmtp: true, handler: (c) => (c.startsWith("LHLO") ? "500 5.5.1 what?\r\n" : undefined), messages: [msg()] });
  assert.deepEqual(refused.writes, ["LHLO out.test\r\n", "QUIT\r\n"]);
  assert.deepEqual(finals(refused), ["temporary 500 5.5.1"]);
  assert.throws(() => new ClientSession({ helo: "out.test", tls: "opportunistic", lmtp: true, messages: [] }), /LMTP/);

  const s = new ClientSession({ helo: "out.test", tls: "none", lmtp: true, messages: [msg("x\r\n", env({}, ["b@example.org", "c@example.org"]))] });
  s.feed(Buffer.from("220 lmtp\r\n"));
  s.feed(Buffer.from(LHLO));
  s.feed(Buffer.from("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n"));
  assert.equal(s.waitingFor(), "data");
  assert.deepEqual(s.feed(Buffer.from("250 2.0.0 <b@example.org> Saved\r\n")), []);
  assert.equal(s.waitingFor(), "data");
  const out = s.connectionLost("connection closed by the server");
  const done = out.find((a) => a.kind === "done");
  assert.ok(done?.kind === "done");
  assert.deepEqual(done.result.messages[0]?.recipients.map((x) => `${x.final} ${x.status}`), ["delivered 2.0.0", "temporary 4.4.2"]);
});
