/**
 * MTA-STS conformance: ../shared/conformance/mta-sts/mta-sts-cases.json
 * (README §5) run as it is against src/outbound/mta-sts.ts.
 *
 *   node --test src/outbound/mta-sts-conformance.test.ts
 *
 * - mimecast_policy_parse → parseStsPolicy (+ mxMatches for mx_match rows);
 *   rows marked implementation-specific are skipped with the file's reason.
 * - mimecast_txt_record_parse → parseStsRecord.
 * - end_to_end (postfix-mta-sts-resolver fixtures) rebuilt on loopback: the
 *   `_mta-sts` TXT in a StaticResolver, every policy host on one local HTTPS
 *   server choosing its certificate by SNI (a test CA made with openssl; an
 *   untrusted CA; a certificate naming the bare domain), MtaStsClient.lookup
 *   with a fresh cache per case. VALID = status "valid", NONE = "none",
 *   FETCH_ERROR = "error".
 * Each suite prints "SUITE: passed X of Y, skipped Z (...), known failures W".
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { StaticResolver } from "../dns/index.ts";
import type { StaticZone, ZoneEntry } from "../dns/index.ts";
import { conformanceFile } from "../../test/helpers/conformance.ts";
import { Tally } from "../../test/conformance/zones.ts";
import type { ReasonTable } from "../../test/conformance/zones.ts";
import { MtaStsClient, mxMatches, normalizeDomain, parseStsPolicy, parseStsRecord } from "./mta-sts.ts";
import { CertFactory, policyServer } from "./mta-sts-testing.ts";
import type { Issued, PolicyResponse, PolicyServer } from "./mta-sts-testing.ts";

interface PolicyCase {
  policy: string;
  valid: boolean | "implementation-specific";
  mode?: string;
  max_age?: number;
  mx?: string[];
  mx_match?: Record<string, boolean>;
  note?: string;
}
interface TxtCase {
  txt: string;
  valid: boolean;
  id?: string;
  note?: string;
}
interface EndToEnd {
  domain: string;
  "txt__mta-sts": string | null;
  policy_fetch: { status: number; content_type: string; body: string; cert: string } | null;
  expect: "VALID" | "NONE" | "FETCH_ERROR";
  note?: string;
}

const data = JSON.parse(readFileSync(conformanceFile("mta-sts", "mta-sts-cases.json"), "utf8")) as {
  end_to_end: EndToEnd[];
  mimecast_policy_parse: PolicyCase[];
  mimecast_txt_record_parse: TxtCase[];
};

const SKIP: ReasonTable = {};
const KNOWN: ReasonTable = {};

// ---------------------------------------------------------------------------
// Parsers

{
  const tally = new Tally("MTA-STS mimecast_policy_parse");
  data.mimecast_policy_parse.forEach((c, i) => {
    const id = `mimecast policy #${i + 1}`;
    const skip = c.valid === "implementation-specific" ? `implementation-specific: ${c.note ?? ""}` : SKIP[id];
    tally.case(id, { skip, todo: KNOWN[id] }, () => {
      const r = parseStsPolicy(c.policy);
      assert.equal(r.ok, c.valid, r.ok ? "parsed" : r.detail);
      if (!r.ok) return;
      if (c.mode !== undefined) assert.equal(r.policy.mode, c.mode);
      if (c.max_age !== undefined) assert.equal(r.policy.maxAge, c.max_age);
      if (c.mx !== undefined) assert.deepEqual(r.policy.mx, c.mx);
      for (const [host, want] of Object.entries(c.mx_match ?? {})) assert.equal(mxMatches(r.policy, host), want, host);
    });
  });
}

{
  const tally = new Tally("MTA-STS mimecast_txt_record_parse");
  data.mimecast_txt_record_parse.forEach((c, i) => {
    const id = `mimecast txt #${i + 1} ${JSON.stringify(c.txt)}`;
    tally.case(id, { skip: SKIP[id], todo: KNOWN[id] }, () => {
      assert.equal(parseStsRecord(c.txt), c.valid ? c.id : undefined);
    });
  });
}

test("implementation-specific rows: what RFC 8461 §3.2 says, checked (not counted)", () => {
  const rows = data.mimecast_policy_parse.filter((c) => c.valid === "implementation-specific");
  assert.equal(rows.length, 2);
  const [modeNone, duplicates] = rows.map((c) => parseStsPolicy(c.policy));
  // mode none is a valid policy (it switches STS off for the domain)
  assert.ok(modeNone?.ok && modeNone.policy.mode === "none");
  // repeated non-mx keys: the first wins; all mx lines count
  assert.ok(duplicates?.ok && duplicates.policy.mode === "enforce" && duplicates.policy.mx.length === 2);
});

// ---------------------------------------------------------------------------
// End to end, rebuilt on loopback

const VALID_POLICY = "version: STSv1\nmode: enforce\nmx: mail.loc\nmax_age: 86400\n";

let certs: CertFactory;
let server: PolicyServer;
let ca: Issued;
const certByHost = new Map<string, Issued>();
const zone: Record<string, ZoneEntry | "TIMEOUT" | "SERVFAIL"> = {};

/** The HTTP response a fixture describes; the two oversize bodies are described in words, rebuilt here. */
function responseOf(c: EndToEnd): PolicyResponse | undefined {
  const f = c.policy_fetch;
  if (f === null) return undefined;
  if (c.domain === "static-overlength.loc") {
    const len = Number(/Content-Length: (\d+)/.exec(f.body)?.[1]);
    return { status: f.status, contentType: f.content_type, body: VALID_POLICY + "#".repeat(len - VALID_POLICY.length) };
  }
  if (c.domain === "chunked-overlength.loc") return { status: f.status, contentType: f.content_type, body: VALID_POLICY + "a".repeat(131 * 1024), chunked: true };
  return { status: f.status, contentType: f.content_type, body: f.body };
}

