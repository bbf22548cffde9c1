// The verifier thread: a message whose verification takes seconds of CPU
// (a regex inside mailauth that is quadratic on a long run of blanks in an
// h= tag) neither blocks the event loop nor outlives the check's deadline;
// the next message is verified by a fresh thread.
import assert from "node:assert/strict";
import { test } from "node:test";
import { VerifierPool, VerifierThread } from "./offload.ts";
import { PoolHost, PoolLink } from "../threads/index.ts";

const resolver = (): Promise<never> => Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
const task = { mailFrom: "a@example.org", clientIp: "192.0.2.1", helo: "client.example", authservId: "mx.example.test", spf: false as const };

/** A 100 KiB header section that costs mailauth seconds: h= holds one name with 100,000 blanks inside. */
function slowMessage(): Buffer {
  const sig = "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; bh=AAAA; b=AAAA; h=from:a" + " ".repeat(100_000) + "b\r\n";
  return Buffer.from(sig + "From: a@example.org\r\n\r\nbody\r\n", "latin1");
}

void test("a verification past its deadline is stopped in its thread; the event loop stays free; the next one works", async () => {
  const v = new VerifierThread(resolver);
  try {
    // Warm up (the thread starts on first use).
    const first = await v.verify(Buffer.from("From: a@example.org\r\n\r\nbody\r\n"), task);
    assert.equal(first.dkim.results?.[0]?.status.result, "none");
    let late = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      late = Math.max(late, now - last - 10);
      last = now;
    }, 10);
    const t0 = performance.now();
    await assert.rejects(v.verify(slowMessage(), task, AbortSignal.timeout(500)), /deadline/);
    const took = performance.now() - t0;
    clearInterval(tick);
    assert.ok(took < 2000, `stopped after ${took} ms`);
    assert.ok(late < 500, `the event loop was ${late} ms late`);
    const next = await v.verify(Buffer.from("From: a@example.org\r\n\r\nbody\r\n"), task);
    assert.equal(next.dkim.results?.[0]?.status.result, "none");
  } finally {
    v.close();
  }
});

void test("the pool: a message slow to verify does not hold up the next one, which gets its own thread", async () => {
  const pool = new VerifierPool(resolver, { idleMs: 200 });
  try {
    const plain = Buffer.from("From: a@example.org\r\n\r\nbody\r\n");
    await pool.verify(plain, task);
    const slow = pool.verify(slowMessage(), task, AbortSignal.timeout(3000));
    slow.catch(() => undefined);
    const t0 = performance.now();
    const quick = await pool.verify(plain, task);
    const took = performance.now() - t0;
    assert.equal(quick.dkim.results?.[0]?.status.result, "none");
    assert.ok(took < 2000, `the plain message waited ${took} ms`);
    // The quick one went to another thread; the slow one may have moved on too (after HOLD_MS a stuck thread is ended and its parse runs again elsewhere).
    assert.ok(pool.size >= 2, `${pool.size} threads`);
    await assert.rejects(slow, /deadline/);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(pool.size, 1, "one idle thread is kept, the other ended once idle for idleMs");
  } finally {
    pool.close();
  }
});

void test("the pool: messages verified at once share one thread while none is stuck (no thread per message)", async () => {
  const pool = new VerifierPool(resolver);
  try {
    const plain = Buffer.from("From: a@example.org\r\n\r\nbody\r\n");
    await pool.verify(plain, task);
    const all = Array.from({ length: 40 }, () => pool.verify(plain, task));
    // With a thread per task in flight, there were MAX_THREADS here, started and ended again and again.
    assert.equal(pool.size, 1);
    for (const r of await Promise.all(all)) assert.equal(r.dkim.results?.[0]?.status.result, "none");
  } finally {
    pool.close();
  }
});

void test("the pool: the other tasks of a thread ended at a deadline are run again in another thread, not failed", async () => {
  // DNS answers come late: a task is in flight (read by its thread) while the hostile one arrives.
  const late = (): Promise<never> => new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" })), 400));
  const pool = new VerifierPool(late, { idleMs: 200 });
  try {
    const plain = Buffer.from("From: a@example.org\r\n\r\nbody\r\n");
    await pool.verify(plain, task);
    const waiting = pool.verify(plain, task);
    await new Promise((r) => setTimeout(r, 50));
    const slow = pool.verify(slowMessage(), task, AbortSignal.timeout(300));
    slow.catch(() => undefined);
    await assert.rejects(slow, /deadline/);
    const r = await waiting;
    assert.equal(r.dkim.results?.[0]?.status.result, "none");
  } finally {
    pool.close();
  }
});

void test("the pool's threads keep DNS answers within their TTL (and ask once for questions in flight together)", async () => {
  const asked: string[] = [];
  const none = (name: string): Promise<never> => {
    asked.push(name);
    return Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  };
  // A revoked key (empty p=): an answer, so it can be kept.
  const key = "v=DKIM1; k=rsa; p=";
  const query = (name: string, rrtype: string): Promise<{ records: unknown; ttl: number }> => {
    asked.push(`${rrtype} ${name}`);
    return name === "s._domainkey.example.org" && rrtype === "TXT" ? Promise.resolve({ records: [[key]], ttl: 60 }) : Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  };
  const plain = Buffer.from("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; c=relaxed/relaxed; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n");
  const kept = new VerifierPool(none, { query });
  try {
    await Promise.all([kept.verify(plain, task), kept.verify(plain, task)]);
    await kept.verify(plain, task);
    assert.equal(asked.filter((q) => q === "TXT s._domainkey.example.org").length, 1, asked.join(", "));
  } finally {
    kept.close();
  }
  asked.length = 0;
  // Without TTLs (a plain resolver), nothing is kept.
  const plainPool = new VerifierPool((name, rrtype) => query(name, rrtype).then((a) => a.records));
  try {
    await plainPool.verify(plain, task);
    await plainPool.verify(plain, task);
    assert.equal(asked.filter((q) => q === "TXT s._domainkey.example.org").length, 2, asked.join(", "));
  } finally {
    plainPool.close();
  }
});

