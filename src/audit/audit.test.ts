/**
 * The audit's pure parts: the grading rule, sanitizing hostile text, the
 * smuggling variants against the shared external table, target parsing,
 * the relay battery's forms and the three report renderers. The probes
 * themselves are tested against real servers in test/audit.test.ts and
 * test/audit-tls.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { conformanceFile } from "../../test/helpers/conformance.ts";
import { EOD_VARIANTS, gradeFindings, inboundVariants, sanitize, toHtml, toJson, toText, type Finding, type Report } from "./index.ts";
import { relayTricks } from "./smtp-checks.ts";
import { parseTarget } from "../cli/index.ts";

const f = (id: string, severity: Finding["severity"], area: Finding["area"]): Finding => ({ id, severity, area, title: id, evidence: "e", fix: "x" });

test("grading: an area is graded by its worst finding; overall is the worst area", () => {
  const graded = ["transport", "relay", "authentication"] as const;
  assert.deepEqual(gradeFindings([], graded), { grade: "A", areas: { transport: "A", relay: "A", authentication: "A" } });
  const r = gradeFindings([f("a", "info", "transport"), f("b", "low", "transport"), f("c", "medium", "relay"), f("d", "low", "relay")], graded);
  assert.deepEqual(r, { grade: "C", areas: { transport: "B", relay: "C", authentication: "A" } });
  assert.equal(gradeFindings([f("h", "high", "authentication")], graded).grade, "D");
  assert.equal(gradeFindings([f("h", "high", "authentication"), f("c", "critical", "relay")], graded).grade, "F");
  assert.deepEqual(gradeFindings([], []), { grade: "-", areas: {} });
});

test("sanitize: control, C1 and bidi characters never reach a terminal; length is capped", () => {
  assert.equal(sanitize("a\x1b[31mb\u009bc\u202ed\x00e"), "a?[31mb?c?d?e");
  assert.equal(sanitize("x".repeat(500), 10), "xxxxxxxxxx...");
});

test("the smuggling variants are the shared table's, byte for byte; those with a real CRLF.CRLF are not sent", () => {
  const table = JSON.parse(readFileSync(conformanceFile("smuggling", "eod-payloads.json"), "utf8")) as { payloads: { id: string; hex: string }[] };
  assert.deepEqual(
    EOD_VARIANTS.map((v) => [v.id, v.hex]),
    table.payloads.map((p) => [p.id, p.hex.replace(/ /g, "")]),
  );
  const sent = inboundVariants().map((v) => v.id);
  assert.equal(sent.length, 14);
  assert.ok(!sent.includes("nul-crlf-dot-crlf") && !sent.includes("crlf-dot-crlf-nul"));
});

test("targets: HOST, HOST:PORT, IPv4, [IPv6]:PORT; bad ones refused", () => {
  assert.deepEqual(parseTarget("mx.example.org", 25), { host: "mx.example.org", port: 25 });
  assert.deepEqual(parseTarget("mx.example.org:587", 25), { host: "mx.example.org", port: 587 });
  assert.deepEqual(parseTarget("127.0.0.1:2525", 25), { host: "127.0.0.1", port: 2525 });
  assert.deepEqual(parseTarget("[::1]:26", 25), { host: "::1", port: 26 });
  assert.deepEqual(parseTarget("::1", 25), { host: "::1", port: 25 });
  for (const bad of ["", "a b", "host:0", "host:70000", "[nothost]:25", "-x.example", "h:25:26", "a_b.example"]) assert.equal(parseTarget(bad, 25), undefined, bad);
});

test("the relay battery: plain external, %, !, quoted, source route, IP literals", () => {
  const forms = relayTricks("mx.example.net", "192.0.2.7").map((t) => `${t.id} ${t.rcpt}`);
  assert.deepEqual(forms, [
    "plain wardmail-relay-test@example.com",
    "percent wardmail-relay-test%example.com@mx.example.net",
    "percent-literal wardmail-relay-test%example.com@[192.0.2.7]",
    "bang example.com!wardmail-relay-test@mx.example.net",
    "bang-bare example.com!wardmail-relay-test",
    'quoted "wardmail-relay-test@example.com"',
    'quoted-local "wardmail-relay-test@example.com"@mx.example.net',
    "source-route @mx.example.net:wardmail-relay-test@example.com",
    "double-at wardmail-relay-test@example.com@mx.example.net",
    "ip-literal wardmail-relay-test@[192.0.2.1]",
  ]);
  assert.match(relayTricks("l", "::1")[2]?.rcpt ?? "", /@\[IPv6:::1\]$/);
});

const REPORT: Report = {
  target: "smtp://mx.example.org:25",
  grade: "F",
  areas: { transport: "C", relay: "F", authentication: "A" },
  findings: [
    { id: "relay.open", severity: "critical", area: "relay", title: "open relay", evidence: 'RCPT TO:<x@example.com> got 250 <script>alert("x")</script>', fix: "close it" },
    { id: "tls.summary", severity: "info", area: "transport", title: "TLS", evidence: "TLSv1.3", fix: "nothing to do" },
  ],
  checks: [
    { id: "relay", ran: true },
    { id: "smuggling", ran: false, note: "needs --send-to" },
  ],
  startedAt: "2026-12-07T00:00:00.000Z",
  durationMs: 1234,
};

test("JSON: the documented schema, nothing more", () => {
  const j = JSON.parse(toJson(REPORT)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(j), ["schema", "kind", "target", "grade", "areas", "findings", "checks", "startedAt", "durationMs"]);
  assert.equal(j.schema, 1);
  assert.equal(j.kind, "server");
  assert.deepEqual(Object.keys((j.findings as object[])[0] as object), ["id", "severity", "area", "title", "evidence", "fix"]);
});

test("text: colour only when asked; every finding with evidence and fix; checks not run listed", () => {
  const plain = toText(REPORT, { colour: false });
  assert.doesNotMatch(plain, /\x1b/);
  assert.match(plain, /^Wardmail audit of smtp:\/\/mx\.example\.org:25\noverall grade: F\n {2}transport \(TLS\) +C\n {2}relay\/abuse +F\n {2}authentication +A\n/);
  assert.match(plain, /\[CRITICAL\] open relay {2}\(relay\.open, relay\/abuse\)\n {4}evidence: RCPT TO/);
  assert.match(plain, /fix: {6}close it/);
  assert.match(plain, /not run:\n {2}smuggling: needs --send-to/);
  assert.match(toText(REPORT, { colour: true }), /\x1b\[1;31mCRITICAL\x1b\[0m/);
});

test("HTML: self-contained, every value escaped", () => {
  const page = toHtml(REPORT);
  assert.doesNotMatch(page, /<script/);
  assert.match(page, /&#60;script&#62;alert\(&#34;x&#34;\)/);
  assert.doesNotMatch(page, /src=|href=/i);
  assert.match(page, /Content-Security-Policy" content="default-src 'none'/);
});

test("a domain report: kind and servers in JSON, each MX's grade in the text and the page", () => {
  const domain: Report = {
    ...REPORT,
    target: "example.org",
    kind: "domain",
    areas: { ...REPORT.areas, domain: "B" },
    servers: [
      { host: "mx1.example.org", address: "192.0.2.1", target: "smtp://mx1.example.org:25", grade: "C", areas: { transport: "C", relay: "A", authentication: "A" } },
      { host: "mx2.example.org", address: "192.0.2.2", target: "smtp://mx2.example.org:25", grade: "F", areas: {}, error: "192.0.2.2:25: ECONNREFUSED" },
    ],
  };
  const j = JSON.parse(toJson(domain)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(j), ["schema", "kind", "target", "grade", "areas", "findings", "checks", "servers", "startedAt", "durationMs"]);
  assert.equal(j.kind, "domain");
  const t = toText(domain, { colour: false });
  assert.match(t, /^ {2}MX mx1\.example\.org \(192\.0\.2\.1\): C \(transport C, relay A, authentication A\)$/m);
  assert.match(t, /^ {2}MX mx2\.example\.org \(192\.0\.2\.2\): F unreachable: 192\.0\.2\.2:25: ECONNREFUSED$/m);
  assert.match(toHtml(domain), /<h2>MX hosts<\/h2>/);
});
