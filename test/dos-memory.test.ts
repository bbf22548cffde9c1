/**
 * Memory and CPU attacks against one running Wardmail (one worker, a
 * memory budget of MEMORY_BUDGET): messages made of dot-led lines, of
 * 1-byte lines and of one huge line; header sections far over the limit
 * (1 MiB folded over 256 Ki lines, 1 Mi header fields) and one just under
 * it; pipelined commands (HELP, after a proper EHLO) whose replies are never read, from raw sockets with a
 * 4 KB receive buffer. For each: the server's peak RSS (VmRSS of the
 * started process, sampled every 20 ms) stays under the budget and within a
 * bound of its own, and a well-behaved client keeps getting its mail
 * through, quickly, throughout. Then the memory budget (a server below it
 * greets with 421 4.3.2), and, with sender authentication on, a folded
 * header, deep MIME and a message that costs mailauth seconds of CPU.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { SmtpWire, sendOneMessage, type SmtpReply } from "./peers/smtp-client.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const MiB = 1024 * 1024;
const MEMORY_BUDGET = 768 * MiB;

let w: Wardmail | undefined;

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

before(async () => {
  // The attacks come from one address: the per-client connection cap (tested in dos.test.ts) is raised so that they test memory, not that cap.
  w = await startWardmail({ workers: 1, extra: `[limits]\nmemory_budget = ${MEMORY_BUDGET}\nmax_connections_per_client = 1000` });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});

// ---------------------------------------------------------------- measuring

/** The resident set of the server process (all its threads), in bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, "no VmRSS");
  return Number(m[1]) * 1024;
}

/** Samples the server's RSS every 20 ms until stop(); returns the peak. */
function watchRss(pid: number): { stop(): number } {
  let peak = rss(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rss(pid));
    } catch {
      /* the process is gone: the test fails elsewhere */
    }
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rss(pid));
    },
  };
}

/**
 * A well-behaved client sending one small message every 200 ms while
 * `attack` runs: every one must get 250; returns the slowest transaction.
 */
async function whileServing(port: number, attack: () => Promise<void>): Promise<number> {
  return whileServingOn(port, attack);
}

async function whileServingOn(port: number, attack: () => Promise<void>): Promise<number> {
  let done = false;
  let slowest = 0;
  let sent = 0;
  const loop = (async () => {
    while (!done) {
      const t0 = performance.now();
      await sendOneMessage({ port, from: "good@client.example", to: ["user@example.test"], body: "From: good@client.example\r\nSubject: still here\r\n\r\nhello\r\n" });
      slowest = Math.max(slowest, performance.now() - t0);
      sent++;
      await sleep(200);
    }
  })();
  try {
    await attack();
  } finally {
    done = true;
    await loop;
  }
  assert.ok(sent >= 1, "the well-behaved client sent nothing");
  return slowest;
}

/** Runs `attack` with RSS sampling and the well-behaved client; checks the bounds; returns what was measured. */
async function measured(name: string, maxGrowth: number, attack: () => Promise<void>): Promise<void> {
  const pid = server().process.pid as number;
  const before = rss(pid);
  const watch = watchRss(pid);
  const started = performance.now();
  let slowest: number;
  try {
    slowest = await whileServing(server().smtpPort, attack);
  } finally {
    // Also on failure: a sampling timer left running would keep the test process alive.
    watch.stop();
  }
  const peak = watch.stop();
  const growth = peak - before;
  console.log(`${name}: RSS ${(before / MiB).toFixed(0)} MiB -> peak ${(peak / MiB).toFixed(0)} MiB (+${(growth / MiB).toFixed(0)}), ${((performance.now() - started) / 1000).toFixed(1)} s, slowest good transaction ${slowest.toFixed(0)} ms`);
  assert.ok(peak < MEMORY_BUDGET, `${name}: peak RSS ${peak} over the budget ${MEMORY_BUDGET}`);
  assert.ok(growth < maxGrowth, `${name}: RSS grew by ${(growth / MiB).toFixed(0)} MiB (bound ${(maxGrowth / MiB).toFixed(0)} MiB)`);
  assert.ok(slowest < 3000, `${name}: a well-behaved transaction took ${slowest} ms`);
}

// ---------------------------------------------------------------- a raw transaction

/** Writes all of `data` to the socket, waiting for 'drain' (the client's own backpressure). */
async function writeAll(s: SmtpWire, data: Buffer): Promise<void> {
  for (let i = 0; i < data.length; i += MiB) {
    if (!s.socket.write(data.subarray(i, i + MiB))) await new Promise((r) => s.socket.once("drain", r));
  }
}

