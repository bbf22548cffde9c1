/**
 * Denial of service from clients, over real sockets against one Wardmail
 * with two workers: per-client limits shared by the workers (a one-address
 * flood is capped while swaks from another address delivers and a swaks
 * AUTH over implicit TLS logs in), the connection and message rates, the
 * pregreet test (an early talker gets 554 5.5.1 and is remembered, a client
 * that waited is remembered too and greeted at once; swaks is not affected), a command trickled byte by byte, content below the minimum
 * rate, the tarpit, and a slowloris from many addresses (127.0.0.N sources)
 * that leaves MX and submission usable.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { openFrom, SmtpWire } from "./peers/smtp-client.ts";
import { logLines, requireBinary, swaks, waitForLog } from "./peers/submission.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const LIMITS = {
  max_connections_per_client: 10,
  connections_per_client_per_minute: 30,
  messages_per_client_per_minute: 5,
  recipients_per_client_per_minute: 1000,
  max_mx_connections: 40,
  max_submission_connections: 40,
  pregreet_delay: 300,
  command_timeout: 3,
  data_timeout: 3,
  min_data_rate: 1000,
  stress_timeout: 3,
  error_delay: 300,
  max_errors: 5,
  session_timeout: 10,
};
const PASSWORD = "erin-password-9";

let w: Wardmail | undefined;
/** A client that is never idle (NOOP every second), started in before(): what ends its session, and when. */
let keeper: Promise<{ last: string; ms: number }> | undefined;
const server = (): Wardmail => {
  assert.ok(w, "server not started");
  return w;
};

before(async () => {
  requireBinary("swaks", ["--version"]);
  const extra = ["[limits]", ...Object.entries(LIMITS).map(([k, v]) => `${k} = ${v}`)].join("\n");
  w = await startWardmail({ workers: 2, extra });
  const add = await w.cli(["user", "add", "erin@example.test", "--password-stdin", "--config", w.configPath], `${PASSWORD}\n`);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  keeper = (async () => {
    const c = await firstReply(w.smtpPort, "127.0.0.13");
    const t0 = Date.now();
    let last = "";
    try {
      for (;;) {
        last = (await c.wire.command("NOOP", 5000)).raw;
        if (!last.startsWith("250 ")) break;
        await sleep(1000);
      }
    } catch {
      /* closed */
    }
    c.wire.close();
    return { last, ms: Date.now() - t0 };
  })();
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});


/** The greeting or the refusal a connection from localAddress gets. */
async function firstReply(port: number, localAddress: string): Promise<{ wire: SmtpWire; code: number; raw: string }> {
  const wire = await openFrom(port, localAddress);
  const r = await wire.reply(5000);
  return { wire, code: r.code, raw: r.raw };
}

async function deliverWithSwaks(from: string, subject: string): Promise<void> {
  const s = server();
  const before = (await s.maildir("user@example.test")).length;
  const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--local-interface", from, "--from", "x@sender.test", "--to", "user@example.test", "--header", `Subject: ${subject}`]);
  assert.equal(r.code, 0, r.out);
  const files = await s.waitForMail("user@example.test", before + 1);
  assert.equal(files.length, before + 1);
}

async function loginWithSwaks(): Promise<void> {
  const s = server();
  const r = await swaks([
    "--server", `127.0.0.1:${s.submissionsPort}`, "--tlsc", "--auth", "PLAIN", "--auth-user", "erin@example.test", "--auth-password", PASSWORD,
    "--from", "erin@example.test", "--to", "user@example.test", "--header", "Subject: login",
  ]);
  assert.equal(r.code, 0, `${r.out}\n${s.output().split("\n").filter((l) => /client limit|listener full/.test(l) && !l.includes("pregreet")).slice(-8).join("\n")}`);
  assert.match(r.out, /<~\s+235 /);
}

