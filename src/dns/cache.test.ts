// Tests for WireResolver's cache against the loopback test server, with an
// injected clock: hits, TTL expiry, negative caching (RFC 2308), failures not
// cached, shared in-flight queries, the size cap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DnsError, WireResolver } from "./index.ts";
import { TtlCache } from "./cache.ts";
import { MAX_CACHE_BYTES, entryWeight } from "./wire-resolver.ts";
import type { TestDnsServer } from "../../test/helpers/dns.ts";
import { startTestDnsServer } from "../../test/helpers/dns.ts";

interface Clock {
  t: number;
}

async function setup(t: { after: (fn: () => unknown) => void }, cacheSize = 100): Promise<{ server: TestDnsServer; r: WireResolver; clock: Clock }> {
  const server = await startTestDnsServer({
    "example.test": { A: ["192.0.2.10"], TXT: [["a", "b"]], ttl: 60 },
    "one.example.test": { A: ["192.0.2.1"] },
    "two.example.test": { A: ["192.0.2.2"] },
    "three.example.test": { A: ["192.0.2.3"] },
    "zero.example.test": { A: ["192.0.2.0"], ttl: 0 },
    "huge.example.test": { A: ["192.0.2.9"], ttl: 1_000_000 },
  });
  const clock: Clock = { t: 1_000_000 };
  const r = new WireResolver({ servers: [server], timeoutMs: 500, attempts: 1, cacheSize, now: () => clock.t });
  t.after(async () => {
    r.close();
    await server.close();
  });
  return { server, r, clock };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    assert.ok(err instanceof DnsError);
    return err.code;
  }
}

void test("a cached answer is served without a query, as a copy, with the remaining TTL", async (t) => {
  const { server, r, clock } = await setup(t);
  const first = (await r.resolve("example.test", "TXT")) as string[][];
  first[0]?.push("mutated");
  first.push(["mutated"]);
  clock.t += 20_000;
  assert.deepEqual(await r.query("Example.TEST.", "TXT"), { records: [["a", "b"]], ttl: 40, authenticated: false });
  assert.equal(server.queries.length, 1);
});

void test("answers expire after their TTL (injected clock)", async (t) => {
  const { server, r, clock } = await setup(t);
  await r.resolve("example.test", "A");
  clock.t += 59_000;
  await r.resolve("example.test", "A");
  assert.equal(server.queries.length, 1);
  clock.t += 2_000;
  await r.resolve("example.test", "A");
  assert.equal(server.queries.length, 2);
  // TTL 0: not cached at all; a huge TTL is capped at one day.
  await r.resolve("zero.example.test", "A");
  await r.resolve("zero.example.test", "A");
  assert.equal(server.queries.length, 4);
  assert.equal((await r.query("huge.example.test", "A")).ttl, 86400);
  clock.t += 86_399_000;
  await r.resolve("huge.example.test", "A");
  assert.equal(server.queries.length, 5);
  clock.t += 2_000;
  await r.resolve("huge.example.test", "A");
  assert.equal(server.queries.length, 6);
});

void test("NXDOMAIN and NODATA are cached for min(SOA TTL, MINIMUM, 300) s", async (t) => {
  const { server, r, clock } = await setup(t);
  server.soa = { ttl: 3600, minimum: 60 };
  assert.equal(await code(r.resolve("nowhere.example.test", "A")), "ENOTFOUND");
  assert.equal(await code(r.resolve("example.test", "MX")), "ENODATA");
  clock.t += 59_000;
  assert.equal(await code(r.resolve("nowhere.example.test", "A")), "ENOTFOUND");
  assert.equal(await code(r.resolve("example.test", "MX")), "ENODATA");
  assert.equal(server.queries.length, 2);
  clock.t += 2_000;
  assert.equal(await code(r.resolve("nowhere.example.test", "A")), "ENOTFOUND");
  assert.equal(server.queries.length, 3);

  // SOA TTL smaller than MINIMUM: the TTL wins.
  server.soa = { ttl: 10, minimum: 600 };
  assert.equal(await code(r.resolve("gone.example.test", "A")), "ENOTFOUND");
  clock.t += 11_000;
  assert.equal(await code(r.resolve("gone.example.test", "A")), "ENOTFOUND");
  assert.equal(server.queries.length, 5);

  // Large values are capped at 300 s; no SOA at all means 300 s.
  server.soa = { ttl: 86400, minimum: 86400 };
  assert.equal(await code(r.resolve("far.example.test", "A")), "ENOTFOUND");
  server.soa = null;
  assert.equal(await code(r.resolve("bare.example.test", "A")), "ENOTFOUND");
  clock.t += 299_000;
  assert.equal(await code(r.resolve("far.example.test", "A")), "ENOTFOUND");
  assert.equal(await code(r.resolve("bare.example.test", "A")), "ENOTFOUND");
  assert.equal(server.queries.length, 7);
  clock.t += 2_000;
  assert.equal(await code(r.resolve("far.example.test", "A")), "ENOTFOUND");
  assert.equal(await code(r.resolve("bare.example.test", "A")), "ENOTFOUND");
  assert.equal(server.queries.length, 9);
});

