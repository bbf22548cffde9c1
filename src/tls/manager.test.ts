// Tests for TlsManager: real handshakes on 127.0.0.1 (node:tls clients and the
// openssl CLI), protocol floor, cipher policy, SNI, reload and file watching.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import pino from "pino";
import type { CertificatePair } from "../config/index.ts";
import { TlsManager, describeTls, installReloadSignal } from "./manager.ts";
import type { TlsListener, TlsManagerOptions } from "./manager.ts";
import { generateCertificate } from "./selfsigned.ts";

const CIPHERS = [
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
].join(":");

interface TestContext {
  after(fn: () => unknown): void;
}

interface Pair extends CertificatePair {
  fp: string;
}

async function tempDir(t: TestContext): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "wardmail-tlsm-"));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** Generate a certificate for `names` and write it to `<dir>/<base>.crt|.key`; `atomic` writes via rename. */
async function writePair(dir: string, base: string, names: string[], atomic = false): Promise<Pair> {
  const g = await generateCertificate(names);
  const cert = join(dir, `${base}.crt`);
  const key = join(dir, `${base}.key`);
  if (atomic) {
    await writeFile(`${key}.new`, g.keyPem);
    await writeFile(`${cert}.new`, g.certPem);
    await rename(`${key}.new`, key);
    await rename(`${cert}.new`, cert);
  } else {
    await writeFile(key, g.keyPem);
    await writeFile(cert, g.certPem);
  }
  return { cert, key, fp: new X509Certificate(g.certPem).fingerprint256 };
}

function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

async function manager(t: TestContext, pairs: CertificatePair[], extra: Partial<TlsManagerOptions> = {}): Promise<TlsManager> {
  const m = await TlsManager.create({
    pairs,
    minVersion: "TLSv1.2",
    ciphers: CIPHERS,
    watch: false,
    logger: pino({ level: "silent" }),
    ...extra,
  });
  t.after(() => m.close());
  return m;
}

interface Listening {
  port: number;
  /** describeTls() of each accepted session, in order. */
  sessions: { version: string; cipher: string }[];
}

function track(t: TestContext, server: net.Server): void {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
}

/** Implicit-TLS echo server built with tls.createServer. */
async function tlsServer(t: TestContext, opts: tls.TlsOptions, m?: TlsManager): Promise<Listening & { server: tls.Server }> {
  const sessions: Listening["sessions"] = [];
  const server = tls.createServer(opts, (s) => {
    sessions.push(describeTls(s));
    s.on("error", () => undefined);
    s.pipe(s);
  });
  server.on("tlsClientError", () => undefined);
  if (m !== undefined) m.attach(server);
  track(t, server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as net.AddressInfo).port, sessions, server };
}

/** STARTTLS-style echo server: plain TCP wrapped with new tls.TLSSocket per connection. */
async function wrapServer(t: TestContext, m: TlsManager, listener: TlsListener = "submission"): Promise<Listening> {
  const sessions: Listening["sessions"] = [];
  const server = net.createServer((raw) => {
    const s = new tls.TLSSocket(raw, { isServer: true, ...m.serverOptions(listener) });
    s.on("secure", () => {
      sessions.push(describeTls(s));
      s.pipe(s);
    });
    s.on("error", () => raw.destroy());
  });
  track(t, server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as net.AddressInfo).port, sessions };
}

function connect(t: TestContext, port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const c = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts }, () => resolve(c));
    c.once("error", reject);
    t.after(() => c.destroy());
  });
}

/** Read right after the handshake: Node drops the peer certificate once data flows. */
function peerFp(c: tls.TLSSocket): string | undefined {
  return c.getPeerX509Certificate()?.fingerprint256;
}

async function fpFor(t: TestContext, port: number, servername?: string): Promise<string | undefined> {
  const c = await connect(t, port, servername === undefined ? {} : { servername });
  const fp = peerFp(c);
  c.destroy();
  return fp;
}

async function echo(c: tls.TLSSocket, text: string): Promise<string> {
  let got = "";
  c.write(text);
  while (got.length < text.length) {
    const [chunk] = (await once(c, "data")) as [Buffer];
    got += chunk.toString();
  }
  return got;
}

