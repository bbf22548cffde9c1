/**
 * LMTP delivery against a small scripted LMTP server (RFC 2033) on a unix
 * socket and on loopback TCP: deliverLmtp's per-recipient verdicts, then
 * QueueManager with local.lmtp (one session per message for all of its
 * mailboxes there, aliases expanded, Maildir kept for the other domains,
 * 5xx failed and bounced, 4xx and a dead server deferred).
 * test/lmtp.test.ts does the same against a real Dovecot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { Spool } from "../queue/index.ts";
import { captureLogger, routed, sampleMessage, tempDir } from "../../test/helpers/queue.ts";
import { deliverLmtp, describeTarget } from "./lmtp.ts";
import { QueueManager } from "../qmgr/index.ts";
import { mailboxPath } from "./mailbox-path.ts";
import { MessageSink, type LocalConfig } from "../sink/index.ts";
import type { IncomingMessage } from "../queue/index.ts";

const TIMEOUTS = { connectMs: 1000, greetingMs: 1000, commandMs: 1000, dataMs: 1000 };

interface Lmtp {
  /** One entry per session: the command lines and the content (dot-stuffed, with the terminator). */
  sessions: { commands: string[]; content: string[] }[];
  target: { path: string } | { host: string; port: number };
  close(): Promise<void>;
}

/**
 * An LMTP server: users it knows get 250 (or the reply `verdict` gives
 * after the content); RCPT for others gets 550 5.1.1.
 */
async function lmtpServer(listen: { path: string } | { tcp: true }, users: readonly string[], verdict: (rcpt: string) => string = (r) => `250 2.0.0 <${r}> Saved`): Promise<Lmtp> {
  const sessions: Lmtp["sessions"] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => undefined);
    const s = { commands: [] as string[], content: [] as string[] };
    sessions.push(s);
    let buf = "";
    let inData = false;
    let rcpts: string[] = [];
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      for (let guard = 0; guard < 1000; guard++) {
        if (inData) {
          const end = buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          s.content.push(buf.slice(0, end + 5));
          buf = buf.slice(end + 5);
          inData = false;
          sock.write(rcpts.map((r) => `${verdict(r)}\r\n`).join(""));
          rcpts = [];
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        s.commands.push(line);
        const verb = line.split(/[ :]/)[0]?.toUpperCase();
        if (verb === "LHLO") sock.write("250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
        else if (verb === "MAIL") sock.write("250 2.1.0 OK\r\n");
        else if (verb === "RCPT") {
          const addr = /<([^>]*)>/.exec(line)?.[1] ?? "";
          if (users.includes(addr)) {
            rcpts.push(addr);
            sock.write("250 2.1.5 OK\r\n");
          } else sock.write(`550 5.1.1 <${addr}> User doesn't exist: ${addr}\r\n`);
        } else if (verb === "DATA") {
          if (rcpts.length === 0) sock.write("503 5.5.1 No valid recipients\r\n");
          else {
            inData = true;
            sock.write("354 OK\r\n");
          }
        } else if (verb === "QUIT") sock.end("221 2.0.0 Bye\r\n");
        else sock.write("500 5.5.1 Unknown command\r\n");
      }
    });
    sock.write("220 lmtp.test Dovecot ready.\r\n");
  });
  if ("path" in listen) await new Promise<void>((res) => server.listen(listen.path, res));
  else await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const a = server.address();
  const target = "path" in listen ? { path: listen.path } : { host: "127.0.0.1", port: (a as net.AddressInfo).port };
  return {
    sessions,
    target,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}

const message = (to: string[], mailFrom = "sender@remote.test") => ({
  envelope: { mailFrom, recipients: to.map((address) => ({ address, dsn: {} })), smtputf8: false },
  content: Buffer.from("Subject: lmtp\r\n\r\n.leading dot\r\nbody\r\n"),
});

