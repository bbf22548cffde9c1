/**
 * Protocol limits over real sockets, against one running Wardmail with small
 * limits: recipients per message, command line length, command order, the
 * error budget, the idle timeout, the message size (BDAT), connections per
 * worker (and a refused client that never closes must not keep its socket on
 * the server), a foreign (HTTP) client, and VRFY that does not enumerate
 * users.
 *
 * One server with one worker (max_connections is per worker process, so the
 * 21st connection must reach the worker that holds the other 20), started in
 * before(). idle_timeout is 2 s: every test keeps its connections busy or
 * closes them quickly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { SmtpWire, type SmtpReply } from "./peers/smtp-client.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const LIMITS = {
  max_recipients: 5,
  max_errors: 5,
  max_line_length: 1000,
  idle_timeout: 2,
  max_message_size: 20_000,
  max_connections: 20,
};

const RCPTS = ["r1@example.test", "r2@example.test", "r3@example.test", "r4@example.test", "r5@example.test"];
const MAILBOXES = [...RCPTS, "user@example.test", "postmaster@example.test"];

let w: Wardmail | undefined;

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

before(async () => {
  const extra = ["[limits]", ...Object.entries(LIMITS).map(([k, v]) => `${k} = ${v}`)].join("\n");
  w = await startWardmail({ mailboxes: MAILBOXES, workers: 1, extra });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});

// ---------------------------------------------------------------- the raw client

type Reply = SmtpReply;

/** A raw SMTP connection (test/peers/smtp-client.ts) that can also check the greeting. */
class Conn extends SmtpWire {
  static override async open(port: number): Promise<Conn> {
    return new Conn((await SmtpWire.open(port)).socket);
  }

  /** Connects and checks the 220 greeting. */
  static async greeted(port: number): Promise<Conn> {
    const c = await Conn.open(port);
    const g = await c.reply();
    assert.equal(g.code, 220, g.raw);
    return c;
  }
}

/**
 * After a test that filled every connection slot and closed its clients:
 * waits (at most 5 s) until the server has seen those closes and greets a
 * new client again, so the next test does not race the teardown.
 */
async function slotsReleased(port: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const c = await Conn.open(port);
    const g = await c.reply();
    c.close();
    if (g.code === 220) return;
    if (Date.now() > deadline) assert.fail(`connection slots not released after 5 s: ${g.raw}`);
    await sleep(50);
  }
}

/** Runs fn on a greeted connection and always closes it. */
async function withConn<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
  const c = await Conn.greeted(server().smtpPort);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

function expect(r: Reply, re: RegExp): void {
  assert.match(r.raw, re, r.raw);
}

// ---------------------------------------------------------------- tests