void test("the pool's threads keep DNS answers within a byte bound too: the oldest large answers go first", async () => {
  const asked: string[] = [];
  // 40 selectors, each key answer about 60 KB (118 strings of 255 characters): more than the 2 MiB bound together.
  const big = Array.from({ length: 118 }, () => "A".repeat(255));
  const query = (name: string, rrtype: string): Promise<{ records: unknown; ttl: number }> => {
    asked.push(`${rrtype} ${name}`);
    return /^s\d+\._domainkey\.example\.org$/.test(name) && rrtype === "TXT" ? Promise.resolve({ records: [["v=DKIM1; k=rsa; p=", ...big]], ttl: 600 }) : Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  };
  const signed = (sel: number): Buffer => Buffer.from(`DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s${sel}; c=relaxed/relaxed; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n`);
  const pool = new VerifierPool(resolver, { query });
  const times = (sel: number): number => asked.filter((q) => q === `TXT s${sel}._domainkey.example.org`).length;
  try {
    for (let i = 0; i < 40; i++) await pool.verify(signed(i), task);
    await pool.verify(signed(39), task);
    assert.equal(times(39), 1, "the newest answer is kept");
    await pool.verify(signed(0), task);
    assert.equal(times(0), 2, "the oldest answer was dropped for the byte bound, not the count (40 < 2048)");
  } finally {
    pool.close();
  }
});

void test("the pool: a task its thread read before a slow parse held it runs again elsewhere at once, not after the slow one's deadline", async () => {
  const late = (): Promise<never> => new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" })), 300));
  const pool = new VerifierPool(late, { idleMs: 200 });
  try {
    const signed = Buffer.from("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; c=relaxed/relaxed; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n");
    await pool.verify(Buffer.from("From: a@example.org\r\n\r\nbody\r\n"), task);
    const t0 = performance.now();
    // Read by the thread, then waiting for its key's DNS answer when the slow message holds the thread.
    const waiting = pool.verify(signed, task);
    await new Promise((r) => setTimeout(r, 50));
    const slow = pool.verify(slowMessage(), task, AbortSignal.timeout(4000));
    slow.catch(() => undefined);
    const r = await waiting;
    const took = performance.now() - t0;
    assert.notEqual(r.dkim.results?.[0]?.status.result, undefined);
    assert.ok(took < 2500, `the waiting message took ${took} ms`);
    await assert.rejects(slow, /deadline/);
  } finally {
    pool.close();
  }
});

void test("the process's shared pool (two workers' links): the content is transferred, not taken from the caller; a worker that goes away while its question is shared does not hold up the other worker's verification", async () => {
  const host = new PoolHost();
  const linkA = new PoolLink(host.connect());
  const linkB = new PoolLink(host.connect());
  const askedA: string[] = [];
  const askedB: string[] = [];
  // Worker A never answers, and goes away 150 ms after its first question.
  const silent = (name: string): Promise<never> => {
    if (askedA.push(name) === 1) setTimeout(() => linkA.close(), 150);
    return new Promise<never>(() => undefined);
  };
  const notFound = (name: string): Promise<never> => {
    askedB.push(name);
    return Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  };
  const a = new VerifierPool(silent, { link: linkA });
  const b = new VerifierPool(notFound, { link: linkB });
  try {
    const plain = Buffer.from("From: a@example.org\r\n\r\nbody\r\n");
    // A view into a larger buffer, as a receive block holds a message: it must stay whole and readable after the task went.
    const block = Buffer.alloc(4096, 0x20);
    const signedText = "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; c=relaxed/relaxed; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n";
    const signed = block.subarray(100, 100 + block.write(signedText, 100, "latin1"));
    const first = await b.verify(plain, task, AbortSignal.timeout(5000));
    assert.equal(first.dkim.results?.[0]?.status.result, "none");
    const lost = a.verify(signed, task, AbortSignal.timeout(8000));
    lost.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    const r = await b.verify(signed, task, AbortSignal.timeout(8000));
    const took = performance.now() - t0;
    await assert.rejects(lost, /closed/);
    assert.notEqual(r.dkim.results?.[0]?.status.result, undefined);
    assert.ok(took < 3000, `B's verification took ${took} ms (its deadline is 8 s)`);
    assert.ok(askedA.includes("s._domainkey.example.org"), askedA.join(", "));
    assert.ok(askedB.includes("s._domainkey.example.org"), `B's resolver answered the key question: ${askedB.join(", ")}`);
    // The caller's bytes are untouched (the thread got a transferred copy).
    assert.equal(signed.toString("latin1"), signedText);
    assert.equal(block.byteLength, 4096);
  } finally {
    linkA.close();
    linkB.close();
    host.close();
  }
});