test("deliverLmtp over a unix socket: LHLO, one reply per accepted recipient, unknown users permanent", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const srv = await lmtpServer({ path: join(dir, "lmtp.sock") }, ["a@example.test", "c@example.test"], (r) => (r === "c@example.test" ? "452 4.2.2 <c@example.test> Quota exceeded" : `250 2.0.0 <${r}> Saved`));
  t.after(() => srv.close());
  const r = await deliverLmtp({ target: srv.target, helo: "mx.test", message: message(["x@example.test"]), mailboxes: ["a@example.test", "b@example.test", "c@example.test"], timeouts: TIMEOUTS });
  assert.deepEqual(r.mailboxes.map((m) => `${m.mailbox} ${m.final} ${m.code} ${m.status}`), [
    "a@example.test delivered 250 2.0.0",
    "b@example.test permanent 550 5.1.1",
    "c@example.test temporary 452 4.2.2",
  ]);
  assert.equal(r.error, undefined);
  assert.deepEqual(srv.sessions[0]?.commands.slice(0, 5), ["LHLO mx.test", "MAIL FROM:<sender@remote.test>", "RCPT TO:<a@example.test>", "RCPT TO:<b@example.test>", "RCPT TO:<c@example.test>"]);
  assert.deepEqual(srv.sessions[0]?.content, ["Subject: lmtp\r\n\r\n..leading dot\r\nbody\r\n.\r\n"]);
  assert.equal(describeTarget(srv.target), `unix:${join(dir, "lmtp.sock")}`);
});

test("deliverLmtp: a missing socket or a closed port is temporary for every mailbox", async () => {
  const gone = await deliverLmtp({ target: { path: "/nonexistent/lmtp.sock" }, helo: "mx.test", message: message(["a@example.test"]), mailboxes: ["a@example.test"], timeouts: TIMEOUTS });
  assert.deepEqual(gone.mailboxes.map((m) => `${m.final} ${m.status}`), ["temporary 4.4.1"]);
  assert.match(gone.error ?? "", /unix:\/nonexistent\/lmtp\.sock.*ENOENT/);
  const tmp = net.createServer();
  await new Promise<void>((res) => tmp.listen(0, "127.0.0.1", res));
  const port = (tmp.address() as net.AddressInfo).port;
  await new Promise<void>((res) => tmp.close(() => res()));
  const closed = await deliverLmtp({ target: { host: "127.0.0.1", port }, helo: "mx.test", message: message(["a@example.test"]), mailboxes: ["a@example.test", "b@example.test"], timeouts: TIMEOUTS });
  assert.deepEqual(closed.mailboxes.map((m) => `${m.final} ${m.status}`), ["temporary 4.4.1", "temporary 4.4.1"]);
  assert.match(closed.error ?? "", /ECONNREFUSED/);
});

const LOCAL: LocalConfig = {
  domains: ["lmtp.test", "maildir.test"],
  mailboxes: ["alice@lmtp.test", "bob@lmtp.test", "ghost@lmtp.test", "carol@maildir.test"],
  aliases: { "team@lmtp.test": ["alice@lmtp.test", "bob@lmtp.test", "carol@maildir.test"] },
  discard: [],
  maildir: "mail/%d/%n",
  lmtp: {},
};

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function agentFor(t: { after: (fn: () => Promise<void> | void) => void }, lmtp: LocalConfig["lmtp"]) {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const local = { ...LOCAL, lmtp };
  const queue = { retryMin: 300, concurrency: 16, retryMax: 14400, lifetime: 432000, delayNotice: 14400 };
  const sink = new MessageSink({ spool, shard: 0, hostname: "mx.test", authservId: "mx.test", local });
  const agent = new QueueManager({ spool, dataDir: dir, logger: log.logger, pollMs: 20, hostname: "mx.test", lmtpTimeouts: TIMEOUTS, bounces: { hostname: "mx.test", queue, sink } });
  const route = (m: IncomingMessage): IncomingMessage => routed(m, (a) => sink.router.routeInPlace(a));
  t.after(async () => {
    await agent.stop();
    spool.close();
    cleanup();
  });
  const files = (mailbox: string): string[] => {
    const md = join(mailboxPath(dir, local.maildir, mailbox), "new");
    return existsSync(md) ? readdirSync(md) : [];
  };
  return { dir, log, spool, agent, files, route };
}

