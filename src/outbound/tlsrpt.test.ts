// Tests for TLS-RPT (RFC 8460): the per-day store and its report, the JSON
// shape against the RFC 8460 Appendix B example (external conformance data),
// a structural check written from §4.4, the report message read back by our
// reader and by python3's email package, the outside sample messages, the
// TXT record parser and lookup, and the sent/pending bookkeeping. No network.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { StaticResolver } from "../dns/index.ts";
import { conformanceFile } from "../../test/helpers/conformance.ts";
import { skipOrFail } from "../../test/helpers/peers.ts";
import { FAILURE_TYPES, TlsRptStore, parseTlsRptRecord, reportFilename, reportJson, reportMessage, tlsRptFor } from "./tlsrpt.ts";
import type { TlsRptEvent } from "./tlsrpt.ts";
import { contentType, readReportMessage } from "./tlsrpt-read.ts";

const sample = (name: string): string => readFileSync(conformanceFile("tlsrpt", "stalwart", name), "utf8");
const ORG = { name: "Wardmail Test Org", contact: "tlsrpt@wardmail.test" };
const DAY1 = "2026-11-26";
const DAY2 = "2026-11-27";
const at = (day: string, hour: number): number => Date.parse(`${day}T${String(hour).padStart(2, "0")}:30:00Z`);
const STS = ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"];
const STS2 = "version: STSv1\r\nmode: enforce\r\nmx: mx1.mail.company-y.example\r\nmax_age: 604800\r\n"; // one string, split into lines
const TLSA = ["3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6"];

