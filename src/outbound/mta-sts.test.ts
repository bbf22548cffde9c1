// Tests for MTA-STS: parsers, MX matching, the HTTPS fetch against a local
// server with a test CA made by openssl, the client's cache rules, and the
// post-handshake certificate check on real TLS connections. Loopback only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { StaticResolver } from "../dns/index.ts";
import type { StaticZone } from "../dns/index.ts";
import { MemoryMtaStsStore, MtaStsClient, checkCertificate, fetchStsPolicy, mxMatches, normalizeDomain, parseStsPolicy, parseStsRecord, stsVerifier } from "./mta-sts.ts";
import type { MtaStsPolicy, StsFetchOptions } from "./mta-sts.ts";
import { CertFactory, policyServer, tlsConnect, tlsServer } from "./mta-sts-testing.ts";
import type { Issued, PolicyServer } from "./mta-sts-testing.ts";

const GOOD = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmx: *.backup.example.test\nmax_age: 86400\n";

// ---------------------------------------------------------------------------
// Parsers

test("parseStsRecord: RFC 8461 §3.1 syntax", () => {
  const ok: [string, string][] = [
    ["v=STSv1; id=20160831085700Z;", "20160831085700Z"],
    ["v=STSv1;id=abc", "abc"],
    ["v=STSv1 ;\tid=abc ; ", "abc"],
    ["v=STSv1; id=abc; ext_1=x-y; z=1", "abc"],
    ["v=STSv1; id=first; id=second", "first"],
    [`v=STSv1; id=${"a".repeat(32)}`, "a".repeat(32)],
  ];
  for (const [txt, id] of ok) assert.equal(parseStsRecord(txt), id, txt);
  const bad = ["", "v=STSv1", "v=STSv1;", "v=STSv1; id=", `v=STSv1; id=${"a".repeat(33)}`, "v=STSv1; id=a-b", "id=abc; v=STSv1", "v=stsv1; id=abc", "v=STSv2; id=abc", "v=STSv1;; id=abc", "v=STSv1; id=abc; bad", "v=STSv1; id=abc; x=a b", " v=STSv1; id=abc"];
  for (const txt of bad) assert.equal(parseStsRecord(txt), undefined, JSON.stringify(txt));
});

test("parseStsPolicy: fields, CRLF/LF, unknown keys, duplicates, limits", () => {
  const p = parseStsPolicy(GOOD);
  assert.deepEqual(p, { ok: true, policy: { mode: "enforce", mx: ["mx.example.test", "*.backup.example.test"], maxAge: 86400 } });
  assert.deepEqual(parseStsPolicy(GOOD.replace(/\n/g, "\r\n")), p);
  assert.deepEqual(parseStsPolicy(GOOD.trimEnd()), p);
  assert.deepEqual(parseStsPolicy("version: STSv1\nfoo_bar: anything at all\nmode: enforce\nmx: MX.Example.Test.\nmax_age: 0"), { ok: true, policy: { mode: "enforce", mx: ["mx.example.test"], maxAge: 0 } });
  // first occurrence wins for non-mx keys (§3.2)
  const dup = parseStsPolicy("version: STSv1\nmode: testing\nmode: enforce\nmx: a.test\nmax_age: 5\nmax_age: 99");
  assert.ok(dup.ok && dup.policy.mode === "testing" && dup.policy.maxAge === 5);
  assert.deepEqual(parseStsPolicy("version: STSv1\nmode: none\nmax_age: 86400"), { ok: true, policy: { mode: "none", mx: [], maxAge: 86400 } });
  assert.ok(parseStsPolicy(`version: STSv1\nmode: testing\nmx: a.test\nmax_age: 31557600`).ok);
  const bad = [
    "garbage",
    "version: STSv1\nmode: enforce\nmax_age: 86400",
    "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1",
    "mode: enforce\nmx: a.test\nmax_age: 1",
    "version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1",
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601",
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1",
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 12345678901",
    "version: STSv1\nmode: enforce\nmx: a.test",
    "version: STSv1\nmode: enforce\nmx: a*.test\nmax_age: 1",
    "version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1",
    "version: STSv1\nmode: enforce\nmx: a_b.test\nmax_age: 1",
    "version: STSv1\nmode enforce\nmx: a.test\nmax_age: 1",
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\nx: a\u0001b",
  ];
  for (const body of bad) assert.equal(parseStsPolicy(body).ok, false, JSON.stringify(body));
});

