/**
 * The domain audit's record checks on an in-memory zone (StaticResolver):
 * each finding with its severity. The end-to-end proof against real DNS
 * (Knot, a validating Unbound), an HTTPS policy host and Wardmail as the MX
 * is test/audit-domain.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { StaticResolver, type StaticZone } from "../dns/index.ts";
import { caaFindings, caaIssuer } from "./domain-caa.ts";
import { commonSelectors, dkimFindings, dmarcFindings, parseTags, spfFindings } from "./domain-auth.ts";
import { dnsblFindings, ptrFindings, reverseName, surveyMx } from "./domain-dns.ts";
import { tlsRptFindings } from "./domain-transport.ts";
import type { Finding } from "./types.ts";

const sevs = (fs: readonly Finding[]): Record<string, string> => Object.fromEntries(fs.map((f) => [f.id, f.severity]));
const r = (zone: StaticZone): StaticResolver => new StaticResolver(zone);

test("reverse names of IPv4 and IPv6 addresses", () => {
  assert.equal(reverseName("192.0.2.10"), "10.2.0.192.in-addr.arpa");
  assert.equal(reverseName("2001:db8::1"), "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
});

test("tag lists: first duplicate wins, malformed is undefined", () => {
  assert.deepEqual([...(parseTags("v=DMARC1; p=reject; p=none;") ?? [])], [["v", "DMARC1"], ["p", "reject"]]);
  assert.equal(parseTags("v=DMARC1; garbage"), undefined);
});

test("common DKIM selectors include Wardmail's of this month and the last", () => {
  const s = commonSelectors(new Date("2026-01-15T00:00:00Z"));
  assert.ok(s.includes("wm202601-rsa") && s.includes("wm202512-ed25519") && s.includes("selector1"), s.join(" "));
});

test("SPF: missing, multiple, +all, ?all, no all, a broad range, an include without SPF, too many lookups", async () => {
  assert.deepEqual(sevs(await spfFindings(r({ "a.test": { TXT: ["hello"] } }), "a.test", { nullMx: false })), { "spf.missing": "high" });
  assert.deepEqual(sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 -all", "v=spf1 ~all"] } }), "a.test", { nullMx: false })), { "spf.multiple": "high" });
  assert.equal(sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 +all"] } }), "a.test", { nullMx: false }))["spf.all.pass"], "critical");
  assert.equal(sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 ?all"] } }), "a.test", { nullMx: false }))["spf.all.neutral"], "medium");
  assert.equal(sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 ip4:192.0.2.1"] } }), "a.test", { nullMx: false }))["spf.all.missing"], "medium");
  assert.equal(sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 ip4:10.0.0.0/8 -all"] } }), "a.test", { nullMx: false }))["spf.broad"], "high");
  const inc = sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 include:gone.test -all"] }, "gone.test": { TXT: ["nothing"] } }), "a.test", { nullMx: false }));
  assert.equal(inc["spf.include.fail"], "high");
  // 11 includes, each with one record: more than 10 lookups.
  const zone: Record<string, { TXT: string[] }> = { "a.test": { TXT: [`v=spf1 ${Array.from({ length: 11 }, (_, i) => `include:i${i}.test`).join(" ")} -all`] } };
  for (let i = 0; i < 11; i++) zone[`i${i}.test`] = { TXT: ["v=spf1 -all"] };
  assert.equal(sevs(await spfFindings(r(zone), "a.test", { nullMx: false }))["spf.lookups"], "high");
  assert.deepEqual(sevs(await spfFindings(r({ "a.test": { TXT: ["v=spf1 mx -all"], MX: [[10, "mx.a.test"]] }, "mx.a.test": { A: ["192.0.2.9"] } }), "a.test", { nullMx: false })), { "spf.ok": "info" });
});

test("DMARC: missing, p=none, pct, sp=none, rua missing, an external rua without authorisation and with it", async () => {
  assert.deepEqual(sevs(await dmarcFindings(r({}), "a.test")), { "dmarc.missing": "high" });
  const none = sevs(await dmarcFindings(r({ "_dmarc.a.test": { TXT: ["v=DMARC1; p=none"] } }), "a.test"));
  assert.equal(none["dmarc.policy.none"], "medium");
  assert.equal(none["dmarc.rua.missing"], "low");
  const weak = sevs(await dmarcFindings(r({ "_dmarc.a.test": { TXT: ["v=DMARC1; p=reject; sp=none; pct=50; rua=mailto:d@reports.example"] } }), "a.test"));
  assert.equal(weak["dmarc.pct"], "medium");
  assert.equal(weak["dmarc.sp.none"], "low");
  assert.equal(weak["dmarc.rua.unauthorized"], "medium");
  const authorised = sevs(
    await dmarcFindings(r({ "_dmarc.a.test": { TXT: ["v=DMARC1; p=reject; rua=mailto:d@reports.example"] }, "a.test._report._dmarc.reports.example": { TXT: ["v=DMARC1"] } }), "a.test"),
  );
  assert.deepEqual(authorised, { "dmarc.ok": "info" });
  assert.equal(sevs(await dmarcFindings(r({ "_dmarc.a.test": { TXT: ["v=DMARC1; p=maybe"] } }), "a.test"))["dmarc.syntax"], "high");
});

test("DKIM: key sizes, t=y, revoked, a given selector missing, none found", async () => {
  const key = (bits: number): string => generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ type: "spki", format: "der" }).toString("base64");
  const ed = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "der" }).subarray(-32).toString("base64");
  const zone: StaticZone = {
    "big._domainkey.a.test": { TXT: [`v=DKIM1; k=rsa; p=${key(2048)}`] },
    "small._domainkey.a.test": { TXT: [`v=DKIM1; k=rsa; t=y; p=${key(1024)}`] },
    "ed._domainkey.a.test": { TXT: [`v=DKIM1; k=ed25519; p=${ed}`] },
    "old._domainkey.a.test": { TXT: ["v=DKIM1; p="] },
  };
  const fs = await dkimFindings(r(zone), "a.test", ["big", "small", "ed", "old", "gone"], new Date());
  const by = (sel: string): string[] => fs.filter((f) => f.title.includes(` ${sel}`) || f.evidence.startsWith(`${sel}.`)).map((f) => `${f.id}:${f.severity}`);
  assert.deepEqual(by("big"), ["dkim.key:info"]);
  assert.deepEqual(by("small").sort(), ["dkim.key-size:medium", "dkim.testing:low"]);
  assert.deepEqual(by("ed"), ["dkim.key:info"]);
  assert.deepEqual(by("old"), ["dkim.revoked:info"]);
  assert.deepEqual(by("gone"), ["dkim.selector.missing:high"]);
  assert.deepEqual(sevs(await dkimFindings(r({}), "a.test", [], new Date())), { "dkim.none-found": "medium" });
});

test("MX: null MX, implicit MX, an MX without address; PTR missing and not confirmed", async () => {
  assert.equal((await surveyMx(r({ "a.test": { MX: [[0, ""]] } }), "a.test")).kind, "null");
  const implicit = await surveyMx(r({ "a.test": { A: ["192.0.2.1"] } }), "a.test");
  assert.equal(implicit.kind, "implicit");
  assert.equal(sevs(implicit.findings)["mx.missing"], "medium");
  const one = await surveyMx(r({ "a.test": { MX: [[10, "mx1.a.test"], [20, "mx2.a.test"]] }, "mx1.a.test": { A: ["192.0.2.1"] } }), "a.test");
  assert.equal(sevs(one.findings)["mx.unresolvable"], "high");
  assert.deepEqual(one.hosts.map((h) => h.name), ["mx1.a.test"]);
  await assert.rejects(surveyMx(r({}), "a.test"), /ENOTFOUND/);
  const ptr = await ptrFindings(r({ "1.2.0.192.in-addr.arpa": { PTR: ["elsewhere.test"] }, "elsewhere.test": { A: ["192.0.2.7"] } }), [...one.hosts, { name: "mx3.a.test", priority: 30, addresses: ["192.0.2.3"], secure: false }]);
  assert.deepEqual(sevs(ptr), { "mx.fcrdns": "medium", "mx.ptr.missing": "medium" });
});

test("TLS-RPT: missing, invalid, present", async () => {
  assert.deepEqual(sevs(await tlsRptFindings(r({}), "a.test")), { "tlsrpt.missing": "low" });
  assert.deepEqual(sevs(await tlsRptFindings(r({ "_smtp._tls.a.test": { TXT: ["v=TLSRPTv1; rua=ftp://x"] } }), "a.test")), { "tlsrpt.invalid": "medium" });
  assert.deepEqual(sevs(await tlsRptFindings(r({ "_smtp._tls.a.test": { TXT: ["v=TLSRPTv1; rua=mailto:t@a.test"] } }), "a.test")), { "tlsrpt.ok": "info" });
});

test("DNSBL: a listing is high, an error code or a failed lookup is info, NXDOMAIN is nothing", async () => {
  const hosts = [{ name: "mx.a.test", priority: 10, addresses: ["192.0.2.1"], secure: false }];
  const zone: StaticZone = {
    "1.2.0.192.bl.test": { A: ["127.0.0.2"] },
    "1.2.0.192.spamhaus.test": { A: ["127.255.255.254"] },
    "1.2.0.192.down.test": "SERVFAIL",
  };
  const fs = await dnsblFindings(r(zone), hosts, ["bl.test", "spamhaus.test", "down.test", "clean.test"]);
  assert.deepEqual(
    fs.map((f) => [f.id, f.severity]),
    [["dnsbl.listed", "high"], ["dnsbl.error", "info"], ["dnsbl.error", "info"]],
  );
});

test("DMARC psd: psd=y on a registrable domain is medium, on a public suffix nothing; an invalid value is low", async () => {
  const psd = (domain: string, rec: string): Promise<Finding[]> => dmarcFindings(r({ [`_dmarc.${domain}`]: { TXT: [rec] } }), domain);
  const rua = "rua=mailto:d@a.test";
  assert.deepEqual(sevs(await psd("a.test", `v=DMARC1; p=reject; psd=y; ${rua}`)), { "dmarc.psd.non-psd": "medium" });
  assert.equal(sevs(await psd("sub.example.co.uk", "v=DMARC1; p=reject; psd=Y; rua=mailto:d@sub.example.co.uk"))["dmarc.psd.non-psd"], "medium");
  assert.deepEqual(sevs(await psd("co.uk", "v=DMARC1; p=reject; psd=y; rua=mailto:d@co.uk")), { "dmarc.ok": "info" });
  assert.deepEqual(sevs(await psd("a.test", `v=DMARC1; p=reject; psd=n; ${rua}`)), { "dmarc.ok": "info" });
  assert.deepEqual(sevs(await psd("a.test", `v=DMARC1; p=reject; psd=u; ${rua}`)), { "dmarc.ok": "info" });
  assert.deepEqual(sevs(await psd("a.test", `v=DMARC1; p=reject; psd=yes; ${rua}`)), { "dmarc.psd.invalid": "low" });
  assert.deepEqual(sevs(await psd("a.test", `v=DMARC1; p=reject; psd=; ${rua}`)), { "dmarc.psd.invalid": "low" });
});

test("CAA issuer values (RFC 8659 §4.2)", () => {
  assert.equal(caaIssuer("letsencrypt.org"), "letsencrypt.org");
  assert.equal(caaIssuer(" Pki.Goog ; accounturi=https://x.example/acct/1 ; validationmethods=dns-01"), "pki.goog");
  assert.equal(caaIssuer(";"), "");
  assert.equal(caaIssuer(""), "");
  assert.equal(caaIssuer("letsencrypt org"), undefined);
  assert.equal(caaIssuer("ca.example; bad param"), undefined);
  assert.equal(caaIssuer("-ca.example"), undefined);
  assert.equal(caaIssuer(`${"a".repeat(64)}.example`), undefined);
});

test("CAA: missing, present (own or a parent's), forbidding every CA, malformed, critical unknown tag, lookup failure", async () => {
  const caa = (flags: number, tag: string, value: string): { critical: boolean; flags: number; tag: string; value: string } => ({ critical: (flags & 128) !== 0, flags, tag, value });
  const asked: string[] = [];
  const none = await caaFindings(new StaticResolver({}, { calls: (n) => asked.push(n) }), "mail.a.test");
  assert.deepEqual(sevs(none), { "caa.missing": "info" });
  assert.match(none[0]?.fix ?? "", /CAA 0 issue "letsencrypt\.org"/);
  assert.deepEqual(asked, ["mail.a.test", "a.test", "test"]);

  const good = await caaFindings(r({ "a.test": { CAA: [caa(0, "issue", "letsencrypt.org"), caa(0, "issue", "pki.goog; accounturi=x"), caa(0, "issuewild", ";"), caa(0, "iodef", "mailto:s@a.test")] } }), "a.test");
  assert.deepEqual(sevs(good), { "caa.present": "info" });
  assert.equal(good[0]?.title, 'CAA at a.test: issue letsencrypt.org, pki.goog; issuewild ";" (no CA)');

  const inherited = await caaFindings(r({ "a.test": { CAA: [caa(0, "issue", "letsencrypt.org")] } }), "mail.a.test");
  assert.match(inherited[0]?.title ?? "", /^CAA at a\.test \(inherited by mail\.a\.test\): issue letsencrypt\.org; issuewild as issue$/);

  assert.deepEqual(sevs(await caaFindings(r({ "a.test": { CAA: [caa(0, "issue", ";")] } }), "a.test")), { "caa.issue.none": "low", "caa.present": "info" });
  const bad = await caaFindings(r({ "a.test": { CAA: [caa(0, "issue", "lets encrypt"), caa(0, "iodef", "ftp://x"), caa(0, "is-sue", "x"), caa(128, "future", "x"), caa(0, "other", "x")] } }), "a.test");
  assert.deepEqual(
    bad.map((x) => `${x.id}:${x.severity}`).sort(),
    ["caa.critical-unknown:medium", "caa.issue.none:low", "caa.malformed:low", "caa.malformed:low", "caa.malformed:low", "caa.present:info"],
  );
  assert.deepEqual(sevs(await caaFindings(r({ "mail.a.test": "SERVFAIL" }), "mail.a.test")), { "caa.error": "low" });
});
