/**
 * `auditDomain`: the DNS and policy checks of one mail domain (MX, PTR and
 * FCrDNS, DNSBL, DNSSEC, SPF, DMARC, DKIM, CAA, MTA-STS, TLS-RPT, DANE; see
 * domain-dns.ts, domain-auth.ts, domain-caa.ts, domain-transport.ts), then the server audit
 * (server.ts) of each MX host on its first address, port 25. Every query
 * goes through the injected resolver; nothing is asked in parallel, so a
 * hostile zone costs at most its bounded number of lookups.
 *
 * Findings of the MX server audits keep their ids and areas; their evidence
 * starts with the MX host. The report grades the domain area and the
 * server areas together.
 */
import type { DnsResolver } from "../dns/index.ts";
import { DnsError } from "../dns/index.ts";
import type { MtaStsPolicy } from "../outbound/index.ts";
import { caaFindings } from "./domain-caa.ts";
import { dkimFindings, dmarcFindings, spfFindings } from "./domain-auth.ts";
import { DEFAULT_DNSBLS, dnsblFindings, dnssecFindings, ptrFindings, surveyMx, type MxSurvey } from "./domain-dns.ts";
import { mtaStsFindings, mxTlsFindings, tlsRptFindings } from "./domain-transport.ts";
import { auditServer, UnreachableError } from "./server.ts";
import type { Area, Finding, Report, ServerSummary } from "./types.ts";
import { finding, gradeFindings, sortFindings } from "./types.ts";

export interface DomainAuditOptions {
  readonly domain: string;
  readonly resolver: DnsResolver;
  /** The resolver's AD bit is believed (a validating resolver on a trusted path): DNSSEC and DANE checks run. */
  readonly adTrusted: boolean;
  /** DKIM selectors to look up; empty: the common ones. */
  readonly dkimSelectors: readonly string[];
  /** Port of the MX hosts (default 25; tests). */
  readonly smtpPort?: number;
  /** Port of mta-sts.DOMAIN (default 443; tests). */
  readonly mtaStsPort?: number;
  /** Extra trust anchors (PEM) for the policy host and the MX certificates. */
  readonly ca?: string;
  /** DNSBL zones to ask about each MX address (default DEFAULT_DNSBLS; empty: none). */
  readonly dnsbls?: readonly string[];
  /** Run the server audit of each MX (default true). */
  readonly servers?: boolean;
  readonly timeoutMs: number;
  readonly helo?: string;
  readonly progress?: (what: string) => void;
  readonly now?: () => Date;
}

const GRADED: readonly Area[] = ["domain"];
const SERVER_AREAS: readonly Area[] = ["transport", "relay", "authentication"];

