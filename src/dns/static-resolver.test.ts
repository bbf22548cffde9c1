// Tests for StaticResolver, the in-memory test double: shapes, codes, CNAME,
// the "*" key, the calls hook, and that it checks names like WireResolver.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DnsError, StaticResolver } from "./index.ts";

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    assert.ok(err instanceof DnsError, `not a DnsError: ${String(err)}`);
    return err.code;
  }
}

const data = Buffer.from([1, 2, 3]);

function resolver(calls?: (name: string, type: string) => void): StaticResolver {
  return new StaticResolver(
    {
      "Example.Test.": {
        A: ["192.0.2.1"],
        AAAA: ["2001:db8::1"],
        TXT: ["v=spf1 -all", ["part1", "part2"]],
        MX: [
          [10, "mx1.example.test"],
          [20, "mx2.example.test"],
        ],
        NS: ["ns.example.test"],
        SOA: { nsname: "ns.example.test", hostmaster: "h.example.test", serial: 1, refresh: 2, retry: 3, expire: 4, minttl: 5 },
      },
      "alias.example.test": { CNAME: "mid.example.test" },
      "mid.example.test": { CNAME: "example.test", authenticated: true },
      "signed.example.test": { A: ["192.0.2.7"], TLSA: [{ usage: 3, selector: 1, matchingType: 1, data }], authenticated: true, ttl: 60 },
      "1.2.0.192.in-addr.arpa": { PTR: ["mx1.example.test"] },
      "caa.example.test": { CAA: [{ critical: false, flags: 0, tag: "issue", value: "letsencrypt.org" }] },
      "slow.example.test": "TIMEOUT",
      "broken.example.test": "SERVFAIL",
      "loop.example.test": { CNAME: "loop.example.test" },
    },
    calls ? { calls } : {},
  );
}

void test("shapes are those of WireResolver (node's dns.promises.resolve)", async () => {
  const r = resolver();
  assert.deepEqual(await r.resolve("example.test", "A"), ["192.0.2.1"]);
  assert.deepEqual(await r.resolve("EXAMPLE.test", "AAAA"), ["2001:db8::1"]);
  assert.deepEqual(await r.resolve("example.test.", "TXT"), [["v=spf1 -all"], ["part1", "part2"]]);
  assert.deepEqual(await r.resolve("example.test", "MX"), [
    { exchange: "mx1.example.test", priority: 10 },
    { exchange: "mx2.example.test", priority: 20 },
  ]);
  assert.deepEqual(await r.resolve("example.test", "NS"), ["ns.example.test"]);
  assert.deepEqual(await r.resolve("example.test", "SOA"), [{ nsname: "ns.example.test", hostmaster: "h.example.test", serial: 1, refresh: 2, retry: 3, expire: 4, minttl: 5 }]);
  assert.deepEqual(await r.resolve("1.2.0.192.in-addr.arpa", "PTR"), ["mx1.example.test"]);
  assert.deepEqual(await r.query("signed.example.test", "TLSA"), { records: [{ usage: 3, selector: 1, matchingType: 1, data }], ttl: 60, authenticated: true });
  assert.deepEqual(await r.query("example.test", "A"), { records: ["192.0.2.1"], ttl: 300, authenticated: false });
  assert.deepEqual(await r.resolve("caa.example.test", "CAA"), [{ critical: false, flags: 0, tag: "issue", value: "letsencrypt.org" }]);
});

void test("answers are copies: mutating one does not change the zone", async () => {
  const r = resolver();
  const txt = (await r.resolve("example.test", "TXT")) as string[][];
  txt[1]?.push("x");
  const tlsa = (await r.resolve("signed.example.test", "TLSA")) as { data: Buffer }[];
  tlsa[0]?.data.fill(0);
  assert.deepEqual(await r.resolve("example.test", "TXT"), [["v=spf1 -all"], ["part1", "part2"]]);
  assert.deepEqual(data, Buffer.from([1, 2, 3]));
});

void test("codes: ENOTFOUND, ENODATA, ETIMEOUT, ESERVFAIL, EBADNAME, EBADQUERY", async () => {
  const r = resolver();
  assert.equal(await code(r.resolve("nowhere.example.test", "A")), "ENOTFOUND");
  assert.equal(await code(r.resolve("signed.example.test", "MX")), "ENODATA");
  assert.equal(await code(r.resolve("slow.example.test", "A")), "ETIMEOUT");
  assert.equal(await code(r.resolve("broken.example.test", "TXT")), "ESERVFAIL");
  assert.equal(await code(r.resolve("a..b", "A")), "EBADNAME");
  assert.equal(await code(r.resolve(`${"x".repeat(64)}.test`, "A")), "EBADNAME");
  assert.equal(await code(r.resolve("example.test", "SRV")), "EBADQUERY");
  assert.equal(await code(r.resolve("loop.example.test", "A")), "EBADRESP");
});

void test("CNAME is followed; authenticated only if every link is", async () => {
  const r = resolver();
  assert.deepEqual(await r.query("alias.example.test", "MX"), {
    records: [
      { exchange: "mx1.example.test", priority: 10 },
      { exchange: "mx2.example.test", priority: 20 },
    ],
    ttl: 300,
    authenticated: false,
  });
  assert.deepEqual(await r.resolve("alias.example.test", "CNAME"), ["mid.example.test"]);
  const z = new StaticResolver({ "a.test": { CNAME: "b.test", authenticated: true }, "b.test": { A: ["192.0.2.5"], authenticated: true } });
  assert.equal((await z.query("a.test", "A")).authenticated, true);
  const err = await z.query("a.test", "TLSA").catch((e: unknown) => e);
  assert.ok(err instanceof DnsError && err.code === "ENODATA" && err.authenticated);
});

void test('"*" answers for every name not listed; calls are reported', async () => {
  const seen: string[] = [];
  const r = new StaticResolver({ "*": "TIMEOUT", "listed.test": { A: ["192.0.2.1"] } }, { calls: (n, t) => seen.push(`${n}/${t}`) });
  assert.equal(await code(r.resolve("anything.example", "TXT")), "ETIMEOUT");
  assert.deepEqual(await r.resolve("listed.test", "A"), ["192.0.2.1"]);
  assert.deepEqual(seen, ["anything.example/TXT", "listed.test/A"]);
  const calls: string[] = [];
  const r2 = resolver((n, t) => calls.push(`${n} ${t}`));
  await r2.resolve("alias.example.test", "A");
  assert.deepEqual(calls, ["alias.example.test A"]);
  assert.throws(() => new StaticResolver({ "bad..name": {} }), RangeError);
});