describe("per-client limits", () => {
  test("a flood from one address is capped across both workers; another address delivers and a submission login works", async () => {
    const s = server();
    const results = await Promise.all(Array.from({ length: 40 }, () => firstReply(s.smtpPort, "127.0.0.2")));
    const greeted = results.filter((r) => r.code === 220);
    const refused = results.filter((r) => r.code === 421);
    assert.equal(greeted.length, LIMITS.max_connections_per_client, results.map((r) => r.raw).join(""));
    assert.equal(refused.length, 40 - LIMITS.max_connections_per_client);
    for (const r of refused) assert.match(r.raw, /^421 4\.7\.0 Too many connections from your address/);
    // While the flood holds its connections, others are served.
    await deliverWithSwaks("127.0.0.3", "during flood");
    await loginWithSwaks();
    // Logged for fail2ban, once per client and limit every 10 s (a flood must not flood the log).
    const logged = logLines(s.output(), "client limit").filter((l) => l.ip === "127.0.0.2" && l.limit === "max_connections_per_client");
    assert.ok(logged.length >= 1 && logged.length <= 2, `${logged.length} log lines`);
    for (const r of results) r.wire.close();
  });

  test("on the implicit-TLS port a refused connection is closed without a plaintext 421; the TLS clients within the cap are greeted inside TLS", async () => {
    const s = server();
    const n = LIMITS.max_connections_per_client + 4;
    // Real TLS clients from one address, all at once: the ones within the cap complete the handshake.
    const held = await Promise.all(Array.from({ length: n }, () => new Promise<{ tls: boolean; sock: tls.TLSSocket }>((resolve) => {
      const plain = net.connect({ host: "127.0.0.1", port: s.submissionsPort, localAddress: "127.0.0.14" });
      plain.on("error", () => undefined);
      const sock = tls.connect({ socket: plain, rejectUnauthorized: false });
      sock.once("secureConnect", () => resolve({ tls: true, sock }));
      sock.once("error", () => resolve({ tls: false, sock }));
      sock.once("close", () => resolve({ tls: false, sock }));
      setTimeout(() => resolve({ tls: false, sock }), 5000).unref();
    })));
    assert.equal(held.filter((h) => h.tls).length, LIMITS.max_connections_per_client);
    // One more, raw: it receives nothing at all (no plaintext refusal into a TLS client), then the close.
    const raw = net.connect({ host: "127.0.0.1", port: s.submissionsPort, localAddress: "127.0.0.14" });
    const got: Buffer[] = [];
    raw.on("data", (b: Buffer) => got.push(b));
    raw.on("error", () => undefined);
    const closed = await new Promise<boolean>((resolve) => {
      raw.once("close", () => resolve(true));
      setTimeout(() => resolve(false), 5000).unref();
    });
    assert.equal(closed, true, "the refused connection was not closed");
    assert.equal(Buffer.concat(got).length, 0, Buffer.concat(got).toString("latin1"));
    for (const h of held) h.sock.destroy();
  });

  test("new connections per minute from one address are capped", async () => {
    const s = server();
    const firsts: string[] = [];
    for (let i = 0; i < LIMITS.connections_per_client_per_minute + 3; i++) {
      // Only the first line (220- at once, or the refusal): the test must not straddle a minute.
      const c = await openFrom(s.smtpPort, "127.0.0.4");
      const deadline = Date.now() + 5000;
      while (!c.pending.includes("\r\n") && Date.now() < deadline) await sleep(5);
      firsts.push(c.pending.slice(0, 4));
      c.close();
    }
    const n = LIMITS.connections_per_client_per_minute;
    assert.deepEqual(firsts.slice(0, n), new Array<string>(n).fill("220-"));
    // The sliding window may let one more through when a minute ends during the loop.
    assert.deepEqual(firsts.slice(n + 1), ["421 ", "421 "]);
    assert.ok(await waitForLog(() => s.output(), "client limit", (l) => l.ip === "127.0.0.4" && l.limit === "connections_per_client_per_minute"));
  });

  test("messages per minute on the MX: past the limit 421 4.7.0 and close", async () => {
    const s = server();
    const c = await firstReply(s.smtpPort, "127.0.0.5");
    assert.equal(c.code, 220);
    assert.equal((await c.wire.command("EHLO client.test")).code, 250);
    for (let i = 0; i < LIMITS.messages_per_client_per_minute; i++) {
      assert.equal((await c.wire.command("MAIL FROM:<a@sender.test>")).code, 250);
      assert.equal((await c.wire.command("RSET")).code, 250);
    }
    const over = await c.wire.command("MAIL FROM:<a@sender.test>");
    assert.match(over.raw, /^421 4\.7\.0 Too many messages/);
    await c.wire.closedByServer();
  });
});

