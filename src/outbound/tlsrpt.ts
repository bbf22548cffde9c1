/**
 * SMTP TLS Reporting (RFC 8460) for outbound delivery: the per-day counts of
 * TLS sessions by policy, the JSON aggregate report (§4), the
 * `_smtp._tls.<domain>` TXT record (§3), and the report message (§5.3).
 *
 *   const store = TlsRptStore.open(dataDir);              // <dataDir>/tlsrpt.sqlite
 *   after every outbound TLS attempt: store.record({ policyDomain, policyType, policyStrings, mxHost, sendingIp, receivingIp, result })
 *   once a day: for (const { day, domain } of store.pendingDays(today)) {
 *     const r = store.report(day, domain, org);  const rec = await tlsRptFor(resolver, domain);
 *     if (r && rec.status === "found") for (const to of rec.record.mailto) queue(reportMessage({ report: r, json: reportJson(r), from, to, ourDomain }));
 *     if (rec.status !== "error") store.markSent(day, domain);
 *   }
 *
 * Storage: counts are aggregated on write per (UTC day, policy domain, policy
 * type + strings, result type, MX host, sending IP, receiving IP); one row
 * per combination, the last failure detail kept. Policies are stored once,
 * keyed by a hash of type and strings. WAL, synchronous=NORMAL: a power loss
 * may lose the last few counts, never the file. Nothing is deleted unless
 * prune() is called. record() throws on a write error (disk full): callers
 * on the delivery path should catch and log.
 *
 * Report: one report per (day, policy domain), date-range the whole UTC day
 * (00:00:00Z to 23:59:59Z, as the RFC example). mx-host: for sts the `mx:`
 * patterns of the policy, otherwise the MX hosts seen. The failure detail
 * text goes into "failure-reason-code" (a text field), not
 * "additional-information" (which §4.4 defines as a URI). report-id is
 * deterministic, `<prefix><day>_<policy domain>@<contact domain>` (no `@…`
 * when contact-info is not an address), so a report sent twice after a
 * crash carries the same id and can be de-duplicated. IP addresses that do
 * not parse are left out of the report.
 *
 * Not here: DKIM signing of the report (the submission path signs it), https
 * rua delivery (only mailto: is used), receiving-mx-helo (not recorded).
 */
import { createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { domainToASCII } from "node:url";
import { gzipSync } from "node:zlib";
import type { DnsResolver } from "../dns/index.ts";
import { DnsError } from "../dns/index.ts";
import { openDatabase, writeTransaction } from "../storage/index.ts";
import { rfc5322Date } from "./dsn.ts";
import type { TlsRptResultType } from "./mta-sts.ts";

// ---------------------------------------------------------------------------
// Types

/** A failure result type of RFC 8460 §4.3. */
export type TlsRptFailure = TlsRptResultType;
export type TlsRptPolicyType = "sts" | "tlsa" | "no-policy-found";

export const FAILURE_TYPES: readonly TlsRptFailure[] = [
  "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted", "validation-failure",
  "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
];
const POLICY_TYPES: readonly TlsRptPolicyType[] = ["sts", "tlsa", "no-policy-found"];

/** One outbound session (or one failed policy fetch) as the delivery code saw it. */
export interface TlsRptEvent {
  /** The recipient domain (A-labels or U-labels; stored lower case A-labels). */
  policyDomain: string;
  policyType: TlsRptPolicyType;
  /** sts: the policy file's lines; tlsa: the records as "3 1 1 ab…". An element holding several lines is split. Ignored for no-policy-found. */
  policyStrings: string[];
  /** "" when no MX was reached (e.g. sts-policy-fetch-error). */
  mxHost: string;
  /** Not an IP address: left out. */
  sendingIp?: string;
  receivingIp?: string;
  result: "success" | TlsRptFailure;
  /** Human text of the failure; reported as failure-reason-code. */
  detail?: string;
  /** When (ms since the epoch); default now. */
  at?: number;
}

export interface TlsFailureDetail {
  readonly resultType: TlsRptFailure;
  readonly sendingMtaIp?: string;
  readonly receivingMxHostname?: string;
  readonly receivingIp?: string;
  readonly failedSessionCount: number;
  readonly failureReasonCode?: string;
}

export interface TlsReportPolicy {
  readonly policyType: TlsRptPolicyType;
  readonly policyStrings: readonly string[];
  readonly policyDomain: string;
  readonly mxHosts: readonly string[];
  readonly successCount: number;
  readonly failureCount: number;
  readonly failureDetails: readonly TlsFailureDetail[];
}

export interface TlsReport {
  readonly organizationName: string;
  readonly contactInfo: string;
  readonly reportId: string;
  /** "2026-11-27" */
  readonly day: string;
  readonly policyDomain: string;
  /** RFC 3339, UTC: "2026-11-27T00:00:00Z" / "2026-11-27T23:59:59Z". */
  readonly startDatetime: string;
  readonly endDatetime: string;
  readonly policies: readonly TlsReportPolicy[];
}

export interface TlsRptOrg {
  /** organization-name */
  name: string;
  /** contact-info: an address or a URI */
  contact: string;
  reportIdPrefix?: string;
}

// ---------------------------------------------------------------------------
// Canonical forms

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const MAX_DETAIL = 300;

/** The UTC day of a time in ms: "2026-11-27". */
export function utcDay(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`tlsrpt: bad time ${ms}`);
  return new Date(ms).toISOString().slice(0, 10);
}