test("mxMatches: RFC 8461 §4.1 table", () => {
  const policy = { mx: ["mail.example.com", "*.example.net", "MX.Upper.Test."] };
  const table: [string, boolean][] = [
    ["mail.example.com", true],
    ["MAIL.EXAMPLE.COM", true],
    ["mail.example.com.", true],
    ["mail2.example.com", false],
    ["example.com", false],
    ["a.mail.example.com", false],
    ["mx1.example.net", true],
    ["MX1.Example.Net.", true],
    ["example.net", false],
    [".example.net", false],
    ["a.b.example.net", false],
    ["mx1.example.net.evil.test", false],
    ["*.example.net", false],
    ["mx.upper.test", true],
    ["", false],
  ];
  for (const [host, want] of table) assert.equal(mxMatches(policy, host), want, host);
  assert.equal(mxMatches({ mx: [] }, "mail.example.com"), false);
});

test("normalizeDomain: LDH names only, one trailing dot, lower case", () => {
  assert.equal(normalizeDomain("Example.COM."), "example.com");
  for (const d of [".example.com", "example..com", "", "-a.com", "exa mple.com", "ex_ample.com", "é.com", "a.com.."]) assert.equal(normalizeDomain(d), undefined, d);
});

// ---------------------------------------------------------------------------
// HTTPS fetch and the client, against a local policy server

let certs: CertFactory;
let ca: Issued;
let server: PolicyServer;
const byName = new Map<string, Issued>();
let fetchOpts: StsFetchOptions;

before(async () => {
  certs = await CertFactory.create();
  ca = await certs.caCert("Wardmail Test CA");
  const otherCa = await certs.caCert("Untrusted CA");
  const good = await certs.make({ names: ["mta-sts.example.test", "mta-sts.b.test", "mta-sts.c.test"], issuer: ca });
  byName.set("mta-sts.example.test", good);
  byName.set("mta-sts.b.test", good);
  byName.set("mta-sts.c.test", good);
  byName.set("mta-sts.wrongname.test", await certs.make({ names: ["wrongname.test"], issuer: ca }));
  byName.set("mta-sts.untrusted.test", await certs.make({ names: ["mta-sts.untrusted.test"], issuer: otherCa }));
  byName.set("mta-sts.cnonly.test", await certs.make({ cn: "mta-sts.cnonly.test", issuer: ca }));
  byName.set("mta-sts.expired.test", await certs.make({ names: ["mta-sts.expired.test"], issuer: ca, days: -1 }));
  byName.set("mta-sts.x.wild.test", await certs.make({ names: ["*.x.wild.test"], issuer: ca }));
  server = await policyServer((n) => byName.get(n), good);
  fetchOpts = { ca: ca.cert, connect: { host: "127.0.0.1", port: server.port }, timeoutMs: 5000 };
});

after(async () => {
  await server.close();
  await certs.cleanup();
});

function route(host: string, body: string, extra: Partial<{ status: number; contentType: string; chunked: boolean; hang: boolean; headers: Record<string, string> }> = {}): void {
  server.routes.set(host, { status: 200, contentType: "text/plain", body, ...extra });
}

test("fetchStsPolicy: a valid policy over validated HTTPS", async () => {
  route("mta-sts.example.test", GOOD);
  assert.deepEqual(await fetchStsPolicy("example.test", fetchOpts), { ok: true, body: GOOD });
  route("mta-sts.example.test", GOOD, { contentType: "Text/Plain; charset=utf-8" });
  assert.deepEqual(await fetchStsPolicy("EXAMPLE.test.", fetchOpts), { ok: true, body: GOOD });
  route("mta-sts.x.wild.test", GOOD);
  assert.equal((await fetchStsPolicy("x.wild.test", fetchOpts)).ok, true, "wildcard certificate *.x.wild.test covers mta-sts.x.wild.test");
});

