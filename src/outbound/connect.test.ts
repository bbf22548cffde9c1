/**
 * deliverSession against real servers on loopback: Postfix's smtp-sink
 * (three messages over one connection, compared byte for byte with its dump
 * files) and a small node SMTP server with STARTTLS and a self-signed
 * certificate (opportunistic TLS, verification with `ca`, "required" without
 * STARTTLS, the verify hook saying no, timeouts).
 */
import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import type { Envelope } from "../queue/index.ts";
import { generateCertificate } from "../tls/index.ts";
import type { OutboundMessage } from "../protocol/index.ts";
import { deliverSession, SmtpConnection, type DeliverOptions } from "./connect.ts";
import { peerSkip } from "../../test/helpers/peers.ts";

const SMTP_SINK = "/usr/sbin/smtp-sink";
const TIMEOUTS = { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 2000 };

function message(subject: string, body: string, rcpts = ["b@example.org"], over: Partial<Envelope> = {}): OutboundMessage {
  const envelope: Envelope = { mailFrom: "a@wardmail.test", recipients: rcpts.map((address) => ({ address, dsn: {} })), smtputf8: false, ...over };
  return { envelope, content: Buffer.from(`Subject: ${subject}\r\n\r\n${body}`, "utf8") };
}

function options(port: number, over: Partial<DeliverOptions> = {}): DeliverOptions {
  return { host: "localhost", address: "127.0.0.1", port, helo: "out.wardmail.test", tls: "opportunistic", timeouts: TIMEOUTS, messages: [message("one", "hello\r\n")], ...over };
}

const finals = (r: { messages: readonly { recipients: readonly { final: string; status: string }[] }[] }): string[] =>
  r.messages.flatMap((m) => m.recipients.map((x) => `${x.final} ${x.status}`));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === "object" ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

