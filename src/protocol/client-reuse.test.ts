/**
 * Connection reuse in the client core (ClientSession keepOpen): a batch
 * ends parked without QUIT, reuse() sends RSET then the next batch, quit()
 * ends politely; a reused connection that refuses RSET or the first MAIL,
 * or goes away before it, reports `stale` (nothing was accepted, the batch
 * may go again on a fresh connection); a later failure is not stale.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Envelope } from "./envelope.ts";
import { ClientSession, type ClientAction, type OutboundMessage, type SessionResult } from "./client-session.ts";

const EHLO = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

function message(to: string): OutboundMessage {
  const envelope = { mailFrom: "a@x.test", recipients: [{ address: to }] } as unknown as Envelope;
  return { envelope, content: Buffer.from(`From: a@x.test\r\nSubject: t\r\n\r\nbody ${to}\r\n`) };
}

/** A scripted server: answers each command line (and "." for content) through `answer`. */
class Server {
  readonly commands: string[] = [];
  results: SessionResult[] = [];
  closed = false;
  private inData = false;
  private buf = "";
  answer: (cmd: string) => string;
  readonly session: ClientSession;
  constructor(session: ClientSession) {
    this.session = session;
    this.answer = (cmd) => {
      const verb = cmd.split(/[ :]/)[0]?.toUpperCase();
      if (verb === "EHLO") return EHLO;
      if (verb === "MAIL") return "250 2.1.0 Ok\r\n";
      if (verb === "RCPT") return "250 2.1.5 Ok\r\n";
      if (verb === "DATA") return "354 go\r\n";
      if (verb === ".") return "250 2.0.0 queued\r\n";
      if (verb === "RSET") return "250 2.0.0 Ok\r\n";
      if (verb === "QUIT") return "221 2.0.0 Bye\r\n";
      return "502 5.5.2 what\r\n";
    };
  }
  /** Carries out actions; replies are fed back until the client stops writing (bounded). */
  act(actions: ClientAction[]): void {
    const queue = [...actions];
    for (let guard = 0; guard < 1000 && queue.length > 0; guard++) {
      const a = queue.shift() as ClientAction;
      if (a.kind === "done") this.results.push(a.result);
      else if (a.kind === "close") this.closed = true;
      else if (a.kind === "send") {
        const replies = this.take(a.data.toString("latin1"));
        if (replies !== "") queue.push(...this.session.feed(Buffer.from(replies, "latin1")));
      }
    }
  }
  private take(data: string): string {
    let out = "";
    this.buf += data;
    for (let guard = 0; guard < 1000; guard++) {
      if (this.inData) {
        const end = this.buf.startsWith(".\r\n") ? 0 : this.buf.indexOf("\r\n.\r\n");
        if (end < 0) return out;
        this.buf = this.buf.slice(end === 0 ? 3 : end + 5);
        this.inData = false;
        out += this.answer(".");
        continue;
      }
      const nl = this.buf.indexOf("\r\n");
      if (nl < 0) return out;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 2);
      this.commands.push(line);
      const reply = this.answer(line);
      if (reply.startsWith("354")) this.inData = true;
      out += reply;
    }
    return out;
  }
}

function open(messages: OutboundMessage[]): Server {
  const session = new ClientSession({ helo: "out.test", tls: "none", messages, keepOpen: true });
  const s = new Server(session);
  s.act(session.feed(Buffer.from("220 mx.test ESMTP\r\n")));
  return s;
}

const finals = (r: SessionResult | undefined): string[] => (r?.messages ?? []).flatMap((m) => m.recipients.map((x) => `${x.address}:${x.final}`));

test("keepOpen: the batch ends parked (no QUIT); reuse() sends RSET and the next batch; quit() ends with QUIT", () => {
  const s = open([message("b1@y.test"), message("b2@y.test")]);
  assert.deepEqual(finals(s.results[0]), ["b1@y.test:delivered", "b2@y.test:delivered"]);
  assert.equal(s.session.idle, true);
  assert.equal(s.closed, false);
  assert.ok(!s.commands.includes("QUIT"));
  s.act(s.session.reuse([message("c1@y.test")]));
  assert.deepEqual(finals(s.results[1]), ["c1@y.test:delivered"]);
  assert.equal(s.results[1]?.connection.stale, undefined);
  const tail = s.commands.slice(s.commands.indexOf("RSET"));
  assert.deepEqual(tail.map((c) => c.split(":")[0]), ["RSET", "MAIL FROM", "RCPT TO", "DATA"]);
  assert.equal(s.session.idle, true);
  s.act(s.session.quit());
  assert.equal(s.commands.at(-1), "QUIT");
  assert.equal(s.closed, true);
  assert.equal(s.session.idle, false);
});

