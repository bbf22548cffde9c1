// Tests for DANE: tlsaFor over a StaticResolver (AD / no AD / NXDOMAIN /
// NODATA / SERVFAIL / timeout, usable and unusable records), and verifyDane
// on real TLS handshakes on 127.0.0.1 with certificates made by openssl.
// TLSA association data is computed with openssl, not with dane.ts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { StaticResolver } from "../dns/index.ts";
import type { StaticZone, TlsaRecord } from "../dns/index.ts";
import { daneVerifier, spkiOf, tlsaFor, tlsaMatches, usableTlsa, verifyDane } from "./dane.ts";
import type { DaneCheck, VerifyDaneOptions } from "./dane.ts";
import { CertFactory, tlsConnect, tlsServer, tlsaData } from "./mta-sts-testing.ts";
import type { Issued } from "./mta-sts-testing.ts";

const MX = "mx.example.test";
const tlsa = (usage: number, selector: number, matchingType: number, data: Buffer): TlsaRecord => ({ usage, selector, matchingType, data });
const flip = (b: Buffer): Buffer => {
  const c = Buffer.from(b);
  c[c.length - 1] = (c[c.length - 1] ?? 0) ^ 0x01;
  return c;
};

// ---------------------------------------------------------------------------
// tlsaFor

test("tlsaFor: DNSSEC states of the TLSA lookup", async () => {
  const d32 = Buffer.alloc(32, 7);
  const zone: StaticZone = {
    "_25._tcp.secure.test": { TLSA: [tlsa(3, 1, 1, d32), tlsa(2, 0, 1, d32), tlsa(1, 1, 1, d32), tlsa(0, 0, 1, d32)], authenticated: true },
    "_25._tcp.unusable.test": { TLSA: [tlsa(1, 1, 1, d32), tlsa(0, 0, 0, d32), tlsa(3, 2, 1, d32), tlsa(3, 1, 1, Buffer.alloc(31)), tlsa(3, 1, 9, d32)], authenticated: true },
    "_25._tcp.unsigned.test": { TLSA: [tlsa(3, 1, 1, d32)] },
    "_25._tcp.nodata-ad.test": { A: ["192.0.2.1"], authenticated: true },
    "_25._tcp.servfail.test": "SERVFAIL",
    "_25._tcp.timeout.test": "TIMEOUT",
    "_465._tcp.secure.test": { TLSA: [tlsa(3, 0, 2, Buffer.alloc(64))], authenticated: true },
    "_25._tcp.alias.test": { CNAME: "_25._tcp.secure.test", authenticated: false },
  };
  const queried: string[] = [];
  const r = new StaticResolver(zone, { calls: (n) => queried.push(n) });

  const secure = await tlsaFor(r, "secure.test.", true);
  assert.equal(secure.state, "secure");
  assert.ok(secure.state === "secure" && secure.usable && secure.records.length === 2 && secure.ignored === 2);
  assert.ok(secure.state === "secure" && secure.records.every((x) => x.usage === 2 || x.usage === 3), "usages 0 and 1 are ignored (RFC 7672 §3.1.3)");

  const unusable = await tlsaFor(r, "unusable.test", true);
  assert.deepEqual(unusable, { state: "secure", records: [], usable: false, ignored: 5 });

  assert.equal((await tlsaFor(r, "unsigned.test", true)).state, "insecure", "answer without AD");
  assert.equal((await tlsaFor(r, "nodata-ad.test", true)).state, "insecure", "authenticated NODATA");
  assert.equal((await tlsaFor(r, "nxdomain.test", true)).state, "insecure", "NXDOMAIN");
  assert.equal((await tlsaFor(r, "alias.test", true)).state, "insecure", "CNAME chain with an unsigned link");
  const servfail = await tlsaFor(r, "servfail.test", true);
  assert.deepEqual(servfail.state === "bogus" && servfail.reason, "dnssec-invalid");
  const timeout = await tlsaFor(r, "timeout.test", true);
  assert.ok(timeout.state === "error" && timeout.reason === "dnssec-invalid" && /ETIMEOUT/.test(timeout.detail));
  const port465 = await tlsaFor(r, "secure.test", true, 465);
  assert.ok(port465.state === "secure" && port465.records.length === 1);

  queried.length = 0;
  assert.equal((await tlsaFor(r, "secure.test", false)).state, "insecure", "MX name not secure: no DANE");
  assert.deepEqual(queried, [], "and no TLSA query");
  await assert.rejects(tlsaFor(r, "secure.test", true, 0), RangeError);
});