/** Run `openssl s_client` against the port with stdin closed; returns exit code and output. */
function sClient(port: number, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-brief", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, out }));
    p.stdin.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(50);
  }
  return cond();
}

void test("TLS 1.2 and 1.3 handshakes succeed with the configured ciphers; describeTls reports them", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["mx.example.test"]);
  const m = await manager(t, [a]);
  const srv = await tlsServer(t, m.serverOptions(), m);

  const c13 = await connect(t, srv.port);
  assert.equal(c13.getProtocol(), "TLSv1.3");
  assert.equal(await echo(c13, "ping13"), "ping13");
  assert.equal(peerFp(c13), a.fp);

  const c12 = await connect(t, srv.port, { maxVersion: "TLSv1.2" });
  assert.equal(c12.getProtocol(), "TLSv1.2");
  assert.equal(c12.getCipher().name, "ECDHE-ECDSA-AES256-GCM-SHA384");
  assert.equal(await echo(c12, "ping12"), "ping12");

  assert.deepEqual(srv.sessions[0], { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" });
  assert.deepEqual(srv.sessions[1], { version: "TLSv1.2", cipher: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" });
  assert.deepEqual(describeTls(c12), { version: "TLSv1.2", cipher: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" });
});

void test("TLS 1.1 is refused, although the same client succeeds against a permissive server", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["mx.example.test"]);
  const m = await manager(t, [a]);
  const ours = await tlsServer(t, m.serverOptions(), m);
  const { readFile } = await import("node:fs/promises");
  const permissive = await tlsServer(t, {
    cert: await readFile(a.cert),
    key: await readFile(a.key),
    minVersion: "TLSv1",
    ciphers: "DEFAULT@SECLEVEL=0",
  });
  const old: tls.ConnectionOptions = { minVersion: "TLSv1.1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" };

  const ctl = await connect(t, permissive.port, old);
  assert.equal(ctl.getProtocol(), "TLSv1.1", "control: the client can speak TLS 1.1");
  await assert.rejects(connect(t, ours.port, old), /protocol version|unsupported protocol/i);
  await assert.rejects(connect(t, ours.port, { ...old, servername: "mx.example.test" }), /protocol version|unsupported protocol/i);
  assert.equal(ours.sessions.length, 0);
  const wrapped = await wrapServer(t, m);
  await assert.rejects(connect(t, wrapped.port, { ...old, servername: "mx.example.test" }), /protocol version|unsupported protocol/i);
  assert.equal(wrapped.sessions.length, 0);
});

void test("openssl s_client: -tls1_1 fails, -tls1_2 and -tls1_3 succeed", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["mx.example.test"]);
  const m = await manager(t, [a]);
  const srv = await tlsServer(t, m.serverOptions(), m);

  const r12 = await sClient(srv.port, ["-tls1_2"]);
  assert.equal(r12.code, 0, r12.out);
  assert.match(r12.out, /Protocol version: TLSv1\.2/);
  assert.match(r12.out, /Ciphersuite: ECDHE-ECDSA-AES256-GCM-SHA384/);

  const r13 = await sClient(srv.port, ["-tls1_3"]);
  assert.equal(r13.code, 0, r13.out);
  assert.match(r13.out, /Protocol version: TLSv1\.3/);

  const r11 = await sClient(srv.port, ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
  assert.notEqual(r11.code, 0, r11.out);
  assert.doesNotMatch(r11.out, /Protocol version: TLSv1\.1/);
  assert.match(r11.out, /alert protocol version|unsupported protocol|no protocols available/i);
});

void test("TLS 1.2 without ECDHE+AEAD is refused and the server's cipher order wins", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["mx.example.test"]);
  const m = await manager(t, [a]);
  // Both the tls.Server default context and the per-pair contexts (TLSSocket, SNI).
  for (const srv of [await tlsServer(t, m.serverOptions(), m), await wrapServer(t, m)]) {
    for (const servername of [undefined, "mx.example.test"]) {
      await assert.rejects(
        connect(t, srv.port, { servername, maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384" }),
        /handshake failure|no shared cipher/i,
      );
      const c = await connect(t, srv.port, {
        servername,
        maxVersion: "TLSv1.2",
        ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384",
      });
      assert.equal(c.getCipher().name, "ECDHE-ECDSA-AES256-GCM-SHA384");
    }
  }
});

void test("client-initiated renegotiation is refused", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["mx.example.test"]);
  const m = await manager(t, [a]);
  const srv = await tlsServer(t, m.serverOptions(), m);
  const c = await connect(t, srv.port, { maxVersion: "TLSv1.2" });
  const failed = new Promise<string>((resolve) => {
    c.on("error", (e: Error) => resolve(e.message));
    c.renegotiate({}, (err: Error | null) => resolve(err === null ? "renegotiated" : err.message));
  });
  c.write("x");
  assert.match(await failed, /no renegotiation/i);
});

