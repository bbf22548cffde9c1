// Tests for WireResolver against a real DNS server on loopback (test/helpers/dns.ts):
// record shapes (compared with node:dns itself), CNAME chains, negative
// answers, timeouts and failover, TCP after TC=1, spoofed datagrams, the AD bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import { DnsError, MAX_CAA_VALUE, WireResolver, adTrusted, createResolver, isLoopback } from "./index.ts";
import type { TestDnsServer, TestZone } from "../../test/helpers/dns.ts";
import { SPOOF_A, startTestDnsServer } from "../../test/helpers/dns.ts";

const cert = Buffer.from("00112233445566778899aabbccddeeff", "hex");

function zone(): TestZone {
  return {
    "example.test": {
      A: ["192.0.2.10"],
      AAAA: ["2001:db8::10"],
      TXT: ["v=spf1 ip4:192.0.2.0/24 -all"],
      MX: [
        { preference: 10, exchange: "mx1.example.test" },
        { preference: 20, exchange: "mx2.example.test" },
      ],
      NS: ["ns.example.test"],
      SOA: [{ mname: "ns.example.test", rname: "host\\.master.example.test", serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 }],
      ttl: 600,
    },
    "multi.example.test": { TXT: [["v=DKIM1; k=rsa; ", "p=MIIB"], "second"] },
    "bytes.example.test": { TXT: [[Buffer.from([0x61, 0xe9, 0x62, 0x00, 0xff]), Buffer.from("cé", "utf8")]] },
    "mapped.example.test": { AAAA: ["::ffff:192.0.2.1"] },
    "alias.example.test": { CNAME: ["Alias2.Example.Test"], ttl: 50 },
    "alias2.example.test": { CNAME: ["www.example.test"], ttl: 500 },
    "www.example.test": { A: ["192.0.2.20", "192.0.2.21"], ttl: 120 },
    "loop1.example.test": { CNAME: ["loop2.example.test"] },
    "loop2.example.test": { CNAME: ["loop1.example.test"] },
    "_25._tcp.mx1.example.test": { TLSA: [{ usage: 3, selector: 1, matchingType: 1, certificate: cert }] },
    "10.2.0.192.in-addr.arpa": { PTR: ["mx1.example.test"] },
    "caa.example.test": {
      CAA: [
        { flags: 0, tag: "issue", value: "letsencrypt.org" },
        { flags: 128, tag: "tbs", value: "x" },
        { flags: 0, tag: "iodef", value: "mailto:caa@example.test" },
      ],
    },
    "longcaa.example.test": { CAA: [{ flags: 0, tag: "issue", value: "a".repeat(3000) }] },
  };
}

