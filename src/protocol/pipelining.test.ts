// Strict pipelining (SessionOptions.strictPipelining, config
// protocol.strict_pipelining): EHLO, HELO and DATA end a group (RFC 2920
// §3.1); input already behind them is refused with 554 5.5.0 and close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { codes, transcript, TEST_PLAIN } from "../../test/helpers/transcript.ts";

const STRICT = { strictPipelining: true } as const;
const MAIL = "MAIL FROM:<a@b.test>\r\nRCPT TO:<user@example.test>\r\n";

test("commands sent with EHLO, before its reply: 554 5.5.0 and close, nothing else answered", () => {
  const r = transcript([`EHLO c.test\r\n${MAIL}DATA\r\n`], STRICT);
  assert.deepEqual(codes(r), [220, 554]);
  assert.match(r.output, /554 5\.5\.0 Protocol error: improper command pipelining\r\n$/);
  assert.ok(r.closed);
  const helo = transcript([`HELO c.test\r\nMAIL FROM:<a@b.test>\r\n`], STRICT);
  assert.deepEqual(codes(helo), [220, 554]);
});

test("content sent with DATA, before the 354: refused, nothing queued", () => {
  const r = transcript(["EHLO c.test\r\n", `${MAIL}DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n`], STRICT);
  assert.deepEqual(codes(r), [220, 250, 250, 250, 554]);
  assert.equal(r.messages.length, 0);
  assert.ok(r.closed);
});

test("a client that waits where it must is served: MAIL, RCPT and DATA pipelined (RFC 2920), content after 354, BDAT chunks pipelined", () => {
  const r = transcript(["EHLO c.test\r\n", `${MAIL}DATA\r\n`, "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"], STRICT);
  assert.deepEqual(codes(r), [220, 250, 250, 250, 354, 250, 221]);
  assert.equal(r.messages.length, 1);
  const b = transcript(["EHLO c.test\r\n", `${MAIL}BDAT 5\r\nabcd\nBDAT 0 LAST\r\n`], { ...STRICT, bareLineEndings: "normalize" });
  assert.deepEqual(codes(b), [220, 250, 250, 250, 250, 250]);
});

test("off (the default of the core), or after AUTH: pipelining past EHLO is taken as before", () => {
  assert.deepEqual(codes(transcript([`EHLO c.test\r\n${MAIL}`])), [220, 250, 250, 250]);
  const authed = transcript(["EHLO c.test\r\n", `AUTH PLAIN ${TEST_PLAIN}\r\n`, `EHLO c.test\r\n${MAIL}`], { ...STRICT, tls: "active", auth: { mechanisms: ["PLAIN"], required: false } });
  assert.deepEqual(codes(authed), [220, 250, 235, 250, 250, 250]);
});
