/**
 * SPF results shared across connections within their DNS TTLs: mailauth's
 * spf() over an in-memory zone, counting the DNS questions it asks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SPFResult } from "mailauth";
import { spf } from "mailauth/lib/spf/index.js";
import { DnsError, StaticResolver, type RRType, type StaticZone } from "../dns/index.ts";
import { ConnectionState, TransactionState } from "../policy/index.ts";
import { SenderAuthCheck } from "./check.ts";
import { MAX_KEPT_MS, SpfCache, type TtlQuery } from "./spf-cache.ts";

const ZONE: StaticZone = {
  "short.test": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"], ttl: 60 },
  "long.test": { TXT: ["v=spf1 include:inc.long.test -all"], ttl: 3600 },
  "inc.long.test": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"], ttl: 30 },
  "zero.test": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"], ttl: 0 },
  "time.test": { TXT: ["v=spf1 exists:%{t}.t.time.test -all"] },
  "slow.test": "TIMEOUT",
  "mta.client.test": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"] },
};

/** The zone's answers with TTLs; its denials (NXDOMAIN, NODATA) carry `negativeTtl` (none when undefined). */
function zoneQuery(asked: string[], negativeTtl?: number): TtlQuery {
  const zone = new StaticResolver(ZONE);
  return async (name, rrtype) => {
    asked.push(`${rrtype} ${name}`);
    try {
      const a = await zone.query(name, rrtype as RRType);
      return { records: a.records, ttl: a.ttl };
    } catch (err) {
      if (err instanceof DnsError && (err.code === "ENOTFOUND" || err.code === "ENODATA")) throw new DnsError(err.code, name, rrtype, false, negativeTtl);
      throw err;
    }
  };
}

function evaluate(sender: string, ip = "192.0.2.1"): (resolver: (name: string, rrtype: string) => Promise<unknown>) => Promise<SPFResult> {
  return (resolver) => spf({ sender, ip, helo: "mta.client.test", mta: "mx.test", resolver: resolver as never, strict: true });
}

test("a result is shared for the same inputs and not across other inputs", async () => {
  const asked: string[] = [];
  const cache = new SpfCache(zoneQuery(asked));
  const key = SpfCache.key("192.0.2.1", "a@short.test", "mta.client.test", "mx.test");
  const first = await cache.get(key, evaluate("a@short.test"));
  assert.equal(first.status.result, "pass");
  const n = asked.length;
  assert.ok(n > 0);
  const again = await cache.get(key, evaluate("a@short.test"));
  assert.equal(again, first);
  assert.equal(asked.length, n, "no DNS question for a kept result");
  // Another client address is another evaluation (and here another result).
  const other = await cache.get(SpfCache.key("198.51.100.1", "a@short.test", "mta.client.test", "mx.test"), evaluate("a@short.test", "198.51.100.1"));
  assert.equal(other.status.result, "fail");
  assert.ok(asked.length > n);
  assert.equal(cache.size, 2);
});

test("a result is kept for the smallest TTL among the answers it used", async () => {
  const asked: string[] = [];
  let now = 1_000_000;
  const cache = new SpfCache(zoneQuery(asked), { now: () => now });
  const key = SpfCache.key("192.0.2.1", "a@long.test", "mta.client.test", "mx.test");
  assert.equal((await cache.get(key, evaluate("a@long.test"))).status.result, "pass");
  const n = asked.length;
  now += 29_000;
  await cache.get(key, evaluate("a@long.test"));
  assert.equal(asked.length, n, "within the include's 30 s");
  now += 1_001;
  await cache.get(key, evaluate("a@long.test"));
  assert.equal(asked.length, 2 * n, "the include's TTL passed: evaluated again");
  // Never longer than MAX_KEPT_MS, whatever the TTLs: the include allows 30 s, the domain 3600 s.
  assert.ok(MAX_KEPT_MS <= 300_000);
});