describe("limits over real sockets", () => {
  test("max_recipients = 5: the 6th RCPT gets 452 4.5.3, the message still goes to all 5", async () => {
    const s = server();
    await withConn(async (c) => {
      expect(await c.command("EHLO client.test"), /^250-/);
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^250 2\.1\.0 /);
      for (const r of RCPTS) expect(await c.command(`RCPT TO:<${r}>`), /^250 2\.1\.5 /);
      expect(await c.command("RCPT TO:<user@example.test>"), /^452 4\.5\.3 Too many recipients\r\n$/);
      // The connection goes on, and the transaction keeps its 5 recipients.
      expect(await c.command("DATA"), /^354 /);
      c.send("Subject: five recipients\r\n\r\nto all five\r\n.\r\n");
      expect(await c.reply(), /^250 2\.0\.0 Ok: queued as \S+\r\n$/);
      expect(await c.command("QUIT"), /^221 /);
    });
    for (const r of RCPTS) {
      const files = await s.waitForMail(r, 1);
      assert.equal(files.length, 1, r);
      const raw = (await readFile(files[0] as string)).toString("latin1");
      assert.match(raw, new RegExp(`^Return-Path: <a@sender\\.test>\r\nDelivered-To: ${r.replace(".", "\\.")}\r\n`));
      assert.ok(raw.endsWith("\r\nSubject: five recipients\r\n\r\nto all five\r\n"), raw);
    }
    await sleep(200);
    assert.deepEqual(await s.maildir("user@example.test"), []);
  });

  test("a 5000-byte command line in several writes: 500 5.5.2 Line too long, then the next command works", async () => {
    await withConn(async (c) => {
      expect(await c.command("EHLO client.test"), /^250-/);
      const line = Buffer.from(`NOOP ${"x".repeat(4993)}\r\n`, "latin1");
      assert.equal(line.length, 5000);
      for (let i = 0; i < line.length; i += 900) {
        c.send(line.subarray(i, i + 900));
        await sleep(20);
      }
      expect(await c.reply(), /^500 5\.5\.2 Line too long\r\n$/);
      // Exactly one reply for the whole line: the next one is the NOOP's.
      expect(await c.command("NOOP"), /^250 2\.0\.0 Ok\r\n$/);
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^250 2\.1\.0 /);
      expect(await c.command("QUIT"), /^221 /);
    });
  });

  test("a line of exactly max_line_length (CRLF included) is still a command", async () => {
    await withConn(async (c) => {
      const line = `NOOP ${"y".repeat(LIMITS.max_line_length - 7)}`;
      assert.equal(line.length + 2, LIMITS.max_line_length);
      expect(await c.command(line), /^250 2\.0\.0 Ok\r\n$/);
      expect(await c.command(`NOOP ${"y".repeat(LIMITS.max_line_length - 6)}`), /^500 5\.5\.2 Line too long\r\n$/);
      expect(await c.command("QUIT"), /^221 /);
    });
  });

  test("bad command order: MAIL before EHLO, RCPT before MAIL, DATA before MAIL: 503 5.5.1; DATA before RCPT: 554 5.5.1", async () => {
    await withConn(async (c) => {
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^503 5\.5\.1 Send EHLO or HELO first\r\n$/);
      expect(await c.command("EHLO client.test"), /^250-/);
      expect(await c.command("RCPT TO:<user@example.test>"), /^503 5\.5\.1 Send MAIL first\r\n$/);
      expect(await c.command("DATA"), /^503 5\.5\.1 Send MAIL first\r\n$/);
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^250 2\.1\.0 /);
      // RFC 5321 §3.3 allows 503 or 554 for DATA without any accepted RCPT; Wardmail answers 554 (as Postfix does).
      expect(await c.command("DATA"), /^554 5\.5\.1 No valid recipients\r\n$/);
      // Four errors, one short of the budget: the session still answers.
      expect(await c.command("QUIT"), /^221 /);
    });
    await withConn(async (c) => {
      // The transaction is still usable after an out-of-order command.
      expect(await c.command("EHLO client.test"), /^250-/);
      expect(await c.command("RCPT TO:<user@example.test>"), /^503 5\.5\.1 /);
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^250 2\.1\.0 /);
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^503 5\.5\.1 Nested MAIL command\r\n$/);
      expect(await c.command("RCPT TO:<user@example.test>"), /^250 2\.1\.5 /);
      expect(await c.command("RSET"), /^250 /);
      expect(await c.command("QUIT"), /^221 /);
    });
  });

  test("max_errors = 5: the 5th error reply, then 421 4.7.0 and the server closes", async () => {
    await withConn(async (c) => {
      expect(await c.command("EHLO client.test"), /^250-/);
      for (let i = 1; i <= 4; i++) expect(await c.command(`BOGUS${i}`), /^500 5\.5\.2 Command unrecognized\r\n$/);
      // Good commands in between neither count nor reset the budget.
      expect(await c.command("NOOP"), /^250 /);
      c.send("BOGUS5\r\n");
      expect(await c.reply(), /^500 5\.5\.2 Command unrecognized\r\n$/);
      expect(await c.reply(), /^421 4\.7\.0 Too many errors, closing connection\r\n$/);
      await c.closedByServer();
    });
  });

  test("idle_timeout = 2: after EHLO and silence, 421 4.4.2 within about 3 s, then close", async () => {
    await withConn(async (c) => {
      expect(await c.command("EHLO client.test"), /^250-/);
      const t0 = Date.now();
      const r = await c.reply(LIMITS.idle_timeout * 1000 + 3000);
      const elapsed = Date.now() - t0;
      expect(r, /^421 4\.4\.2 /);
      assert.ok(elapsed >= LIMITS.idle_timeout * 1000 - 200, `timed out too early: ${elapsed} ms`);
      assert.ok(elapsed <= LIMITS.idle_timeout * 1000 + 1000, `timed out too late: ${elapsed} ms`);
      await c.closedByServer(2000);
    });
  });

  test("max_message_size = 20000: BDAT 30000 LAST with 30000 bytes gets 552 5.3.4, the session still answers", async () => {
    const s = server();
    await withConn(async (c) => {
      expect(await c.command("EHLO client.test"), /^250-(.|\r\n)*250-SIZE 20000\r\n/);
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^250 2\.1\.0 /);
      expect(await c.command("RCPT TO:<user@example.test>"), /^250 2\.1\.5 /);
      const chunk = Buffer.from("Subject: big\r\n\r\n" + "z".repeat(98) + "\r\n", "latin1");
      const content = Buffer.concat(Array.from({ length: Math.ceil(30_000 / chunk.length) }, () => chunk)).subarray(0, 30_000);
      assert.equal(content.length, 30_000);
      c.send("BDAT 30000 LAST\r\n");
      // In pieces: the server must read the whole chunk before it answers.
      for (let i = 0; i < content.length; i += 7000) {
        c.send(content.subarray(i, i + 7000));
        await sleep(10);
      }
      expect(await c.reply(), /^552 5\.3\.4 /);
      expect(await c.command("NOOP"), /^250 2\.0\.0 Ok\r\n$/);
      // The transaction is gone; a new, small one goes through.
      expect(await c.command("MAIL FROM:<a@sender.test>"), /^250 2\.1\.0 /);
      expect(await c.command("RCPT TO:<user@example.test>"), /^250 2\.1\.5 /);
      const small = "Subject: small\r\n\r\nsmall\r\n";
      c.send(`BDAT ${small.length} LAST\r\n${small}`);
      expect(await c.reply(), /^250 2\.0\.0 Ok: queued as /);
      expect(await c.command("QUIT"), /^221 /);
    });
    const files = await s.waitForMail("user@example.test", 1);
    assert.equal(files.length, 1);
    assert.ok((await readFile(files[0] as string)).toString("latin1").endsWith("\r\nSubject: small\r\n\r\nsmall\r\n"));
  });

  test("implicit TLS: connections still in their handshake count against max_connections", async () => {
    const port = server().submissionsPort;
    const raw: net.Socket[] = [];
    try {
      // 20 TCP connections that never start the TLS handshake.
      for (let i = 0; i < LIMITS.max_connections; i++) {
        raw.push(await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(port, "127.0.0.1", () => resolve(s));
          s.once("error", reject);
        }));
      }
      await sleep(100);
      // The 21st is refused without a handshake: the server closes it.
      const extra = net.connect(port, "127.0.0.1");
      extra.on("error", () => undefined);
      extra.resume(); // read what comes, so the FIN is seen
      const closed = await new Promise<boolean>((resolve) => {
        extra.once("close", () => resolve(true));
        setTimeout(() => resolve(false), 2500);
      });
      extra.destroy();
      assert.ok(closed, "the 21st connection must be closed by the server");
    } finally {
      for (const s of raw) s.destroy();
    }
    await slotsReleased(server().smtpPort); // the slots are per worker, shared by every listener
  });

  test("max_connections = 20 (one worker): the 21st gets 421 4.7.0 Too many connections and is closed; after closing some, a new one works", async () => {
    const port = server().smtpPort;
    const open: Conn[] = [];
    try {
      // Open all 20 at once: the idle timeout (2 s) must not close any before the 21st arrives.
      const settled = await Promise.allSettled(Array.from({ length: LIMITS.max_connections }, () => Conn.greeted(port)));
      for (const r of settled) if (r.status === "fulfilled") open.push(r.value);
      for (const r of settled) if (r.status === "rejected") throw r.reason;
      const extra = await Conn.open(port);
      try {
        expect(await extra.reply(), /^421 4\.7\.0 Too many connections/);
        await extra.closedByServer();
      } finally {
        extra.close();
      }
      // The 20 are still served.
      expect(await (open[0] as Conn).command("NOOP"), /^250 /);
      for (const c of open.splice(0, 5)) c.close();
      // The server notices the closes asynchronously: retry briefly.
      const deadline = Date.now() + 1500;
      for (;;) {
        const c = await Conn.open(port);
        try {
          const g = await c.reply();
          if (g.code === 220) {
            expect(await c.command("EHLO client.test"), /^250-/);
            expect(await c.command("QUIT"), /^221 /);
            break;
          }
          expect(g, /^421 4\.7\.0 Too many connections/);
          if (Date.now() > deadline) assert.fail("still refused after 5 connections were closed");
        } finally {
          c.close();
        }
        await sleep(50);
      }
    } finally {
      for (const c of open) c.close();
    }
    await slotsReleased(port);
  });

  test("max_connections: a refused client that keeps its side open does not keep a socket on the server", async () => {
    const port = server().smtpPort;
    const open: Conn[] = [];
    let refused: net.Socket | undefined;
    try {
      const settled = await Promise.allSettled(Array.from({ length: LIMITS.max_connections }, () => Conn.greeted(port)));
      for (const r of settled) if (r.status === "fulfilled") open.push(r.value);
      for (const r of settled) if (r.status === "rejected") throw r.reason;
      // allowHalfOpen: this client does not answer the server's FIN with its own, as a hostile one would not.
      const s = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
      refused = s;
      let got = "";
      let reset = false;
      let ended = false;
      s.on("data", (d: Buffer) => (got += d.toString("latin1")));
      s.on("end", () => (ended = true));
      s.on("error", () => (reset = true));
      s.on("close", () => (reset = true));
      const deadline = Date.now() + 3000;
      while (!ended && Date.now() < deadline) await sleep(20);
      assert.match(got, /^421 4\.7\.0 Too many connections/);
      assert.ok(ended, "no FIN after the 421");
      // Keep the 20 from the idle timeout while we wait; they are not what this test is about.
      const keepAlive = setInterval(() => {
        for (const c of open) c.send("NOOP\r\n");
      }, 500);
      try {
        // Once the server has let go of the socket, data sent to it is answered with a reset.
        while (!reset && Date.now() < deadline) {
          if (!s.destroyed) s.write("NOOP\r\n");
          await sleep(100);
        }
      } finally {
        clearInterval(keepAlive);
      }
      assert.ok(reset, "the server still holds the refused socket 3 s after refusing it");
    } finally {
      refused?.destroy();
      for (const c of open) c.close();
    }
    await slotsReleased(port);
  });

  test("an HTTP request gets 421 and the connection is closed", async () => {
    await withConn(async (c) => {
      c.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n");
      expect(await c.reply(), /^421 4\.7\.0 This is an SMTP server, closing connection\r\n$/);
      // The headers after the request line are never answered.
      await c.closedByServer();
    });
    await withConn(async (c) => {
      expect(await c.command("EHLO client.test"), /^250-/);
      expect(await c.command("POST /submit HTTP/1.0"), /^421 4\.7\.0 /);
      await c.closedByServer();
    });
  });

  test("VRFY does not enumerate: a mailbox and an unknown user both get 252", async () => {
    await withConn(async (c) => {
      const known = await c.command("VRFY user@example.test");
      const unknown = await c.command("VRFY nobody@example.test");
      expect(known, /^252 /);
      expect(unknown, /^252 /);
      assert.equal(known.raw, unknown.raw, "the two replies must be identical");
      expect(await c.command("EHLO client.test"), /^250-/);
      expect(await c.command("VRFY <user@example.test>"), /^252 /);
      expect(await c.command("EXPN postmaster@example.test"), /^502 5\.5\.1 /);
      expect(await c.command("QUIT"), /^221 /);
    });
  });
});
