/**
 * What the outbound client core puts on the wire, in transcripts against a
 * scripted server (test/helpers/client-transcript.ts) and alone: MAIL and
 * RCPT parameters (BODY, SMTPUTF8, SIZE, DSN in xtext), the content's
 * dot-stuffing and line endings, and no CR, LF or NUL in a command line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Envelope } from "./envelope.ts";
import { decodeXtext } from "./address.ts";
import { ClientSession, command, encodeData, encodeXtext } from "./client-session.ts";
import { EHLO_BARE, env, finals, msg, run } from "../../test/helpers/client-transcript.ts";

test("8-bit content without 8BITMIME: permanent 5.6.3, nothing sent for it; with 8BITMIME: BODY=8BITMIME", () => {
  const r = run({ ehlo: EHLO_BARE, messages: [msg("Subject: caf\u00e9\r\n\r\n"), msg("plain\r\n")] });
  assert.deepEqual(finals(r, 0), ["permanent 0 5.6.3"]);
  assert.equal(r.result?.messages[0]?.recipients[0]?.text, "Remote server does not support 8BITMIME");
  assert.deepEqual(finals(r, 1), ["delivered 250 2.0.0"]);
  assert.equal(r.writes.filter((w) => w.startsWith("MAIL")).length, 1);
  assert.deepEqual(r.contents, ["plain\r\n.\r\n"]);
  const ok = run({ messages: [msg("caf\u00e9\r\n")] });
  assert.match(ok.writes[1] ?? "", /^MAIL FROM:<a@wardmail\.test> SIZE=7 BODY=8BITMIME\r\n/);
  assert.equal(ok.contents[0], Buffer.from("caf\u00e9\r\n.\r\n").toString("latin1"));
});

test("SMTPUTF8 needed and missing: 5.6.7; offered: the SMTPUTF8 parameter", () => {
  const utf = msg("x\r\n", env({ smtputf8: true }, ["j\u00f6rg@example.org"]));
  const r = run({ ehlo: EHLO_BARE, messages: [utf, msg("x\r\n", env({}, ["\u00fc@example.org"]))] });
  assert.deepEqual([finals(r, 0), finals(r, 1)], [["permanent 0 5.6.7"], ["permanent 0 5.6.7"]]);
  assert.deepEqual(r.writes, ["EHLO out.test\r\n", "QUIT\r\n"]);
  const ok = run({ messages: [utf] });
  assert.equal(Buffer.from(ok.writes[1] ?? "", "latin1").toString("utf8").split("\r\n")[0], "MAIL FROM:<a@wardmail.test> SIZE=3 SMTPUTF8");
  assert.deepEqual(finals(ok), ["delivered 250 2.0.0"]);
});

test("SIZE: announced limit exceeded is 5.3.4 before sending; SIZE= otherwise", () => {
  const r = run({ messages: [msg("x".repeat(1001)), msg("x".repeat(1000))] });
  assert.deepEqual(finals(r, 0), ["permanent 0 5.3.4"]);
  assert.deepEqual(finals(r, 1), ["delivered 250 2.0.0"]);
  assert.match(r.writes[1] ?? "", /^MAIL FROM:<a@wardmail\.test> SIZE=1000\r\n/);
});

test("DSN parameters only when DSN is offered, values in xtext", () => {
  const e: Envelope = {
    mailFrom: "a@wardmail.test",
    recipients: [{ address: "b@example.org", dsn: { notify: ["success", "FAILURE"], orcpt: "rfc822;b+x=y@example.org" } }, { address: "c@example.org", dsn: { notify: ["NEVER"] } }],
    smtputf8: false,
    ret: "HDRS",
    envid: "id 1+=",
  };
  const r = run({ messages: [msg("x\r\n", e)] });
  assert.equal(
    r.writes[1],
    "MAIL FROM:<a@wardmail.test> SIZE=3 RET=HDRS ENVID=id+201+2B+3D\r\nRCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx+3Dy@example.org\r\nRCPT TO:<c@example.org> NOTIFY=NEVER\r\nDATA\r\n",
  );
  const none = run({ ehlo: EHLO_BARE, messages: [msg("x\r\n", e)] });
  assert.deepEqual(none.writes.slice(1, 4), ["MAIL FROM:<a@wardmail.test>\r\n", "RCPT TO:<b@example.org>\r\n", "RCPT TO:<c@example.org>\r\n"]);
  assert.equal(encodeXtext("a\u00e9"), "a+C3+A9");
});

test("xtext: what the client encodes, the server's decoder reads back (ASCII, every byte value below 0x80)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary-ascii", maxLength: 60 }), (s) => {
      const x = encodeXtext(s);
      assert.match(x, /^[!-~]*$/);
      assert.equal(decodeXtext(x), s);
    }),
    { numRuns: 300 },
  );
});

test("dot-stuffing and bare CR / LF normalisation: the exact bytes", () => {
  const cases: [string, string][] = [
    ["a\n.b\rc\r\n.", "a\r\n..b\r\nc\r\n..\r\n.\r\n"],
    ["", "\r\n.\r\n"],
    [".", "..\r\n.\r\n"],
    ["x\r\n.\r\ny\r\n", "x\r\n..\r\ny\r\n.\r\n"],
    ["a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"],
    ["a\r\r\n\n\r", "a\r\n\r\n\r\n\r\n.\r\n"],
    ["..x\r\n", "...x\r\n.\r\n"],
    ["end\r", "end\r\n.\r\n"],
  ];
  for (const [input, wire] of cases) assert.equal(encodeData(Buffer.from(input, "latin1")).toString("latin1"), wire, JSON.stringify(input));
  const r = run({ messages: [msg("a\n.b\rc\r\n.")] });
  assert.deepEqual(r.contents, ["a\r\n..b\r\nc\r\n..\r\n.\r\n"]);
});

test("property: encoded content has no bare CR or LF and its only lone-dot line is the terminator", () => {
  const piece = fc.constantFrom("\r", "\n", ".", "\r\n", "\r\n.\r\n", "\n.\n", "a", "\u00e9", "..");
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 40 }), (parts) => {
      const wire = encodeData(Buffer.from(parts.join(""), "utf8")).toString("utf8");
      assert.ok(wire.endsWith("\r\n.\r\n"));
      assert.doesNotMatch(wire.replace(/\r\n/g, ""), /[\r\n]/);
      const lines = wire.split("\r\n").slice(0, -2);
      assert.ok(!lines.includes("."));
      const undone = lines.map((l) => (l.startsWith(".") ? l.slice(1) : l)).join("\r\n");
      assert.equal(undone.replace(/\r\n/g, "\n"), parts.join("").replace(/\r\n|\r|\n/g, "\n").replace(/\n$/, ""));
    }),
    { numRuns: 2000 },
  );
});

test("CR, LF or NUL never reach a command line", () => {
  assert.throws(() => command("MAIL", "FROM:<a@b>\r\nRCPT TO:<x@y>"));
  assert.throws(() => new ClientSession({ helo: "a\r\nb", tls: "none", messages: [] }));
  const bad = msg("x\r\n", env({}, ["ok@example.org", "x@y>\r\nRSET"]));
  const r = run({ messages: [msg("x\r\n", env({ mailFrom: "a@b\r\nDATA" })), bad, msg("x\r\n", env({ envid: "a\nb" }))] });
  assert.deepEqual(finals(r, 0), ["permanent 0 5.1.7"]);
  assert.deepEqual(finals(r, 1), ["delivered 250 2.0.0", "permanent 0 5.1.3"]);
  assert.equal(r.writes.filter((w) => w.startsWith("MAIL")).length, 1);
});

test("xtext: a UTF-8 ORCPT the server decodes is relayed with the same octets (any Unicode string round-trips); octets that are not UTF-8 read as Latin-1", () => {
  assert.equal(decodeXtext("rfc822;caf+C3+A9@example.org"), "rfc822;café@example.org");
  assert.equal(encodeXtext(decodeXtext("caf+C3+A9@example.org") ?? ""), "caf+C3+A9@example.org");
  assert.equal(decodeXtext("caf+E9"), "caf\u00e9");
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 40 }), (s) => {
      assert.equal(decodeXtext(encodeXtext(s)), s);
    }),
    { numRuns: 300 },
  );
});