void test("SERVFAIL and timeouts are never cached", async (t) => {
  const { server, r } = await setup(t);
  server.mode = "servfail";
  assert.equal(await code(r.resolve("example.test", "A")), "ESERVFAIL");
  assert.equal(await code(r.resolve("example.test", "A")), "ESERVFAIL");
  assert.equal(server.queries.length, 2);
  server.mode = "answer";
  assert.deepEqual(await r.resolve("example.test", "A"), ["192.0.2.10"]);
  assert.equal(server.queries.length, 3);
  const quick = new WireResolver({ servers: [server], timeoutMs: 50, attempts: 1, cacheSize: 10 });
  t.after(() => quick.close());
  server.mode = "drop";
  assert.equal(await code(quick.resolve("example.test", "A")), "ETIMEOUT");
  server.mode = "answer";
  assert.deepEqual(await quick.resolve("example.test", "A"), ["192.0.2.10"]);
  assert.equal(server.queries.length, 5);
});

void test("concurrent identical questions share one packet; different types do not", async (t) => {
  const { server, r } = await setup(t, 0);
  const results = await Promise.all([r.resolve("example.test", "A"), r.resolve("EXAMPLE.test", "A"), r.resolve("example.test.", "A"), r.resolve("example.test", "TXT")]);
  assert.deepEqual(results.slice(0, 3), [["192.0.2.10"], ["192.0.2.10"], ["192.0.2.10"]]);
  assert.equal(server.queries.length, 2);
  // cacheSize 0: nothing is kept once the exchange is over.
  await r.resolve("example.test", "A");
  assert.equal(server.queries.length, 3);
  // Errors are shared too, each caller getting its own DnsError.
  const errors = await Promise.allSettled([r.resolve("nowhere.example.test", "A"), r.resolve("nowhere.example.test", "A")]);
  assert.equal(server.queries.length, 4);
  assert.ok(errors.every((e) => e.status === "rejected" && e.reason instanceof DnsError && e.reason.code === "ENOTFOUND"));
});

void test("the size cap evicts the least recently used question", async (t) => {
  const { server, r } = await setup(t, 2);
  await r.resolve("one.example.test", "A");
  await r.resolve("two.example.test", "A");
  await r.resolve("one.example.test", "A"); // hit: one is now the most recent
  assert.equal(server.queries.length, 2);
  await r.resolve("three.example.test", "A"); // evicts two
  await r.resolve("one.example.test", "A");
  await r.resolve("three.example.test", "A");
  assert.equal(server.queries.length, 3);
  await r.resolve("two.example.test", "A");
  assert.equal(server.queries.length, 4);
});

void test("TtlCache: expiry, capacity 0, LRU order", () => {
  let now = 0;
  const c = new TtlCache<{ expires: number; v: number }>(2, () => now);
  c.set("a", { expires: 10, v: 1 });
  c.set("b", { expires: 10, v: 2 });
  assert.equal(c.get("a")?.v, 1);
  c.set("c", { expires: 10, v: 3 });
  assert.equal(c.get("b"), undefined);
  assert.equal(c.size, 2);
  now = 10;
  assert.equal(c.get("a"), undefined);
  assert.equal(c.size, 1);
  c.set("d", { expires: 5, v: 4 });
  assert.equal(c.get("d"), undefined);
  const off = new TtlCache<{ expires: number }>(0, () => 0);
  off.set("x", { expires: 100 });
  assert.equal(off.size, 0);
});

void test("TtlCache with a byte bound: least recently used out until the weights fit; an entry heavier than the bound alone is not stored", () => {
  const c = new TtlCache<{ expires: number; w: number }>(100, () => 0, { max: 100, weigh: (v) => v.w });
  c.set("a", { expires: 10, w: 40 });
  c.set("b", { expires: 10, w: 40 });
  assert.equal(c.get("a")?.w, 40); // a is now the most recently used
  c.set("c", { expires: 10, w: 40 }); // 120 > 100: b goes
  assert.equal(c.get("b"), undefined);
  assert.equal(c.size, 2);
  assert.equal(c.weight, 80);
  c.set("a", { expires: 10, w: 10 }); // replacing counts the new weight only
  assert.equal(c.weight, 50);
  c.set("huge", { expires: 10, w: 101 });
  assert.equal(c.get("huge"), undefined);
  assert.equal(c.size, 2);
  c.clear();
  assert.equal(c.weight, 0);
});

void test("the resolver's cache is bounded in bytes: large answers under ever new names keep at most MAX_CACHE_BYTES", () => {
  const big: string[] = [Array.from({ length: 250 }, () => "x").join("")];
  const records = Array.from({ length: 200 }, () => big); // a TXT answer of 200 strings of 250 octets, ~50 KB
  const entry = { kind: "answer" as const, records, ttl: 3600, authenticated: false, expires: 1 };
  const w = entryWeight(entry);
  assert.ok(w >= 50_000 && w < 70_000, `weight ${w}`);
  const c = new TtlCache<typeof entry>(10_000, () => 0, { max: MAX_CACHE_BYTES, weigh: entryWeight });
  for (let i = 0; i < 1000; i++) c.set(`TXT n${i}.evil.test`, entry);
  assert.ok(c.weight <= MAX_CACHE_BYTES, `weight ${c.weight}`);
  assert.ok(c.size < 1000 && c.size >= Math.floor(MAX_CACHE_BYTES / w), `entries ${c.size}`);
  assert.equal(entryWeight({ kind: "answer", records: ["192.0.2.1"], ttl: 60, authenticated: false, expires: 1 }) < 400, true);
});
