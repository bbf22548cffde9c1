/**
 * TLS-RPT end to end (RFC 8460), with an MTA-STS "testing" policy (RFC 8461
 * §5) as the failure to report. Real peers on loopback:
 *   Knot          the zones below
 *   Postfix #1    mx.ststest.test on 127.0.0.11:P, STARTTLS with a test-CA
 *                 certificate for another name (mx.elsewhere.test)
 *   HTTPS         mta-sts.ststest.test on 127.0.0.12:443: "mode: testing", mx: mx.ststest.test
 *   Postfix #2    mx.reports.test on 127.0.0.13:P: the report address's MX, stores in a Maildir
 *   Postfix #3    mx.plain.ststest2.test on 127.0.0.14:P, no STARTTLS
 *   HTTPS         mta-sts.ststest2.test (same server): "mode: testing", mx: mx.plain.ststest2.test
 * Zones: ststest.test (MX, _mta-sts TXT, mta-sts A, _smtp._tls TXT
 * rua=mailto:tlsrpt@reports.test), ststest2.test (MX, _mta-sts TXT,
 * mta-sts A) and reports.test (MX). Wardmail trusts
 * the test CA (NODE_EXTRA_CA_CERTS), takes mail from 127.0.0.1 on its MX
 * port (relay.trusted_networks), and runs its report job every second
 * (outbound.tlsrpt_interval = 1).
 *
 * 1. Mail to ann@ststest.test is delivered (testing: deliver anyway), and
 *    today's TLS-RPT data for ststest.test has policy type sts with
 *    result certificate-host-mismatch, not no-policy-found; mail to
 *    bea@ststest2.test is delivered without TLS, recorded as sts,
 *    starttls-not-supported.
 * 2. The report job sends a finished day's report: the one thing a test
 *    cannot wait for is midnight UTC, so the test moves today's recorded
 *    rows in <dataDir>/tlsrpt.sqlite to yesterday (what the date change
 *    does to them). Within seconds the job mails the report through the
 *    queue to tlsrpt@reports.test; Postfix #2 stores it, and Python's email,
 *    gzip and json modules (independent of Wardmail) read it: RFC 8460 §5.3
 *    headers, multipart/report; report-type="tlsrpt", the gzipped JSON with
 *    the sts policy and its certificate-host-mismatch failure.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as https from "node:https";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { CertFactory, type Issued } from "../src/outbound/mta-sts-testing.ts";
import { TlsRptStore, utcDay, type TlsReport } from "../src/outbound/tlsrpt.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { exec } from "./peers/exec.ts";
import { knotMissing, startKnot, txtRdata, zoneText, type Knot } from "./peers/knot.ts";
import { freePort } from "./peers/ports.ts";
import { postfixMissing, startPostfix, type PostfixInstance } from "./peers/postfix.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";
import { logLines } from "./peers/submission.ts";
import { binaryMissing, peerSkip, rootMissing } from "./helpers/peers.ts";

const PYTHON = "/usr/bin/python3";
const MX_IP = "127.0.0.11";
const POLICY_IP = "127.0.0.12";
const REPORTS_IP = "127.0.0.13";
const PLAIN_IP = "127.0.0.14";
const RUA = "tlsrpt@reports.test";
const skip = peerSkip(
  knotMissing(),
  postfixMissing(),
  rootMissing("serves the MTA-STS policy on 127.0.0.12:443"),
  binaryMissing("openssl", ["version"], "openssl"),
  binaryMissing(PYTHON, ["-c", "import email, gzip, json"], "python3", { exitZero: true }),
);

let work = "";
let certs: CertFactory | undefined;
let knot: Knot | undefined;
let mx: PostfixInstance | undefined;
let reports: PostfixInstance | undefined;
let plain: PostfixInstance | undefined;
let policy: https.Server | undefined;
let w: Wardmail | undefined;

function need<T>(v: T | undefined, what: string): T {
  assert.ok(v !== undefined, `${what} not started`);
  return v;
}

async function startPolicyServer(cert: Issued, bodies: Readonly<Record<string, string>>): Promise<https.Server> {
  const server = https.createServer({ key: cert.key, cert: cert.chain }, (req, res) => {
    const body = req.url === "/.well-known/mta-sts.txt" ? bodies[(req.headers.host ?? "").toLowerCase().replace(/:\d+$/, "")] : undefined;
    if (body === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) }).end(body);
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(new Error(`cannot listen on ${POLICY_IP}:443 (needs root and a free port): ${e.message}`)));
    server.listen(443, POLICY_IP, () => resolve());
  });
  return server;
}

/** Python's email + gzip + json read the report message: headers, structure, and the JSON. */
async function pythonReadsReport(raw: Buffer): Promise<{ headers: Record<string, string>; contentType: string; reportType: string; partType: string; filename: string; report: Record<string, unknown> }> {
  const code = [
    "import sys, email, gzip, json",
    "from email import policy",
    "m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)",
    "part = next(p for p in m.walk() if p.get_content_type() == 'application/tlsrpt+gzip')",
    "out = {",
    "  'headers': {k: ' '.join(str(m[k]).split()) for k in ['Subject', 'TLS-Report-Domain', 'TLS-Report-Submitter', 'From', 'To']},",
    "  'contentType': m.get_content_type(), 'reportType': m.get_param('report-type'),",
    "  'partType': part.get_content_type(), 'filename': part.get_filename(),",
    "  'report': json.loads(gzip.decompress(part.get_payload(decode=True)).decode('utf-8')),",
    "}",
    "print(json.dumps(out))",
  ].join("\n");
  const r = await exec(PYTHON, ["-c", code], { input: raw, timeoutMs: 20_000 });
  assert.equal(r.code, 0, `python could not read the report: ${r.out}\n${raw.toString("latin1").slice(0, 3000)}`);
  return JSON.parse(r.out.trim().split("\n").at(-1) ?? "{}") as Awaited<ReturnType<typeof pythonReadsReport>>;
}