describe("pregreet", () => {
  test("an early talker gets 554 5.5.1, is closed and is remembered; swaks from another address is not affected", async () => {
    const s = server();
    const c = await openFrom(s.smtpPort, "127.0.0.6");
    c.send("EHLO bot.test\r\n"); // at once, before the greeting can have ended
    const r = await c.reply();
    assert.equal(r.code, 554, r.raw);
    assert.match(r.raw, /^220-mx\.example\.test ESMTP\r\n554 5\.5\.1 /);
    await c.closedByServer();
    // Remembered: the next connection is refused at once.
    const again = await firstReply(s.smtpPort, "127.0.0.6");
    assert.match(again.raw, /^554 5\.5\.1 /);
    again.wire.close();
    assert.ok(await waitForLog(() => s.output(), "pregreet", (l) => l.ip === "127.0.0.6"));
    // A client that waits for the greeting gets it whole, after the pause.
    const t0 = Date.now();
    const ok = await firstReply(s.smtpPort, "127.0.0.7");
    assert.equal(ok.code, 220);
    assert.match(ok.raw, /^220-mx\.example\.test ESMTP\r\n220 mx\.example\.test ESMTP\r\n$/);
    assert.ok(Date.now() - t0 >= LIMITS.pregreet_delay - 20);
    ok.wire.close();
    // It passed: for pregreet_pass_time it is greeted at once, in one line.
    const t1 = Date.now();
    const passed = await firstReply(s.smtpPort, "127.0.0.7");
    assert.match(passed.raw, /^220 mx\.example\.test ESMTP\r\n$/);
    assert.ok(Date.now() - t1 < LIMITS.pregreet_delay, "a passed client waited for the greeting");
    passed.wire.close();
    await deliverWithSwaks("127.0.0.7", "after pregreet");
    await deliverWithSwaks("127.0.0.12", "pregreet on swaks' first connection");
  });
});