void test("minVersion TLSv1.3 refuses TLS 1.2", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["mx.example.test"]);
  const m = await manager(t, [a], { minVersion: "TLSv1.3" });
  const srv = await tlsServer(t, m.serverOptions(), m);
  const wrapped = await wrapServer(t, m);
  for (const port of [srv.port, wrapped.port]) {
    await assert.rejects(connect(t, port, { maxVersion: "TLSv1.2" }), /protocol version|unsupported protocol/i);
    await assert.rejects(connect(t, port, { maxVersion: "TLSv1.2", servername: "mx.example.test" }), /protocol version|unsupported protocol/i);
    assert.equal((await connect(t, port)).getProtocol(), "TLSv1.3");
  }
});

void test("SNI picks the matching certificate (exact, then wildcard); no SNI or no match gets the first", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["a.test"]);
  const b = await writePair(dir, "b", ["b.test", "mail.b.test"]);
  const w = await writePair(dir, "w", ["*.w.test"]);
  const x = await writePair(dir, "x", ["exact.w.test"]);
  const m = await manager(t, [a, b, w, x]);

  for (const srv of [await tlsServer(t, m.serverOptions(), m), await wrapServer(t, m)]) {
    assert.equal(await fpFor(t, srv.port, "b.test"), b.fp);
    assert.equal(await fpFor(t, srv.port, "MAIL.B.test"), b.fp);
    assert.equal(await fpFor(t, srv.port, "a.test"), a.fp);
    assert.equal(await fpFor(t, srv.port), a.fp, "no SNI → first");
    assert.equal(await fpFor(t, srv.port, "c.test"), a.fp, "unknown → first");
    assert.equal(await fpFor(t, srv.port, "one.w.test"), w.fp, "wildcard");
    assert.equal(await fpFor(t, srv.port, "exact.w.test"), x.fp, "exact beats wildcard");
    assert.equal(await fpFor(t, srv.port, "two.one.w.test"), a.fp, "wildcard covers one label only");
    assert.equal(await fpFor(t, srv.port, "w.test"), a.fp, "wildcard does not cover its parent");
  }
  assert.deepEqual(
    m.certificates().map((c) => c.names),
    [["a.test"], ["b.test", "mail.b.test"], ["*.w.test"], ["exact.w.test"]],
  );
});

void test("reload(): open sessions keep working, new handshakes get the new certificate", async (t) => {
  const dir = await tempDir(t);
  const a1 = await writePair(dir, "a", ["a.test"]);
  const { logger, lines } = captureLogger();
  const m = await manager(t, [a1], { logger });
  const srv = await tlsServer(t, m.serverOptions(), m);
  const wrapped = await wrapServer(t, m);

  const old12 = await connect(t, srv.port, { maxVersion: "TLSv1.2", servername: "a.test" });
  const old13 = await connect(t, wrapped.port);
  assert.equal(peerFp(old12), a1.fp);

  const a2 = await writePair(dir, "a", ["a.test"]);
  assert.notEqual(a2.fp, a1.fp);
  assert.equal(await fpFor(t, srv.port, "a.test"), a1.fp, "nothing changes before the reload");
  assert.equal(await m.reload(), true);
  assert.ok(lines.some((l) => l.msg === "TLS certificate reloaded" && l.fingerprint256 === a2.fp));

  assert.equal(await echo(old12, "still here"), "still here");
  assert.equal(await echo(old13, "me too"), "me too");
  for (const port of [srv.port, wrapped.port]) {
    assert.equal(await fpFor(t, port, "a.test"), a2.fp);
    assert.equal(await fpFor(t, port), a2.fp, "no-SNI default follows the reload");
  }
  assert.equal(await echo(old12, "and after"), "and after");
});