/** One transaction whose content is `content` (ending in CRLF); resolves with the reply to the end of DATA and how long it took after the last byte. */
async function sendContent(content: Buffer, port = server().smtpPort): Promise<{ reply: SmtpReply; ms: number }> {
  const s = await SmtpWire.open(port);
  try {
    assert.equal((await s.reply()).code, 220);
    assert.equal((await s.command("EHLO attacker.example")).code, 250);
    assert.equal((await s.command("MAIL FROM:<a@attacker.example>")).code, 250);
    assert.equal((await s.command("RCPT TO:<user@example.test>")).code, 250);
    assert.equal((await s.command("DATA")).code, 354);
    await writeAll(s, content);
    const t0 = performance.now();
    s.send(".\r\n");
    const reply = await s.reply(60_000);
    return { reply, ms: performance.now() - t0 };
  } finally {
    s.close();
  }
}

const HEAD = Buffer.from("From: <a@attacker.example>\r\nSubject: content\r\n\r\n", "latin1");

/** A message of about `size` bytes of body made of whole `line`s, after a small header. */
function body(line: string, size: number): Buffer {
  return Buffer.concat([HEAD, Buffer.alloc(size - (size % line.length), line, "latin1")]);
}

// ---------------------------------------------------------------- the attacks

void test("three 20 MiB messages of dot-led lines at once: accepted, RSS bounded", async () => {
  await measured("dot-led lines (3 x 20 MiB)", 300 * MiB, async () => {
    const results = await Promise.all([1, 2, 3].map(() => sendContent(body("..\r\n", 20 * MiB))));
    for (const r of results) assert.equal(r.reply.code, 250, r.reply.raw);
  });
});

void test("1-byte lines and one 20 MiB line: accepted, RSS bounded", async () => {
  await measured("1-byte lines and one huge line (2 x 20 MiB)", 250 * MiB, async () => {
    const huge = Buffer.concat([HEAD, Buffer.alloc(20 * MiB, "y"), Buffer.from("\r\n")]);
    const results = await Promise.all([sendContent(body("a\r\n", 20 * MiB)), sendContent(huge)]);
    for (const r of results) assert.equal(r.reply.code, 250, r.reply.raw);
  });
});

void test("header sections over the limit are refused at once after their end: 1 MiB folded, 1 Mi fields", async () => {
  await measured("huge header sections", 100 * MiB, async () => {
    const folded = Buffer.from("Subject: x\r\n" + " a\r\n".repeat(256 * 1024) + "\r\nbody\r\n", "latin1");
    const fields = Buffer.from("a:\r\n".repeat(1024 * 1024) + "\r\nbody\r\n", "latin1");
    for (const content of [folded, fields]) {
      const r = await sendContent(content);
      assert.equal(r.reply.code, 552, r.reply.raw);
      assert.match(r.reply.raw, /5\.3\.4 Message header too large/);
      assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
    }
  });
});

void test("a header section just under the limit, folded over 25,000 lines, is answered in well under a second", async () => {
  const content = Buffer.from("Subject: x\r\n" + " a\r\n".repeat(25_000) + "\r\nbody\r\n", "latin1");
  assert.ok(content.length - 8 < 100 * 1024);
  const r = await sendContent(content);
  assert.equal(r.reply.code, 250, r.reply.raw);
  assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
});

/**
 * Raw sockets (Python, for SO_RCVBUF before connect) that send EHLO, then
 * write `count` pipelined HELPs (6 bytes in, about 100 bytes of reply out)
 * and never read; after
 * `seconds` of writing they hold the connections for `hold` more seconds,
 * then close. Prints the bytes each managed to send.
 */
const FLOOD = `
import socket, sys, time
port, conns, count, seconds, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
payload = b"HELP\\r\\n" * count
socks = []
for _ in range(conns):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    socks.append([s, 0])
# EHLO first, on its own (RFC 2920: a client waits for its reply; one that does not
# is refused at once, protocol.strict_pipelining): the greeting and the EHLO reply
# are in the receive buffer, never read. Then the flood.
for entry in socks:
    entry[0].send(b"EHLO " + b"a" * 250 + b"\\r\\n")
time.sleep(1)
for entry in socks:
    entry[0].setblocking(False)
end = time.time() + seconds
while time.time() < end and any(sent < len(payload) for _, sent in socks):
    for entry in socks:
        s, sent = entry
        if sent >= len(payload):
            continue
        try:
            entry[1] += s.send(payload[sent:sent + 65536])
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            entry[1] = len(payload)
    time.sleep(0.005)
time.sleep(hold)
print(sum(sent for _, sent in socks), len(payload) * conns)
for s, _ in socks:
    s.close()
`;