test("temperror, TTL 0, the %{t} macro and errors without a TTL are not kept", async () => {
  const asked: string[] = [];
  // Denials carry a TTL here, except in the last case (a resolver that gives none).
  const withTtl = new SpfCache(zoneQuery(asked, 300));
  const without = new SpfCache(zoneQuery(asked));
  for (const [sender, cache] of [["a@slow.test", withTtl], ["a@zero.test", withTtl], ["a@time.test", withTtl], ["a@denied.test", without]] as const) {
    const key = SpfCache.key("192.0.2.1", sender, "mta.client.test", "mx.test");
    const r1 = await cache.get(key, evaluate(sender));
    const before = asked.length;
    const r2 = await cache.get(key, evaluate(sender));
    assert.ok(asked.length > before, `${sender} (${r1.status.result}) evaluated again`);
    assert.equal(r2.status.result, r1.status.result);
  }
  assert.equal(withTtl.size + without.size, 0);
});

test("a denial is kept for its negative TTL", async () => {
  const asked: string[] = [];
  let now = 5_000_000;
  const cache = new SpfCache(zoneQuery(asked, 20), { now: () => now });
  const key = SpfCache.key("192.0.2.1", "a@denied.test", "mta.client.test", "mx.test");
  const r = await cache.get(key, evaluate("a@denied.test"));
  assert.equal(r.status.result, "none");
  const n = asked.length;
  now += 19_000;
  await cache.get(key, evaluate("a@denied.test"));
  assert.equal(asked.length, n);
  now += 2_000;
  await cache.get(key, evaluate("a@denied.test"));
  assert.equal(asked.length, 2 * n);
});

test("at most `capacity` results are kept, the oldest out first", async () => {
  const cache = new SpfCache(zoneQuery([]), { capacity: 3 });
  const keys = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"].map((ip) => SpfCache.key(ip, "a@short.test", "mta.client.test", "mx.test"));
  for (const [i, k] of keys.entries()) await cache.get(k, evaluate("a@short.test", `192.0.2.${i + 1}`));
  assert.equal(cache.size, 3);
  const asked: string[] = [];
  const probe = new SpfCache(zoneQuery(asked), { capacity: 1 });
  await probe.get(keys[0]!, evaluate("a@short.test"));
  await probe.get(keys[1]!, evaluate("a@short.test", "192.0.2.2"));
  const n = asked.length;
  await probe.get(keys[0]!, evaluate("a@short.test"));
  assert.ok(asked.length > n, "the first result was pushed out");
});

test("the check: a second connection from the same client asks DNS nothing for SPF", async () => {
  const asked: string[] = [];
  const zone = new StaticResolver(ZONE, { calls: (name, type) => asked.push(`${type} ${name}`) });
  const check = new SenderAuthCheck({
    resolver: (name, type) => zone.resolve(name, type),
    query: async (name, type) => {
      const a = await zone.query(name, type as RRType);
      return { records: a.records, ttl: a.ttl };
    },
    authservId: "mx.test",
    checks: { trustedArcSealers: [], dmarcOverrides: {} },
  });
  try {
    const connection = (): { connection: ConnectionState; state: TransactionState } => ({ connection: new ConnectionState(), state: new TransactionState() });
    const input = { clientIp: "192.0.2.1", helo: "mta.client.test", mailFrom: "a@short.test", recipients: ["b@mx.test"], signal: new AbortController().signal };
    const one = await check.mail({ ...input, ...connection() });
    assert.deepEqual(one.verdicts, ["spf.pass"]);
    assert.deepEqual(one.notes, { spf: "pass", spfHelo: "pass" });
    const n = asked.length;
    const two = await check.mail({ ...input, ...connection() });
    assert.deepEqual(two.verdicts, ["spf.pass"]);
    assert.deepEqual(two.notes, { spf: "pass", spfHelo: "pass" });
    assert.equal(asked.length, n, "both identities from the thread's cache");
    // Another client address: evaluated, and fails.
    const three = await check.mail({ ...input, clientIp: "198.51.100.7", ...connection() });
    assert.deepEqual(three.verdicts, ["spf.fail"]);
  } finally {
    check.close();
  }
});
