/**
 * The SMTP smuggling check (CVE-2023-51764/5/6 class), only with an address
 * the operator controls (`--send-to`): it completes DATA, so each variant
 * delivers real mail to that address and to nobody else.
 *
 * For each fake end-of-data sequence (the public variants of the SEC
 * Consult scanner, Hanno Böck's smtpsmug and Wang et al., USENIX Security
 * 2025; the bytes are the table in /work/shared/conformance/smuggling,
 * checked against it by a test), one connection: EHLO (STARTTLS when
 * offered), MAIL, RCPT, DATA, then in one write a first message ending in
 * the sequence, a smuggled second transaction (lower-case verbs) to the
 * same address, a real CRLF.CRLF and QUIT. A server that keeps the whole as
 * one message answers once before QUIT's 221; one that took the sequence as
 * the end answers the smuggled commands too. Both messages carry a marker
 * and the variant id in the Subject, so the operator can find them.
 *
 * Sequences that hold a genuine CRLF.CRLF (a NUL beside a real end) are
 * about what a relay forwards, not about where a server ends DATA, and are
 * not sent.
 */
import { randomBytes } from "node:crypto";
import { replyText, type Reply } from "../protocol/index.ts";
import type { Finding } from "./types.ts";
import { openSession, type ProbeTarget } from "./probe.ts";

/** id and bytes (hex) of every public variant. */
export const EOD_VARIANTS: readonly { readonly id: string; readonly hex: string }[] = [
  { id: "lf-dot-lf", hex: "0a2e0a" },
  { id: "lf-dot-cr", hex: "0a2e0d" },
  { id: "cr-dot-lf", hex: "0d2e0a" },
  { id: "cr-dot-cr", hex: "0d2e0d" },
  { id: "lf-dot-crlf", hex: "0a2e0d0a" },
  { id: "cr-dot-crlf", hex: "0d2e0d0a" },
  { id: "crlf-dot-lf", hex: "0d0a2e0a" },
  { id: "crlf-dot-cr", hex: "0d0a2e0d" },
  { id: "crlf-dot-cr-crlf", hex: "0d0a2e0d0d0a" },
  { id: "cr-crlf-dot-cr-crlf", hex: "0d0d0a2e0d0d0a" },
  { id: "crlf-nul-dot-crlf", hex: "0d0a002e0d0a" },
  { id: "crlf-dot-nul-crlf", hex: "0d0a2e000d0a" },
  { id: "nul-crlf-dot-crlf", hex: "000d0a2e0d0a" },
  { id: "cr-nul-lf-dot-crlf", hex: "0d000a2e0d0a" },
  { id: "crlf-dot-cr-nul-lf", hex: "0d0a2e0d000a" },
  { id: "crlf-dot-crlf-nul", hex: "0d0a2e0d0a00" },
];

/** The variants sent: those without a genuine CRLF.CRLF once appended to "hello". */
export function inboundVariants(): { id: string; bytes: Buffer }[] {
  return EOD_VARIANTS.map((v) => ({ id: v.id, bytes: Buffer.from(v.hex, "hex") })).filter(
    (v) => !Buffer.concat([Buffer.from("hello"), v.bytes]).includes("\r\n.\r\n"),
  );
}

export interface VariantResult {
  readonly id: string;
  /** The server answered the smuggled commands: it took the sequence as the end of the data. */
  readonly endedData: boolean;
  /** The smuggled transaction got 354 and its message a 2xx: a second message was accepted. */
  readonly smuggled: boolean;
  /** Every reply after the data, before QUIT's. */
  readonly replies: readonly string[];
  readonly error?: string;
}

function message(from: string, to: string, subject: string, body: string): string {
  const date = new Date().toUTCString().replace("GMT", "+0000");
  return `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nDate: ${date}\r\nMessage-ID: <${randomBytes(12).toString("hex")}@wardmail-audit.invalid>\r\n\r\n${body}`;
}