test("fetchStsPolicy: certificate failures are sts-webpki-invalid", async () => {
  for (const d of ["wrongname.test", "untrusted.test", "cnonly.test", "expired.test"]) {
    route(`mta-sts.${d}`, GOOD);
    const r = await fetchStsPolicy(d, fetchOpts);
    assert.equal(r.ok, false, d);
    assert.equal(!r.ok && r.reason, "sts-webpki-invalid", `${d}: ${JSON.stringify(r)}`);
    assert.equal(server.hits.get(`mta-sts.${d}`), undefined, "no request is sent over an unvalidated connection");
  }
  // without the test CA, Node's default CA set does not trust it either
  const r = await fetchStsPolicy("example.test", { connect: fetchOpts.connect });
  assert.equal(!r.ok && r.reason, "sts-webpki-invalid");
});

test("fetchStsPolicy: content type, status, redirects, size, timeout, refused", async () => {
  const fail = async (d: string, reason: string, timeoutMs = 5000): Promise<void> => {
    const r = await fetchStsPolicy(d, { ...fetchOpts, timeoutMs });
    assert.equal(r.ok, false, d);
    assert.equal(!r.ok && r.reason, reason, `${d}: ${JSON.stringify(r)}`);
  };
  route("mta-sts.b.test", GOOD, { contentType: "text/html" });
  await fail("b.test", "sts-policy-invalid");
  route("mta-sts.b.test", GOOD, { contentType: "text/plainx" });
  await fail("b.test", "sts-policy-invalid");
  route("mta-sts.b.test", GOOD, { status: 404 });
  await fail("b.test", "sts-policy-fetch-error");
  route("mta-sts.b.test", GOOD, { status: 301, headers: { location: "https://mta-sts.c.test/.well-known/mta-sts.txt" } });
  route("mta-sts.c.test", GOOD);
  server.hits.delete("mta-sts.c.test");
  await fail("b.test", "sts-policy-fetch-error");
  assert.equal(server.hits.get("mta-sts.c.test"), undefined, "redirect not followed");
  const big = GOOD + "#".repeat(64 * 1024);
  route("mta-sts.b.test", big);
  await fail("b.test", "sts-policy-invalid");
  route("mta-sts.b.test", big, { chunked: true });
  await fail("b.test", "sts-policy-invalid");
  const exact = GOOD + "x".repeat(64 * 1024 - GOOD.length);
  route("mta-sts.b.test", exact, { chunked: true });
  assert.equal((await fetchStsPolicy("b.test", fetchOpts)).ok, true, "exactly 64 KiB is accepted");
  route("mta-sts.b.test", GOOD, { hang: true });
  const t0 = Date.now();
  await fail("b.test", "sts-policy-fetch-error", 300);
  assert.ok(Date.now() - t0 < 4000, "the overall timeout ends a request the server never answers");
  const closed = await fetchStsPolicy("b.test", { ...fetchOpts, connect: { host: "127.0.0.1", port: 1 } });
  assert.equal(!closed.ok && closed.reason, "sts-policy-fetch-error");
  assert.equal(!(await fetchStsPolicy(".bad", fetchOpts)).ok, true);
});

function client(zone: StaticZone, opts: { store?: MemoryMtaStsStore; now?: () => number } = {}): MtaStsClient {
  return new MtaStsClient({ resolver: new StaticResolver(zone), fetch: fetchOpts, ...opts });
}

const txt = (id: string): StaticZone[string] => ({ TXT: [`v=STSv1; id=${id}`] });

