/**
 * The DNSBL check on its own, over the project's in-memory DNS zone
 * (StaticResolver, the same checks and error codes as the wire resolver):
 * reversed names, scoring with weights and an allowlist, error codes never
 * counting, answer filters, fail open, the cache and its bounds. The real
 * thing against Knot is test/dnsbl.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { StaticResolver, WireResolver, type StaticZone } from "../dns/index.ts";
import { captureLogger } from "../../test/helpers/queue.ts";
import { DnsblCheck, MAX_CACHE, errorCode, reversedName } from "./dnsbl.ts";
import { CheckRunner, TransactionState, type CheckInput } from "./index.ts";
import { VERDICT_DEFAULTS } from "../config/index.ts";

function input(clientIp: string): CheckInput {
  return { clientIp, helo: "h.test", mailFrom: "", recipients: [], state: new TransactionState(), signal: new AbortController().signal };
}

function setup(zone: StaticZone, zones = [{ zone: "bl.test", weight: 2, answers: [] as string[] }, { zone: "wl.test", weight: -3, answers: [] }], threshold = 2) {
  const asked: string[] = [];
  let now = 1_000_000;
  const resolver = new StaticResolver(zone, { calls: (n) => asked.push(n) });
  const check = new DnsblCheck({ zones, threshold, timeoutMs: 200, resolver, now: () => now });
  return { check, asked, tick: (ms: number) => (now += ms) };
}

test("reversed names: IPv4, IPv4-mapped IPv6, IPv6 nibbles (RFC 5782 §2.1, §2.4)", () => {
  assert.equal(reversedName("192.0.2.99", "bl.test"), "99.2.0.192.bl.test");
  assert.equal(reversedName("::ffff:127.0.0.2", "bl.test"), "2.0.0.127.bl.test");
  assert.equal(reversedName("2001:db8:1:2::ba9", "bl.test"), "9.a.b.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test");
  assert.equal(reversedName("::1", "bl.test"), `1.${"0.".repeat(31)}bl.test`);
  assert.equal(reversedName("not an ip", "bl.test"), undefined);
});

test("error codes are told from listings", () => {
  for (const ok of ["127.0.0.2", "127.0.0.4", "127.0.1.3", "127.0.0.10"]) assert.equal(errorCode(ok), undefined, ok);
  for (const bad of ["127.0.0.1", "127.0.0.255", "127.255.255.252", "127.255.255.254", "127.255.255.255", "10.0.0.1", "192.0.2.1", "::1"]) assert.notEqual(errorCode(bad), undefined, bad);
});

test("scoring: listed reaches the threshold; an allowlist with a negative weight outweighs it; not listed", async () => {
  const { check } = setup({
    "2.0.0.127.bl.test": { A: ["127.0.0.2"] },
    "3.0.0.127.bl.test": { A: ["127.0.0.2"] },
    "3.0.0.127.wl.test": { A: ["127.0.10.2"] },
  });
  const listed = await check.connect(input("127.0.0.2"));
  assert.deepEqual(listed.verdicts, ["dnsbl.listed"]);
  assert.equal(listed.replies?.["dnsbl.listed"]?.code, 550);
  assert.deepEqual(listed.replies?.["dnsbl.listed"]?.lines, ["Service unavailable; client [127.0.0.2] blocked using bl.test"]);
  assert.deepEqual((await check.connect(input("127.0.0.3"))).verdicts, [], "allowlisted: score -1");
  assert.deepEqual((await check.connect(input("127.0.0.4"))).verdicts, [], "on no list");
});

test("an error-code answer is logged as an error and never counts", async () => {
  const { check } = setup({ "4.0.0.127.bl.test": { A: ["127.255.255.254"] }, "5.0.0.127.bl.test": { A: ["127.0.0.1"] }, "6.0.0.127.bl.test": { A: ["198.51.100.7"] } });
  for (const ip of ["127.0.0.4", "127.0.0.5", "127.0.0.6"]) {
    const out = await check.connect(input(ip));
    assert.deepEqual(out.verdicts, [], ip);
    const errors = (out.logs ?? []).filter((l) => l.level === "error");
    assert.equal(errors.length, 1, ip);
    assert.equal(errors[0]?.fields?.zone, "bl.test");
  }
  // An allowlist answering an error code does not let anyone in either.
  const wl = setup({ "2.0.0.127.bl.test": { A: ["127.0.0.2"] }, "2.0.0.127.wl.test": { A: ["127.0.0.255"] } });
  assert.deepEqual((await wl.check.connect(input("127.0.0.2"))).verdicts, ["dnsbl.listed"]);
});

test("answers: only the configured networks count", async () => {
  const { check } = setup({ "2.0.0.127.bl.test": { A: ["127.0.0.10"] }, "3.0.0.127.bl.test": { A: ["127.0.0.5"] } }, [{ zone: "bl.test", weight: 1, answers: ["127.0.0.2/32", "127.0.0.4/30"] }], 1);
  assert.deepEqual((await check.connect(input("127.0.0.2"))).verdicts, [], "127.0.0.10 is not in the answers");
  assert.deepEqual((await check.connect(input("127.0.0.3"))).verdicts, ["dnsbl.listed"]);
});

test("fail open: SERVFAIL and timeouts count as not listed, logged, and are not cached", async () => {
  const { check, asked } = setup({ "2.0.0.127.bl.test": "SERVFAIL", "2.0.0.127.wl.test": "TIMEOUT" });
  const out = await check.connect(input("127.0.0.2"));
  assert.deepEqual(out.verdicts, []);
  assert.deepEqual((out.logs ?? []).filter((l) => l.level === "warn").map((l) => l.fields?.error).sort(), ["ESERVFAIL", "ETIMEOUT"]);
  await check.connect(input("127.0.0.2"));
  assert.equal(asked.length, 4, "asked again: a failure is not cached");
});

test("a lookup that does not answer within the timeout: not listed (fail open), well before the checks' deadline", async () => {
  // The real resolver, asking a loopback UDP socket that reads the question and never answers.
  const silent = dgram.createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  const resolver = new WireResolver({ servers: [{ host: "127.0.0.1", port: silent.address().port }], timeoutMs: 5000, attempts: 1, cacheSize: 0 });
  try {
    const check = new DnsblCheck({ zones: [{ zone: "bl.test", weight: 1, answers: [] }], threshold: 1, timeoutMs: 100, resolver });
    const runner = new CheckRunner([check], VERDICT_DEFAULTS, 1000);
    const log = captureLogger();
    const started = Date.now();
    const d = await runner.run("connect", input("127.0.0.2"), log.logger);
    assert.equal(d.action, "ignore");
    assert.ok(Date.now() - started < 900);
    assert.ok(log.lines.some((l) => l.msg === "DNSBL lookup failed; not counted (fail open)" && l.error === "timeout"));
  } finally {
    resolver.close();
    silent.close();
  }
});

test("cache: one lookup per address for the TTL (at most the answer's), shared by concurrent connections; bounded", async () => {
  const { check, asked, tick } = setup({ "2.0.0.127.bl.test": { A: ["127.0.0.2"], ttl: 60 } });
  await Promise.all([check.connect(input("127.0.0.2")), check.connect(input("127.0.0.2"))]);
  assert.equal(asked.length, 2, "one query per zone for both connections");
  const again = await check.connect(input("127.0.0.2"));
  assert.deepEqual(again.verdicts, ["dnsbl.listed"]);
  assert.equal(asked.length, 2, "answered from the cache");
  tick(60_001);
  await check.connect(input("127.0.0.2"));
  assert.equal(asked.length, 4, "asked again after the TTL");
  // Not listed: kept 5 minutes.
  await check.connect(input("127.0.0.9"));
  tick(299_000);
  await check.connect(input("127.0.0.9"));
  assert.equal(asked.length, 6);
  tick(2000);
  await check.connect(input("127.0.0.9"));
  assert.equal(asked.length, 8);
  // At most MAX_CACHE addresses: the oldest goes first.
  for (let i = 0; i < MAX_CACHE; i++) await check.connect(input(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
  const count = (): number => asked.length;
  const before = count();
  await check.connect(input("127.0.0.9"));
  assert.equal(count(), before + 2, "127.0.0.9 was dropped from the full cache");
});

test("the runner turns the verdict into the check's reply; tag instead of reject on the operator's word", async () => {
  const { check } = setup({ "2.0.0.127.bl.test": { A: ["127.0.0.2"] } });
  const log = captureLogger();
  const reject = await new CheckRunner([check], VERDICT_DEFAULTS, 1000).run("connect", input("127.0.0.2"), log.logger);
  assert.equal(reject.action, "reject");
  assert.equal(reject.reply?.code, 550);
  assert.equal(reject.reply?.status, "5.7.1");
  assert.match(reject.reply?.lines[0] ?? "", /client \[127\.0\.0\.2\] blocked using bl\.test/);
  assert.ok(log.lines.some((l) => l.msg === "client listed by DNSBL" && l.check === "dnsbl"));
  const tag = await new CheckRunner([check], { ...VERDICT_DEFAULTS, "dnsbl.listed": "tag" }, 1000).run("connect", input("127.0.0.2"), log.logger);
  assert.equal(tag.action, "tag");
  assert.equal(tag.reply, undefined);
});

test("prefetch at connect: the lookup starts before MAIL, the hook then asks nothing more and still logs the result once", async () => {
  const { check, asked } = setup({ "2.0.0.127.bl.test": { A: ["127.0.0.2"] }, "4.0.0.127.bl.test": { A: ["127.255.255.254"] } });
  const runner = new CheckRunner([check], VERDICT_DEFAULTS, 1000);
  runner.prefetch("127.0.0.2");
  runner.prefetch("127.0.0.4");
  assert.equal(asked.length, 4, "both zones asked for both clients at connect");
  // The hook (at MAIL) finds the answers: no second query; the log lines come now, once.
  const listed = await check.connect(input("127.0.0.2"));
  const bad = await check.connect(input("127.0.0.4"));
  assert.equal(asked.length, 4);
  assert.deepEqual(listed.verdicts, ["dnsbl.listed"]);
  assert.ok(listed.logs?.some((l) => l.msg === "client listed by DNSBL" && l.fields?.cached === false));
  assert.ok(bad.logs?.some((l) => l.level === "error"), "the error code is reported by the first hook that uses the prefetched result");
  // A second MAIL: from the cache, its error no longer repeated.
  const again = await check.connect(input("127.0.0.4"));
  assert.equal(again.logs?.some((l) => l.level === "error"), false);
  assert.equal(asked.length, 4);
  // Prefetch of a cached client asks nothing.
  runner.prefetch("127.0.0.2");
  assert.equal(asked.length, 4);
});