/** One variant on one connection. */
async function sendVariant(target: ProbeTarget, v: { id: string; bytes: Buffer }, sendTo: string, from: string, marker: string): Promise<VariantResult> {
  const { probe } = await openSession(target, { tls: true });
  try {
    const steps: [string, number][] = [
      [`MAIL FROM:<${from}>`, 250],
      [`RCPT TO:<${sendTo}>`, 250],
      ["DATA", 354],
    ];
    for (const [line, want] of steps) {
      const r = await probe.cmd(line);
      if (Math.floor(r.code / 100) !== Math.floor(want / 100)) {
        return { id: v.id, endedData: false, smuggled: false, replies: [], error: `${line.split(" ")[0] ?? line}: ${r.code} ${replyText(r)}` };
      }
    }
    const outer = message(from, sendTo, `wardmail audit smuggling ${marker} ${v.id} outer`, `Wardmail audit, SMTP smuggling variant ${v.id}.\r\nhello`);
    const inner = message(from, sendTo, `wardmail audit smuggling ${marker} ${v.id} SMUGGLED`, "This second message was smuggled inside the first.\r\n");
    probe.write(
      Buffer.concat([
        Buffer.from(outer, "utf8"),
        v.bytes,
        Buffer.from(`mail FROM:<${from}>\r\nrcpt TO:<${sendTo}>\r\ndata\r\n${inner}\r\n.\r\nQUIT\r\n`, "utf8"),
      ]),
    );
    const replies: Reply[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await probe.replyWithin(target.timeoutMs);
      if (r === undefined || r.code === 221) break;
      replies.push(r);
    }
    const i354 = replies.findIndex((r, i) => i > 0 && r.code === 354);
    const smuggled = i354 > 0 && replies.slice(i354 + 1).some((r) => r.code >= 200 && r.code < 300);
    return { id: v.id, endedData: replies.length > 1, smuggled, replies: replies.map((r) => `${r.code} ${replyText(r)}`.slice(0, 120)) };
  } finally {
    probe.destroy();
  }
}

/** Every variant, one after the other; `progress` names each. */
export async function smugglingCheck(
  target: ProbeTarget,
  opts: { sendTo: string; from: string; progress: (what: string) => void },
): Promise<{ marker: string; results: VariantResult[]; findings: Finding[] }> {
  const marker = `wm-${randomBytes(5).toString("hex")}`;
  const results: VariantResult[] = [];
  for (const v of inboundVariants()) {
    opts.progress(`smuggling: ${v.id}`);
    try {
      results.push(await sendVariant(target, v, opts.sendTo, opts.from, marker));
    } catch (e) {
      results.push({ id: v.id, endedData: false, smuggled: false, replies: [], error: e instanceof Error ? e.message : String(e) });
    }
  }
  const findings: Finding[] = [];
  for (const r of results.filter((x) => x.endedData)) {
    findings.push({
      id: `smuggling.${r.id}`,
      severity: r.smuggled ? "high" : "medium",
      area: "relay",
      title: r.smuggled ? `SMTP smuggling: "${r.id}" ends DATA and a smuggled message was accepted` : `SMTP smuggling: "${r.id}" is taken as the end of DATA`,
      evidence: `marker ${marker}; replies after the data: ${r.replies.join(" | ")}`,
      fix: "end DATA only on CRLF.CRLF and refuse bare CR/LF (Postfix >= 3.9: smtpd_forbid_bare_newline = normalize, or = yes on 3.5.23/3.6.13/3.7.9/3.8.4; Exim >= 4.97.1; Sendmail 8.18 srv_features 'o')",
    });
  }
  const failed = results.filter((x) => x.error !== undefined);
  findings.push({
    id: "smuggling.summary",
    severity: "info",
    area: "relay",
    title: `SMTP smuggling: ${results.length} variants sent to ${opts.sendTo}, ${results.filter((x) => x.endedData).length} taken as the end of DATA`,
    evidence: `marker ${marker}; ${results.map((r) => `${r.id}: ${r.error !== undefined ? `not tested (${r.error})` : r.smuggled ? "SMUGGLED" : r.endedData ? "ends data" : "one message"}`).join("; ")}`.slice(0, 1000),
    fix: failed.length > 0 ? "variants not tested could not be sent: check that the server accepts mail for the --send-to address" : "nothing to do",
  });
  return { marker, results, findings };
}