void test("reload() with a broken or mismatched file keeps the old certificate and returns false", async (t) => {
  const dir = await tempDir(t);
  const a1 = await writePair(dir, "a", ["a.test"]);
  const { logger, lines } = captureLogger();
  const m = await manager(t, [a1], { logger });
  const srv = await tlsServer(t, m.serverOptions(), m);

  await writeFile(a1.cert, "garbage\n");
  assert.equal(await m.reload(), false);
  const err = lines.find((l) => l.level === 50);
  assert.match(String(err?.err), new RegExp(`${a1.cert.replace(/[.]/g, "\\.")}.*not contain a valid PEM certificate`));
  assert.equal(await fpFor(t, srv.port, "a.test"), a1.fp);
  assert.equal(await fpFor(t, srv.port), a1.fp);

  const other = await generateCertificate(["a.test"]);
  await writeFile(a1.cert, other.certPem); // the key on disk is still a1's
  assert.equal(await m.reload(), false);
  assert.ok(lines.some((l) => l.level === 50 && /does not match certificate/.test(String(l.err))));
  assert.equal(await fpFor(t, srv.port, "a.test"), a1.fp);

  await rm(a1.key);
  assert.equal(await m.reload(), false);
  assert.equal(await fpFor(t, srv.port), a1.fp);
});

void test("file watcher reloads after files are replaced by rename, debounced; close() stops it", async (t) => {
  const dir = await tempDir(t);
  const a1 = await writePair(dir, "a", ["a.test"]);
  const b1 = await writePair(dir, "b", ["b.test"]);
  const { logger, lines } = captureLogger();
  const m = await manager(t, [a1, b1], { watch: true, logger });
  const srv = await tlsServer(t, m.serverOptions(), m);
  const old = await connect(t, srv.port, { servername: "b.test" });

  const b2 = await writePair(dir, "b", ["b.test"], true);
  assert.ok(await waitFor(async () => (await fpFor(t, srv.port, "b.test")) === b2.fp, 5000), "watcher picked up the new certificate");
  assert.equal(await fpFor(t, srv.port, "a.test"), a1.fp);
  assert.equal(await echo(old, "alive"), "alive");
  // Four renames within a few ms make one reload, not four.
  await sleep(400);
  assert.equal(lines.filter((l) => l.msg === "TLS certificate reloaded" && l.cert === b1.cert).length, 1);

  // A broken write seen by the watcher is logged and ignored.
  await writeFile(b1.key, "broken");
  assert.ok(await waitFor(() => Promise.resolve(lines.some((l) => l.level === 50)), 5000));
  assert.equal(await fpFor(t, srv.port, "b.test"), b2.fp);

  m.close();
  const b3 = await writePair(dir, "b", ["b.test"], true);
  await sleep(700);
  assert.equal(await fpFor(t, srv.port, "b.test"), b2.fp, "no reload after close()");
  assert.notEqual(b3.fp, b2.fp);
});

void test("installReloadSignal reloads on SIGHUP and can be removed", async (t) => {
  const dir = await tempDir(t);
  const a1 = await writePair(dir, "a", ["a.test"]);
  const m = await manager(t, [a1]);
  const srv = await tlsServer(t, m.serverOptions(), m);
  const remove = installReloadSignal(m);
  t.after(remove);
  const a2 = await writePair(dir, "a", ["a.test"]);
  process.kill(process.pid, "SIGHUP");
  assert.ok(await waitFor(async () => (await fpFor(t, srv.port)) === a2.fp, 3000));
  remove();
  assert.equal(process.listenerCount("SIGHUP"), 0);
});