test("a reused connection that refuses RSET (421 or 5xx) is stale: every recipient temporary, nothing sent", () => {
  for (const reply of ["421 4.3.2 going away\r\n", "554 5.5.0 no\r\n"]) {
    const s = open([message("b@y.test")]);
    s.answer = ((base) => (cmd: string) => (cmd === "RSET" ? reply : base(cmd)))(s.answer);
    s.act(s.session.reuse([message("c@y.test")]));
    const r = s.results[1];
    assert.equal(r?.connection.stale, true, reply);
    assert.deepEqual(finals(r), ["c@y.test:temporary"]);
    assert.ok(!s.commands.slice(s.commands.indexOf("RSET")).some((c) => c.startsWith("MAIL")), reply);
  }
});

test("a reused connection whose first MAIL is refused is stale; a refusal after a MAIL was accepted is not", () => {
  const s = open([message("b@y.test")]);
  let mails = 0;
  s.answer = ((base) => (cmd: string) => (cmd.startsWith("MAIL") && ++mails === 1 ? "451 4.3.0 try later\r\n" : base(cmd)))(s.answer);
  s.act(s.session.reuse([message("c@y.test"), message("d@y.test")]));
  assert.equal(s.results[1]?.connection.stale, true);
  assert.deepEqual(finals(s.results[1]), ["c@y.test:temporary", "d@y.test:temporary"]);
  assert.equal(s.closed, true);

  // The second message's MAIL refused after the first went through: an ordinary answer.
  const t = open([message("b@y.test")]);
  let n = 0;
  t.answer = ((base) => (cmd: string) => (cmd.startsWith("MAIL") && ++n === 2 ? "451 4.3.0 try later\r\n" : base(cmd)))(t.answer);
  t.act(t.session.reuse([message("c@y.test"), message("d@y.test")]));
  assert.equal(t.results[1]?.connection.stale, undefined);
  assert.deepEqual(finals(t.results[1]), ["c@y.test:delivered", "d@y.test:temporary"]);
});

test("lost or timed out before the first MAIL reply of a reuse: stale; anything from the server while idle closes", () => {
  const s = open([message("b@y.test")]);
  s.answer = ((base) => (cmd: string) => (cmd === "RSET" ? "" : base(cmd)))(s.answer);
  s.act(s.session.reuse([message("c@y.test")]));
  assert.equal(s.results.length, 1);
  s.act(s.session.connectionLost("connection closed by the server"));
  assert.equal(s.results[1]?.connection.stale, true);

  const t = open([message("b@y.test")]);
  t.answer = ((base) => (cmd: string) => (cmd === "RSET" ? "" : base(cmd)))(t.answer);
  t.act(t.session.reuse([message("c@y.test")]));
  t.act(t.session.timeout());
  assert.equal(t.results[1]?.connection.stale, true);

  const u = open([message("b@y.test")]);
  const out = u.session.feed(Buffer.from("421 4.4.2 idle timeout\r\n"));
  assert.deepEqual(out, [{ kind: "close" }]);
  assert.equal(u.session.idle, false);
  assert.throws(() => u.session.reuse([message("c@y.test")]));
  const v = open([message("b@y.test")]);
  assert.deepEqual(v.session.connectionLost("gone"), [{ kind: "close" }]);
  assert.equal(v.results.length, 1);
});

test("a server that sends more than was asked at the end of a batch is not kept: QUIT, never read one reply behind", () => {
  const s = open([message("a@y.test")]);
  const session = new ClientSession({ helo: "out.test", tls: "none", messages: [message("b@y.test")], keepOpen: true });
  const t = new Server(session);
  t.answer = ((base) => (cmd: string) => (cmd === "." ? "250 2.0.0 queued\r\n250 2.0.0 extra\r\n" : base(cmd)))(t.answer);
  t.act(session.feed(Buffer.from("220 mx.test ESMTP\r\n")));
  assert.deepEqual(finals(t.results[0]), ["b@y.test:delivered"]);
  assert.equal(session.idle, false);
  assert.equal(t.commands.at(-1), "QUIT");
  assert.throws(() => session.reuse([message("c@y.test")]));
  assert.equal(s.session.idle, true); // the same exchange without the extra line is kept
});

test("without keepOpen nothing changes: QUIT after the batch", () => {
  const session = new ClientSession({ helo: "out.test", tls: "none", messages: [message("b@y.test")] });
  const s = new Server(session);
  s.act(session.feed(Buffer.from("220 mx.test ESMTP\r\n")));
  assert.equal(s.commands.at(-1), "QUIT");
  assert.equal(session.idle, false);
});
