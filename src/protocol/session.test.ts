import { test } from "node:test";
import assert from "node:assert/strict";
import { codes, transcript } from "../../test/helpers/transcript.ts";

const HELLO = "EHLO client.test\r\n";
const ENV = "MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@example.test>\r\n";

test("a plain transaction, one command per write", () => {
  const r = transcript([HELLO, "MAIL FROM:<a@sender.test>\r\n", "RCPT TO:<user@example.test>\r\n", "DATA\r\n", "Subject: hi\r\n\r\nbody\r\n.\r\n", "QUIT\r\n"]);
  assert.deepEqual(codes(r), [220, 250, 250, 250, 354, 250, 221]);
  assert.equal(r.messages.length, 1);
  assert.equal(r.messages[0]?.content.toString(), "Subject: hi\r\n\r\nbody\r\n");
  assert.equal(r.messages[0]?.envelope.mailFrom, "a@sender.test");
  assert.deepEqual(r.messages[0]?.envelope.recipients.map((x) => x.address), ["user@example.test"]);
  assert.ok(r.closed);
  assert.match(r.output, /^220 mx\.test ESMTP\r\n/);
});

test("EHLO announces the extensions; enhanced codes on every reply after it", () => {
  const r = transcript([HELLO, "NOOP\r\n"]);
  for (const ext of ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN", "STARTTLS"]) {
    assert.ok(r.lines.some((l) => l.slice(4) === ext), ext);
  }
  assert.ok(r.lines.includes("250 2.0.0 Ok"));
  const noTls = transcript([HELLO], { tls: "none" });
  assert.ok(!noTls.lines.some((l) => l.includes("STARTTLS")));
});

test("the whole session pipelined in one write gives the same result", () => {
  const all = HELLO + ENV + "DATA\r\nSubject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
  const r = transcript([all]);
  assert.deepEqual(codes(r), [220, 250, 250, 250, 354, 250, 221]);
  assert.equal(r.messages[0]?.content.toString(), "Subject: x\r\n\r\nhello\r\n");
});

test("the same session fed one byte at a time", () => {
  const all = HELLO + ENV + "DATA\r\nSubject: x\r\n\r\n..dot\r\nhello\r\n.\r\nQUIT\r\n";
  const r = transcript([...Buffer.from(all)].map((b) => Buffer.from([b])));
  assert.deepEqual(codes(r), [220, 250, 250, 250, 354, 250, 221]);
  assert.equal(r.messages[0]?.content.toString(), "Subject: x\r\n\r\n.dot\r\nhello\r\n");
});

test("dot-unstuffing (RFC 5321 §4.5.2) and an empty message", () => {
  const r = transcript([HELLO + ENV + "DATA\r\n..\r\n...x\r\n.y\r\n.\r\n" + ENV + "DATA\r\n.\r\n"]);
  assert.equal(r.messages[0]?.content.toString(), ".\r\n..x\r\ny\r\n");
  assert.equal(r.messages[1]?.content.length, 0);
});

test("bad command order gets 503 with 5.5.1", () => {
  const r = transcript(["MAIL FROM:<a@b.test>\r\n", HELLO, "RCPT TO:<user@example.test>\r\n", "DATA\r\n", "MAIL FROM:<a@b.test>\r\n", "MAIL FROM:<a@b.test>\r\n"]);
  assert.deepEqual(r.lines.filter((l) => l.startsWith("503")).map((l) => l.slice(0, 9)), ["503 5.5.1", "503 5.5.1", "503 5.5.1", "503 5.5.1"]);
  assert.ok(r.lines.some((l) => /Nested MAIL/.test(l)));
});

test("DATA with no accepted recipient is refused; unknown users get 550 5.1.1", () => {
  const r = transcript([HELLO, "MAIL FROM:<a@b.test>\r\n", "RCPT TO:<nobody@example.test>\r\n", "DATA\r\n"]);
  assert.ok(r.lines.includes("550 5.1.1 No such user"));
  assert.ok(r.lines.includes("554 5.5.1 No valid recipients"));
});

test("STARTTLS: plaintext sent after it in the same write is discarded", () => {
  const r = transcript([HELLO, "STARTTLS\r\nRSET\r\n"]);
  assert.ok(r.starttls);
  assert.ok(r.lines.includes("220 2.0.0 Ready to start TLS"));
  // RSET was never answered: the last reply is the 220.
  assert.equal(r.lines.at(-1), "220 2.0.0 Ready to start TLS");
  // After TLS, EHLO is required again and STARTTLS is no longer offered.
  const s = r.session;
  const out = s.feed(Buffer.from("MAIL FROM:<a@b.test>\r\nEHLO again\r\n"));
  const text = out.map((a) => (a.kind === "send" ? a.data : "")).join("");
  assert.match(text, /^503 5\.5\.1/);
  assert.doesNotMatch(text, /STARTTLS/);
  assert.equal(s.protocol, "ESMTPS");
});