function withStore(fn: (store: TlsRptStore, dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "wardmail-tlsrpt-"));
  const store = TlsRptStore.open(dir);
  try {
    fn(store, dir);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function sts(result: TlsRptEvent["result"], mx: string, send: string, recv: string | undefined, day: string, extra: Partial<TlsRptEvent> = {}): TlsRptEvent {
  return { policyDomain: "company-y.example", policyType: "sts", policyStrings: STS, mxHost: mx, sendingIp: send, receivingIp: recv, result, at: at(day, 10), ...extra };
}

/** Two domains over two days: company-y.example has 8 successes and 4 failures on DAY2 under its first policy. */
function fill(store: TlsRptStore): void {
  const ev: TlsRptEvent[] = [];
  for (let i = 0; i < 5; i++) ev.push(sts("success", "mx1.mail.company-y.example", "198.51.100.62", "203.0.113.56", DAY2));
  for (let i = 0; i < 3; i++) ev.push(sts("success", "MX2.mail.company-y.example.", "198.51.100.62", "203.0.113.57", DAY2));
  ev.push(sts("certificate-expired", "mx1.mail.company-y.example", "2001:db8:abcd:12::1", "203.0.113.56", DAY2, { detail: "expired 2026-11-01" }));
  ev.push(sts("certificate-expired", "mx1.mail.company-y.example", "2001:db8:abcd:12::1", "203.0.113.56", DAY2, { detail: "certificate expired\r\nat noon" }));
  ev.push(sts("starttls-not-supported", "mx2.mail.company-y.example", "2001:db8:abcd:13::1", undefined, DAY2));
  ev.push(sts("validation-failure", "mx-backup.mail.company-y.example", "198.51.100.62", "203.0.113.58", DAY2, { at: Date.parse(`${DAY2}T23:59:59.999Z`) }));
  // A second policy the same day (policy changed), and the previous day.
  ev.push(sts("success", "mx1.mail.company-y.example", "198.51.100.62", "203.0.113.56", DAY2, { policyStrings: [STS2] }));
  ev.push(sts("success", "mx1.mail.company-y.example", "198.51.100.62", "203.0.113.56", DAY1));
  ev.push(sts("certificate-not-trusted", "mx1.mail.company-y.example", "198.51.100.62", "203.0.113.56", DAY1, { at: Date.parse(`${DAY2}T00:00:00Z`) - 1 }));
  // Another domain, DANE.
  ev.push({ policyDomain: "dane.example", policyType: "tlsa", policyStrings: TLSA, mxHost: "mx.dane.example", sendingIp: "198.51.100.62", receivingIp: "192.0.2.1", result: "success", at: at(DAY2, 3) });
  ev.push({ policyDomain: "dane.example", policyType: "tlsa", policyStrings: TLSA, mxHost: "mx.dane.example", sendingIp: "198.51.100.62", receivingIp: "192.0.2.1", result: "tlsa-invalid", at: at(DAY1, 3) });
  for (const e of ev) store.record(e);
}

// ---------------------------------------------------------------------------
// Shape and structure checks

type Shape = string | { [k: string]: { shape: Shape; always: boolean } } | Shape[];

/** The type skeleton of a JSON value: objects by key (always = present in every element merged), arrays by merged element shape. */
function shapeOf(values: unknown[]): Shape {
  const v = values[0];
  if (Array.isArray(v)) return [shapeOf(values.flatMap((x) => x as unknown[]))];
  if (v !== null && typeof v === "object") {
    const objs = values as Record<string, unknown>[];
    const keys = new Set(objs.flatMap((o) => Object.keys(o)));
    const out: Record<string, { shape: Shape; always: boolean }> = {};
    for (const k of keys) {
      const present = objs.filter((o) => k in o).map((o) => o[k]);
      out[k] = { shape: shapeOf(present), always: present.length === objs.length };
    }
    return out;
  }
  return typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v;
}

/** Ours against the sample: every key we write exists there with the same type; every key the sample always has, we always have. */
function compareShape(ours: Shape, theirs: Shape, path: string, errors: string[]): void {
  if (typeof ours === "string" || typeof theirs === "string") {
    if (ours !== theirs) errors.push(`${path}: ${JSON.stringify(ours)} vs ${JSON.stringify(theirs)}`);
  } else if (Array.isArray(ours) || Array.isArray(theirs)) {
    if (!Array.isArray(ours) || !Array.isArray(theirs)) errors.push(`${path}: array vs non-array`);
    else if (ours[0] !== undefined && theirs[0] !== undefined) compareShape(ours[0], theirs[0], `${path}[]`, errors);
  } else {
    for (const [k, o] of Object.entries(ours)) {
      const t = theirs[k];
      if (t === undefined) errors.push(`${path}.${k}: not in the sample`);
      else compareShape(o.shape, t.shape, `${path}.${k}`, errors);
    }
    for (const [k, t] of Object.entries(theirs)) if (t.always && !ours[k]?.always) errors.push(`${path}.${k}: always in the sample, not always here`);
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const POLICY_TYPES = ["sts", "tlsa", "no-policy-found"];

/** RFC 8460 §4.4 structure: the errors found (empty: valid). */
function validateReport(r: unknown): string[] {
  const errs: string[] = [];
  const obj = (v: unknown, p: string): Record<string, unknown> => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) errs.push(`${p}: not an object`);
    return (v ?? {}) as Record<string, unknown>;
  };
  const str = (o: Record<string, unknown>, k: string, p: string, required = true): string | undefined => {
    if (!(k in o)) {
      if (required) errs.push(`${p}.${k}: missing`);
      return undefined;
    }
    if (typeof o[k] !== "string" || o[k] === "") errs.push(`${p}.${k}: not a non-empty string`);
    return typeof o[k] === "string" ? o[k] : undefined;
  };
  const count = (o: Record<string, unknown>, k: string, p: string): number => {
    const v = o[k];
    if (!Number.isSafeInteger(v) || (v as number) < 0) errs.push(`${p}.${k}: not a non-negative integer`);
    return typeof v === "number" ? v : 0;
  };
  const list = (o: Record<string, unknown>, k: string, p: string, required: boolean): unknown[] => {
    if (!(k in o)) {
      if (required) errs.push(`${p}.${k}: missing`);
      return [];
    }
    if (!Array.isArray(o[k])) errs.push(`${p}.${k}: not an array`);
    return Array.isArray(o[k]) ? o[k] : [];
  };
  const top = obj(r, "$");
  for (const k of ["organization-name", "contact-info", "report-id"]) str(top, k, "$");
  const range = obj(top["date-range"], "$.date-range");
  const start = str(range, "start-datetime", "$.date-range");
  const end = str(range, "end-datetime", "$.date-range");
  for (const d of [start, end]) if (d !== undefined && (!RFC3339.test(d) || Number.isNaN(Date.parse(d)))) errs.push(`$.date-range: not RFC 3339: ${d}`);
  if (start !== undefined && end !== undefined && Date.parse(start) > Date.parse(end)) errs.push("$.date-range: start after end");
  const policies = list(top, "policies", "$", true);
  if (policies.length === 0) errs.push("$.policies: empty");
  policies.forEach((pv, i) => {
    const p = `$.policies[${i}]`;
    const pol = obj(obj(pv, p).policy, `${p}.policy`);
    const type = str(pol, "policy-type", `${p}.policy`);
    if (type !== undefined && !POLICY_TYPES.includes(type)) errs.push(`${p}.policy.policy-type: unknown ${type}`);
    str(pol, "policy-domain", `${p}.policy`);
    for (const k of ["policy-string", "mx-host"]) for (const s of list(pol, k, `${p}.policy`, k === "policy-string" && type !== "no-policy-found")) if (typeof s !== "string") errs.push(`${p}.policy.${k}: non-string element`);
    const sum = obj((pv as Record<string, unknown>).summary, `${p}.summary`);
    count(sum, "total-successful-session-count", `${p}.summary`);
    const failures = count(sum, "total-failure-session-count", `${p}.summary`);
    let total = 0;
    list(pv as Record<string, unknown>, "failure-details", p, false).forEach((fv, j) => {
      const q = `${p}.failure-details[${j}]`;
      const f = obj(fv, q);
      const rt = str(f, "result-type", q);
      if (rt !== undefined && !(FAILURE_TYPES as readonly string[]).includes(rt)) errs.push(`${q}.result-type: unknown ${rt}`);
      for (const k of ["sending-mta-ip", "receiving-ip"]) {
        const ip = str(f, k, q, k === "sending-mta-ip");
        if (ip !== undefined && isIP(ip) === 0) errs.push(`${q}.${k}: not an IP address`);
      }
      for (const k of ["receiving-mx-hostname", "receiving-mx-helo", "additional-information", "failure-reason-code"]) str(f, k, q, k === "receiving-mx-hostname");
      total += count(f, "failed-session-count", q);
    });
    if (total !== failures) errs.push(`${p}: failed-session-counts add up to ${total}, summary says ${failures}`);
  });
  return errs;
}

// ---------------------------------------------------------------------------
// Store and report

test("report: aggregated counts for one day and domain", () => {
  withStore((store) => {
    fill(store);
    assert.deepEqual(store.domainsWithData(DAY2), ["company-y.example", "dane.example"]);
    assert.deepEqual(store.domainsWithData(DAY1), ["company-y.example", "dane.example"]);
    assert.equal(store.report("2026-11-25", "company-y.example", ORG), undefined);
    const r = store.report(DAY2, "Company-Y.Example", { ...ORG, reportIdPrefix: "wm-" });
    assert.ok(r);
    assert.equal(r.reportId, "wm-2026-11-27_company-y.example@wardmail.test");
    assert.equal(r.startDatetime, "2026-11-27T00:00:00Z");
    assert.equal(r.endDatetime, "2026-11-27T23:59:59Z");
    assert.equal(r.policies.length, 2);
    const first = r.policies.find((p) => p.policyStrings[1] === "mode: testing");
    const second = r.policies.find((p) => p.policyStrings[1] === "mode: enforce");
    assert.ok(first && second);
    assert.deepEqual(second.policyStrings, ["version: STSv1", "mode: enforce", "mx: mx1.mail.company-y.example", "max_age: 604800"]);
    assert.deepEqual([second.successCount, second.failureCount, second.failureDetails.length], [1, 0, 0]);
    assert.deepEqual(first.policyStrings, STS);
    assert.deepEqual(first.mxHosts, ["*.mail.company-y.example"]);
    assert.deepEqual([first.successCount, first.failureCount], [8, 4]);
    assert.deepEqual(first.failureDetails, [
      { resultType: "certificate-expired", sendingMtaIp: "2001:db8:abcd:12::1", receivingMxHostname: "mx1.mail.company-y.example", receivingIp: "203.0.113.56", failedSessionCount: 2, failureReasonCode: "certificate expired at noon" },
      { resultType: "starttls-not-supported", sendingMtaIp: "2001:db8:abcd:13::1", receivingMxHostname: "mx2.mail.company-y.example", failedSessionCount: 1 },
      { resultType: "validation-failure", sendingMtaIp: "198.51.100.62", receivingMxHostname: "mx-backup.mail.company-y.example", receivingIp: "203.0.113.58", failedSessionCount: 1 },
    ]);
    // The previous day and the DANE domain are separate reports.
    const d1 = store.report(DAY1, "company-y.example", ORG);
    assert.deepEqual(d1?.policies.map((p) => [p.successCount, p.failureCount, p.failureDetails[0]?.resultType]), [[1, 1, "certificate-not-trusted"]]);
    const dane = store.report(DAY2, "dane.example", ORG);
    assert.deepEqual(dane?.policies.map((p) => [p.policyType, p.policyStrings, p.mxHosts, p.successCount, p.failureCount]), [["tlsa", TLSA, ["mx.dane.example"], 1, 0]]);
  });
});

test("report JSON: same shape as the RFC 8460 Appendix B example (rpt01.json)", () => {
  withStore((store) => {
    fill(store);
    const r = store.report(DAY2, "company-y.example", ORG);
    assert.ok(r);
    const ours: unknown = JSON.parse(reportJson(r));
    const theirs: unknown = JSON.parse(sample("rpt01.json"));
    const errors: string[] = [];
    compareShape(shapeOf([ours]), shapeOf([theirs]), "$", errors);
    assert.deepEqual(errors, []);
    const p0 = (ours as { policies: { policy: Record<string, unknown> }[] }).policies[0];
    assert.ok(Array.isArray(p0?.policy["policy-string"]) && Array.isArray(p0.policy["mx-host"]));
    // The comparison itself catches differences: a string count, a single-string policy.
    const broken = JSON.parse(reportJson(r)) as { policies: { summary: Record<string, unknown>; policy: Record<string, unknown> }[] };
    const b0 = broken.policies[0];
    assert.ok(b0);
    b0.summary["total-successful-session-count"] = "8";
    b0.policy["policy-string"] = STS.join("\n");
    const errs2: string[] = [];
    compareShape(shapeOf([broken]), shapeOf([theirs]), "$", errs2);
    assert.equal(errs2.length, 2, errs2.join("; "));
  });
});

test("report JSON: RFC 8460 §4.4 structure (ours, and the outside samples)", () => {
  withStore((store) => {
    fill(store);
    for (const [day, domain] of [[DAY2, "company-y.example"], [DAY1, "company-y.example"], [DAY2, "dane.example"], [DAY1, "dane.example"]] as const) {
      const r = store.report(day, domain, ORG);
      assert.ok(r);
      assert.deepEqual(validateReport(JSON.parse(reportJson(r))), [], `${day} ${domain}`);
    }
  });
  assert.deepEqual(validateReport(JSON.parse(sample("rpt01.json"))), []);
  assert.deepEqual(validateReport(JSON.parse(sample("rpt02.json"))), []);
  // rpt03 (Google-style) has an unknown policy type and no policy-domain: the check must notice.
  const e3 = validateReport(JSON.parse(sample("rpt03.json")));
  assert.ok(e3.some((e) => e.includes("unknown invalid-policy-type")) && e3.some((e) => e.includes("policy-domain: missing")), e3.join("; "));
});

test("store: invalid input is refused, file is 0600 and survives reopening", () => {
  const dir = mkdtempSync(join(tmpdir(), "wardmail-tlsrpt-"));
  try {
    const store = TlsRptStore.open(dir);
    assert.throws(() => store.record({ ...sts("success", "mx.x.example", "1.2.3.4", undefined, DAY2), result: "bogus" as "success" }), RangeError);
    assert.throws(() => store.record({ ...sts("success", "mx.x.example", "1.2.3.4", undefined, DAY2), policyType: "dmarc" as "sts" }), RangeError);
    assert.throws(() => store.record(sts("success", "mx.x.example", "1.2.3.4", undefined, DAY2, { policyDomain: "bad domain" })), RangeError);
    assert.throws(() => store.report("2026-02-30", "x.example", ORG), RangeError);
    assert.throws(() => store.pendingDays("27.11.2026"), RangeError);
    // A policy fetch error: no MX reached, no IPs; a U-label domain is stored as A-labels.
    store.record({ policyDomain: "bücher.example", policyType: "sts", policyStrings: [], mxHost: "", result: "sts-policy-fetch-error", detail: "HTTP 404", at: at(DAY2, 1) });
    // Not an IP address: left out; a URI as contact-info: no "@domain" in the report-id, the Subject adds ours.
    store.record(sts("starttls-not-supported", "mx.x.example", "not-an-ip", "1.2.3.4\r\nX: y", DAY2, { policyDomain: "x.example" }));
    const rx = store.report(DAY2, "x.example", { name: "Org", contact: "https://reports.example/tlsrpt" });
    assert.deepEqual(rx?.policies[0]?.failureDetails, [{ resultType: "starttls-not-supported", receivingMxHostname: "mx.x.example", failedSessionCount: 1 }]);
    assert.equal(rx?.reportId, "2026-11-27_x.example");
    const mx = readReportMessage(reportMessage({ report: rx ?? assert.fail(), json: reportJson(rx), from: "r@ours.example", to: "t@x.example", ourDomain: "ours.example" }));
    assert.equal(mx?.headers.get("subject"), "Report Domain: x.example Submitter: ours.example Report-ID: <2026-11-27_x.example@ours.example>");
    assert.throws(() => reportMessage({ report: rx, json: "{}", from: "r@ours.example", to: "t@x.example\r\nBcc: z@evil.example", ourDomain: "ours.example" }), RangeError);
    assert.throws(() => reportMessage({ report: { ...rx, reportId: "a b" }, json: "{}", from: "r@ours.example", to: "t@x.example", ourDomain: "ours.example" }), RangeError);
    assert.equal(statSync(join(dir, "tlsrpt.sqlite")).mode & 0o777, 0o600);
    store.close();
    const again = TlsRptStore.open(dir);
    try {
      const r = again.report(DAY2, "xn--bcher-kva.example", ORG);
      assert.deepEqual(r?.policies[0]?.failureDetails, [{ resultType: "sts-policy-fetch-error", failedSessionCount: 1, failureReasonCode: "HTTP 404" }]);
      assert.deepEqual(validateReport(JSON.parse(reportJson(r ?? assert.fail("no report")))).filter((e) => !e.includes("sending-mta-ip") && !e.includes("receiving-mx-hostname")), []);
    } finally {
      again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("markSent / pendingDays / prune", () => {
  withStore((store) => {
    fill(store);
    assert.deepEqual(store.pendingDays(DAY1), []);
    assert.deepEqual(store.pendingDays(DAY2), [
      { day: DAY1, domain: "company-y.example" },
      { day: DAY1, domain: "dane.example" },
    ]);
    assert.equal(store.pendingDays("2026-11-28").length, 4);
    store.markSent(DAY1, "Dane.Example");
    store.markSent(DAY1, "dane.example"); // twice is fine
    assert.deepEqual(store.pendingDays("2026-11-28"), [
      { day: DAY1, domain: "company-y.example" },
      { day: DAY2, domain: "company-y.example" },
      { day: DAY2, domain: "dane.example" },
    ]);
    store.markSent(DAY1, "company-y.example");
    assert.deepEqual(store.pendingDays(DAY2), []);
    // A sent day stays reportable until pruned.
    assert.ok(store.report(DAY1, "dane.example", ORG));
    assert.equal(store.prune(DAY2), 3);
    assert.deepEqual(store.domainsWithData(DAY1), []);
    assert.equal(store.report(DAY1, "dane.example", ORG), undefined);
    assert.equal(store.pendingDays("2026-11-28").length, 2);
    assert.ok(store.report(DAY2, "company-y.example", ORG));
  });
});

// ---------------------------------------------------------------------------
// The report message

function buildMessage(): { raw: Buffer; json: string; filename: string } {
  let out: { raw: Buffer; json: string; filename: string } | undefined;
  withStore((store) => {
    fill(store);
    const report = store.report(DAY2, "company-y.example", ORG);
    assert.ok(report);
    const json = reportJson(report);
    const raw = reportMessage({ report, json, from: "tlsrpt@wardmail.test", to: "tls-reports@company-y.example", ourDomain: "mail.wardmail.test", now: new Date(Date.UTC(2026, 10, 28, 1, 2, 3)) });
    out = { raw, json, filename: reportFilename(report, "mail.wardmail.test") };
  });
  assert.ok(out);
  return out;
}

test("reportMessage: read back by our reader", () => {
  const { raw, json, filename } = buildMessage();
  const text = raw.toString("latin1");
  assert.ok(/^[\x00-\x7f]*$/.test(text), "7-bit");
  assert.ok(!/[^\r]\n/.test(text), "CRLF line ends only");
  // 78 characters (RFC 5322 SHOULD), except the lines holding the file name (up to ~560 with long domains, under the 998 MUST).
  assert.ok(text.split("\r\n").every((l) => l.length <= (l.includes(filename) ? 998 : 78)), "line lengths");
  assert.match(filename, /^mail\.wardmail\.test!company-y\.example!1795737600!1795823999![A-Za-z0-9]+\.json\.gz$/);
  const r = readReportMessage(raw);
  assert.ok(r);
  const h = r.headers;
  assert.equal(h.get("from"), "tlsrpt@wardmail.test");
  assert.equal(h.get("to"), "tls-reports@company-y.example");
  assert.equal(h.get("subject"), "Report Domain: company-y.example Submitter: mail.wardmail.test Report-ID: <2026-11-27_company-y.example@wardmail.test>");
  assert.equal(h.get("tls-report-domain"), "company-y.example");
  assert.equal(h.get("tls-report-submitter"), "mail.wardmail.test");
  assert.equal(h.get("date"), "Sat, 28 Nov 2026 01:02:03 +0000");
  assert.match(h.get("message-id") ?? "", /^<[a-z0-9]+\.[0-9a-f]{16}@mail\.wardmail\.test>$/);
  assert.equal(h.get("mime-version"), "1.0");
  assert.equal(h.get("auto-submitted"), "auto-generated");
  const [type, params] = contentType(h.get("content-type") ?? "");
  assert.equal(type, "multipart/report");
  assert.equal(params.get("report-type"), "tlsrpt");
  assert.equal(r.reportType, "tlsrpt");
  assert.equal(r.contentType, "application/tlsrpt+gzip");
  assert.equal(r.filename, filename);
  assert.equal(r.json, json);
  assert.deepEqual(validateReport(JSON.parse(r.json)), []);
});

test("reportMessage: read back by python3's email package", (t) => {
  const { raw, json, filename } = buildMessage();
  const py = [
    "import sys, email, email.policy, gzip, json",
    "m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)",
    "parts = [p for p in m.walk() if p.get_content_type() == 'application/tlsrpt+gzip']",
    "out = {'type': m.get_content_type(), 'rt': m.get_param('report-type'), 'defects': len(m.defects), 'n': len(list(m.iter_parts())),",
    "       'subparts': [p.get_content_type() for p in m.iter_parts()], 'filename': parts[0].get_filename(),",
    "       'json': gzip.decompress(parts[0].get_payload(decode=True)).decode(), 'subject': str(m['subject'])}",
    "print(json.dumps(out))",
  ].join("\n");
  const res = spawnSync("python3", ["-c", py], { input: raw, encoding: "utf8", timeout: 30_000 });
  if (res.error && (res.error as NodeJS.ErrnoException).code === "ENOENT") {
    skipOrFail(t, "python3 cannot be run: install the Debian package python3");
    return;
  }
  assert.equal(res.status, 0, res.stderr);
  const got = JSON.parse(res.stdout) as Record<string, unknown>;
  assert.deepEqual(got, {
    type: "multipart/report",
    rt: "tlsrpt",
    defects: 0,
    n: 2,
    subparts: ["text/plain", "application/tlsrpt+gzip"],
    filename,
    json,
    subject: "Report Domain: company-y.example Submitter: mail.wardmail.test Report-ID: <2026-11-27_company-y.example@wardmail.test>",
  });
});

test("reader: the outside sample messages rpt01.eml / rpt02.eml give their .json", () => {
  for (const [eml, js, type] of [["rpt01.eml", "rpt01.json", "application/tlsrpt+gzip"], ["rpt02.eml", "rpt02.json", "application/tlsrpt"]] as const) {
    const r = readReportMessage(readFileSync(conformanceFile("tlsrpt", "stalwart", eml)));
    assert.ok(r, eml);
    assert.equal(r.reportType, "tlsrpt", eml);
    assert.equal(r.contentType, type, eml);
    assert.equal(r.headers.get("tls-report-domain"), "example.net");
    assert.deepEqual(JSON.parse(r.json), JSON.parse(sample(js)), eml);
  }
  // And the sample gzip is a plain gzip stream: the same bytes decoded without our reader.
  const body = /json\.gz"\n\n([\s\S]*?)\n\n--/.exec(sample("rpt01.eml"))?.[1] ?? "";
  assert.deepEqual(JSON.parse(gunzipSync(Buffer.from(body, "base64")).toString()), JSON.parse(sample("rpt01.json")));
  assert.equal(readReportMessage(Buffer.from("From: a@b.example\r\nContent-Type: text/plain\r\n\r\nhello\r\n")), undefined);
});

// ---------------------------------------------------------------------------
// The TXT record

test("parseTlsRptRecord: RFC 8460 §3 syntax", () => {
  const ok: [string, string[], string[]][] = [
    ["v=TLSRPTv1; rua=mailto:reports@example.com", ["mailto:reports@example.com"], ["reports@example.com"]],
    ["v=TLSRPTv1;rua=mailto:a@x.example,mailto:b@y.example", ["mailto:a@x.example", "mailto:b@y.example"], ["a@x.example", "b@y.example"]],
    ["v=TLSRPTv1 ; rua=mailto:a@x.example , https://reports.example/tlsrpt ;", ["mailto:a@x.example", "https://reports.example/tlsrpt"], ["a@x.example"]],
    ["v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", ["https://reporting.example.com/v1/tlsrpt"], []],
    ["v=TLSRPTv1; rua=mailto:tls%2Breports@example.com?subject=x; ext_1=abc", ["mailto:tls%2Breports@example.com?subject=x"], ["tls+reports@example.com"]],
    ["v=TLSRPTv1; rua=mailto:a@x.example,ftp://x.example/r", ["mailto:a@x.example"], ["a@x.example"]],
    ["v=TLSRPTv1; rua=mailto:a@x.example; rua=mailto:b@x.example", ["mailto:a@x.example"], ["a@x.example"]],
  ];
  for (const [txt, rua, mailto] of ok) assert.deepEqual(parseTlsRptRecord(txt), { rua, mailto }, txt);
  const bad = [
    "",
    "v=TLSRPTv1",
    "v=TLSRPTv1;",
    "v=TLSRPTv2; rua=mailto:a@x.example",
    "v=tlsrptv1; rua=mailto:a@x.example",
    " v=TLSRPTv1; rua=mailto:a@x.example",
    "rua=mailto:a@x.example; v=TLSRPTv1",
    "v=TLSRPTv1; ruf=mailto:a@x.example",
    "v=TLSRPTv1; rua=",
    "v=TLSRPTv1; rua=mailto:a@x.example,",
    "v=TLSRPTv1;; rua=mailto:a@x.example",
    "v=TLSRPTv1; rua=mailto:a@x.example; bad",
    "v=TLSRPTv1; rua=mailto:a@x.example; x=a b",
    "v=TLSRPTv1; rua=mailto:not-an-address",
    "v=TLSRPTv1; rua=ftp://x.example/r",
  ];
  for (const txt of bad) assert.equal(parseTlsRptRecord(txt), undefined, JSON.stringify(txt));
});

test("tlsRptFor: _smtp._tls lookup", async () => {
  const resolver = new StaticResolver({
    "_smtp._tls.good.example": { TXT: ["v=spf1 -all", ["v=TLSRPTv1; rua=mailto:", "tls@good.example"]] },
    "_smtp._tls.two.example": { TXT: ["v=TLSRPTv1; rua=mailto:a@two.example", "v=TLSRPTv1; rua=mailto:b@two.example"] },
    "_smtp._tls.bad.example": { TXT: ["v=TLSRPTv1; rua=gopher://x"] },
    "_smtp._tls.slow.example": "TIMEOUT",
  });
  assert.deepEqual(await tlsRptFor(resolver, "Good.Example."), { status: "found", record: { rua: ["mailto:tls@good.example"], mailto: ["tls@good.example"] } });
  assert.equal((await tlsRptFor(resolver, "two.example")).status, "none");
  assert.equal((await tlsRptFor(resolver, "bad.example")).status, "none");
  assert.equal((await tlsRptFor(resolver, "absent.example")).status, "none");
  assert.equal((await tlsRptFor(resolver, "slow.example")).status, "error");
});