function checkDay(day: string): string {
  const m = DAY.exec(day);
  if (!m || utcDay(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) !== day) throw new RangeError(`tlsrpt: not a day (YYYY-MM-DD): ${JSON.stringify(day)}`);
  return day;
}

/** Lower-case A-label form, no trailing dot; throws when it is not a domain name. */
function canonDomain(domain: string, what: string): string {
  const a = domainToASCII(domain.trim().replace(/\.$/, "")).toLowerCase();
  if (a === "" || a.length > 253 || !/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/.test(a)) throw new RangeError(`tlsrpt: bad ${what}: ${JSON.stringify(domain.slice(0, 100))}`);
  return a;
}

function policyLines(type: TlsRptPolicyType, strings: readonly string[]): string[] {
  if (type === "no-policy-found") return [];
  const lines: string[] = [];
  for (const s of strings) for (const l of s.split(/\r?\n/)) if (l.trim() !== "") lines.push(l.replace(/\s+$/, ""));
  return lines;
}

/** An IP address as given, or "" when absent or not an address. */
function ipOrEmpty(ip: string | undefined): string {
  const t = (ip ?? "").trim();
  return t.length <= 64 && isIP(t) !== 0 ? t : "";
}

function cleanText(s: string | undefined, max: number): string {
  return (s ?? "").replace(/[\x00-\x1f\x7f]+/g, " ").trim().slice(0, max);
}

// ---------------------------------------------------------------------------
// Store