test("STARTTLS is refused when TLS is unavailable or already active", () => {
  assert.ok(transcript([HELLO, "STARTTLS\r\n"], { tls: "none" }).lines.includes("454 4.7.0 TLS not available"));
  assert.ok(transcript([HELLO, "STARTTLS\r\n"], { tls: "active" }).lines.includes("503 5.5.1 TLS already active"));
  assert.ok(transcript(["HELO x\r\n", "STARTTLS\r\n"]).lines.includes("503 5.5.1 Send EHLO first"));
});

test("an over-long command line is read to its end, then refused, and the session stays in sync", () => {
  const long = "NOOP " + "x".repeat(5000) + "\r\n";
  const r = transcript([HELLO, long.slice(0, 3000), long.slice(3000), "NOOP\r\n"]);
  assert.deepEqual(codes(r).slice(-2), [500, 250]);
  assert.ok(r.lines.includes("500 5.5.2 Line too long"));
  const r2 = transcript([HELLO + long + "NOOP\r\n"]);
  assert.deepEqual(codes(r2).slice(-2), [500, 250]);
});

test("too many recipients gets 452 4.5.3", () => {
  const rcpts = Array.from({ length: 3 }, () => "RCPT TO:<user@example.test>\r\n").join("");
  const r = transcript([HELLO + "MAIL FROM:<a@b.test>\r\n" + rcpts], { limits: { ...transcript([]).session["opts"].limits, max_recipients: 2 } });
  assert.deepEqual(codes(r).slice(-3), [250, 250, 452]);
  assert.ok(r.lines.includes("452 4.5.3 Too many recipients"));
});

test("SIZE above the limit is refused at MAIL; content over the limit is read then refused with 552", () => {
  const limits = { ...transcript([]).session["opts"].limits, max_message_size: 100 };
  const r = transcript([HELLO + "MAIL FROM:<a@b.test> SIZE=101\r\n"], { limits });
  assert.ok(r.lines.includes("552 5.3.4 Message size exceeds fixed maximum message size"));
  const big = "x".repeat(80) + "\r\n" + "y".repeat(80) + "\r\n";
  const r2 = transcript([HELLO + ENV + "DATA\r\n" + big, big + ".\r\nNOOP\r\n"], { limits });
  assert.deepEqual(codes(r2).slice(-2), [552, 250]);
  assert.equal(r2.messages.length, 0);
});

test("bare LF in a command: refused by default, accepted as line end with normalize", () => {
  const r = transcript([HELLO, "NOOP\nRSET\r\n", "NOOP\r\n"]);
  assert.deepEqual(codes(r).slice(-2), [500, 250]);
  assert.ok(r.lines.some((l) => l.startsWith("500 5.5.2 Bare CR or LF")));
  const n = transcript([HELLO, "NOOP\nRSET\rNOOP\r\n"], { bareLineEndings: "normalize" });
  assert.deepEqual(codes(n).slice(-3), [250, 250, 250]);
});

test("bare LF in DATA: the message is refused whole (reject) or stored with CRLF (normalize)", () => {
  const body = "Subject: x\r\n\r\nline1\nline2\r\n.\r\n";
  const r = transcript([HELLO + ENV + "DATA\r\n" + body + "NOOP\r\n"]);
  assert.equal(codes(r).at(-1), 550);
  assert.ok(r.lines.some((l) => l.startsWith("550 5.6.0")));
  assert.equal(r.messages.length, 0);
  assert.ok(r.closed, "the connection is closed after a smuggling-class violation");
  const n = transcript([HELLO + ENV + "DATA\r\n" + body], { bareLineEndings: "normalize" });
  assert.equal(n.messages[0]?.content.toString(), "Subject: x\r\n\r\nline1\r\nline2\r\n");
});

test("8-bit data without BODY=8BITMIME: accepted by default, refused under policy reject", () => {
  const body = "Subject: x\r\n\r\ncaf\xe9\r\n.\r\n";
  const a = transcript([HELLO + ENV + "DATA\r\n" + body]);
  assert.equal(a.messages.length, 1);
  assert.equal(a.messages[0]?.content.at(-3), 0xe9);
  const r = transcript([HELLO + ENV + "DATA\r\n" + body], { eightBitWithout8bitmime: "reject" });
  assert.ok(r.lines.includes("550 5.6.1 8-bit content requires BODY=8BITMIME"));
  const ok = transcript([HELLO + "MAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<user@example.test>\r\nDATA\r\n" + body], { eightBitWithout8bitmime: "reject" });
  assert.equal(ok.messages.length, 1);
  assert.equal(ok.messages[0]?.envelope.body, "8BITMIME");
});