describe("slow clients", () => {
  test("a command trickled a byte a second times out after command_timeout", async () => {
    const s = server();
    const c = await firstReply(s.smtpPort, "127.0.0.8");
    assert.equal(c.code, 220);
    const t0 = Date.now();
    const line = "EHLO slowloris.example.test";
    let i = 0;
    const trickle = setInterval(() => {
      if (!c.wire.socket.destroyed) c.wire.send(line[i++ % line.length] ?? "x");
    }, 1000);
    try {
      const r = await c.wire.reply(LIMITS.command_timeout * 1000 + 3000);
      assert.match(r.raw, /^421 4\.4\.2 /);
      const took = Date.now() - t0;
      assert.ok(took >= LIMITS.command_timeout * 1000 - 100 && took < LIMITS.command_timeout * 1000 + 2500, `closed after ${took} ms`);
    } finally {
      clearInterval(trickle);
      c.wire.close();
    }
  });

  test("DATA below min_data_rate is closed, although bytes keep coming", async () => {
    const s = server();
    const c = await firstReply(s.smtpPort, "127.0.0.9");
    for (const cmd of ["EHLO client.test", "MAIL FROM:<a@sender.test>", "RCPT TO:<user@example.test>"]) assert.equal((await c.wire.command(cmd)).code, 250);
    assert.equal((await c.wire.command("DATA")).code, 354);
    const t0 = Date.now();
    // 50 bytes every 500 ms: 100 bytes/s, a tenth of min_data_rate; each read is well within data_timeout.
    const trickle = setInterval(() => {
      if (!c.wire.socket.destroyed) c.wire.send("X".repeat(48) + "\r\n");
    }, 500);
    try {
      const r = await c.wire.reply(15_000);
      assert.match(r.raw, /^421 4\.4\.2 /);
      const took = Date.now() - t0;
      // The budget: 3 s, plus 0.1 s per second of trickle: about 3.3 s.
      assert.ok(took >= 3000 && took < 6000, `closed after ${took} ms`);
    } finally {
      clearInterval(trickle);
      c.wire.close();
    }
  });

  test("BDAT in tiny chunks below min_data_rate is closed: the rate runs across the chunks of a transaction", async () => {
    const s = server();
    const c = await firstReply(s.smtpPort, "127.0.0.15");
    for (const cmd of ["EHLO client.test", "MAIL FROM:<a@sender.test>", "RCPT TO:<user@example.test>"]) assert.equal((await c.wire.command(cmd)).code, 250);
    const t0 = Date.now();
    let last = "";
    try {
      // One byte per chunk, a chunk every 700 ms: each chunk and each command line is quick, the transaction is not.
      for (let i = 0; i < 20 && Date.now() - t0 < 12_000; i++) {
        c.wire.send("BDAT 1\r\nx");
        const r = await c.wire.reply(5000).catch(() => undefined);
        last = r?.raw ?? last;
        if (r === undefined || !r.raw.startsWith("250 ")) break;
        await sleep(700);
      }
      const took = Date.now() - t0;
      assert.match(last, /^421 4\.4\.2 /, last);
      // The budget: data_timeout (3 s) plus 1 ms per byte: closed at the first chunk after about 3 s.
      assert.ok(took >= 2500 && took < 6000, `closed after ${took} ms`);
    } finally {
      c.wire.close();
    }
  });

  test("tarpit: each error reply comes later than the one before, then 421", async () => {
    const s = server();
    const c = await firstReply(s.smtpPort, "127.0.0.10");
    assert.equal((await c.wire.command("EHLO client.test")).code, 250);
    assert.equal((await c.wire.command("MAIL FROM:<a@sender.test>")).code, 250);
    const waits: number[] = [];
    let last = "";
    for (let i = 0; i < LIMITS.max_errors; i++) {
      const t0 = Date.now();
      const r = await c.wire.command(`RCPT TO:<nobody${i}@example.test>`, 10_000);
      waits.push(Date.now() - t0);
      last = r.raw;
      if (i < LIMITS.max_errors - 1) assert.match(r.raw, /^550 5\.1\.1 /);
    }
    // The fifth error reply and the 421 come together.
    assert.match(last, /^550 5\.1\.1 .*\r\n$/);
    const bye = await c.wire.reply(1000);
    assert.match(bye.raw, /^421 4\.7\.0 Too many errors/);
    for (let n = 1; n <= LIMITS.max_errors; n++) {
      const w = waits[n - 1] ?? 0;
      assert.ok(w >= n * LIMITS.error_delay - 30 && w < n * LIMITS.error_delay + 700, `error ${n} waited ${w} ms: ${waits.join(", ")}`);
    }
    await c.wire.closedByServer();
  });
});

describe("session_timeout", () => {
  test("a client that is never idle is closed at session_timeout with 421 4.4.2", { timeout: 30_000 }, async () => {
    assert.ok(keeper);
    const { last, ms } = await keeper;
    assert.match(last, /^421 4\.4\.2 Session time limit/);
    assert.ok(ms >= LIMITS.session_timeout * 1000 - 1500 && ms < LIMITS.session_timeout * 1000 + 3000, `closed after ${ms} ms`);
  });
});