export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS policies (
  id TEXT PRIMARY KEY NOT NULL,     -- sha256 of type and strings, 32 hex
  type TEXT NOT NULL,
  strings TEXT NOT NULL             -- JSON array of lines
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
  day TEXT NOT NULL,                -- UTC, YYYY-MM-DD
  domain TEXT NOT NULL,             -- policy domain
  policy TEXT NOT NULL,             -- policies.id
  result TEXT NOT NULL,             -- 'success' or an RFC 8460 result type
  mx TEXT NOT NULL,                 -- '' unknown
  sending_ip TEXT NOT NULL,         -- '' unknown
  receiving_ip TEXT NOT NULL,       -- '' unknown
  count INTEGER NOT NULL,
  detail TEXT,                      -- last failure detail
  PRIMARY KEY (day, domain, policy, result, mx, sending_ip, receiving_ip)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent (
  day TEXT NOT NULL,
  domain TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  PRIMARY KEY (day, domain)
) WITHOUT ROWID;
`;

interface Row {
  policy: string;
  type: string;
  strings: string;
  result: string;
  mx: string;
  sending_ip: string;
  receiving_ip: string;
  count: number;
  detail: string | null;
}

export class TlsRptStore {
  readonly #db: DatabaseSync;
  readonly #addPolicy: StatementSync;
  readonly #count: StatementSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    this.#addPolicy = db.prepare("INSERT OR IGNORE INTO policies (id, type, strings) VALUES (?, ?, ?)");
    this.#count = db.prepare(
      `INSERT INTO sessions (day, domain, policy, result, mx, sending_ip, receiving_ip, count, detail) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)
       ON CONFLICT (day, domain, policy, result, mx, sending_ip, receiving_ip) DO UPDATE SET count = count + 1, detail = coalesce(excluded.detail, detail)`,
    );
  }

  /** Opens (creating when missing, mode 0600) `<dataDir>/tlsrpt.sqlite`. */
  static open(dataDir: string): TlsRptStore {
    const path = join(dataDir, "tlsrpt.sqlite");
    const db = openDatabase(path, { create: true, what: "TLS-RPT database", schema: SCHEMA, version: SCHEMA_VERSION, pragmas: ["synchronous = NORMAL"] });
    return new TlsRptStore(db);
  }

  /** Counts one session. Throws RangeError on an invalid event, or on a database error. */
  record(e: TlsRptEvent): void {
    if (!POLICY_TYPES.includes(e.policyType)) throw new RangeError(`tlsrpt: bad policy type ${String(e.policyType)}`);
    if (e.result !== "success" && !FAILURE_TYPES.includes(e.result)) throw new RangeError(`tlsrpt: bad result type ${String(e.result)}`);
    const day = utcDay(e.at ?? Date.now());
    const domain = canonDomain(e.policyDomain, "policy domain");
    const mx = e.mxHost === "" ? "" : canonDomain(e.mxHost, "MX host");
    const strings = JSON.stringify(policyLines(e.policyType, e.policyStrings));
    const id = createHash("sha256").update(`${e.policyType}\n${strings}`).digest("hex").slice(0, 32);
    const detail = e.result === "success" ? null : cleanText(e.detail, MAX_DETAIL) || null;
    writeTransaction(this.#db, () => {
      this.#addPolicy.run(id, e.policyType, strings);
      this.#count.run(day, domain, id, e.result, mx, ipOrEmpty(e.sendingIp), ipOrEmpty(e.receivingIp), detail);
    });
  }

  /** The report for one UTC day and policy domain, or undefined when nothing was recorded. */
  report(day: string, policyDomain: string, org: TlsRptOrg): TlsReport | undefined {
    checkDay(day);
    const domain = canonDomain(policyDomain, "policy domain");
    const rows = this.#db
      .prepare(
        `SELECT s.policy, p.type, p.strings, s.result, s.mx, s.sending_ip, s.receiving_ip, s.count, s.detail
         FROM sessions s JOIN policies p ON p.id = s.policy WHERE s.day = ? AND s.domain = ?
         ORDER BY p.type, p.strings, s.result, s.mx, s.sending_ip, s.receiving_ip`,
      )
      .all(day, domain) as unknown as Row[];
    if (rows.length === 0) return undefined;
    const groups = new Map<string, Row[]>();
    for (const r of rows) {
      const g = groups.get(r.policy);
      if (g) g.push(r);
      else groups.set(r.policy, [r]);
    }
    const policies: TlsReportPolicy[] = [];
    for (const g of groups.values()) {
      const first = g[0] as Row;
      const type = first.type as TlsRptPolicyType;
      const strings = JSON.parse(first.strings) as string[];
      let mxHosts = [...new Set(g.map((r) => r.mx).filter((m) => m !== ""))].sort();
      if (type === "sts") {
        const patterns = strings.map((l) => /^mx:[ \t]*(\S+)/.exec(l)?.[1]).filter((m): m is string => m !== undefined);
        if (patterns.length > 0) mxHosts = patterns;
      }
      let successCount = 0;
      let failureCount = 0;
      const failureDetails: TlsFailureDetail[] = [];
      for (const r of g) {
        if (r.result === "success") {
          successCount += r.count;
          continue;
        }
        failureCount += r.count;
        failureDetails.push({
          resultType: r.result as TlsRptFailure,
          ...(r.sending_ip !== "" ? { sendingMtaIp: r.sending_ip } : {}),
          ...(r.mx !== "" ? { receivingMxHostname: r.mx } : {}),
          ...(r.receiving_ip !== "" ? { receivingIp: r.receiving_ip } : {}),
          failedSessionCount: r.count,
          ...(r.detail !== null ? { failureReasonCode: r.detail } : {}),
        });
      }
      policies.push({ policyType: type, policyStrings: strings, policyDomain: domain, mxHosts, successCount, failureCount, failureDetails });
    }
    const contactDomain = /^(?:mailto:)?[^@\s:/]+@([A-Za-z0-9.-]+)$/i.exec(org.contact)?.[1]?.toLowerCase();
    const reportId = `${org.reportIdPrefix ?? ""}${day}_${domain}${contactDomain !== undefined ? `@${contactDomain}` : ""}`;
    return {
      organizationName: org.name,
      contactInfo: org.contact,
      reportId,
      day,
      policyDomain: domain,
      startDatetime: `${day}T00:00:00Z`,
      endDatetime: `${day}T23:59:59Z`,
      policies,
    };
  }

  /** Policy domains with counts on a day, sorted. */
  domainsWithData(day: string): string[] {
    checkDay(day);
    const rows = this.#db.prepare("SELECT DISTINCT domain FROM sessions WHERE day = ? ORDER BY domain").all(day);
    return rows.map((r) => String(r.domain));
  }

  /** Remembers that the report for (day, domain) went out (or was given up). */
  markSent(day: string, domain: string): void {
    this.#db.prepare("INSERT OR REPLACE INTO sent (day, domain, sent_at) VALUES (?, ?, ?)").run(checkDay(day), canonDomain(domain, "policy domain"), Date.now());
  }

  /** (day, domain) pairs with data on days before `before` (exclusive) whose report is not marked sent, oldest first. */
  pendingDays(before: string): { day: string; domain: string }[] {
    const rows = this.#db
      .prepare(
        `SELECT DISTINCT s.day, s.domain FROM sessions s WHERE s.day < ?
         AND NOT EXISTS (SELECT 1 FROM sent t WHERE t.day = s.day AND t.domain = s.domain) ORDER BY s.day, s.domain`,
      )
      .all(checkDay(before));
    return rows.map((r) => ({ day: String(r.day), domain: String(r.domain) }));
  }

  /** Deletes everything about days before `before`; returns the number of count rows removed. */
  prune(before: string): number {
    checkDay(before);
    return writeTransaction(this.#db, () => {
      const n = Number(this.#db.prepare("DELETE FROM sessions WHERE day < ?").run(before).changes);
      this.#db.prepare("DELETE FROM sent WHERE day < ?").run(before);
      this.#db.exec("DELETE FROM policies WHERE id NOT IN (SELECT policy FROM sessions)");
      return n;
    });
  }

  close(): void {
    this.#db.close();
  }
}

// ---------------------------------------------------------------------------
// JSON (RFC 8460 §4.4)

/** The report as RFC 8460 §4 JSON (field order as in its Appendix B). */
export function reportJson(r: TlsReport): string {
  return JSON.stringify({
    "organization-name": r.organizationName,
    "date-range": { "start-datetime": r.startDatetime, "end-datetime": r.endDatetime },
    "contact-info": r.contactInfo,
    "report-id": r.reportId,
    policies: r.policies.map((p) => ({
      policy: { "policy-type": p.policyType, "policy-string": [...p.policyStrings], "policy-domain": p.policyDomain, "mx-host": [...p.mxHosts] },
      summary: { "total-successful-session-count": p.successCount, "total-failure-session-count": p.failureCount },
      "failure-details": p.failureDetails.map((f) => ({
        "result-type": f.resultType,
        ...(f.sendingMtaIp !== undefined ? { "sending-mta-ip": f.sendingMtaIp } : {}),
        ...(f.receivingMxHostname !== undefined ? { "receiving-mx-hostname": f.receivingMxHostname } : {}),
        ...(f.receivingIp !== undefined ? { "receiving-ip": f.receivingIp } : {}),
        "failed-session-count": f.failedSessionCount,
        ...(f.failureReasonCode !== undefined ? { "failure-reason-code": f.failureReasonCode } : {}),
      })),
    })),
  });
}

// ---------------------------------------------------------------------------
// The TXT record (RFC 8460 §3)

export interface TlsRptRecord {
  /** Every mailto: and https: URI of rua=, as written. */
  rua: string[];
  /** The addresses of the mailto: URIs (percent-decoded, no query): where we send. */
  mailto: string[];
}

const EXT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;
const MAILBOX = /^[^\s"@<>()[\]\\,;:\x00-\x1f\x7f]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/;

/**
 * Parses one `_smtp._tls.<domain>` TXT record (character-strings joined):
 * "v=TLSRPTv1; rua=mailto:a@b.example,https://r.example/x". Undefined when
 * it is not a valid TLSRPTv1 record, lacks rua=, or has no mailto:/https:
 * URI (other schemes are skipped).
 */
export function parseTlsRptRecord(txt: string): TlsRptRecord | undefined {
  const fields = txt.replace(/[ \t]+$/, "").split(/[ \t]*;[ \t]*/);
  if (fields[0] !== "v=TLSRPTv1") return undefined;
  if (fields.length > 2 && fields[fields.length - 1] === "") fields.pop();
  let uris: string[] | undefined;
  for (const f of fields.slice(1)) {
    const eq = f.indexOf("=");
    if (eq <= 0) return undefined;
    const name = f.slice(0, eq);
    const value = f.slice(eq + 1);
    if (name === "rua") {
      const list = value.split(/[ \t]*,[ \t]*/);
      if (list.some((u) => u === "" || !/^[\x21-\x7e]+$/.test(u))) return undefined;
      uris ??= list;
    } else if (!EXT_NAME.test(name) || !EXT_VALUE.test(value)) {
      return undefined;
    }
  }
  if (uris === undefined) return undefined;
  const rua: string[] = [];
  const mailto: string[] = [];
  for (const u of uris) {
    if (/^mailto:/i.test(u)) {
      let addrs: string[];
      try {
        addrs = decodeURIComponent(u.slice(7).split("?")[0] ?? "").split(",");
      } catch {
        continue;
      }
      if (addrs.length === 0 || !addrs.every((a) => MAILBOX.test(a))) continue;
      rua.push(u);
      for (const a of addrs) if (!mailto.includes(a)) mailto.push(a);
    } else if (/^https:/i.test(u) && URL.canParse(u)) {
      rua.push(u);
    }
  }
  return rua.length > 0 ? { rua, mailto } : undefined;
}

export type TlsRptLookup =
  | { readonly status: "found"; readonly record: TlsRptRecord }
  | { readonly status: "none"; readonly detail: string }
  /** DNS did not answer: try again later. */
  | { readonly status: "error"; readonly detail: string };

/** Looks up and parses the TLSRPT record of a policy domain (exactly one v=TLSRPTv1 record, §3). */
export async function tlsRptFor(resolver: DnsResolver, policyDomain: string): Promise<TlsRptLookup> {
  const name = `_smtp._tls.${canonDomain(policyDomain, "policy domain")}`;
  let records: unknown[];
  try {
    records = (await resolver.query(name, "TXT")).records;
  } catch (err) {
    if (err instanceof DnsError && (err.code === "ENOTFOUND" || err.code === "ENODATA")) return { status: "none", detail: `no TXT record at ${name}` };
    return { status: "error", detail: `TXT ${name}: ${err instanceof DnsError ? err.code : String(err)}` };
  }
  const texts = records.map((r) => (Array.isArray(r) ? r.map(String).join("") : String(r)));
  const candidates = texts.filter((t) => /^v=TLSRPTv1[ \t]*(?:;|$)/.test(t));
  if (candidates.length !== 1) return { status: "none", detail: candidates.length === 0 ? `no TLSRPTv1 record at ${name}` : `several TLSRPTv1 records at ${name}` };
  const record = parseTlsRptRecord(candidates[0] ?? "");
  return record === undefined ? { status: "none", detail: `invalid TLSRPTv1 record at ${name}` } : { status: "found", record };
}

// ---------------------------------------------------------------------------
// The report message (RFC 8460 §5.3)

export interface ReportMessageOptions {
  report: TlsReport;
  /** reportJson(report) */
  json: string;
  /** Our report address (From:). */
  from: string;
  /** One rua mailto: address. */
  to: string;
  /** The submitter: our domain. */
  ourDomain: string;
  now?: Date;
}

const HEADER_SAFE = /^[\x21-\x7e]+$/;

/** The attachment's file name (§5.3): "<ours>!<policy domain>!<start>!<end>!<unique-id>.json.gz". */
export function reportFilename(report: TlsReport, ourDomain: string): string {
  const start = Date.parse(report.startDatetime) / 1000;
  const end = Date.parse(report.endDatetime) / 1000;
  const unique = createHash("sha256").update(report.reportId).digest("hex").slice(0, 16);
  return `${ourDomain}!${report.policyDomain}!${start}!${end}!${unique}.json.gz`;
}

/** The report as an RFC 5322 message, CRLF line ends, 7-bit. Throws on header values that are not plain printable ASCII. */
export function reportMessage(opts: ReportMessageOptions): Buffer {
  const { report, from, to } = opts;
  const ourDomain = canonDomain(opts.ourDomain, "our domain");
  for (const [what, v] of [["from", from], ["to", to], ["report-id", report.reportId]] as const) {
    if (!HEADER_SAFE.test(v) || v.length > 300) throw new RangeError(`reportMessage: ${what} is not a plain ASCII token: ${JSON.stringify(v.slice(0, 100))}`);
  }
  if (!MAILBOX.test(from) || !MAILBOX.test(to)) throw new RangeError("reportMessage: from/to must be addresses");
  const now = opts.now ?? new Date();
  const idForSubject = report.reportId.includes("@") ? report.reportId : `${report.reportId}@${ourDomain}`;
  const filename = reportFilename(report, ourDomain);
  const boundary = `=_wardmail-tlsrpt-${randomBytes(12).toString("hex")}`;
  const b64 = gzipSync(Buffer.from(opts.json, "utf8")).toString("base64").replace(/.{1,76}/g, "$&\r\n");
  const lines = [
    `This is an aggregate TLS report (RFC 8460) from ${ourDomain}`,
    `for the policy domain ${report.policyDomain},`,
    `covering ${report.startDatetime} to ${report.endDatetime}.`,
    "",
    ...report.policies.map((p) => `Policy ${p.policyType}: ${p.successCount} successful, ${p.failureCount} failed sessions.`),
    "",
    `The report is attached as ${filename}.`,
  ];
  const text = lines.map((l) => cleanText(l, 900)).join("\r\n") + "\r\n";
  const head =
    `From: ${from}\r\n` +
    `To: ${to}\r\n` +
    `Subject: Report Domain: ${report.policyDomain}\r\n Submitter: ${ourDomain}\r\n Report-ID: <${idForSubject}>\r\n` +
    `TLS-Report-Domain: ${report.policyDomain}\r\n` +
    `TLS-Report-Submitter: ${ourDomain}\r\n` +
    `Date: ${rfc5322Date(now)}\r\n` +
    `Message-ID: <${now.getTime().toString(36)}.${randomBytes(8).toString("hex")}@${ourDomain}>\r\n` +
    `Auto-Submitted: auto-generated\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="${boundary}"\r\n` +
    `\r\n` +
    `This is a multipart message in MIME format.\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: text/plain; charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n` +
    text.replace(/[^\x00-\x7f]/g, "?") +
    `\r\n--${boundary}\r\n` +
    `Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n` +
    `Content-Disposition: attachment;\r\n filename="${filename}"\r\n\r\n` +
    b64 +
    `\r\n--${boundary}--\r\n`;
  return Buffer.from(head, "latin1");
}
