// The clamd client against a real clamd (clamav-daemon) started here on a
// loopback port and a unix socket, with a one-line EICAR signature.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { peerSkip } from "../../test/helpers/peers.ts";
import { clamdMissing, eicar, startClamd, type Clamd } from "../../test/peers/clamd.ts";
import { freePort } from "../../test/peers/ports.ts";
import { pino } from "pino";
import { parseConfig } from "../config/index.ts";
import { AntivirusCheck, antivirusFromConfig } from "./check.ts";
import { ClamdError, cleanSignature, parseScanReply, ping, scan } from "./clamd.ts";
import { TransactionState } from "../policy/index.ts";

void test("clamd replies are parsed; signature names are made safe", () => {
  assert.deepEqual(parseScanReply("stream: OK"), { kind: "clean" });
  assert.deepEqual(parseScanReply("stream: Win.Test.EICAR_HDB-1 FOUND\0"), { kind: "infected", signature: "Win.Test.EICAR_HDB-1" });
  assert.deepEqual(parseScanReply("INSTREAM size limit exceeded. ERROR"), { kind: "too_large" });
  assert.throws(() => parseScanReply("stream: lstat() failed. ERROR"), ClamdError);
  assert.throws(() => parseScanReply(""), ClamdError);
  assert.equal(cleanSignature("Bad\r\nName é"), "Bad??Name??");
  assert.equal(cleanSignature("x".repeat(500)).length, 203);
});

void test("a peer that never answers, or answers too much, is an error within the timeout", async () => {
  const port = await freePort();
  const silent = net.createServer((s) => s.on("data", () => undefined));
  const chatty = net.createServer((s) => s.on("data", () => s.write(Buffer.alloc(8192, 65))));
  await new Promise<void>((r) => silent.listen(port, "127.0.0.1", r));
  const port2 = await freePort();
  await new Promise<void>((r) => chatty.listen(port2, "127.0.0.1", r));
  try {
    const t0 = Date.now();
    await assert.rejects(scan(Buffer.from("hello"), { target: { host: "127.0.0.1", port }, timeoutMs: 300 }), /did not answer within 300 ms/);
    assert.ok(Date.now() - t0 < 2000);
    await assert.rejects(scan(Buffer.from("hello"), { target: { host: "127.0.0.1", port: port2 }, timeoutMs: 2000 }), /longer than 4096/);
    const ac = new AbortController();
    const p = scan(Buffer.from("hello"), { target: { host: "127.0.0.1", port }, timeoutMs: 5000, signal: ac.signal });
    ac.abort();
    await assert.rejects(p, /aborted/);
  } finally {
    silent.close();
    chatty.close();
  }
});