test("QueueManager: LMTP domains go in one session per message, aliases expanded; Maildir for the others; 5xx fails and bounces", async (t) => {
  const { dir: sockDir, cleanup } = tempDir();
  t.after(cleanup);
  const srv = await lmtpServer({ path: join(sockDir, "lmtp.sock") }, ["alice@lmtp.test", "bob@lmtp.test"]);
  t.after(() => srv.close());
  const { spool, agent, files, log, route } = agentFor(t, { "lmtp.test": srv.target });
  agent.start();
  const id = await spool.enqueue(route(sampleMessage({ from: "sender@remote.test", to: ["team@lmtp.test", "Alice@lmtp.test", "ghost@lmtp.test"] })));
  await waitFor(() => spool.admin.get(id) === undefined, "message done");
  assert.equal(srv.sessions.length, 1, "one LMTP session for the message");
  const rcpts = srv.sessions[0]?.commands.filter((c) => c.startsWith("RCPT"));
  assert.deepEqual(rcpts, ["RCPT TO:<alice@lmtp.test>", "RCPT TO:<bob@lmtp.test>", "RCPT TO:<ghost@lmtp.test>"], "each mailbox once");
  assert.equal(srv.sessions[0]?.content.length, 1);
  assert.equal(files("carol@maildir.test").length, 1, "the Maildir domain is still written");
  assert.equal(files("alice@lmtp.test").length, 0, "no Maildir for an LMTP domain");
  assert.equal(agent.stats().lmtp, 2);
  assert.equal(agent.stats().stored, 1);
  const failed = log.lines.filter((l) => l.msg === "delivery failed");
  assert.deepEqual(failed.map((l) => l.rcpt), ["ghost@lmtp.test"]);
  assert.match(String(failed[0]?.error), /^LMTP unix:.* said: 550 5\.1\.1 <ghost@lmtp\.test> User doesn't exist/);
  assert.equal(log.lines.filter((l) => l.msg === "delivered locally").length, 2);
  assert.ok(log.has("delivery status notification queued"), "the sender gets a bounce");
});

test("QueueManager: a 4xx from LMTP or a dead LMTP server defers the recipient", async (t) => {
  const srv = await lmtpServer({ tcp: true }, ["alice@lmtp.test", "bob@lmtp.test"], (r) => (r === "bob@lmtp.test" ? "451 4.3.0 <bob@lmtp.test> Temporary failure" : `250 2.0.0 <${r}> Saved`));
  t.after(() => srv.close());
  const { spool, agent, route } = agentFor(t, { "lmtp.test": srv.target });
  agent.start();
  const id = await spool.enqueue(route(sampleMessage({ to: ["alice@lmtp.test", "bob@lmtp.test"] })));
  await waitFor(() => spool.admin.get(id)?.state === "deferred", "deferral");
  const e = spool.admin.get(id)!;
  assert.deepEqual(e.recipients.map((r) => r.state), ["delivered", "deferred"]);
  assert.match(e.recipients[1]?.lastError ?? "", /^LMTP 127\.0\.0\.1:\d+: 451 4\.3\.0/);

  // The server goes away: the retry is deferred with the connection error.
  await srv.close();
  spool.admin.retry(id);
  await waitFor(() => (spool.admin.get(id)?.recipients[1]?.attempts ?? 0) >= 2, "second attempt");
  assert.match(spool.admin.get(id)?.recipients[1]?.lastError ?? "", /ECONNREFUSED/);
});

test("QueueManager: a recipient whose mailboxes are split between the LMTP and the Maildir transports is deferred while either defers it", async (t) => {
  let bob = "451 4.3.0 <bob@lmtp.test> Mailbox busy";
  const srv = await lmtpServer({ tcp: true }, ["alice@lmtp.test", "bob@lmtp.test"], (r) => (r === "bob@lmtp.test" ? bob : `250 2.0.0 <${r}> Saved`));
  t.after(() => srv.close());
  const { spool, agent, files, log, route } = agentFor(t, { "lmtp.test": srv.target });
  agent.start();
  const id = await spool.enqueue(route(sampleMessage({ to: ["team@lmtp.test"] })));
  await waitFor(() => spool.admin.get(id)?.state === "deferred", "deferral");
  assert.match(spool.admin.get(id)?.recipients[0]?.lastError ?? "", /^LMTP 127\.0\.0\.1:\d+: 451 4\.3\.0 <bob@lmtp\.test>/);
  assert.equal(files("carol@maildir.test").length, 1, "the Maildir copy is written meanwhile");
  assert.equal(log.lines.filter((l) => l.msg === "delivered locally").length, 0);

  bob = "250 2.0.0 <bob@lmtp.test> Saved";
  spool.admin.retry(id);
  await waitFor(() => spool.admin.get(id) === undefined, "message done");
  assert.equal(srv.sessions.length, 2, "one LMTP session per attempt");
  assert.equal(files("carol@maildir.test").length, 2, "retried with its recipient (at-least-once)");
  assert.deepEqual(log.lines.filter((l) => l.msg === "delivered locally").map((l) => l.mailboxes), [["alice@lmtp.test", "bob@lmtp.test", "carol@maildir.test"]]);
});