/**
 * Today's TLS-RPT report for domain, once one is there: the session's row (and
 * its log line) is written when the session closes, which can be just after
 * the peer stored the mail. At most 5 s.
 */
async function todaysReport(dataDir: string, domain: string): Promise<TlsReport> {
  const store = TlsRptStore.open(dataDir);
  try {
    for (let i = 0; ; i++) {
      const r = store.report(utcDay(Date.now()), domain, { name: "mx.example.test", contact: "postmaster@mx.example.test" });
      if (r !== undefined) return r;
      assert.ok(i < 50, `no TLS-RPT data for ${domain}`);
      await sleep(100);
    }
  } finally {
    store.close();
  }
}

before(async () => {
  if (skip !== false) return;
  work = await mkdtemp(join(tmpdir(), "wardmail-tlsrpt-"));
  certs = await CertFactory.create();
  const ca = await certs.caCert("Wardmail TLS-RPT test CA");
  const caPath = join(work, "ca.pem");
  await writeFile(caPath, ca.cert);
  const port = await freePort();
  const [wrong, reportsCert, policyCert] = await Promise.all([
    certs.make({ names: ["mx.elsewhere.test"], issuer: ca }),
    certs.make({ names: ["mx.reports.test"], issuer: ca }),
    certs.make({ names: ["mta-sts.ststest.test", "mta-sts.ststest2.test"], issuer: ca }),
  ]);
  const started = await Promise.allSettled([
    startKnot({
      zones: {
        "ststest.test": zoneText("ststest.test", [
          "@ MX 10 mx",
          `mx A ${MX_IP}`,
          `_mta-sts TXT ${txtRdata("v=STSv1; id=testing1")}`,
          `mta-sts A ${POLICY_IP}`,
          `_smtp._tls TXT ${txtRdata(`v=TLSRPTv1; rua=mailto:${RUA}`)}`,
        ]),
        "ststest2.test": zoneText("ststest2.test", ["@ MX 10 mx.plain", `mx.plain A ${PLAIN_IP}`, `_mta-sts TXT ${txtRdata("v=STSv1; id=testing2")}`, `mta-sts A ${POLICY_IP}`]),
        "reports.test": zoneText("reports.test", ["@ MX 10 mx", `mx A ${REPORTS_IP}`]),
      },
    }).then((k) => (knot = k)),
    startPostfix({ mode: "mailbox", host: MX_IP, port, mailboxes: ["ann@ststest.test"], tls: { certFile: wrong.certPath, keyFile: wrong.keyPath } }).then((p) => (mx = p)),
    startPostfix({ mode: "mailbox", host: REPORTS_IP, port, mailboxes: [RUA], tls: { certFile: reportsCert.certPath, keyFile: reportsCert.keyPath } }).then((p) => (reports = p)),
    startPostfix({ mode: "mailbox", host: PLAIN_IP, port, mailboxes: ["bea@ststest2.test"] }).then((p) => (plain = p)),
    startPolicyServer(policyCert, {
      "mta-sts.ststest.test": "version: STSv1\nmode: testing\nmx: mx.ststest.test\nmax_age: 86400\n",
      "mta-sts.ststest2.test": "version: STSv1\nmode: testing\nmx: mx.plain.ststest2.test\nmax_age: 86400\n",
    }).then((s) => (policy = s)),
  ]);
  for (const r of started) if (r.status === "rejected") throw r.reason;
  w = await startWardmail({
    workers: 1,
    domains: ["example.test"],
    mailboxes: ["postmaster@example.test"],
    checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${need(knot, "knot").port}"]\ntimeout = 500\nattempts = 2\n`,
    extra: ["[relay]", 'trusted_networks = ["127.0.0.1/32"]', "[outbound]", `port = ${port}`, "tlsrpt_interval = 1", "[queue]", "retry_min = 1", "retry_max = 2", ""].join("\n"),
    env: { NODE_EXTRA_CA_CERTS: caPath },
  });
});