test("MtaStsClient: fetch, then the cache while the id is unchanged, refetch on a new id", async () => {
  route("mta-sts.example.test", GOOD);
  server.hits.delete("mta-sts.example.test");
  const store = new MemoryMtaStsStore();
  const c = client({ "_mta-sts.example.test": txt("one") }, { store });
  const want: MtaStsPolicy = { mode: "enforce", mx: ["mx.example.test", "*.backup.example.test"], maxAge: 86400, id: "one" };
  assert.deepEqual(await c.lookup("example.test"), { status: "valid", policy: want, source: "fetched" });
  assert.deepEqual(await c.policyFor("Example.Test."), want);
  assert.equal(server.hits.get("mta-sts.example.test"), 1, "same id: no second fetch");
  // a new client on the same store (a restart) uses the persisted policy
  assert.deepEqual(await client({ "_mta-sts.example.test": txt("one") }, { store }).lookup("example.test"), { status: "valid", policy: want, source: "cache" });
  assert.equal(server.hits.get("mta-sts.example.test"), 1);
  // new id → refetch, the new policy replaces the old
  route("mta-sts.example.test", GOOD.replace("enforce", "testing"));
  const c2 = client({ "_mta-sts.example.test": txt("two") }, { store });
  assert.deepEqual(await c2.policyFor("example.test"), { ...want, mode: "testing", id: "two" });
  assert.equal(server.hits.get("mta-sts.example.test"), 2);
  assert.equal(store.get("example.test")?.policy.id, "two");
});

test("MtaStsClient: a cached policy survives failed discovery and fetches (§3.3, §5.1) until it expires", async () => {
  let now = 1_000_000;
  const store = new MemoryMtaStsStore();
  route("mta-sts.b.test", "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 100");
  const first = await client({ "_mta-sts.b.test": txt("a1") }, { store, now: () => now }).policyFor("b.test");
  assert.equal(first?.mode, "enforce");
  // new id but the fetch is blocked (certificate replaced by an attacker, 500, bad body)
  route("mta-sts.b.test", "", { status: 500 });
  const r = await client({ "_mta-sts.b.test": txt("a2") }, { store, now: () => now }).lookup("b.test");
  assert.equal(r.status, "valid");
  assert.ok(r.status === "valid" && r.source === "cache" && r.policy.id === "a1" && r.failure?.reason === "sts-policy-fetch-error");
  route("mta-sts.b.test", "garbage");
  const r2 = await client({ "_mta-sts.b.test": txt("a2") }, { store, now: () => now }).lookup("b.test");
  assert.ok(r2.status === "valid" && r2.policy.id === "a1" && r2.failure?.reason === "sts-policy-invalid");
  // TXT removed, or DNS failing: the cached policy still applies
  assert.equal((await client({}, { store, now: () => now }).policyFor("b.test"))?.id, "a1");
  const r3 = await client({ "_mta-sts.b.test": "TIMEOUT" }, { store, now: () => now }).lookup("b.test");
  assert.ok(r3.status === "valid" && r3.failure?.reason === "sts-policy-fetch-error");
  // expired: a failure now means no policy
  now += 100_001;
  const r4 = await client({ "_mta-sts.b.test": txt("a2") }, { store, now: () => now }).lookup("b.test");
  assert.equal(r4.status, "error");
  assert.equal(await client({}, { store, now: () => now }).policyFor("b.test"), undefined);
  // expired with the same id: refetched
  route("mta-sts.b.test", "version: STSv1\nmode: none\nmax_age: 100");
  const r5 = await client({ "_mta-sts.b.test": txt("a1") }, { store, now: () => now }).lookup("b.test");
  assert.ok(r5.status === "valid" && r5.source === "fetched" && r5.policy.mode === "none");
});