async function setup(t: { after: (fn: () => unknown) => void }, opts: { attempts?: number; timeoutMs?: number; cacheSize?: number; now?: () => number } = {}): Promise<{ server: TestDnsServer; r: WireResolver }> {
  const server = await startTestDnsServer(zone());
  const r = new WireResolver({ servers: [server], timeoutMs: opts.timeoutMs ?? 1000, attempts: opts.attempts ?? 1, cacheSize: opts.cacheSize ?? 100, ...(opts.now ? { now: opts.now } : {}) });
  t.after(async () => {
    r.close();
    await server.close();
  });
  return { server, r };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<DnsError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DnsError, `expected DnsError, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

void test("record shapes match node:dns for the same answers", async (t) => {
  const { server, r } = await setup(t);
  const node = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
  node.setServers([`127.0.0.1:${server.port}`]);
  const cases: [string, string][] = [
    ["example.test", "A"],
    ["example.test", "AAAA"],
    ["example.test", "TXT"],
    ["multi.example.test", "TXT"],
    ["bytes.example.test", "TXT"],
    ["mapped.example.test", "AAAA"],
    ["example.test", "NS"],
    ["example.test", "SOA"],
    ["10.2.0.192.in-addr.arpa", "PTR"],
    ["alias.example.test", "CNAME"],
    ["alias.example.test", "A"],
  ];
  for (const [name, type] of cases) {
    const ours = await r.resolve(name, type);
    let theirs: unknown = await node.resolve(name, type);
    // node returns SOA as one object, not a list, with a `type` key resolve() adds
    if (type === "SOA") {
      const { type: _t, ...soa } = theirs as Record<string, unknown>;
      theirs = [soa];
    }
    assert.deepEqual(ours, theirs, `${name} ${type}`);
  }
  const mx = await r.resolve("example.test", "MX");
  assert.deepEqual(mx, [
    { exchange: "mx1.example.test", priority: 10 },
    { exchange: "mx2.example.test", priority: 20 },
  ]);
  const nodeMx = await node.resolveMx("example.test");
  assert.deepEqual(nodeMx.map((m) => ({ exchange: m.exchange, priority: m.priority })), mx);
});

void test("TXT: one string per character-string, one char per octet", async (t) => {
  const { r } = await setup(t);
  assert.deepEqual(await r.resolve("multi.example.test", "TXT"), [["v=DKIM1; k=rsa; ", "p=MIIB"], ["second"]]);
  assert.deepEqual(await r.resolve("bytes.example.test", "TXT"), [["a\u00e9b\u0000\u00ff", "c\u00c3\u00a9"]]);
  assert.deepEqual(await r.resolve("mapped.example.test", "AAAA"), ["::ffff:192.0.2.1"]);
});

void test("TLSA, SOA and MX shapes; query() adds ttl and the AD bit", async (t) => {
  const { r } = await setup(t);
  const tlsa = await r.query("_25._tcp.mx1.example.test", "TLSA");
  assert.deepEqual(tlsa, { records: [{ usage: 3, selector: 1, matchingType: 1, data: cert }], ttl: 300, authenticated: false });
  assert.ok(Buffer.isBuffer((tlsa.records[0] as { data: unknown }).data));
  assert.deepEqual(await r.resolve("example.test", "SOA"), [
    { nsname: "ns.example.test", hostmaster: "host\\.master.example.test", serial: 7, refresh: 1, retry: 2, expire: 3, minttl: 4 },
  ]);
  assert.equal((await r.query("example.test", "MX")).ttl, 600);
});

void test("CAA records: flags, critical bit, tag and value; long values are cut", async (t) => {
  const { r } = await setup(t);
  assert.deepEqual(await r.resolve("caa.example.test", "caa"), [
    { critical: false, flags: 0, tag: "issue", value: "letsencrypt.org" },
    { critical: true, flags: 128, tag: "tbs", value: "x" },
    { critical: false, flags: 0, tag: "iodef", value: "mailto:caa@example.test" },
  ]);
  const long = (await r.resolve("longcaa.example.test", "CAA")) as { value: string }[];
  assert.equal(long[0]?.value.length, MAX_CAA_VALUE);
  await rejectsWith(r.query("example.test", "CAA"), "ENODATA");
});

void test("the query carries RD, AD and EDNS0 with a 1232-octet payload", async (t) => {
  const { server, r } = await setup(t);
  await r.resolve("example.test", "A");
  const q = server.queries[0];
  assert.ok(q);
  assert.equal(q.transport, "udp");
  assert.equal(q.name, "example.test");
  assert.equal(q.flags & 0x8000, 0, "QR=0");
  assert.ok(q.flags & 0x0100, "RD");
  assert.ok(q.flags & 0x0020, "AD");
  assert.equal(q.ednsSize, 1232);
});

void test("CNAME chains are followed inside the answer; TTL is the chain's minimum; loops fail", async (t) => {
  const { r } = await setup(t);
  assert.deepEqual(await r.query("alias.example.test", "A"), { records: ["192.0.2.20", "192.0.2.21"], ttl: 50, authenticated: false });
  assert.deepEqual(await r.resolve("alias.example.test", "CNAME"), ["Alias2.Example.Test"]);
  await rejectsWith(r.resolve("loop1.example.test", "A"), "EBADRESP");
});

void test("NXDOMAIN → ENOTFOUND, NODATA → ENODATA, with hostname and rrtype", async (t) => {
  const { r } = await setup(t);
  const nx = await rejectsWith(r.resolve("nowhere.example.test", "TXT"), "ENOTFOUND");
  assert.equal(nx.hostname, "nowhere.example.test");
  assert.equal(nx.rrtype, "TXT");
  assert.equal(nx.authenticated, false);
  const nodata = await rejectsWith(r.resolve("www.example.test", "MX"), "ENODATA");
  assert.equal(nodata.rrtype, "MX");
  await rejectsWith(r.resolve("alias.example.test", "MX"), "ENODATA");
});

void test("a silent server: ETIMEOUT after attempts × timeout", async (t) => {
  const { server, r } = await setup(t, { attempts: 3, timeoutMs: 100 });
  server.mode = "drop";
  const start = performance.now();
  await rejectsWith(r.resolve("example.test", "A"), "ETIMEOUT");
  const elapsed = performance.now() - start;
  assert.ok(elapsed >= 290 && elapsed < 2000, `elapsed ${elapsed}`);
  assert.equal(server.queries.length, 3);
});

void test("failover: the second server answers when the first does not", async (t) => {
  const first = await startTestDnsServer(zone());
  const second = await startTestDnsServer(zone());
  first.mode = "drop";
  const r = new WireResolver({ servers: [first, second], timeoutMs: 100, attempts: 2, cacheSize: 10 });
  t.after(async () => {
    r.close();
    await Promise.all([first.close(), second.close()]);
  });
  assert.deepEqual(await r.resolve("example.test", "A"), ["192.0.2.10"]);
  assert.equal(first.queries.length, 1);
  assert.equal(second.queries.length, 1);
});

void test("SERVFAIL and REFUSED move on to the next server; the last code is thrown", async (t) => {
  const a = await startTestDnsServer(zone());
  const b = await startTestDnsServer(zone());
  a.mode = "servfail";
  b.mode = "refused";
  const r = new WireResolver({ servers: [a, b], timeoutMs: 500, attempts: 2, cacheSize: 10 });
  t.after(async () => {
    r.close();
    await Promise.all([a.close(), b.close()]);
  });
  await rejectsWith(r.resolve("example.test", "A"), "EREFUSED");
  assert.equal(a.queries.length + b.queries.length, 2);
  b.mode = "answer";
  assert.deepEqual(await r.resolve("example.test", "A"), ["192.0.2.10"], "SERVFAIL was not cached; b answered");
  assert.equal(a.queries.length, 2);
});

void test("FORMERR → EFORMERR; a closed port → ECONNREFUSED", async (t) => {
  const { server, r } = await setup(t);
  server.mode = "formerr";
  await rejectsWith(r.resolve("example.test", "A"), "EFORMERR");
  const gone = await startTestDnsServer({});
  await gone.close();
  const r2 = new WireResolver({ servers: [gone], timeoutMs: 1000, attempts: 1, cacheSize: 0 });
  t.after(() => r2.close());
  await rejectsWith(r2.resolve("example.test", "A"), "ECONNREFUSED");
});

void test("TC=1 over UDP: the question is repeated over TCP to the same server", async (t) => {
  const { server, r } = await setup(t);
  server.mode = "truncate";
  assert.deepEqual(await r.resolve("multi.example.test", "TXT"), [["v=DKIM1; k=rsa; ", "p=MIIB"], ["second"]]);
  assert.deepEqual(
    server.queries.map((q) => q.transport),
    ["udp", "tcp"],
  );
  assert.equal(server.queries[1]?.name, "multi.example.test");
});

void test("spoofed datagrams (wrong id, wrong question, QR=0, garbage) are ignored", async (t) => {
  const { server, r } = await setup(t, { cacheSize: 0 });
  for (const spoof of ["id", "question", "qr", "garbage"] as const) {
    server.spoof = spoof;
    assert.deepEqual(await r.resolve("example.test", "A"), ["192.0.2.10"], spoof);
  }
  server.answerAfterSpoof = false;
  const r2 = new WireResolver({ servers: [server], timeoutMs: 100, attempts: 1, cacheSize: 0 });
  t.after(() => r2.close());
  for (const spoof of ["id", "question", "qr"] as const) {
    server.spoof = spoof;
    const err = await rejectsWith(r2.resolve("example.test", "A"), "ETIMEOUT");
    assert.ok(!err.message.includes(SPOOF_A));
  }
  server.spoof = "garbage";
  await rejectsWith(r2.resolve("example.test", "A"), "EBADRESP");
});

void test("AD=1 is reported as authenticated, for answers and for denials", async (t) => {
  const { server, r } = await setup(t);
  server.ad = true;
  assert.equal((await r.query("example.test", "A")).authenticated, true);
  const err = await rejectsWith(r.query("nowhere.example.test", "TLSA"), "ENOTFOUND");
  assert.equal(err.authenticated, true);
  server.ad = false;
  assert.equal((await r.query("www.example.test", "A")).authenticated, false);
});

void test("the AD bit is believed only from loopback servers unless dns.trust_ad says otherwise; an unbelieved one is cleared", async (t) => {
  const server = await startTestDnsServer(zone());
  server.ad = true;
  const make = (trustAd?: "loopback" | "always" | "never"): WireResolver => {
    const r = new WireResolver({ servers: [server], timeoutMs: 1000, attempts: 1, cacheSize: 100, ...(trustAd !== undefined ? { trustAd } : {}) });
    t.after(() => r.close());
    return r;
  };
  t.after(() => server.close());
  // The test server is on 127.0.0.1: believed by default and with "always", cleared with "never" (answers and denials).
  for (const [trust, want] of [[undefined, true], ["always", true], ["never", false]] as const) {
    const r = make(trust);
    assert.equal(r.adTrusted, want, String(trust));
    assert.equal((await r.query("example.test", "A")).authenticated, want, String(trust));
    assert.equal((await rejectsWith(r.query("nowhere.example.test", "TLSA"), "ENOTFOUND")).authenticated, want, String(trust));
  }
  // Servers off loopback (never queried here): not believed unless "always"; one off-loopback server among loopback ones is enough to distrust.
  const remote = { servers: [{ host: "192.0.2.53", port: 53 }], timeout: 500, attempts: 1, cacheSize: 10 };
  const off = createResolver(remote);
  const mixed = createResolver({ ...remote, servers: [{ host: "127.0.0.1", port: 53 }, { host: "2001:db8::53", port: 53 }] });
  const vouched = createResolver({ ...remote, trustAd: "always" });
  t.after(() => [off, mixed, vouched].forEach((r) => r.close()));
  assert.deepEqual([off.adTrusted, mixed.adTrusted, vouched.adTrusted], [false, false, true]);
  assert.deepEqual(["127.0.0.1", "127.53.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "10.0.0.53", "::ffff:10.0.0.53", "fe80::1%eth0"].map(isLoopback), [true, true, true, true, false, false, false, false, false]);
  assert.equal(adTrusted([]), false);
});

void test("bad names and unsupported types are rejected without a query", async (t) => {
  const { server, r } = await setup(t);
  const long = `${"a".repeat(63)}.`.repeat(4) + "test"; // 4 × 64 + 4 = 260 > 253
  for (const name of ["", ".", "a..b", `${"x".repeat(64)}.test`, long, "a b.test", "tab\t.test", "new\nline.test"]) {
    await rejectsWith(r.resolve(name, "A"), "EBADNAME");
  }
  await rejectsWith(r.resolve("example.test", "ANY"), "EBADQUERY");
  await rejectsWith(r.resolve("example.test", "SRV"), "EBADQUERY");
  assert.equal(server.queries.length, 0);
  // 63-octet labels and 253 characters in all are fine (answered NXDOMAIN).
  const max = `${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(63)}.${"e".repeat(61)}`;
  assert.equal(max.length, 253);
  await rejectsWith(r.resolve(max, "A"), "ENOTFOUND");
  assert.equal(server.queries.length, 1);
});

void test("close() cancels exchanges in flight and later queries", async (t) => {
  const { server, r } = await setup(t, { timeoutMs: 5000 });
  server.mode = "drop";
  const pending = r.resolve("example.test", "A");
  await new Promise((resolve) => setTimeout(resolve, 20));
  const start = performance.now();
  r.close();
  await rejectsWith(pending, "ECANCELLED");
  assert.ok(performance.now() - start < 1000);
  await rejectsWith(r.resolve("example.test", "A"), "ECANCELLED");
});