test("usableTlsa: usages 2/3, selectors 0/1, matching 0/1/2 with the right lengths", () => {
  const ok = [tlsa(2, 0, 0, Buffer.alloc(10)), tlsa(3, 1, 1, Buffer.alloc(32)), tlsa(3, 0, 2, Buffer.alloc(64))];
  const bad = [tlsa(0, 0, 1, Buffer.alloc(32)), tlsa(1, 1, 1, Buffer.alloc(32)), tlsa(4, 1, 1, Buffer.alloc(32)), tlsa(3, 2, 1, Buffer.alloc(32)), tlsa(3, 1, 1, Buffer.alloc(64)), tlsa(3, 1, 2, Buffer.alloc(32)), tlsa(3, 1, 0, Buffer.alloc(0)), tlsa(3, 1, 3, Buffer.alloc(32))];
  for (const r of ok) assert.equal(usableTlsa(r), true, JSON.stringify(r));
  for (const r of bad) assert.equal(usableTlsa(r), false, JSON.stringify(r));
});

// ---------------------------------------------------------------------------
// verifyDane on real handshakes

let certs: CertFactory;
let selfLeaf: Issued; // self-signed, DANE-EE
let rsaLeaf: Issued;
let ca: Issued;
let inter: Issued;
let caLeaf: Issued; // ca → leaf for mx.example.test
let deepLeaf: Issued; // ca → inter → leaf
let wrongLeaf: Issued; // ca → leaf for other.example.test
let expiredLeaf: Issued;
const servers: { close(): Promise<void> }[] = [];

before(async () => {
  certs = await CertFactory.create();
  selfLeaf = await certs.make({ names: ["unrelated.invalid"], days: -1 }); // no name or date checks for DANE-EE
  rsaLeaf = await certs.make({ cn: "rsa", keyType: "rsa" });
  ca = await certs.caCert("DANE TA");
  inter = await certs.caCert("DANE Intermediate", ca);
  caLeaf = await certs.make({ names: [MX], issuer: ca });
  deepLeaf = await certs.make({ names: ["*.example.test"], issuer: inter });
  wrongLeaf = await certs.make({ names: ["other.example.test"], issuer: ca });
  expiredLeaf = await certs.make({ names: [MX], issuer: ca, days: -1 });
});

after(async () => {
  for (const s of servers) await s.close();
  await certs.cleanup();
});

/** Handshake with a server presenting `leaf` (and its chain), then run verifyDane. */
async function check(leaf: Issued, records: TlsaRecord[], mx = MX, opts: VerifyDaneOptions = {}): Promise<DaneCheck> {
  const srv = await tlsServer({ key: leaf.key, cert: leaf.chain });
  servers.push(srv);
  const socket = await tlsConnect(srv.port, mx);
  try {
    return verifyDane(socket, records, mx, opts);
  } finally {
    socket.destroy();
  }
}

test("spkiOf: the DER SubjectPublicKeyInfo as openssl extracts it", async () => {
  for (const c of [selfLeaf, rsaLeaf, caLeaf]) {
    const x = new X509Certificate(c.cert);
    assert.deepEqual(spkiOf(x.raw), await tlsaData(c, 1, 0));
    assert.deepEqual(spkiOf(x.raw), x.publicKey.export({ type: "spki", format: "der" }));
  }
  assert.equal(spkiOf(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])), undefined);
  assert.equal(spkiOf(Buffer.alloc(0)), undefined);
  assert.equal(spkiOf(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), undefined);
});

test("DANE-EE(3): every selector/matching combination matches; one bit off does not", async () => {
  for (const leaf of [selfLeaf, rsaLeaf]) {
    for (const selector of [0, 1]) {
      for (const matching of [0, 1, 2]) {
        const data = await tlsaData(leaf, selector, matching);
        assert.ok(tlsaMatches(tlsa(3, selector, matching, data), new X509Certificate(leaf.cert).raw));
        const good = await check(leaf, [tlsa(3, selector, matching, data)]);
        assert.equal(good.ok, true, `3 ${selector} ${matching}: ${JSON.stringify(good)}`);
        assert.ok(good.ok && good.usage === 3);
        const bad = await check(leaf, [tlsa(3, selector, matching, flip(data))]);
        assert.equal(!bad.ok && bad.reason, "tlsa-invalid", `3 ${selector} ${matching} flipped`);
      }
    }
  }
  // one matching record among several wrong ones is enough
  const data = await tlsaData(selfLeaf, 1, 1);
  assert.equal((await check(selfLeaf, [tlsa(3, 1, 1, flip(data)), tlsa(3, 1, 1, data)])).ok, true);
  // the same data under PKIX usages 0/1 is ignored
  for (const usage of [0, 1]) {
    const r = await check(selfLeaf, [tlsa(usage, 1, 1, data)]);
    assert.deepEqual(r, { ok: false, reason: "tlsa-invalid", detail: "no usable TLSA record" });
  }
  // DANE-EE for another key: the self-signed leaf's data does not authenticate the CA-issued one
  assert.equal((await check(caLeaf, [tlsa(3, 1, 1, data)])).ok, false);
});

/** The chain a DANE-TA server sends: the TA (here the self-signed root) included (RFC 7672 §3.1.2). */
const withRoot = (leaf: Issued): Issued => ({ ...leaf, chain: leaf.chain + ca.cert });