test("MtaStsClient: TXT record rules (several, invalid, other records) and concurrent lookups", async () => {
  route("mta-sts.c.test", GOOD);
  const several = client({ "_mta-sts.c.test": { TXT: ["v=STSv1; id=a", "v=STSv1; id=b"] } });
  assert.deepEqual(await several.lookup("c.test"), { status: "none", detail: "several STSv1 TXT records" });
  const mixed = client({ "_mta-sts.c.test": { TXT: ["some other text", ["v=STSv1; ", "id=split"]] } });
  assert.equal((await mixed.policyFor("c.test"))?.id, "split");
  assert.equal((await client({ "_mta-sts.c.test": { TXT: ["v=STSv1; id=bad-id"] } }).lookup("c.test")).status, "none");
  assert.equal((await client({ "_mta-sts.c.test": { A: ["192.0.2.1"] } }).lookup("c.test")).status, "none");
  assert.equal((await client({ "_mta-sts.c.test": "SERVFAIL" }).lookup("c.test")).status, "error");
  server.hits.delete("mta-sts.c.test");
  const c = client({ "_mta-sts.c.test": txt("par") });
  const all = await Promise.all([c.policyFor("c.test"), c.policyFor("C.TEST"), c.policyFor("c.test.")]);
  assert.ok(all.every((p) => p?.id === "par"));
  assert.equal(server.hits.get("mta-sts.c.test"), 1, "one fetch for concurrent lookups");
  let fetched = 0;
  const injected = new MtaStsClient({
    resolver: new StaticResolver({ "_mta-sts.d.test": txt("x") }),
    fetcher: (d) => {
      fetched++;
      assert.equal(d, "d.test");
      return Promise.resolve({ ok: true, body: "version: STSv1\nmode: none\nmax_age: 60" });
    },
  });
  assert.equal((await injected.policyFor("d.test"))?.mode, "none");
  assert.equal(fetched, 1);
});

// ---------------------------------------------------------------------------
// The MX certificate check on real TLS connections

test("checkCertificate: PKIX validation and the MX name on a real handshake", async (t) => {
  const otherCa = await certs.caCert("Other CA");
  const inter = await certs.caCert("Intermediate CA", ca);
  const cases: [string, Issued, string | undefined][] = [
    ["good", await certs.make({ names: ["mx.example.test"], issuer: ca }), undefined],
    ["good via an intermediate", await certs.make({ names: ["mx.example.test"], issuer: inter }), undefined],
    ["wildcard", await certs.make({ names: ["*.example.test"], issuer: ca }), undefined],
    ["wrong name", await certs.make({ names: ["other.example.test"], issuer: ca }), "certificate-host-mismatch"],
    ["CN only", await certs.make({ cn: "mx.example.test", issuer: ca }), "certificate-host-mismatch"],
    ["two-label wildcard", await certs.make({ names: ["*.test"], issuer: ca }), "certificate-host-mismatch"],
    ["untrusted CA", await certs.make({ names: ["mx.example.test"], issuer: otherCa }), "certificate-not-trusted"],
    ["self-signed", await certs.make({ names: ["mx.example.test"] }), "certificate-not-trusted"],
    ["expired", await certs.make({ names: ["mx.example.test"], issuer: ca, days: -1 }), "certificate-expired"],
  ];
  for (const [label, leaf, reason] of cases) {
    const srv = await tlsServer({ key: leaf.key, cert: leaf.chain });
    t.after(() => srv.close());
    // the SMTP client connects with servername = the MX host, or (session resumption, a CNAME) something else
    for (const servername of ["mx.example.test", "other.name.test"]) {
      const socket = await tlsConnect(srv.port, servername, ca.cert);
      const got = checkCertificate(socket, "MX.example.test.");
      socket.destroy();
      if (reason === undefined) assert.deepEqual(got, { ok: true }, `${label} (${servername})`);
      else assert.equal(!got.ok && got.reason, reason, `${label} (${servername}): ${JSON.stringify(got)}`);
    }
  }
  // stsVerifier is the same check bound to the MX host
  const leaf = cases[0]?.[1];
  assert.ok(leaf);
  const srv = await tlsServer({ key: leaf.key, cert: leaf.chain });
  t.after(() => srv.close());
  const socket = await tlsConnect(srv.port, "mx.example.test", ca.cert);
  assert.deepEqual(stsVerifier("mx.example.test")(socket), { ok: true });
  assert.equal(stsVerifier("mx2.example.test")(socket).ok, false);
  socket.destroy();
  // with Node's default CA set (no test CA) the same chain is untrusted
  const plain = await tlsConnect(srv.port, "mx.example.test");
  const got = checkCertificate(plain, "mx.example.test");
  plain.destroy();
  assert.equal(!got.ok && got.reason, "certificate-not-trusted");
});