export async function auditDomain(o: DomainAuditOptions): Promise<Report> {
  const started = Date.now();
  const now = o.now ?? ((): Date => new Date());
  const startedAt = now().toISOString();
  const progress = o.progress ?? ((): void => undefined);
  const domain = o.domain.replace(/\.$/, "").toLowerCase();
  const helo = o.helo ?? "wardmail-audit.invalid";
  const smtpPort = o.smtpPort ?? 25;
  const findings: Finding[] = [];
  const checks: { id: string; ran: boolean; note?: string }[] = [];
  const run = async (id: string, fn: () => Promise<Finding[]>): Promise<void> => {
    progress(id);
    try {
      findings.push(...(await fn()));
      checks.push({ id, ran: true });
    } catch (e) {
      if (!(e instanceof DnsError)) throw e;
      checks.push({ id, ran: false, note: `DNS: ${e.code} ${e.hostname}` });
    }
  };

  progress("MX");
  let mx: MxSurvey;
  try {
    mx = await surveyMx(o.resolver, domain);
  } catch (e) {
    if (e instanceof DnsError) throw new UnreachableError(e.code === "ENOTFOUND" ? `${domain} does not exist (NXDOMAIN)` : `${domain}: MX lookup failed: ${e.code}`);
    throw e;
  }
  checks.push({ id: "mx", ran: true });
  findings.push(...mx.findings);
  const receives = mx.kind === "mx" || mx.kind === "implicit";
  if (receives) await run("ptr", () => ptrFindings(o.resolver, mx.hosts));
  const dnsbls = o.dnsbls ?? DEFAULT_DNSBLS;
  if (receives && dnsbls.length > 0) await run("dnsbl", () => dnsblFindings(o.resolver, mx.hosts, dnsbls));
  else checks.push({ id: "dnsbl", ran: false, note: dnsbls.length === 0 ? "--no-dnsbl" : `no MX host (${mx.kind})` });
  if (o.adTrusted) await run("dnssec", () => dnssecFindings(o.resolver, domain, mx));
  else checks.push({ id: "dnssec", ran: false, note: "the resolver's AD bit is not trusted: use a validating resolver on loopback or --dns HOST:PORT" });
  await run("spf", () => spfFindings(o.resolver, domain, { nullMx: mx.kind === "null" }));
  await run("dmarc", () => dmarcFindings(o.resolver, domain));
  await run("dkim", () => dkimFindings(o.resolver, domain, o.dkimSelectors, now()));
  await run("caa", () => caaFindings(o.resolver, domain));
  const transport = { smtpPort, timeoutMs: o.timeoutMs, helo, ...(o.ca !== undefined ? { ca: o.ca } : {}), ...(o.mtaStsPort !== undefined ? { mtaStsPort: o.mtaStsPort } : {}) };
  if (receives) {
    let policy: MtaStsPolicy | undefined;
    progress("MTA-STS");
    try {
      const sts = await mtaStsFindings(o.resolver, domain, mx.hosts, transport);
      findings.push(...sts.findings);
      policy = sts.policy;
      checks.push({ id: "mta-sts", ran: true });
    } catch (e) {
      if (!(e instanceof DnsError)) throw e;
      checks.push({ id: "mta-sts", ran: false, note: `DNS: ${e.code} ${e.hostname}` });
    }
    await run("tlsrpt", () => tlsRptFindings(o.resolver, domain));
    if (o.adTrusted || policy !== undefined) await run(o.adTrusted ? "dane" : "mx-certificate", () => mxTlsFindings(o.resolver, mx.hosts, policy, { ...transport, dane: o.adTrusted }));
    if (!o.adTrusted) checks.push({ id: "dane", ran: false, note: "the resolver's AD bit is not trusted" });
  } else for (const id of ["mta-sts", "tlsrpt", "dane"]) checks.push({ id, ran: false, note: `no MX host (${mx.kind})` });

  const servers: ServerSummary[] = [];
  const graded: Area[] = [...GRADED];
  if (o.servers !== false) {
    for (const h of mx.hosts) {
      const address = h.addresses[0] as string;
      progress(`server audit of ${h.name}`);
      try {
        const r = await auditServer({ host: h.name, address, port: smtpPort, submission: false, timeoutMs: o.timeoutMs, helo, progress: (w) => progress(`${h.name}: ${w}`), now, ...(o.ca !== undefined ? { ca: o.ca } : {}) });
        servers.push({ host: h.name, address, target: r.target, grade: r.grade, areas: r.areas });
        for (const x of r.findings) findings.push({ ...x, evidence: `${h.name}: ${x.evidence}` });
        for (const c of r.checks) checks.push({ ...c, id: `${h.name}:${c.id}` });
        for (const a of SERVER_AREAS) if (!graded.includes(a)) graded.push(a);
      } catch (e) {
        if (!(e instanceof UnreachableError)) throw e;
        servers.push({ host: h.name, address, target: `smtp://${h.name}:${smtpPort}`, grade: "F", areas: {}, error: e.message });
        findings.push({ id: "mx.unreachable", severity: "high", area: "transport", title: `MX ${h.name} cannot be reached on port ${smtpPort}`, evidence: e.message, fix: `make ${h.name} (${address}) answer SMTP on port ${smtpPort}, or remove it from the MX records` });
        if (!graded.includes("transport")) graded.push("transport");
      }
    }
  } else checks.push({ id: "servers", ran: false, note: "--no-server" });

  const clean = sortFindings(findings.map(finding));
  const { grade, areas } = gradeFindings(clean, graded);
  return { target: domain, kind: "domain", grade, areas, findings: clean, checks, servers, startedAt, durationMs: Date.now() - started };
}