void describe("against a real clamd", { skip: peerSkip(clamdMissing()) }, () => {
  let clamd: Clamd;
  before(async () => {
    clamd = await startClamd({ streamMaxLength: "20M" });
  });
  after(async () => {
    await clamd.stop();
  });

  void test("INSTREAM over TCP and over the unix socket: EICAR found, clean text OK, PING", async () => {
    const tcp = { host: "127.0.0.1", port: clamd.port };
    const unix = { path: clamd.socket };
    const infected = Buffer.concat([Buffer.from("From: a@example.org\r\n\r\n"), eicar(), Buffer.from("\r\n")]);
    for (const target of [tcp, unix]) {
      assert.equal(await ping({ target, timeoutMs: 2000 }), true);
      const r = await scan(infected, { target, timeoutMs: 10_000 });
      assert.equal(r.kind, "infected");
      assert.match(r.kind === "infected" ? r.signature : "", /^Local\.EICAR\.Ndb/);
      assert.deepEqual(await scan(Buffer.from("From: a@example.org\r\n\r\nhello\r\n"), { target, timeoutMs: 10_000 }), { kind: "clean" });
    }
    // Many chunks (backpressure path): 900 KB with the string at the end.
    const big = Buffer.concat([Buffer.alloc(900_000, 0x41), eicar()]);
    assert.equal((await scan(big, { target: tcp, timeoutMs: 10_000 })).kind, "infected");
  });

  void test("a stream over clamd's StreamMaxLength is too_large, or (answer lost) a connection error: never a clean result", async () => {
    // clamd answers "INSTREAM size limit exceeded" and closes while we still write:
    // when our write fails first, Node closes the socket before the answer is
    // read, and the scan is an error (virus.error: 451, fail closed).
    try {
      assert.deepEqual(await scan(Buffer.alloc(21 * 1024 * 1024, 0x41), { target: { path: clamd.socket }, timeoutMs: 20_000 }), { kind: "too_large" });
    } catch (e) {
      assert.match((e as Error).message, /EPIPE|ECONNRESET|closed the connection/);
    }
  });

  void test("a 19 MiB scan does not block the event loop (chunks written as the socket drains)", async () => {
    const big = Buffer.concat([Buffer.alloc(19 * 1024 * 1024, 0x41), eicar()]);
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    try {
      const r = await scan(big, { target: { host: "127.0.0.1", port: clamd.port }, timeoutMs: 30_000 });
      assert.equal(r.kind, "infected");
    } finally {
      clearInterval(timer);
    }
    assert.ok(maxGap < 250, `event loop paused ${maxGap.toFixed(0)} ms during the scan`);
  });

  void test("the check: virus.found with a 554 naming the signature; too large; scanner down is virus.error with 451", async () => {
    const input = (content: Buffer) => ({ clientIp: "127.0.0.1", helo: "h", mailFrom: "", recipients: ["u@example.org"], content, state: new TransactionState(), signal: new AbortController().signal });
    const check = new AntivirusCheck({ target: { host: "127.0.0.1", port: clamd.port }, timeoutMs: 20_000, maxSize: 30 * 1024 * 1024 });
    const found = await check.data(input(eicar()));
    assert.deepEqual(found.verdicts, ["virus.found"]);
    assert.equal(found.replies?.["virus.found"]?.code, 554);
    assert.equal(found.replies?.["virus.found"]?.status, "5.7.1");
    assert.match(found.replies?.["virus.found"]?.lines.join(" ") ?? "", /Local\.EICAR\.Ndb/);
    assert.deepEqual((await check.data(input(Buffer.from("clean")))).verdicts, []);
    assert.deepEqual((await check.data(input(Buffer.alloc(21 * 1024 * 1024, 0x41)))).verdicts, ["virus.too_large"]);
    const small = new AntivirusCheck({ target: { host: "127.0.0.1", port: clamd.port }, timeoutMs: 5000, maxSize: 1024 });
    assert.deepEqual((await small.data(input(Buffer.alloc(2048, 0x41)))).verdicts, ["virus.too_large"]);
    const down = new AntivirusCheck({ target: { host: "127.0.0.1", port: await freePort() }, timeoutMs: 2000, maxSize: 2_000_000 });
    const err = await down.data(input(Buffer.from("x")));
    assert.deepEqual(err.verdicts, ["virus.error"]);
    assert.equal(err.replies?.["virus.error"]?.code, 451);
    assert.equal(err.replies?.["virus.error"]?.status, "4.7.1");
  });

  void test("startup: the log says whether antivirus is on and where, or off and why", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const config = (toml: string) => parseConfig(toml, { file: "/etc/wardmail/w.toml", env: {}, cwd: "/" });
    // No clamd configured: Debian's socket (here: the test clamd's) is used when it is there.
    const found = await antivirusFromConfig(config(""), logger, clamd.socket);
    assert.ok(found);
    assert.equal(lines.at(-1)?.msg, `antivirus on: clamd at ${clamd.socket}`);
    assert.equal(lines.at(-1)?.transport, "unix");
    assert.equal(await antivirusFromConfig(config(""), logger, "/nonexistent/clamd.ctl"), undefined);
    assert.match(String(lines.at(-1)?.msg), /^antivirus off: no antivirus\.clamd configured and no clamd socket at \/nonexistent\/clamd\.ctl$/);
    assert.equal(await antivirusFromConfig(config("[antivirus]\nenabled = false\n"), logger, clamd.socket), undefined);
    assert.equal(lines.at(-1)?.msg, "antivirus off: antivirus.enabled is false");
    assert.ok(await antivirusFromConfig(config(`[antivirus]\nclamd = "127.0.0.1:${clamd.port}"\n`), logger));
    assert.equal(lines.at(-1)?.msg, `antivirus on: clamd at 127.0.0.1:${clamd.port}`);
    // Configured but not answering: on (fail closed), with a warning.
    const port = await freePort();
    assert.ok(await antivirusFromConfig(config(`[antivirus]\nclamd = "127.0.0.1:${port}"\n`), logger));
    assert.equal(lines.at(-1)?.level, 40);
    assert.match(String(lines.at(-1)?.msg), /does not answer PING yet; messages get 451 until it does/);
  });
});
