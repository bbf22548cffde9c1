/**
 * Property tests (fast-check): 10,000+ random sessions of hostile bytes.
 * Properties: the core never throws; it only ever sends well-formed reply
 * lines; every message it hands over has clean CRLF content within the size
 * limit; and the result does not depend on how the bytes were split into
 * reads (the stream can never be desynchronised by packet boundaries).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_LIMITS } from "../limits/index.ts";
import { TEST_PLAIN, transcript } from "../../test/helpers/transcript.ts";
import type { SessionOptions } from "./session.ts";

const pieces = [
  "EHLO a.test\r\n", "HELO a.test\r\n", "MAIL FROM:<a@b.test>\r\n", "MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n",
  "RCPT TO:<user@example.test>\r\n", "RCPT TO:<x@y.test>\r\n", "DATA\r\n", "BDAT 5\r\n", "BDAT 3 LAST\r\n", "BDAT 0 LAST\r\n",
  "RSET\r\n", "NOOP\r\n", "QUIT\r\n", "STARTTLS\r\n", "VRFY x\r\n", "\r\n.\r\n", ".\r\n", "..\r\n", "\n.\n", "\r.\r",
  "\r\n", "\r", "\n", ".", "\0", "\xff\xfe", "Subject: x\r\n", "BDAT 99999999999\r\n", "AUTH PLAIN\r\n", "GET / HTTP/1.0\r\n",
  `AUTH PLAIN ${TEST_PLAIN}\r\n`, `${TEST_PLAIN}\r\n`, "AUTH LOGIN dXNlcg==\r\n", "AUTH PLAIN =\r\n", "*\r\n", "MAIL FROM:<a@b.test> AUTH=<>\r\n",
];

const chunk = fc.oneof(
  fc.constantFrom(...pieces),
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a).toString("latin1")),
  fc.string({ maxLength: 40 }),
);

const limits = { ...DEFAULT_LIMITS, max_message_size: 300, max_line_length: 600, max_recipients: 3 };

function run(input: Buffer, cuts: number[], policy: "reject" | "normalize", tls: SessionOptions["tls"], extra: Partial<SessionOptions> = {}) {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const writes: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    writes.push(input.subarray(last, p));
    last = p;
  }
  writes.push(input.subarray(last));
  return transcript(writes.filter((w) => w.length > 0), { limits, bareLineEndings: policy, tls, ...extra });
}

test("10,000 random hostile sessions: no crash, clean replies, clean content, split-invariant", () => {
  fc.assert(
    fc.property(
      fc.array(chunk, { maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.constantFrom("reject" as const, "normalize" as const),
      (parts, cuts, policy) => {
        const input = Buffer.from(parts.join(""), "latin1");
        // STARTTLS discards what came with it in the same read, by design, so
        // split-invariance is checked without TLS; the rest with and without.
        const withTls = run(input, cuts, policy, "available");
        for (const line of withTls.output.split("\r\n").slice(0, -1)) assert.match(line, /^[2-5]\d\d[ -]/);
        const whole = run(input, [], policy, "none");
        const split = run(input, cuts, policy, "none");
        assert.equal(split.output, whole.output);
        assert.equal(split.messages.length, whole.messages.length);
        for (let i = 0; i < whole.messages.length; i++) {
          assert.ok(split.messages[i]?.content.equals(whole.messages[i]?.content ?? Buffer.alloc(0)));
        }
        for (const line of whole.output.split("\r\n").slice(0, -1)) {
          assert.match(line, /^[2-5]\d\d[ -]/);
        }
        assert.ok(whole.output.endsWith("\r\n"));
        for (const m of whole.messages) {
          assert.ok(m.content.length <= limits.max_message_size);
          assert.doesNotMatch(m.content.toString("latin1"), /\r(?!\n)|(?<!\r)\n|\0/);
        }
      },
    ),
    { numRuns: 10_000 },
  );
});

test("3,000 random sessions with AUTH required over implicit TLS: no crash, split-invariant, no mail before AUTH", () => {
  const auth = { auth: { mechanisms: ["PLAIN", "LOGIN"], required: true } };
  fc.assert(
    fc.property(fc.array(chunk, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (parts, cuts) => {
      const input = Buffer.from(parts.join(""), "latin1");
      const whole = run(input, [], "reject", "active", auth);
      const split = run(input, cuts, "reject", "active", auth);
      assert.equal(split.output, whole.output);
      for (const line of whole.output.split("\r\n").slice(0, -1)) assert.match(line, /^[2-5]\d\d[ -]/);
      // Every message handed over came after a 235 in this session.
      if (whole.messages.length > 0) assert.ok(whole.output.includes("235 2.7.0"));
    }),
    { numRuns: 3_000 },
  );
});