test("smtp-sink: three messages over one pipelined connection arrive byte for byte", { skip: peerSkip(existsSync(SMTP_SINK) ? undefined : `${SMTP_SINK} is missing: install the Debian package postfix`) }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "wardmail-sink-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o777); // smtp-sink drops to "nobody" when started as root
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const sink = spawn(SMTP_SINK, [...(root ? ["-u", "nobody"] : []), "-d", join(dir, "m."), `127.0.0.1:${port}`, "10"], { stdio: "ignore" });
  t.after(() => {
    sink.kill();
  });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((res) => {
      const c = net.connect(port, "127.0.0.1", () => {
        c.destroy();
        res(true);
      });
      c.on("error", () => res(false));
    });
    if (up) break;
    await sleep(50);
  }
  const messages = [
    message("first", "plain body\r\n.leading dot\r\n..two dots\r\n", ["b@example.org", "c@example.org"]),
    message("second", "caf\u00e9 8-bit\r\nbare\nlf and bare\rcr\r\n.", ["d@example.org"], { envid: "env 1", ret: "HDRS" }),
    { ...message("third", "last\r\n"), envelope: { ...message("x", "").envelope, recipients: [{ address: "e@example.org", dsn: { notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;e@example.org" } }] } },
  ];
  const r = await deliverSession(options(port, { tls: "opportunistic", messages }));
  assert.deepEqual(finals(r), ["delivered 2.0.0", "delivered 2.0.0", "delivered 2.0.0", "delivered 2.0.0"], JSON.stringify(r));
  assert.equal(r.connection.extensions.pipelining, true);
  assert.equal(r.connection.tls, undefined);
  let files: string[] = [];
  for (let i = 0; i < 100 && files.length < 3; i++) {
    files = await readdir(dir);
    if (files.length < 3) await sleep(20);
  }
  assert.equal(files.length, 3);
  const dumps = await Promise.all(files.map((f) => readFile(join(dir, f), "utf8")));
  const bySubject = (s: string): string => dumps.find((d) => d.includes(`\nSubject: ${s}\n`)) ?? "";
  // smtp-sink writes LF line endings, unstuffs dots and adds an empty line at the end.
  assert.ok(bySubject("first").endsWith("Subject: first\n\nplain body\n.leading dot\n..two dots\n\n"), bySubject("first"));
  assert.match(bySubject("first"), /X-Mail-Args: <a@wardmail\.test>\nX-Rcpt-Args: <b@example\.org>\nX-Rcpt-Args: <c@example\.org>\n/);
  const second = bySubject("second");
  assert.ok(second.endsWith("Subject: second\n\ncaf\u00e9 8-bit\nbare\nlf and bare\ncr\n.\n\n"), second);
  assert.match(second, /X-Mail-Args: <a@wardmail\.test> BODY=8BITMIME RET=HDRS ENVID=env\+201\n/);
  assert.match(bySubject("third"), /X-Rcpt-Args: <e@example\.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;e@example\.org\n/);
});

interface Seen {
  commands: string[];
  /** Decoded AUTH PLAIN responses, with whether TLS was on. */
  auth: { decoded: string; tls: boolean }[];
  messages: { data: string; tls: boolean }[];
}

/** A small SMTP server: optional STARTTLS with the given certificate, or no greeting at all. */
async function smtpServer(t: { after(fn: () => unknown): void }, o: { cert?: { certPem: string; keyPem: string }; greet?: boolean; stallAfterData?: boolean; auth?: boolean; silentRset?: boolean; onCommand?: (line: string) => void }) {
  const seen: Seen = { commands: [], auth: [], messages: [] };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on("error", () => undefined);
    raw.on("close", () => sockets.delete(raw));
    if (o.greet === false) return;
    let sock: net.Socket = raw;
    let tlsOn = false;
    let buf = "";
    let inData = false;
    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      while (true) {
        if (inData) {
          const end = buf.startsWith(".\r\n") ? 0 : buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          const cut = end === 0 ? 3 : end + 5;
          seen.messages.push({ data: buf.slice(0, cut), tls: tlsOn });
          buf = buf.slice(cut);
          inData = false;
          sock.write("250 2.0.0 Ok: queued\r\n");
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        seen.commands.push((tlsOn ? "tls:" : "") + line);
        o.onCommand?.(line);
        const verb = line.split(/[ :]/)[0]?.toUpperCase();
        if (verb === "RSET" && o.silentRset === true) continue;
        if (verb === "EHLO") sock.write(`250-mx.test\r\n250-PIPELINING\r\n${o.cert && !tlsOn ? "250-STARTTLS\r\n" : ""}${o.auth === true ? "250-AUTH LOGIN PLAIN\r\n" : ""}250 8BITMIME\r\n`);
        else if (verb === "AUTH" && o.auth === true) {
          seen.auth.push({ decoded: Buffer.from(line.split(" ")[2] ?? "", "base64").toString("utf8"), tls: tlsOn });
          sock.write("235 2.7.0 Authentication successful\r\n");
        }
        else if (verb === "STARTTLS" && o.cert && !tlsOn) {
          sock.write("220 2.0.0 Ready to start TLS\r\n");
          sock.removeListener("data", onData);
          const secure = new tls.TLSSocket(raw, { isServer: true, key: o.cert.keyPem, cert: o.cert.certPem });
          secure.on("error", () => undefined);
          secure.on("data", onData);
          sock = secure;
          tlsOn = true;
          buf = "";
        } else if (verb === "DATA") {
          if (o.stallAfterData === true) return;
          sock.write("354 go ahead\r\n");
          inData = true;
        } else if (verb === "QUIT") sock.end("221 2.0.0 Bye\r\n");
        else if (verb === "MAIL" || verb === "RCPT") sock.write("250 2.1.0 Ok\r\n");
        else sock.write("502 5.5.2 Unknown\r\n");
      }
    };
    sock.on("data", onData);
    sock.write("220 mx.test ESMTP\r\n");
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const a = server.address() as net.AddressInfo;
  return { port: a.port, seen };
}

const certPromise = generateCertificate(["localhost", "127.0.0.1"]);

test("opportunistic STARTTLS with a self-signed certificate: delivered over TLS, verified=false with the reason", async (t) => {
  const cert = await certPromise;
  const srv = await smtpServer(t, { cert });
  const r = await deliverSession(options(srv.port, { messages: [message("one", "hi\r\n"), message("two", "there\r\n")] }));
  assert.deepEqual(finals(r), ["delivered 2.0.0", "delivered 2.0.0"]);
  assert.equal(r.connection.tls?.verified, false);
  assert.match(r.connection.tls?.error ?? "", /SELF_SIGNED|self[- ]signed/i);
  assert.match(r.connection.tls?.version ?? "", /^TLSv1\.[23]$/);
  assert.deepEqual(srv.seen.commands.slice(0, 3), ["EHLO out.wardmail.test", "STARTTLS", "tls:EHLO out.wardmail.test"]);
  assert.ok(srv.seen.commands.slice(3).every((c) => c.startsWith("tls:")));
  assert.deepEqual(srv.seen.messages, [
    { data: "Subject: one\r\n\r\nhi\r\n.\r\n", tls: true },
    { data: "Subject: two\r\n\r\nthere\r\n.\r\n", tls: true },
  ]);
});

test("with the certificate as ca the peer verifies; a name it does not carry does not", async (t) => {
  const cert = await certPromise;
  const srv = await smtpServer(t, { cert });
  const ok = await deliverSession(options(srv.port, { tlsOptions: { ca: cert.certPem } }));
  assert.deepEqual(finals(ok), ["delivered 2.0.0"]);
  assert.equal(ok.connection.tls?.verified, true);
  assert.equal(ok.connection.tls?.error, undefined);
  const wrong = await deliverSession(options(srv.port, { host: "mx.other.test", tlsOptions: { ca: cert.certPem } }));
  assert.deepEqual(finals(wrong), ["delivered 2.0.0"]);
  assert.equal(wrong.connection.tls?.verified, false);
  assert.match(wrong.connection.tls?.error ?? "", /ALTNAME|mx\.other\.test/);
});

test("TLS required and no STARTTLS offered: nothing sent, every recipient temporary", async (t) => {
  const srv = await smtpServer(t, {});
  const r = await deliverSession(options(srv.port, { tls: "required" }));
  assert.deepEqual(finals(r), ["temporary 4.7.10"]);
  assert.deepEqual(srv.seen.commands, ["EHLO out.wardmail.test", "QUIT"]);
  assert.equal(srv.seen.messages.length, 0);
});

test("the verify hook says no: QUIT over TLS, nothing sent; a failed handshake never falls back to plaintext", async (t) => {
  const cert = await certPromise;
  const srv = await smtpServer(t, { cert });
  let called = 0;
  const r = await deliverSession(
    options(srv.port, {
      tls: "required",
      verify: (s) => {
        called++;
        return s.authorized ? { ok: true } : { ok: false, reason: "MTA-STS: certificate does not verify" };
      },
    }),
  );
  assert.equal(called, 1);
  assert.deepEqual(finals(r), ["temporary 4.7.5"]);
  assert.match(r.messages[0]?.recipients[0]?.text ?? "", /MTA-STS: certificate does not verify/);
  for (let i = 0; i < 50 && !srv.seen.commands.includes("tls:QUIT"); i++) await sleep(10);
  assert.deepEqual(srv.seen.commands, ["EHLO out.wardmail.test", "STARTTLS", "tls:QUIT"]);

  const srv2 = await smtpServer(t, { cert });
  const strict = await deliverSession(options(srv2.port, { tlsOptions: { rejectUnauthorized: true } }));
  assert.deepEqual(finals(strict), ["temporary 4.7.0"]);
  assert.match(strict.messages[0]?.recipients[0]?.text ?? "", /^TLS handshake failed/);
  assert.deepEqual(srv2.seen.commands, ["EHLO out.wardmail.test", "STARTTLS"]);
  assert.equal(srv2.seen.messages.length, 0);
});

test("timeouts: a server that never greets, one that stalls after DATA; a refused connection", async (t) => {
  const silent = await smtpServer(t, { greet: false });
  const fast = { connectMs: 1000, greetingMs: 200, commandMs: 200, dataMs: 200 };
  let start = Date.now();
  const r = await deliverSession(options(silent.port, { timeouts: fast }));
  assert.ok(Date.now() - start < 1500, `took ${Date.now() - start} ms`);
  assert.deepEqual(finals(r), ["temporary 4.4.2"]);
  assert.match(r.messages[0]?.recipients[0]?.text ?? "", /timeout waiting for the greeting/);

  const stall = await smtpServer(t, { stallAfterData: true });
  start = Date.now();
  const s = await deliverSession(options(stall.port, { tls: "none", timeouts: fast }));
  assert.ok(Date.now() - start < 1500);
  assert.deepEqual(finals(s), ["temporary 4.4.2"]);
  assert.match(s.messages[0]?.recipients[0]?.text ?? "", /timeout waiting for a reply/);

  const closedPort = await freePort();
  const c = await deliverSession(options(closedPort, { timeouts: fast }));
  assert.deepEqual(finals(c), ["temporary 4.4.1"]);
  assert.match(c.messages[0]?.recipients[0]?.text ?? "", /ECONNREFUSED/);
});

test("relay AUTH over real STARTTLS: credentials sent once, only over TLS; a plaintext-only server never sees them", async (t) => {
  const cert = await certPromise;
  const srv = await smtpServer(t, { cert, auth: true });
  const auth = { user: "relay-user", password: "p\u00e4ss word" };
  const r = await deliverSession(options(srv.port, { tls: "required", auth, tlsOptions: { ca: cert.certPem } }));
  assert.deepEqual(finals(r), ["delivered 2.0.0"]);
  assert.equal(r.connection.tls?.verified, true);
  assert.deepEqual(srv.seen.auth, [{ decoded: "\0relay-user\0p\u00e4ss word", tls: true }]);
  assert.ok(srv.seen.commands.findIndex((c) => c.startsWith("tls:AUTH PLAIN ")) > srv.seen.commands.indexOf("tls:EHLO out.wardmail.test"));
  assert.ok(!JSON.stringify(r).includes("ss word"), JSON.stringify(r));

  const plain = await smtpServer(t, { auth: true });
  const p = await deliverSession(options(plain.port, { tls: "opportunistic", auth }));
  assert.deepEqual(finals(p), ["temporary 4.7.11"]);
  assert.deepEqual(plain.seen.auth, []);
  assert.deepEqual(plain.seen.commands, ["EHLO out.wardmail.test", "QUIT"]);
});

test("relay AUTH over TLS whose certificate does not verify (untrusted, or for another name): never sent", async (t) => {
  const cert = await certPromise;
  const srv = await smtpServer(t, { cert, auth: true });
  const auth = { user: "relay-user", password: "secret-pw" };
  // Untrusted: no CA given, the self-signed certificate is not in the system store.
  const untrusted = await deliverSession(options(srv.port, { tls: "required", auth }));
  // Trusted CA but another name than the one the certificate is for.
  const otherName = await deliverSession(options(srv.port, { host: "relay.elsewhere.test", tls: "required", auth, tlsOptions: { ca: cert.certPem } }));
  for (const r of [untrusted, otherName]) {
    assert.deepEqual(finals(r), ["temporary 4.7.11"]);
    assert.match(r.messages[0]?.recipients[0]?.text ?? "", /AUTH needs a verified certificate/);
    assert.equal(r.connection.tls?.verified, false);
    assert.ok(!JSON.stringify(r).includes("secret-pw"));
  }
  assert.deepEqual(srv.seen.auth, []);
  assert.ok(!srv.seen.commands.some((c) => /AUTH|MAIL/.test(c)), JSON.stringify(srv.seen.commands));
});

test("a reused connection whose RSET is never answered gives up after 20 s, not the 300 s command timeout, and reports it stale", async (t) => {
  let rsetSeen: () => void = () => undefined;
  const rset = new Promise<void>((res) => (rsetSeen = res));
  const srv = await smtpServer(t, { silentRset: true, onCommand: (line) => (line === "RSET" ? rsetSeen() : undefined) });
  const long = { connectMs: 2000, greetingMs: 2000, commandMs: 300_000, dataMs: 300_000 };
  const conn = new SmtpConnection({ ...options(srv.port, { tls: "none", timeouts: long }), keepOpen: true });
  t.after(() => conn.destroy());
  assert.deepEqual(finals(await conn.start()), ["delivered 2.0.0"]);
  assert.equal(conn.idle, true);
  mock.timers.enable({ apis: ["setTimeout"] });
  t.after(() => mock.timers.reset());
  let settled = false;
  const second = conn.send([message("two", "again\r\n")]).then((r) => {
    settled = true;
    return r;
  });
  await rset;
  mock.timers.tick(19_999);
  await new Promise((res) => setImmediate(res));
  assert.equal(settled, false, "gave up before 20 s");
  mock.timers.tick(1);
  for (let i = 0; i < 50 && !settled; i++) await new Promise((res) => setImmediate(res));
  assert.equal(settled, true, "still waiting for the RSET reply after 20 s");
  const r = await second;
  assert.equal(r.connection.stale, true);
  assert.deepEqual(finals(r), ["temporary 4.4.2"]);
  assert.match(r.connection.error ?? "", /timeout/);
  assert.equal(srv.seen.messages.length, 1);
});