before(async () => {
  certs = await CertFactory.create();
  ca = await certs.caCert("Conformance Test CA");
  const untrustedCa = await certs.caCert("Untrusted CA");
  const routes: [string, PolicyResponse][] = [];
  const validHosts: string[] = [];
  for (const c of data.end_to_end) {
    const d = normalizeDomain(c.domain);
    if (d === undefined) continue;
    const txt = c["txt__mta-sts"];
    if (txt === "DNS query times out") zone[`_mta-sts.${d}`] = "TIMEOUT";
    else if (txt?.startsWith("NODATA") === true) zone[`_mta-sts.${d}`] = { A: ["192.0.2.1"] };
    else if (txt !== null) zone[`_mta-sts.${d}`] = { TXT: [txt] };
    const res = responseOf(c);
    if (res === undefined || c.policy_fetch === null) continue;
    const host = `mta-sts.${d}`;
    routes.push([host, res]);
    const cert = c.policy_fetch.cert;
    if (cert === "valid") validHosts.push(host);
    else if (cert === "issued by an untrusted CA") certByHost.set(host, await certs.make({ names: [host], issuer: untrustedCa }));
    else if (cert.startsWith("trusted CA but SAN lacks")) certByHost.set(host, await certs.make({ names: [d], issuer: ca }));
    else throw new Error(`unknown certificate condition ${cert}`);
  }
  const valid = await certs.make({ names: [...new Set(validHosts)], issuer: ca });
  for (const h of validHosts) certByHost.set(h, valid);
  server = await policyServer((n) => certByHost.get(n), valid);
  for (const [h, r] of routes) server.routes.set(h, r);
});

after(async () => {
  await server.close();
  await certs.cleanup();
});

/** Failure type expected for FETCH_ERROR cases whose failure is not in the policy body. */
const REASON: Record<string, string> = {
  "bad-policy4.loc": "sts-policy-fetch-error",
  "bad-cert1.loc": "sts-webpki-invalid",
  "bad-cert2.loc": "sts-webpki-invalid",
  "blackhole.loc": "sts-policy-fetch-error",
};

{
  const tally = new Tally("MTA-STS end_to_end (postfix-mta-sts-resolver)");
  const want = { VALID: "valid", NONE: "none", FETCH_ERROR: "error" } as const;
  for (const c of data.end_to_end) {
    const id = `${c.domain} → ${c.expect}`;
    tally.case(id, { skip: SKIP[id], todo: KNOWN[id] }, async () => {
      const sts = new MtaStsClient({ resolver: new StaticResolver(zone as StaticZone), fetch: { ca: ca.cert, connect: { host: "127.0.0.1", port: server.port }, timeoutMs: 5000 } });
      const r = await sts.lookup(c.domain);
      assert.equal(r.status, want[c.expect], JSON.stringify(r));
      // and for the reason the fixture means (our TLS-RPT naming, RFC 8460 §4.3)
      if (r.status === "error") assert.equal(r.reason, REASON[c.domain] ?? "sts-policy-invalid", JSON.stringify(r));
      if (c.domain === "good.loc") {
        // "a re-query with the same id must be 'not changed' (no refetch)"
        assert.deepEqual(r.status === "valid" && r.policy, { mode: "enforce", mx: ["mail.loc"], maxAge: 86400, id: "20180907T090909" });
        const hits = server.hits.get("mta-sts.good.loc");
        const again = await sts.lookup(c.domain);
        assert.ok(again.status === "valid" && again.source === "cache");
        assert.equal(server.hits.get("mta-sts.good.loc"), hits);
      }
    });
  }
}
