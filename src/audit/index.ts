/**
 * The audit of remote mail servers (issue 15): `auditServer` grades one SMTP
 * listener against the holes of plain SMTP (TLS, STARTTLS injection, open
 * relay, AUTH in the clear, enumeration, smuggling) and the report
 * renderers; `auditDomain` grades a mail domain's DNS (MX, PTR, DNSSEC, SPF,
 * DMARC, DKIM, CAA, MTA-STS, TLS-RPT, DANE) and audits each MX. See docs/audit.md for the checks, the finding ids, the grading
 * rule and the JSON schema.
 */
export { auditServer, UnreachableError, type ServerAuditOptions } from "./server.ts";
export { auditDomain, type DomainAuditOptions } from "./domain.ts";
export { toHtml, toJson, toText, SCHEMA_VERSION } from "./report.ts";
export { AREAS, AREA_TITLES, SEVERITIES, gradeFindings, isSerious, sanitize, type Area, type Finding, type Grade, type Report, type ServerSummary, type Severity } from "./types.ts";
export { EOD_VARIANTS, inboundVariants } from "./smuggling.ts";