test("DANE-TA(2): trust anchor in the chain, signatures, and the MX name", async () => {
  for (const selector of [0, 1]) {
    for (const matching of [0, 1, 2]) {
      const data = await tlsaData(ca, selector, matching);
      const good = await check(withRoot(caLeaf), [tlsa(2, selector, matching, data)]);
      assert.ok(good.ok && good.usage === 2, `2 ${selector} ${matching}: ${JSON.stringify(good)}`);
      const bad = await check(withRoot(caLeaf), [tlsa(2, selector, matching, flip(data))]);
      assert.equal(!bad.ok && bad.reason, "tlsa-invalid", `2 ${selector} ${matching} flipped`);
    }
  }
  const taSpki = await tlsaData(ca, 1, 1);
  // TA left out of the chain: only a full certificate record (2 0 0) can stand for it
  assert.equal((await check(caLeaf, [tlsa(2, 1, 1, taSpki)])).ok, false);
  assert.equal((await check(caLeaf, [tlsa(2, 0, 1, await tlsaData(ca, 0, 1))])).ok, false);
  assert.equal((await check(caLeaf, [tlsa(2, 0, 0, await tlsaData(ca, 0, 0))])).ok, true);
  assert.equal((await check(deepLeaf, [tlsa(2, 0, 0, await tlsaData(ca, 0, 0))])).ok, true, "2 0 0 above a presented intermediate");
  assert.equal((await check(caLeaf, [tlsa(2, 0, 0, await tlsaData(inter, 0, 0))])).ok, false, "2 0 0 of a CA that did not sign");
  // two levels: leaf ← intermediate ← TA; a wildcard leaf name covers the MX
  assert.equal((await check(withRoot(deepLeaf), [tlsa(2, 1, 1, taSpki)])).ok, true);
  assert.equal((await check(deepLeaf, [tlsa(2, 1, 1, await tlsaData(inter, 1, 1))])).ok, true, "the intermediate as TA");
  // the TA must be above the leaf: a DANE-TA record for the leaf itself is not a match
  assert.equal((await check(withRoot(caLeaf), [tlsa(2, 1, 1, await tlsaData(caLeaf, 1, 1))])).ok, false);
  // wrong name → certificate-host-mismatch; unless the caller gives that name as another reference identifier
  const wrong = await check(withRoot(wrongLeaf), [tlsa(2, 1, 1, taSpki)]);
  assert.equal(!wrong.ok && wrong.reason, "certificate-host-mismatch");
  assert.equal((await check(withRoot(wrongLeaf), [tlsa(2, 1, 1, taSpki)], MX, { names: ["other.example.test."] })).ok, true);
  const deep = await check(withRoot(deepLeaf), [tlsa(2, 1, 1, taSpki)], "a.b.example.test");
  assert.equal(!deep.ok && deep.reason, "certificate-host-mismatch", "a wildcard covers one label only");
  // an expired leaf under DANE-TA fails (DANE-EE would not care)
  const expired = await check(withRoot(expiredLeaf), [tlsa(2, 1, 1, taSpki)]);
  assert.equal(!expired.ok && expired.reason, "certificate-expired");
  assert.equal((await check(expiredLeaf, [tlsa(3, 1, 1, await tlsaData(expiredLeaf, 1, 1))])).ok, true);
  // a TA that did not sign the presented chain: the attacker's own CA with a copied name does not pass
  const fake = await certs.caCert("DANE TA");
  const fakeLeaf = await certs.make({ names: [MX], issuer: fake, noAki: true });
  const forged = await check({ ...fakeLeaf, chain: fakeLeaf.cert + ca.cert }, [tlsa(2, 1, 1, taSpki)]);
  assert.equal(!forged.ok && forged.reason, "tlsa-invalid");
  assert.match(!forged.ok ? forged.detail : "", /chain broken at depth 1/, "linked by name, rejected by the signature");
  assert.equal((await check({ ...fakeLeaf, chain: fakeLeaf.cert + ca.cert }, [tlsa(2, 1, 1, await tlsaData(fake, 1, 1))])).ok, false);
  // usage 0/1 records for the real CA are ignored
  assert.equal((await check(withRoot(caLeaf), [tlsa(0, 1, 1, taSpki), tlsa(1, 1, 1, await tlsaData(caLeaf, 1, 1))])).ok, false);
  // daneVerifier is the same check bound to the records and the host
  const srv = await tlsServer({ key: caLeaf.key, cert: withRoot(caLeaf).chain });
  servers.push(srv);
  const socket = await tlsConnect(srv.port, MX);
  assert.equal(daneVerifier([tlsa(2, 1, 1, taSpki)], MX)(socket).ok, true);
  assert.equal(daneVerifier([tlsa(2, 1, 1, taSpki)], "mx2.example.test")(socket).ok, false);
  // the checks leave the socket's certificate readable (no getPeerX509Certificate, which empties it in node 24)
  assert.equal(daneVerifier([tlsa(2, 1, 1, taSpki)], MX)(socket).ok, true);
  assert.ok(Buffer.isBuffer(socket.getPeerCertificate(true).issuerCertificate.raw));
  socket.destroy();
});
