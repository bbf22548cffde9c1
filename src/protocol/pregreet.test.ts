// The split greeting of the pregreet test (SmtpSession.greetingStart /
// greetingDone): a byte before the end is an early talker (554 5.5.1, close);
// a client that waits gets the whole greeting and a normal session.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SmtpSession, type Action } from "./session.ts";
import { sessionOptions } from "../../test/helpers/transcript.ts";

const sent = (actions: Action[]): string => actions.map((a) => (a.kind === "send" ? a.data : `<${a.kind}>`)).join("");

test("a client that waits gets 220- then 220 and is served", () => {
  const s = new SmtpSession(sessionOptions());
  assert.equal(sent(s.greetingStart()), "220-mx.test ESMTP\r\n");
  assert.equal(sent(s.greetingDone()), "220 mx.test ESMTP\r\n");
  assert.equal(s.earlyTalker, false);
  assert.match(sent(s.feed(Buffer.from("EHLO client.test\r\n"))), /^250-mx\.test greets client\.test\r\n/);
  assert.deepEqual(s.greetingDone(), []); // only once
});

test("a byte before the greeting ends: 554 5.5.1 and close, nothing processed", () => {
  const s = new SmtpSession(sessionOptions());
  s.greetingStart();
  const out = sent(s.feed(Buffer.from("E")));
  assert.match(out, /^554 5\.5\.1 .*\r\n<close>$/);
  assert.equal(s.earlyTalker, true);
  assert.ok(s.closed);
  assert.deepEqual(s.greetingDone(), []);
  assert.deepEqual(s.feed(Buffer.from("HLO x\r\n")), []);
});

test("errorCount and abort() for the adapter's tarpit and limits", () => {
  const s = new SmtpSession(sessionOptions());
  s.greeting();
  s.feed(Buffer.from("FOO\r\nBAR\r\nNOOP\r\n"));
  assert.equal(s.errorCount, 2);
  const out = sent(s.abort({ code: 421, status: "4.7.0", lines: ["Too many messages"] }));
  assert.equal(out, "421 4.7.0 Too many messages\r\n<close>");
  assert.ok(s.closed);
});