after(async () => {
  await Promise.allSettled([
    w?.stop().then(() => w?.cleanup()),
    mx?.stop(),
    reports?.stop(),
    plain?.stop(),
    knot?.stop(),
    policy !== undefined
      ? new Promise<void>((resolve) => {
          policy?.closeAllConnections();
          policy?.close(() => resolve());
        })
      : undefined,
  ]);
  await certs?.cleanup();
  if (work !== "") await rm(work, { recursive: true, force: true });
});

describe("TLS-RPT: an MTA-STS testing failure, reported by mail to the rua of the domain", { skip }, () => {
  test("MTA-STS testing, MX certificate for another name: delivered, and recorded as policy type sts, certificate-host-mismatch", async () => {
    const server = need(w, "wardmail");
    const replies = await sendOneMessage({ port: server.smtpPort, from: "alice@example.test", to: ["ann@ststest.test"], body: "Subject: sts testing\r\n\r\nsts-testing-token\r\n" });
    assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
    const got = await need(mx, "mx postfix").waitForMailbox("ann@ststest.test", 1, 20_000);
    assert.ok(got.some((m) => m.toString("latin1").includes("sts-testing-token")), `not delivered\n${server.output().slice(-3000)}`);
    const r = await todaysReport(server.dataDir, "ststest.test");
    assert.deepEqual(r.policies.map((p) => p.policyType), ["sts"], JSON.stringify(r));
    const p = r.policies[0];
    assert.ok(p);
    assert.deepEqual(p.policyStrings, ["version: STSv1", "mode: testing", "mx: mx.ststest.test", "max_age: 86400"]);
    assert.equal(p.successCount, 0, JSON.stringify(p));
    assert.equal(p.failureCount, 1, JSON.stringify(p));
    assert.deepEqual(p.failureDetails.map((d) => d.resultType), ["certificate-host-mismatch"], JSON.stringify(p));
    let session: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && session === undefined; i++) {
      session = logLines(server.output(), "outbound session").find((l) => l.mx === "mx.ststest.test");
      if (session === undefined) await sleep(100);
    }
    assert.equal(session?.tlsSource, "mta-sts-testing", JSON.stringify(session));
    assert.match(String(session?.stsTestingFailure), /^certificate-host-mismatch: /, JSON.stringify(session));
  });

  test("MTA-STS testing, MX without STARTTLS: delivered in plaintext, recorded as policy type sts, starttls-not-supported", async () => {
    const server = need(w, "wardmail");
    const replies = await sendOneMessage({ port: server.smtpPort, from: "alice@example.test", to: ["bea@ststest2.test"], body: "Subject: sts testing 2\r\n\r\nsts-testing-plain-token\r\n" });
    assert.ok(replies.some((r) => r.code === 250 && /queued as/.test(r.lines[0] ?? "")), JSON.stringify(replies));
    const got = await need(plain, "plain postfix").waitForMailbox("bea@ststest2.test", 1, 20_000);
    assert.ok(got.some((m) => m.toString("latin1").includes("sts-testing-plain-token")), `not delivered\n${server.output().slice(-3000)}`);
    const r = await todaysReport(server.dataDir, "ststest2.test");
    assert.deepEqual(r.policies.map((p) => [p.policyType, p.successCount, p.failureCount]), [["sts", 0, 1]], JSON.stringify(r));
    assert.deepEqual(r.policies[0]?.failureDetails.map((d) => [d.resultType, d.receivingIp]), [["starttls-not-supported", PLAIN_IP]], JSON.stringify(r));
  });

  test("the report job mails the finished day's report to the rua; Python reads RFC 8460 headers and the gzipped JSON", async (t) => {
    const server = need(w, "wardmail");
    const today = utcDay(Date.now());
    const yesterday = utcDay(Date.now() - 86_400_000);
    // Midnight UTC, brought forward: today's rows become yesterday's (the only change the date makes to them).
    const db = new DatabaseSync(join(server.dataDir, "tlsrpt.sqlite"));
    try {
      db.exec("PRAGMA busy_timeout = 5000");
      const moved = db.prepare("UPDATE sessions SET day = ? WHERE day = ? AND domain = ?").run(yesterday, today, "ststest.test");
      assert.ok(Number(moved.changes) >= 1, "no rows for ststest.test today");
    } finally {
      db.close();
    }
    const started = Date.now();
    const mail = await need(reports, "reports postfix").waitForMailbox(RUA, 1, 30_000);
    assert.equal(mail.length, 1, `no report reached ${RUA} within 30 s\n${server.output().slice(-4000)}`);
    const raw = mail[0] as Buffer;
    const seconds = (Date.now() - started) / 1000;
    t.diagnostic(`report in the rua mailbox ${seconds.toFixed(2)} s after the day was over (job every 1 s)`);
    const queued = logLines(server.output(), "TLS-RPT report queued");
    assert.deepEqual(queued.map((l) => [l.day, l.domain, l.to]), [[yesterday, "ststest.test", RUA]], `took ${seconds} s`);

    const read = await pythonReadsReport(raw);
    assert.equal(read.contentType, "multipart/report");
    assert.equal(read.reportType, "tlsrpt");
    assert.equal(read.partType, "application/tlsrpt+gzip");
    assert.match(read.filename, /^mx\.example\.test!ststest\.test!\d+!\d+![0-9a-f]{16}\.json\.gz$/);
    assert.equal(read.headers["TLS-Report-Domain"], "ststest.test");
    assert.equal(read.headers["TLS-Report-Submitter"], "mx.example.test");
    assert.match(read.headers.Subject ?? "", /^Report Domain: ststest\.test Submitter: mx\.example\.test Report-ID: <[^>]+>$/);
    assert.equal(read.headers.To, RUA);

    const rep = read.report;
    assert.deepEqual(rep["date-range"], { "start-datetime": `${yesterday}T00:00:00Z`, "end-datetime": `${yesterday}T23:59:59Z` });
    assert.equal(rep["organization-name"], "mx.example.test");
    const policies = rep.policies as Record<string, Record<string, unknown>>[];
    assert.equal(policies.length, 1, JSON.stringify(rep));
    const pol = policies[0] ?? {};
    assert.equal(pol.policy?.["policy-type"], "sts");
    assert.equal(pol.policy?.["policy-domain"], "ststest.test");
    assert.deepEqual(pol.policy?.["policy-string"], ["version: STSv1", "mode: testing", "mx: mx.ststest.test", "max_age: 86400"]);
    assert.deepEqual(pol.summary, { "total-successful-session-count": 0, "total-failure-session-count": 1 });
    const details = pol["failure-details"] as unknown as Record<string, unknown>[];
    assert.deepEqual(details.map((d) => [d["result-type"], d["receiving-ip"], d["receiving-mx-hostname"], d["failed-session-count"]]), [["certificate-host-mismatch", MX_IP, "mx.ststest.test", 1]]);

    // Sent once: the next runs (every second) find nothing more to send for that day.
    await sleep(2500);
    assert.equal(logLines(server.output(), "TLS-RPT report queued").length, 1);
    assert.equal((await need(reports, "reports postfix").mailbox(RUA)).length, 1);
  });
});
