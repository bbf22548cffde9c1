/**
 * SMTP AUTH in the protocol core (RFC 4954): never offered or accepted
 * before TLS (538 5.7.11), 530 on MAIL where AUTH is required, the SASL
 * exchange framing (334 challenges, "*" cancels, base64 checked, 12288-octet
 * lines), -PLUS only with channel binding, state reset by STARTTLS, and the
 * MAIL AUTH= parameter accepted and ignored.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { codes, TEST_PLAIN, transcript } from "../../test/helpers/transcript.ts";

const AUTH = { mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"], required: true };
const HELLO = "EHLO client.test\r\n";
const MSG = "MAIL FROM:<user@example.test>\r\nRCPT TO:<other@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n";

test("AUTH is not offered before TLS, and an attempt gets 538 5.7.11; MAIL gets 530", () => {
  const r = transcript([HELLO, `AUTH PLAIN ${TEST_PLAIN}\r\n`, "MAIL FROM:<user@example.test>\r\n"], { auth: AUTH });
  assert.ok(!r.lines.some((l) => l.includes("AUTH")) || r.lines.every((l) => !/^250.AUTH/.test(l)));
  assert.ok(r.lines.includes("538 5.7.11 Encryption required for requested authentication mechanism"));
  assert.ok(r.lines.includes("530 5.7.0 Must issue a STARTTLS command first"));
});

test("after STARTTLS: AUTH offered (without -PLUS when there is no channel binding), PLAIN works, mail flows", () => {
  const r = transcript([HELLO, "STARTTLS\r\n", HELLO, `AUTH PLAIN ${TEST_PLAIN}\r\n`, MSG], { auth: AUTH });
  assert.ok(r.lines.includes("250-AUTH SCRAM-SHA-256 PLAIN LOGIN") || r.lines.includes("250 AUTH SCRAM-SHA-256 PLAIN LOGIN"), r.output);
  assert.ok(r.lines.includes("235 2.7.0 Authentication successful"));
  assert.equal(r.messages.length, 1);
  assert.equal(r.session.authenticated, "user@example.test");
  assert.equal(r.session.protocol, "ESMTPSA");
});

test("-PLUS is offered when the TLS layer gives channel binding", () => {
  const r = transcript([HELLO], { auth: AUTH, tls: "active" }, true);
  assert.ok(r.lines.some((l) => l.slice(4) === "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN"), r.output);
});

test("MAIL without AUTH on a submission session gets 530 5.7.0; a failed AUTH gets 535 and counts as an error", () => {
  const bad = Buffer.from("\0user@example.test\0wrong").toString("base64");
  const r = transcript([HELLO, "MAIL FROM:<user@example.test>\r\n", `AUTH PLAIN ${bad}\r\n`, "MAIL FROM:<user@example.test>\r\n"], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 530, 535, 530]);
  assert.equal(r.session.authenticated, undefined);
});

test("the SASL exchange: a challenge, the response on its own line, '*' cancels, bad base64 refused", () => {
  const r = transcript([HELLO, "AUTH PLAIN\r\n", `${TEST_PLAIN}\r\n`], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 334, 235]);
  const c = transcript([HELLO, "AUTH PLAIN\r\n", "*\r\n", "AUTH PLAIN\r\n", "not base64!\r\n", "NOOP\r\n"], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(c), [220, 250, 334, 501, 334, 501, 250]);
  assert.ok(c.lines.includes("501 5.0.0 Authentication cancelled"));
  // A response line is never read as a command.
  const q = transcript([HELLO, "AUTH PLAIN\r\n", "QUIT\r\n", "NOOP\r\n"], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(q), [220, 250, 334, 535, 250]);
  assert.equal(q.closed, false);
});

test("AUTH pipelined with the transaction in one write", () => {
  const r = transcript([HELLO + `AUTH PLAIN ${TEST_PLAIN}\r\n` + MSG + "QUIT\r\n"], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 235, 250, 250, 354, 250, 221]);
});

test("unknown mechanism 504, twice 503, inside a transaction 503, bad syntax 501, '=' is an empty initial response", () => {
  const r = transcript([HELLO, "AUTH CRAM-MD5\r\n", "AUTH SCRAM-SHA-256-PLUS\r\n", "AUTH\r\n", "AUTH PLAIN =\r\n", `${TEST_PLAIN}\r\n`], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 504, 504, 501, 535, 500]);
  const t = transcript([HELLO, `AUTH PLAIN ${TEST_PLAIN}\r\n`, `AUTH PLAIN ${TEST_PLAIN}\r\n`, "MAIL FROM:<user@example.test>\r\n", `AUTH LOGIN\r\n`], { auth: { ...AUTH, required: false }, tls: "active" });
  assert.deepEqual(codes(t), [220, 250, 235, 503, 250, 503]);
});

test("no AUTH service: 502, and AUTH= on MAIL is an unknown parameter", () => {
  const r = transcript([HELLO, `AUTH PLAIN ${TEST_PLAIN}\r\n`, "MAIL FROM:<a@b.test> AUTH=<>\r\n"], { tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 502, 555]);
  assert.ok(!r.lines.some((l) => l.slice(4).startsWith("AUTH")));
});

test("MAIL AUTH=<> and AUTH=xtext are accepted (and ignored) where AUTH is offered", () => {
  const r = transcript([HELLO, `AUTH PLAIN ${TEST_PLAIN}\r\n`, "MAIL FROM:<user@example.test> AUTH=<>\r\n", "RSET\r\n", "MAIL FROM:<user@example.test> AUTH=user+40example.test\r\n", "RSET\r\n", "MAIL FROM:<user@example.test> AUTH=bad+zz\r\n"], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 235, 250, 250, 250, 250, 501]);
});

test("STARTTLS resets authentication state; a response line of 12288 octets is read, a longer one refused", () => {
  const long = "A".repeat(12284);
  const r = transcript([HELLO, "AUTH PLAIN\r\n", `${long}\r\n`, "AUTH PLAIN\r\n", `${long}AAAA\r\n`, "NOOP\r\n"], { auth: AUTH, tls: "active" });
  assert.deepEqual(codes(r), [220, 250, 334, 535, 334, 500, 250]);
});

test("REQUIRETLS (RFC 8689): offered and accepted only over TLS, kept in the envelope", () => {
  const plain = transcript([HELLO, "MAIL FROM:<a@b.test> REQUIRETLS\r\n"]);
  assert.ok(!plain.lines.some((l) => l.slice(4) === "REQUIRETLS"));
  assert.ok(plain.lines.includes("530 5.7.10 REQUIRETLS needs TLS"));
  const tls = transcript([HELLO, "MAIL FROM:<a@b.test> REQUIRETLS\r\nRCPT TO:<user@example.test>\r\nDATA\r\nx\r\n.\r\n"], { tls: "active" });
  assert.ok(tls.lines.some((l) => l.slice(4) === "REQUIRETLS"));
  assert.equal(tls.messages[0]?.envelope.requireTls, true);
  assert.deepEqual(codes(transcript([HELLO, "MAIL FROM:<a@b.test> REQUIRETLS=yes\r\n"], { tls: "active" })), [220, 250, 501]);
});
