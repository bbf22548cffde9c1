/**
 * `auditServer`: every check of one SMTP listener, in order, each on its own
 * connection, one connection at a time (polite to the audited server):
 * survey (greeting, EHLO, AUTH, VRFY/EXPN, extensions), STARTTLS
 * injection, a transaction before EHLO, pipelining desynchronisation, the
 * relay battery, the TLS
 * handshakes, and SMTP smuggling when `sendTo` is given. A check whose
 * connection fails is reported as not run (with the reason) and the others
 * go on; only the first connection failing makes the target unreachable.
 */
import { rootCertificates } from "node:tls";
import type { Area, Finding, Report } from "./types.ts";
import { finding, gradeFindings, sortFindings } from "./types.ts";
import { ProbeError, type ProbeTarget } from "./probe.ts";
import { beforeEhloCheck, injectionCheck, relayCheck, survey, surveyFindings, type Survey } from "./smtp-checks.ts";
import { certificateNames, surveyTls, tlsFindings, tlsSummary } from "./tls-checks.ts";
import { smugglingCheck } from "./smuggling.ts";
import { pipeliningCheck } from "./pipelining.ts";

export interface ServerAuditOptions {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  /** Submission checks (465 implicit TLS, 587 STARTTLS). */
  readonly submission: boolean;
  /** TLS from the first byte; default: port 465. */
  readonly implicitTls?: boolean;
  readonly timeoutMs: number;
  readonly helo?: string;
  /** Envelope sender of the relay probes and the smuggling messages (default: <> for relay, sendTo for smuggling). */
  readonly from?: string;
  /** Run the smuggling check, delivering to this address (the operator's own). */
  readonly sendTo?: string;
  readonly progress?: (what: string) => void;
  readonly now?: () => Date;
  /** Extra trusted CAs (PEM) on top of Node's CA set, for the certificate check (--ca-file). */
  readonly ca?: string;
}

/** The target could not be reached at all (no connection, no 220 greeting). */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnreachableError";
  }
}

const GRADED: readonly Area[] = ["transport", "relay", "authentication"];

export async function auditServer(o: ServerAuditOptions): Promise<Report> {
  const started = Date.now();
  const now = o.now ?? ((): Date => new Date());
  const startedAt = now().toISOString();
  const progress = o.progress ?? ((): void => undefined);
  const target: ProbeTarget = {
    host: o.host,
    address: o.address,
    port: o.port,
    implicitTls: o.implicitTls ?? o.port === 465,
    helo: o.helo ?? "wardmail-audit.invalid",
    timeoutMs: o.timeoutMs,
  };
  const findings: Finding[] = [];
  const checks: { id: string; ran: boolean; note?: string }[] = [];
  const run = async (id: string, what: string, fn: () => Promise<Finding[]>): Promise<void> => {
    progress(what);
    try {
      findings.push(...(await fn()));
      checks.push({ id, ran: true });
    } catch (e) {
      if (!(e instanceof ProbeError)) throw e;
      checks.push({ id, ran: false, note: e.message });
    }
  };

  progress("greeting and EHLO");
  let s: Survey;
  try {
    s = await survey(target);
  } catch (e) {
    if (e instanceof ProbeError && (e.kind === "connect" || e.kind === "timeout" || e.kind === "closed" || e.kind === "tls")) {
      throw new UnreachableError(`${o.address}:${o.port}: ${e.message}`);
    }
    if (e instanceof ProbeError) throw new UnreachableError(`${o.address}:${o.port}: ${e.message}`);
    throw e;
  }
  checks.push({ id: "survey", ran: true });
  const flags = { submission: o.submission, port: o.port, implicitTls: target.implicitTls };
  findings.push(...surveyFindings(s, flags));

  if (!target.implicitTls && s.ext.starttls) await run("starttls-injection", "STARTTLS injection", async () => opt(await injectionCheck(target)));
  await run("mail-before-ehlo", "a transaction before EHLO", async () => opt(await beforeEhloCheck(target)));
  const local = s.announced ?? (o.host.includes(".") ? o.host : "localhost");
  await run("pipelining", "pipelining desynchronisation", () => pipeliningCheck(target, local));
  await run("relay", "open relay battery", () =>
    relayCheck(target, { local, sender: o.from ?? "", tls: o.submission || target.implicitTls, submission: o.submission }),
  );
  if (target.implicitTls || s.ext.starttls) {
    await run("tls", "TLS", async () => {
      const t = await surveyTls(target, progress, o.ca !== undefined ? [...rootCertificates, o.ca] : undefined);
      const out = tlsFindings(t, { names: certificateNames(target, s.announced), submission: o.submission, port: o.port, now: now() });
      return [...out, ...opt(tlsSummary(t))];
    });
  } else checks.push({ id: "tls", ran: false, note: "no STARTTLS" });
  if (o.sendTo !== undefined) {
    const sendTo = o.sendTo;
    await run("smuggling", "SMTP smuggling", async () => (await smugglingCheck(target, { sendTo, from: o.from ?? sendTo, progress })).findings);
  } else checks.push({ id: "smuggling", ran: false, note: "needs --send-to ADDRESS (an address you control): it delivers test messages" });

  const clean = sortFindings(findings.map(finding));
  const { grade, areas } = gradeFindings(clean, GRADED);
  return {
    target: `${target.implicitTls ? "smtps" : "smtp"}://${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}`,
    grade,
    areas,
    findings: clean,
    checks,
    startedAt,
    durationMs: Date.now() - started,
  };
}

function opt<T>(x: T | undefined): T[] {
  return x === undefined ? [] : [x];
}