test("BDAT chunks, pipelined, with a CRLF split across chunks", () => {
  const c1 = "Subject: x\r\n\r\nab\r";
  const c2 = "\ncd\r\n";
  const r = transcript([HELLO + ENV + `BDAT ${c1.length}\r\n${c1}BDAT ${c2.length} LAST\r\n${c2}QUIT\r\n`]);
  assert.deepEqual(codes(r), [220, 250, 250, 250, 250, 250, 221]);
  assert.equal(r.messages[0]?.content.toString(), "Subject: x\r\n\r\nab\r\ncd\r\n");
  // BDAT content is not dot-unstuffed and a "." line does not end it.
  const d = "a\r\n.\r\nMAIL FROM:<x@y.test>\r\n";
  const r2 = transcript([HELLO + ENV + `BDAT ${d.length} LAST\r\n${d}`]);
  assert.equal(r2.messages[0]?.content.toString(), d);
  assert.equal(r2.messages.length, 1);
});

test("a failing BDAT still consumes its chunk; DATA after BDAT is refused; bad size closes", () => {
  const d = "MAIL FROM:<evil@x.test>\r\n";
  const r = transcript([HELLO + `BDAT ${d.length}\r\n${d}NOOP\r\n`]);
  assert.deepEqual(codes(r).slice(-2), [503, 250]);
  const r2 = transcript([HELLO + ENV + "BDAT 3\r\nabcDATA\r\n"]);
  assert.ok(r2.lines.includes("503 5.5.1 DATA not allowed after BDAT"));
  const r3 = transcript([HELLO + ENV + "BDAT x\r\n"]);
  assert.ok(r3.closed);
  assert.match(r3.lines.at(-1) ?? "", /^501 5\.5\.4/);
});

test("VRFY never enumerates; EXPN unavailable; HELP answers", () => {
  const r = transcript([HELLO, "VRFY user\r\n", "VRFY nobody\r\n", "EXPN list\r\n", "HELP\r\n"]);
  assert.deepEqual(codes(r).slice(1), [250, 252, 252, 502, 214]);
});

test("HTTP requests close the connection; the error limit closes with 421", () => {
  const r = transcript(["GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
  assert.ok(r.closed);
  assert.match(r.lines.at(-1) ?? "", /^421 4\.7\.0/);
  const many = Array.from({ length: 20 }, () => "BOGUS\r\n").join("");
  const e = transcript([many]);
  assert.ok(e.closed);
  assert.equal(codes(e).filter((c) => c === 500).length, 10);
  assert.equal(e.lines.at(-1), "421 4.7.0 Too many errors, closing connection");
});

test("SMTPUTF8 and DSN parameters are kept with the envelope", () => {
  const r = transcript([
    HELLO +
      "MAIL FROM:<jöran@sender.test> SMTPUTF8 RET=HDRS ENVID=abc+2Bdef\r\nRCPT TO:<user@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+40example.test\r\nDATA\r\nx\r\n.\r\n",
  ].map((s) => Buffer.from(s, "utf8")));
  const env = r.messages[0]?.envelope;
  assert.equal(env?.smtputf8, true);
  assert.equal(env?.mailFrom, "jöran@sender.test");
  assert.equal(env?.ret, "HDRS");
  assert.equal(env?.envid, "abc+def");
  assert.deepEqual(env?.recipients[0]?.dsn, { notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;user@example.test" });
  const no = transcript([Buffer.from(HELLO + "MAIL FROM:<jöran@sender.test>\r\n", "utf8")]);
  assert.ok(no.lines.includes("553 5.6.7 Non-ASCII address requires SMTPUTF8"));
});

test("ORCPT: UTF-8 octets are kept; octets that are not UTF-8 are refused (they could not be relayed as given)", () => {
  const r = transcript([
    Buffer.from(HELLO + "MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@example.test> ORCPT=utf-8;caf+C3+A9@example.test\r\nRCPT TO:<user2@example.test> ORCPT=rfc822;caf+E9@example.test\r\nRCPT TO:<user3@example.test> ORCPT=rfc822;a+ZZ\r\n", "utf8"),
  ]);
  assert.deepEqual(codes(r).slice(1), [250, 250, 250, 501, 501]);
  assert.ok(r.lines.includes("501 5.5.4 Bad ORCPT value"));
});

test("MAIL/RCPT syntax: brackets required, source routes and unknown parameters refused", () => {
  const r = transcript([HELLO, "MAIL FROM:a@b.test\r\n", "MAIL FROM:<@relay.test:a@b.test>\r\n", "MAIL FROM:<a@b.test> FOO=1\r\n", "MAIL FROM:<>\r\n", "RCPT TO:<>\r\n", "RCPT TO:<Postmaster>\r\n"]);
  assert.deepEqual(codes(r).slice(1), [250, 501, 501, 555, 250, 501, 250]);
});

test("the null sender and RSET", () => {
  const r = transcript([HELLO + "MAIL FROM:<>\r\nRCPT TO:<user@example.test>\r\nRSET\r\nDATA\r\n"]);
  assert.deepEqual(codes(r).slice(1), [250, 250, 250, 250, 503]);
});