void test("create() fails with an error naming the bad file", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["a.test"]);
  const b = await writePair(dir, "b", ["b.test"]);
  const opts = { minVersion: "TLSv1.2" as const, ciphers: CIPHERS, watch: false, logger: pino({ level: "silent" }) };

  await assert.rejects(TlsManager.create({ ...opts, pairs: [] }), /no certificate/);
  await assert.rejects(TlsManager.create({ ...opts, pairs: [{ cert: join(dir, "nope.crt"), key: a.key }] }), (e: Error) =>
    e.message.includes(join(dir, "nope.crt")) && /ENOENT/.test(e.message),
  );
  await assert.rejects(TlsManager.create({ ...opts, pairs: [a, { cert: b.cert, key: a.key }] }), (e: Error) =>
    e.message === `TLS key file ${a.key} does not match certificate file ${b.cert}`,
  );
  await writeFile(join(dir, "junk.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  await assert.rejects(TlsManager.create({ ...opts, pairs: [{ cert: a.cert, key: join(dir, "junk.key") }] }), (e: Error) =>
    e.message.startsWith(`TLS key file ${join(dir, "junk.key")} does not contain`),
  );
  await assert.rejects(TlsManager.create({ ...opts, ciphers: "NOT-A-CIPHER", pairs: [a] }), /TLS context for .*a\.crt/);
});

/**
 * One echo round trip (so TLS 1.3 tickets have arrived), then close. Returns
 * the last session the client was given, if any, and whether this handshake
 * resumed `session`.
 */
async function ticketRound(t: TestContext, port: number, opts: tls.ConnectionOptions): Promise<{ session: Buffer | undefined; reused: boolean }> {
  let session: Buffer | undefined;
  const c = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts }, () => resolve(s));
    // TLS 1.2's session comes with the handshake, before the connect callback.
    s.on("session", (b: Buffer) => (session = b));
    s.once("error", reject);
    t.after(() => s.destroy());
  });
  const reused = c.isSessionReused();
  await echo(c, "ping");
  await sleep(20);
  c.destroy();
  return { session, reused };
}

void test("session tickets: none on \"mx\" (also after SNI picks another pair); \"submission\" resumes, across managers sharing ticketKeys only", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["a.test"]);
  const b = await writePair(dir, "b", ["b.test"]);
  const keys = Buffer.alloc(48, 7);
  const m1 = await manager(t, [a, b], { ticketKeys: keys });
  const m2 = await manager(t, [a, b], { ticketKeys: Buffer.from(keys) });
  const m3 = await manager(t, [a, b]);
  const mx = await wrapServer(t, m1, "mx");
  const [sub1, sub2, sub3] = [await wrapServer(t, m1), await wrapServer(t, m2), await wrapServer(t, m3)];
  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    for (const servername of ["a.test", "b.test"]) {
      const first = await ticketRound(t, mx.port, { maxVersion, servername });
      if (first.session !== undefined) {
        const again = await ticketRound(t, mx.port, { maxVersion, servername, session: first.session });
        assert.equal(again.reused, false, `mx ${maxVersion} ${servername} resumed`);
      }
      if (maxVersion === "TLSv1.3") assert.equal(first.session, undefined, `mx ${servername}: a TLS 1.3 ticket was sent`);

      const got = await ticketRound(t, sub1.port, { maxVersion, servername });
      assert.ok(got.session, `submission ${maxVersion} ${servername}: no ticket`);
      const session = got.session;
      assert.equal((await ticketRound(t, sub1.port, { maxVersion, servername, session })).reused, true);
      assert.equal((await ticketRound(t, sub2.port, { maxVersion, servername, session })).reused, true, "same ticketKeys, other manager");
      assert.equal((await ticketRound(t, sub3.port, { maxVersion, servername, session })).reused, false, "other ticketKeys");
      assert.equal((await ticketRound(t, mx.port, { maxVersion, servername, session })).reused, false, "a submission ticket offered to the mx");
    }
  }
  await assert.rejects(manager(t, [a], { ticketKeys: Buffer.alloc(47) }), /ticketKeys must be 48 bytes/);
});

void test("mxSessionTickets: the MX issues tickets and resumes like submission", async (t) => {
  const dir = await tempDir(t);
  const a = await writePair(dir, "a", ["a.test"]);
  const m = await manager(t, [a], { mxSessionTickets: true });
  const mx = await wrapServer(t, m, "mx");
  const got = await ticketRound(t, mx.port, { servername: "a.test" });
  assert.ok(got.session);
  assert.equal((await ticketRound(t, mx.port, { servername: "a.test", session: got.session })).reused, true);
});