void test("pipelined commands whose replies are never read: the server stops reading, RSS bounded", async () => {
  await measured("unread pipelined replies (50 connections x 9,000 HELPs)", 100 * MiB, async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn("python3", ["-c", FLOOD, String(server().smtpPort), "50", "9000", "3", "6"], { stdio: ["ignore", "pipe", "inherit"] });
      let text = "";
      p.stdout.on("data", (d: Buffer) => (text += d.toString()));
      p.on("error", reject);
      p.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`flood exited with ${code}`))));
    });
    const [sent, total] = out.trim().split(" ").map(Number) as [number, number];
    console.log(`flood: ${(sent / MiB).toFixed(0)} of ${(total / MiB).toFixed(0)} MiB written by the clients`);
  });
});

void test("at or above its memory budget the server greets new connections with 421 4.3.2 and closes them", async () => {
  // 64 MiB, the smallest budget the config allows: below what an idle server uses.
  const small = await startWardmail({ workers: 1, extra: "[limits]\nmemory_budget = 67108864" });
  try {
    assert.ok(rss(small.process.pid as number) >= 64 * MiB);
    const s = await SmtpWire.open(small.smtpPort);
    try {
      const greeting = await s.reply();
      assert.equal(greeting.code, 421);
      assert.match(greeting.raw, /^421 4\.3\.2 /);
      await s.closedByServer();
    } finally {
      s.close();
    }
  } finally {
    await small.stop();
    await small.cleanup();
  }
});

void test("with sender authentication on: a 100 KiB folded header and deep MIME are verified at once; a message that costs mailauth seconds gets 451 at the check deadline while others go through", async () => {
  // DNS at a closed port: every question fails at once (spf.temperror, tagged), so the checks run to the end.
  const checked = await startWardmail({ workers: 1, checks: '[checks]\ntimeout = 2\n[dns]\nservers = ["127.0.0.1:9"]\ntimeout = 200\nattempts = 1' });
  try {
    const port = checked.smtpPort;
    const folded = Buffer.from("From: <a@attacker.example>\r\nSubject: x\r\n" + " a\r\n".repeat(25_000) + "\r\nbody\r\n", "latin1");
    await sendContent(Buffer.from("From: <good@client.example>\r\nSubject: warm up\r\n\r\nhello\r\n"), port);
    const r = await sendContent(folded, port);
    assert.equal(r.reply.code, 250, r.reply.raw);
    assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
    // Deep MIME: 170,000 nested multiparts (10 MiB), which the body hash's MIME structure finder reads.
    const levels: string[] = [];
    for (let i = 0; i < 170_000; i++) levels.push(`--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i + 1}"\r\n\r\n`);
    const deep = Buffer.from('From: <a@attacker.example>\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=attacker.example; s=s; h=from; bh=AAAA; b=AAAA\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n' + levels.join("") + "x\r\n", "latin1");
    const d = await sendContent(deep, port);
    assert.equal(d.reply.code, 250, d.reply.raw);
    assert.ok(d.ms < 3000, `deep MIME answered after ${d.ms} ms`);
    console.log(`deep MIME (${(deep.length / MiB).toFixed(1)} MiB): answered ${d.ms.toFixed(0)} ms after its end`);
    // A blank run inside h=: a regex in mailauth is quadratic on it (seconds of CPU).
    const slow = Buffer.from("DKIM-Signature: v=1; a=rsa-sha256; d=attacker.example; s=s; bh=AAAA; b=AAAA; h=from:a" + " ".repeat(80_000) + "b\r\nFrom: <a@attacker.example>\r\n\r\nbody\r\n", "latin1");
    const slowest = await whileServingOn(port, async () => {
      const s = await sendContent(slow, port);
      assert.equal(s.reply.code, 451, s.reply.raw);
      assert.match(s.reply.raw, /^451 4\.7\.0 /);
      assert.ok(s.ms < 4000, `answered after ${s.ms} ms`);
    });
    console.log(`slow verification: slowest good transaction ${slowest.toFixed(0)} ms`);
    assert.ok(slowest < 2500, `a well-behaved transaction took ${slowest} ms`);
  } finally {
    await checked.stop();
    await checked.cleanup();
  }
});
