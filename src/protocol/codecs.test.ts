/**
 * The two codecs of this folder agree: what the server codec writes, the
 * client codec reads back (replies), and what the client codec writes, the
 * server codec reads back (MAIL and RCPT with their parameters).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePathAndParams } from "./address.ts";
import { NO_EXTENSIONS, ReplyParser, mailCommand, rcptCommand, type Extensions } from "./client-wire.ts";
import type { Envelope, EnvelopeRecipient } from "./envelope.ts";
import { mailParams, rcptParams } from "./params.ts";
import { formatReply, reply, type Reply } from "./reply.ts";

const FULL: Extensions = { ...NO_EXTENSIONS, pipelining: true, size: 0, eightBitMime: true, smtputf8: true, dsn: true, enhancedStatusCodes: true, requireTls: true };

/** Printable text as a reply line carries it: ASCII, some UTF-8, a tab. */
const text = fc.string({ unit: fc.constantFrom("a", "Z", "0", " ", "-", ".", "\t", "é", "名", "2.1.0", ">"), maxLength: 30 });

test("a reply the server codec formats, the client codec parses back as it was", () => {
  const arb = fc
    .record({ cls: fc.constantFrom(2, 4, 5), detail: fc.integer({ min: 0, max: 99 }), sub: fc.integer({ min: 0, max: 9 }), lines: fc.array(text, { minLength: 1, maxLength: 5 }) })
    .map(({ cls, detail, sub, lines }) => reply(cls * 100 + 50 + (detail % 10), `${cls}.${sub}.${detail}`, ...lines));
  fc.assert(
    fc.property(arb, fc.integer({ min: 1, max: 7 }), (r, cut) => {
      const wire = Buffer.from(formatReply(r), "utf8");
      const parser = new ReplyParser();
      // Fed in pieces: a reply cut anywhere reads the same.
      let got: Reply | undefined;
      for (let i = 0; i < wire.length; i += cut) {
        parser.append(wire.subarray(i, i + cut));
        got ??= parser.next();
      }
      assert.deepEqual(got, r);
      assert.equal(parser.next(), undefined);
    }),
    { numRuns: 300 },
  );
});

const atom = fc.stringMatching(/^[a-z0-9+_-]{1,8}$/);
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?$/);
const address = fc.tuple(atom, fc.option(atom, { nil: undefined }), label, fc.constantFrom("org", "test", "example")).map(([a, b, d, tld]) => `${b === undefined ? a : `${a}.${b}`}@${d}.${tld}`);
const notify = fc.oneof(fc.constant(["NEVER"]), fc.subarray(["SUCCESS", "FAILURE", "DELAY"], { minLength: 1 }));
/** ORCPT text with the characters xtext must encode (non-ASCII ORCPT round-trips too: client-session-encoding.test.ts). */
const dsnText = fc.string({ unit: fc.constantFrom("a", "+", "=", " ", "~", "!", "\t", ";", "@"), minLength: 1, maxLength: 20 });
const recipient: fc.Arbitrary<EnvelopeRecipient> = fc.record({
  address,
  dsn: fc.record({ notify, orcpt: fc.oneof(address, dsnText).map((a) => `rfc822;${a}`) }, { requiredKeys: [] }),
});
const envelope: fc.Arbitrary<Envelope> = fc.record(
  {
    mailFrom: fc.oneof(fc.constant(""), address),
    recipients: fc.array(recipient, { minLength: 1, maxLength: 3 }),
    body: fc.constantFrom("7BIT" as const, "8BITMIME" as const),
    smtputf8: fc.boolean(),
    ret: fc.constantFrom("FULL" as const, "HDRS" as const),
    envid: fc.string({ unit: fc.constantFrom("a", "+", "=", " ", "~", "!", "0"), minLength: 1, maxLength: 100 }),
    requireTls: fc.boolean(),
  },
  { requiredKeys: ["mailFrom", "recipients", "smtputf8"] },
);

/** The argument after "MAIL FROM:" / "RCPT TO:" of one command line. */
function argOf(line: Buffer, prefix: string): string {
  const s = line.toString("utf8");
  assert.ok(s.startsWith(prefix) && s.endsWith("\r\n"), s);
  return s.slice(prefix.length, -2);
}

test("MAIL and RCPT the client codec writes, the server codec reads back to the same envelope", () => {
  fc.assert(
    fc.property(envelope, fc.constantFrom("plain\r\n", "caf\u00e9\r\n"), (env, body) => {
      const content = Buffer.from(body, "utf8");
      const mail = parsePathAndParams(argOf(mailCommand(env, content, env.requireTls === true, FULL), "MAIL FROM:"), true, false);
      assert.ok("path" in mail, JSON.stringify(mail));
      assert.equal(mail.path.address, env.mailFrom);
      const params = mailParams(mail.params, Number.MAX_SAFE_INTEGER, false, true);
      assert.ok(!("code" in params), JSON.stringify(params));
      assert.equal(params.size, content.length);
      assert.equal(params.body, env.body === "8BITMIME" || body.includes("\u00e9") ? "8BITMIME" : undefined);
      assert.equal(params.smtputf8, env.smtputf8);
      assert.equal(params.ret, env.ret);
      assert.equal(params.envid, env.envid);
      assert.equal(params.requireTls, env.requireTls === true ? true : undefined);
      for (const r of env.recipients) {
        const rcpt = parsePathAndParams(argOf(rcptCommand(r, FULL), "RCPT TO:"), false, true);
        assert.ok("path" in rcpt, JSON.stringify(rcpt));
        assert.equal(rcpt.path.address, r.address);
        assert.deepEqual(rcptParams(rcpt.params), { ...r.dsn });
      }
    }),
    { numRuns: 300 },
  );
});