describe("slowloris from many addresses", () => {
  test("hundreds of trickling connections leave MX delivery and submission login usable", { timeout: 60_000 }, async () => {
    const s = server();
    const clients: SmtpWire[] = [];
    let stop = false;
    // 40 addresses × 8 connections to the MX and × 4 to submission: 480 connections,
    // each sending a byte of one command line every second; a closed one comes back.
    const hold = async (port: number, from: string): Promise<void> => {
      while (!stop) {
        let c: SmtpWire;
        try {
          c = await openFrom(port, from);
        } catch {
          await sleep(200);
          continue;
        }
        clients.push(c);
        // A careful slowloris: it waits for the greeting (an early talker would be banned by the pregreet test).
        try {
          await c.reply(3000);
        } catch {
          c.close();
          continue;
        }
        while (!stop && !c.socket.destroyed && c.socket.readyState === "open") {
          c.send("X");
          await sleep(1000);
        }
        c.close();
        await sleep(100);
      }
    };
    const holders: Promise<void>[] = [];
    for (let a = 0; a < 40; a++) {
      const from = `127.0.1.${a + 1}`;
      for (let k = 0; k < 8; k++) holders.push(hold(s.smtpPort, from));
      for (let k = 0; k < 4; k++) holders.push(hold(s.submissionPort, from));
    }
    try {
      await sleep(4000); // the listeners are full by now
      const open = clients.filter((c) => !c.socket.destroyed).length;
      assert.ok(open >= 2 * (LIMITS.max_mx_connections + LIMITS.max_submission_connections) * 0.5, `only ${open} slowloris connections open`);
      await deliverWithSwaks("127.0.0.11", "during slowloris");
      await loginWithSwaks();
      // The listeners were full: room was made for these two, or a newcomer was refused.
      const full = logLines(s.output(), "listener full");
      assert.ok(full.some((l) => l.listener === "smtp") && full.some((l) => l.listener === "submission"), "the listeners were never full");
    } finally {
      stop = true;
      for (const c of clients) c.close();
      await Promise.all(holders);
    }
  });
});

describe("a full MX listener makes room fairly", () => {
  let w: Wardmail | undefined;
  before(async () => {
    w = await startWardmail({ workers: 1, extra: "[limits]\nmax_mx_connections = 6\nmax_connections_per_client = 10\npregreet_delay = 0\nidle_timeout = 60" });
  });
  after(async () => {
    if (w) {
      await w.stop();
      await w.cleanup();
    }
  });

  test("while every session is busy a newcomer is refused; once they are idle it takes a session of the client holding the most connections, not the single client's", async () => {
    assert.ok(w);
    const port = w.smtpPort;
    const hog: SmtpWire[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await firstReply(port, "127.0.9.1");
      assert.equal(r.code, 220, r.raw);
      hog.push(r.wire);
    }
    const one = await firstReply(port, "127.0.9.2");
    assert.equal(one.code, 220, one.raw);
    // Full (6). The sessions are busy for a moment (just greeted): a newcomer is refused.
    const early = await firstReply(port, "127.0.9.3");
    assert.equal(early.code, 421, early.raw);
    early.wire.close();
    await sleep(400);
    // Now idle past 0.25 s: the newcomer gets a hog's slot, not the single client's.
    const fair = await firstReply(port, "127.0.9.3");
    assert.equal(fair.code, 220, fair.raw);
    const closed = await Promise.all(hog.map((h) => h.reply(2000).then((r) => r.raw, () => "")));
    assert.equal(closed.filter((r) => r.startsWith("421")).length, 1, closed.join(" | "));
    assert.equal((await one.wire.reply(300).then((r) => r.raw, () => "")).startsWith("421"), false);
    for (const h of hog) h.close();
    one.wire.close();
    fair.wire.close();
  });
});
