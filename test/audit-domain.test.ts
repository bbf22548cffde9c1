/**
 * `wardmail audit domain` against real DNS on loopback, through the real
 * command (`node bin/wardmail.ts audit domain ... --json`, exit codes
 * included): ldns-signzone signs the zones (test/peers/dnssec.ts), Knot
 * serves them (test/peers/knot.ts), a validating Unbound answers with the
 * AD bit (test/peers/unbound.ts) and is given with --dns. The MX of both
 * signed domains is a Wardmail on 127.0.0.1 (free port, --smtp-port, so
 * the TLSA records are at _PORT._tcp.mx.DOMAIN) with a certificate from a
 * test CA for mx.good.test and mx.bad.test; the MTA-STS policies come from
 * an HTTPS server in this process (free port, --mta-sts-port) whose
 * certificates the same CA issued (--ca-file).
 *
 *   good.test   signed: MX, PTR/FCrDNS, SPF "mx -all", DMARC p=reject with
 *               rua, a 2048-bit DKIM key (s1), MTA-STS enforce covering the
 *               MX, TLS-RPT, two TLSA 3 1 1 (the live key and a next key),
 *               CAA (issue letsencrypt.org, issuewild ";", iodef)
 *               → nothing high or critical, exit 0
 *   bad.test    signed: SPF +all, DMARC p=none psd=y, a 1024-bit DKIM key
 *               (default), an MTA-STS policy for another MX, a TLSA for
 *               another key, no TLS-RPT, no CAA → each finding with its severity, exit 1
 *   plain.test  unsigned, null MX: mx.null, dnssec.unsigned (exit 0; no server audit)
 *   missing.test: no SPF, no DMARC (exit 1)
 *   listing.test, errors.test, clean.test: DNSBL zones (127.0.0.1 listed, an
 *               error code 127.255.255.254, nothing), given with --dnsbl
 *   test        the parent zone, where the CAA climb of every domain ends
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CertFactory, policyServer, tlsaData, type Issued, type PolicyServer } from "../src/outbound/mta-sts-testing.ts";
import { BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { ldnsMissing, signZone } from "./peers/dnssec.ts";
import { dkimTxt, knotMissing, startKnot, txtRdata, zoneText, type Knot } from "./peers/knot.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { startUnbound, unboundMissing, type Unbound } from "./peers/unbound.ts";

const skip = peerSkip(knotMissing(), unboundMissing(), ldnsMissing(), binaryMissing("openssl", ["version"], "openssl"));

interface JsonReport {
  schema: number;
  kind: string;
  target: string;
  grade: string;
  areas: Record<string, string>;
  findings: { id: string; severity: string; area: string; title: string; evidence: string; fix: string }[];
  checks: { id: string; ran: boolean; note?: string }[];
  servers?: { host: string; address: string; grade: string }[];
}

function audit(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, "audit", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`audit ${args.join(" ")} took more than ${timeoutMs} ms`));
    }, timeoutMs);
    c.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let certs: CertFactory | undefined;
let knot: Knot | undefined;
let unbound: Unbound | undefined;
let w: Wardmail | undefined;
let sts: PolicyServer | undefined;
let caFile = "";

async function auditDomain(domain: string, extra: string[] = []): Promise<{ code: number | null; report: JsonReport; stderr: string }> {
  assert.ok(unbound && w && sts, "peers not started");
  const r = await audit(["domain", domain, "--dns", `127.0.0.1:${unbound.port}`, "--smtp-port", String(w.smtpPort), "--mta-sts-port", String(sts.port), "--ca-file", caFile, "--timeout", "5", "--json", ...extra]);
  let report: JsonReport;
  try {
    report = JSON.parse(r.stdout) as JsonReport;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

const sev = (r: JsonReport, id: string): string | undefined => r.findings.find((f) => f.id === id)?.severity;
const dump = (r: JsonReport): string => r.findings.map((f) => `${f.severity} ${f.id}: ${f.title} [${f.evidence}]`).join("\n");

describe("audit domain: signed zones (Knot), a validating Unbound, Wardmail as the MX, MTA-STS over HTTPS", { skip }, () => {
  before(async () => {
    certs = await CertFactory.create();
    const ca = await certs.caCert("Wardmail audit test CA");
    caFile = join(certs.dir, "audit-ca.pem");
    await writeFile(caFile, ca.cert);
    const mxCert: Issued = await certs.make({ names: ["mx.good.test", "mx.bad.test"], issuer: ca });
    const next = await certs.make({ names: ["mx.good.test"] });
    const other = await certs.make({ names: ["mx.bad.test"] });
    const stsCert = await certs.make({ names: ["mta-sts.good.test", "mta-sts.bad.test"], issuer: ca });
    const chainPath = join(certs.dir, "mx-chain.pem");
    await writeFile(chainPath, mxCert.chain);

    w = await startWardmail({
      workers: 1,
      domains: ["good.test", "bad.test", "example.test"],
      mailboxes: ["postmaster@good.test", "postmaster@bad.test", "postmaster@example.test"],
      extra: `[tls]\ncertificates = [{ cert = ${JSON.stringify(chainPath)}, key = ${JSON.stringify(mxCert.keyPath)} }]\n`,
    });
    const port = w.smtpPort;
    sts = await policyServer((name) => (name.startsWith("mta-sts.") ? stsCert : undefined), stsCert);
    sts.routes.set("mta-sts.good.test", { contentType: "text/plain", body: "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 1209600\n" });
    sts.routes.set("mta-sts.bad.test", { contentType: "text/plain", body: "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 1209600\n" });

    const hex = async (c: Issued): Promise<string> => (await tlsaData(c, 1, 1)).toString("hex");
    const [live, nextKey, otherKey] = await Promise.all([hex(mxCert), hex(next), hex(other)]);
    const rsa = (bits: number): string =>
      dkimTxt(generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ type: "spki", format: "der" }));
    const good = zoneText("good.test", [
      "@ IN MX 10 mx",
      "mx IN A 127.0.0.1",
      "mta-sts IN A 127.0.0.1",
      `@ IN TXT ${txtRdata("v=spf1 mx -all")}`,
      `_dmarc IN TXT ${txtRdata("v=DMARC1; p=reject; rua=mailto:dmarc@good.test")}`,
      `s1._domainkey IN TXT ${txtRdata(rsa(2048))}`,
      `_mta-sts IN TXT ${txtRdata("v=STSv1; id=20261207")}`,
      `_smtp._tls IN TXT ${txtRdata("v=TLSRPTv1; rua=mailto:tls-reports@good.test")}`,
      `_${port}._tcp.mx IN TLSA 3 1 1 ${live}`,
      `_${port}._tcp.mx IN TLSA 3 1 1 ${nextKey}`,
      '@ IN CAA 0 issue "letsencrypt.org"',
      '@ IN CAA 0 issuewild ";"',
      '@ IN CAA 0 iodef "mailto:security@good.test"',
    ]);
    const bad = zoneText("bad.test", [
      "@ IN MX 10 mx",
      "mx IN A 127.0.0.1",
      "mta-sts IN A 127.0.0.1",
      `@ IN TXT ${txtRdata("v=spf1 +all")}`,
      `_dmarc IN TXT ${txtRdata("v=DMARC1; p=none; psd=y")}`,
      `default._domainkey IN TXT ${txtRdata(rsa(1024))}`,
      `_mta-sts IN TXT ${txtRdata("v=STSv1; id=1")}`,
      `_${port}._tcp.mx IN TLSA 3 1 1 ${otherKey}`,
    ]);
    const [goodSigned, badSigned] = await Promise.all([signZone("good.test", good), signZone("bad.test", bad)]);
    const zones = {
      "good.test": goodSigned.text,
      "bad.test": badSigned.text,
      "plain.test": zoneText("plain.test", ["@ IN MX 0 .", `@ IN TXT ${txtRdata("v=spf1 -all")}`, `_dmarc IN TXT ${txtRdata("v=DMARC1; p=reject")}`]),
      "missing.test": zoneText("missing.test", ["@ IN MX 10 mx", "mx IN A 127.0.0.1"]),
      "0.0.127.in-addr.arpa": zoneText("0.0.127.in-addr.arpa", ["1 IN PTR mx.good.test."]),
      // DNSBLs: one lists 127.0.0.1, one answers Spamhaus's "open resolver" error code, one lists nothing.
      "listing.test": zoneText("listing.test", ["1.0.0.127 IN A 127.0.0.2"]),
      "errors.test": zoneText("errors.test", ["1.0.0.127 IN A 127.255.255.254"]),
      "clean.test": zoneText("clean.test"),
      // The parent every CAA climb ends at (RFC 8659 §3): no CAA there either.
      test: zoneText("test"),
    };
    knot = await startKnot({ zones });
    const k = knot;
    unbound = await startUnbound({ stubs: Object.fromEntries(Object.keys(zones).map((z) => [z, k.port])), trustAnchors: [goodSigned.dnskey, badSigned.dnskey] });
  });

  after(async () => {
    if (w !== undefined) {
      await w.stop();
      await w.cleanup();
    }
    await sts?.close();
    await unbound?.stop();
    await knot?.stop();
    await certs?.cleanup();
  });

  test("a well-configured domain: nothing high or critical, exit 0", async () => {
    assert.ok(certs);
    const html = join(certs.dir, "good.html");
    const { code, report } = await auditDomain("good.test", ["--dkim-selector", "s1", "--dnsbl", "clean.test", "--html", html]);
    if (process.env.AUDIT_DUMP !== undefined) console.log(JSON.stringify(report, null, 1));
    assert.equal(code, 0, dump(report));
    assert.equal(report.schema, 1);
    assert.equal(report.kind, "domain");
    assert.equal(report.target, "good.test");
    assert.equal(report.areas.domain, "A", dump(report));
    for (const id of ["spf.ok", "dmarc.ok", "dkim.key", "mta-sts.ok", "tlsrpt.ok", "dane.ok", "caa.present"]) assert.equal(sev(report, id), "info", `${id}\n${dump(report)}`);
    assert.match(report.findings.find((f) => f.id === "dkim.key")?.title ?? "", /rsa 2048 bits/);
    const caa = report.findings.find((f) => f.id === "caa.present");
    assert.equal(caa?.title, 'CAA at good.test: issue letsencrypt.org; issuewild ";" (no CA)', dump(report));
    assert.match(caa.evidence, /0 iodef "mailto:security@good\.test"/);
    assert.ok(report.checks.some((c) => c.id === "caa" && c.ran), JSON.stringify(report.checks));
    for (const id of ["dnssec.unsigned", "dnsbl.listed", "dnsbl.error", "mx.ptr.missing", "mx.fcrdns", "dane.mismatch", "mta-sts.mx-mismatch", "mta-sts.mx-certificate"]) assert.equal(sev(report, id), undefined, `${id}\n${dump(report)}`);
    // The MX was audited as a server too, on its port.
    assert.deepEqual(report.servers?.map((s) => [s.host, s.address]), [["mx.good.test", "127.0.0.1"]]);
    assert.ok(report.checks.some((c) => c.id === "mx.good.test:relay" && c.ran), JSON.stringify(report.checks));
    // With the test CA (--ca-file) the MX's certificate verifies in the server audit too.
    assert.equal(sev(report, "tls.cert.untrusted") ?? sev(report, "tls.cert.self-signed"), undefined, dump(report));
    assert.ok(["A", "B"].includes(report.grade), `${report.grade}\n${dump(report)}`);
    const page = await readFile(html, "utf8");
    assert.match(page, /<title>Wardmail audit of good\.test<\/title>/);
    assert.match(page, /<h2>MX hosts<\/h2><table><tr><td>mx\.good\.test \(127\.0\.0\.1\)<\/td>/);
    assert.doesNotMatch(page, /<script|src=|href=/i);
  });

  test("a broken domain: +all, p=none, a 1024-bit key, MTA-STS for another MX, a TLSA for another key, no TLS-RPT", async () => {
    const { code, report } = await auditDomain("bad.test", ["--no-server", "--dnsbl", "listing.test", "--dnsbl", "errors.test", "--dnsbl", "clean.test"]);
    assert.equal(code, 1, dump(report));
    assert.equal(sev(report, "spf.all.pass"), "critical", dump(report));
    assert.equal(sev(report, "dmarc.policy.none"), "medium");
    assert.equal(sev(report, "dmarc.rua.missing"), "low");
    assert.equal(sev(report, "dmarc.psd.non-psd"), "medium", dump(report));
    const caa = report.findings.find((f) => f.id === "caa.missing");
    assert.equal(caa?.severity, "info", dump(report));
    assert.equal(caa.evidence, "CAA: no record at bad.test, test");
    assert.match(caa.fix, /bad\.test\. CAA 0 issue "letsencrypt\.org"/);
    assert.equal(sev(report, "dkim.key-size"), "medium");
    assert.equal(sev(report, "mta-sts.mx-mismatch"), "high");
    assert.match(report.findings.find((f) => f.id === "mta-sts.mx-mismatch")?.fix ?? "", /mx: mx\.bad\.test/);
    assert.equal(sev(report, "dane.mismatch"), "high");
    assert.equal(sev(report, "tlsrpt.missing"), "low");
    // Listed by one DNSBL; the error code of another is not a listing.
    assert.deepEqual(report.findings.filter((f) => f.id.startsWith("dnsbl.")).map((f) => [f.id, f.severity, f.evidence]), [
      ["dnsbl.listed", "high", "1.0.0.127.listing.test A 127.0.0.2"],
      ["dnsbl.error", "info", "1.0.0.127.errors.test A 127.255.255.254: 127.255.255.x: query refused (Spamhaus: 252 bad name, 254 public or open resolver, 255 too many queries)"],
    ]);
    // The PTR of 127.0.0.1 names mx.good.test, which resolves back: confirmed, but not the MX name.
    assert.equal(sev(report, "mx.ptr.name"), "info");
    assert.equal(report.areas.domain, "F");
    assert.equal(report.grade, "F");
    assert.equal(report.servers?.length ?? 0, 0);
    assert.deepEqual(report.checks.find((c) => c.id === "servers"), { id: "servers", ran: false, note: "--no-server" });
  });

  test("an unsigned domain with a null MX: mx.null, dnssec.unsigned, no MX checks", async () => {
    const { code, report } = await auditDomain("plain.test");
    assert.equal(code, 0, dump(report));
    assert.equal(sev(report, "mx.null"), "info");
    assert.equal(sev(report, "dnssec.unsigned"), "medium");
    assert.equal(sev(report, "spf.ok"), "info", dump(report));
    assert.deepEqual(report.checks.find((c) => c.id === "mta-sts"), { id: "mta-sts", ran: false, note: "no MX host (null)" });
  });

  test("no SPF, no DMARC, no DKIM under the common selectors: high, high, medium; exit 1", async () => {
    const { code, report } = await auditDomain("missing.test", ["--no-server", "--no-dnsbl"]);
    assert.equal(code, 1, dump(report));
    assert.equal(sev(report, "spf.missing"), "high");
    assert.equal(sev(report, "dmarc.missing"), "high");
    assert.equal(sev(report, "dkim.none-found"), "medium");
    assert.equal(sev(report, "mta-sts.missing"), "medium");
    assert.equal(sev(report, "dnssec.unsigned"), "medium");
    assert.deepEqual(report.checks.find((c) => c.id === "dnsbl"), { id: "dnsbl", ran: false, note: "--no-dnsbl" });
  });

  test("usage and unreachable: a bad domain name or --dns exits 2, a domain the resolver refuses exits 3", async () => {
    assert.equal((await audit(["domain", "not a domain"])).code, 2);
    assert.equal((await audit(["domain", "good.test", "--dns", "resolver.example:53"])).code, 2);
    assert.equal((await audit(["server", "127.0.0.1:25", "--dkim-selector", "s1"])).code, 2);
    assert.ok(unbound);
    const r = await audit(["domain", "unknown.invalid", "--dns", `127.0.0.1:${unbound.port}`, "--timeout", "2"]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /unreachable: unknown\.invalid does not exist \(NXDOMAIN\)/);
    // Outside the resolver's zones: REFUSED.
    const refused = await audit(["domain", "elsewhere.example", "--dns", `127.0.0.1:${unbound.port}`, "--timeout", "2"]);
    assert.equal(refused.code, 3, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /MX lookup failed: EREFUSED/);
  });
});
