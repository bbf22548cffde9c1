/**
 * Sender authentication as a policy check (src/policy), glue over the
 * `mailauth` library, which does the algorithms: SPF (RFC 7208), DKIM (RFC
 * 6376, RFC 8463), ARC (RFC 8617), DMARC (RFC 7489). mailauth runs in strict
 * mode: rsa-sha1 signatures and RSA keys under 1024 bits never pass (RFC
 * 8301), and the RFC processing limits apply (10 DNS-querying SPF terms, 2
 * void lookups). Every DNS question goes through the injected resolver.
 *
 * MAIL: SPF for the MAIL FROM identity (postmaster@HELO for <>) and for the
 * HELO identity, each evaluated once per connection; verdicts spf.<result>
 * (so an operator can reject SPF fail before DATA).
 * DATA: DKIM, ARC and DMARC (with the SPF result; content.ts, run in
 * verifier threads that the check's deadline ends: offload.ts), verdicts dkim.<result>,
 * arc.<result>, dmarc.<result or policy>: a DMARC failure becomes
 * "dmarc.reject", "dmarc.quarantine" or "dmarc.none" by the policy that
 * applies (the domain's, lowered by mailauth for t=y, or the operator's
 * override), unless a trusted ARC sealer vouches for the message. Headers: Authentication-Results (RFC 8601) with our
 * authserv-id, then Received-SPF (RFC 7208 §9.1). When the host marks the
 * message as forwarded to another domain (FORWARDING) and a sealing key is
 * configured, the message is ARC-sealed (a new ARC set on top) so the next
 * hop can trust our results.
 */
import { spf, type SPFResult } from "mailauth";
import type { Config } from "../config/types.ts";
import type { Check, CheckInput, CheckOutcome } from "../policy/index.ts";
import type { Verified } from "./content.ts";
import { authorDomain } from "./dmarc.ts";
import { VerifierPool } from "./offload.ts";

export type MailauthResolver = (name: string, rrtype: string) => Promise<unknown>;

export interface SenderAuthOptions {
  readonly resolver: MailauthResolver;
  readonly authservId: string;
  readonly checks: Pick<Config["checks"], "trustedArcSealers" | "dmarcOverrides">;
  /** ARC sealing key for forwarded mail (the state key FORWARDING set by the host); undefined: no sealing. */
  readonly seal?: { readonly domain: string; readonly selector: string; readonly privateKey: string };
}

/** Set to true in the check state by the host when the message goes on to another domain (an alias). */
export const FORWARDING = "mailauth.forwarding";

const SPF_KEY = "mailauth.spf";
/** Connection state key prefix of the SPF results kept for the connection. */
const SPF_MEMO = "mailauth.spf\0";
const SPF_PER_CONNECTION = 32;
const SPF_KEPT_MS = 5 * 60_000;

const HELO_KEY = "mailauth.helo";

/** "192.0.2.1" → the HELO identity mailauth expects for an address literal. */
function heloIdentity(helo: string, ip: string): string {
  const h = helo === "" ? ip : helo;
  return /^\[.*\]$/.test(h) || !/^[0-9a-f:.]+$/i.test(h) || !/[:.]/.test(h) ? h : `[${h}]`;
}

function result(r: { status?: { result?: string } } | false | undefined): string {
  return (r && r.status?.result) || "none";
}

export class SenderAuthCheck implements Check {
  readonly name = "mailauth";
  private readonly opts: SenderAuthOptions;
  /** DKIM, ARC and DMARC run in threads the check's deadline can end (offload.ts). */
  private readonly verifier: VerifierPool;

  constructor(opts: SenderAuthOptions) {
    this.opts = opts;
    this.verifier = new VerifierPool(opts.resolver);
  }

  /** Ends the verifier threads. */
  close(): void {
    this.verifier.close();
  }

  readonly mail = async (input: CheckInput): Promise<CheckOutcome> => {
    const helo = heloIdentity(input.helo, input.clientIp);
    const resolver = this.opts.resolver as never;
    const check = (sender: string): Promise<SPFResult> => this.spfOnce(input, sender, helo, () => spf({ sender, ip: input.clientIp, helo, mta: this.opts.authservId, resolver, strict: true }));
    // RFC 7208 §2.3: the HELO identity, checked as postmaster@HELO (not for
    // address literals). With <>, the MAIL FROM identity is that same one.
    const heloSender = helo.startsWith("[") ? undefined : `postmaster@${helo}`;
    const sameIdentity = input.mailFrom === "" && heloSender !== undefined;
    const [mailFrom, heloOwn] = await Promise.all([check(sameIdentity ? (heloSender) : input.mailFrom), heloSender === undefined || sameIdentity ? (false as const) : check(heloSender)]);
    const heloResult = sameIdentity ? mailFrom : heloOwn;
    input.state.set(SPF_KEY, mailFrom);
    input.state.set(HELO_KEY, heloResult);
    return { verdicts: [`spf.${result(mailFrom)}`], notes: { spf: result(mailFrom), spfHelo: result(heloResult) } };
  };

  /**
   * One SPF evaluation per (sender, HELO) per connection: the client address
   * is the connection's, so a second transaction with the same identities
   * (the HELO identity is the same for every message of a connection) gets
   * the same result. Results that may change on a retry (temperror) are not
   * kept; a result is used for at most SPF_KEPT_MS (a long-lived connection
   * sees DNS changes), and a connection keeps at most SPF_PER_CONNECTION.
   */
  private spfOnce(input: CheckInput, sender: string, helo: string, evaluate: () => Promise<SPFResult>): Promise<SPFResult> {
    const memo = input.connection;
    if (memo === undefined) return evaluate();
    const key = `${SPF_MEMO}${helo}\0${sender}`;
    const now = Date.now();
    const known = memo.get(key) as { readonly at: number; readonly result: Promise<SPFResult> } | undefined;
    if (known !== undefined && now - known.at < SPF_KEPT_MS) return known.result;
    const pending = evaluate();
    if (known !== undefined || memo.size < SPF_PER_CONNECTION) {
      const entry = { at: now, result: pending };
      memo.set(key, entry);
      const forget = (): void => {
        if (memo.get(key) === entry) memo.delete(key);
      };
      pending.then((r) => {
        if (result(r) === "temperror") forget();
      }, forget);
    }
    return pending;
  }

  readonly data = async (input: CheckInput): Promise<CheckOutcome> => {
    const content = input.content ?? Buffer.alloc(0);
    const helo = heloIdentity(input.helo, input.clientIp);
    const sealing = this.opts.seal !== undefined && input.state.get(FORWARDING) === true;
    const spfResult = (input.state.get(SPF_KEY) as SPFResult | false | undefined) ?? false;
    const task = { mailFrom: input.mailFrom, clientIp: input.clientIp, helo, authservId: this.opts.authservId, spf: spfResult, ...(sealing && this.opts.seal ? { seal: this.opts.seal } : {}) };
    const res = await this.verifier.verify(content, task, input.signal);
    const heloSpf = input.state.get(HELO_KEY) as SPFResult | false | undefined;
    const dkimResults = res.dkim.results ?? [];
    // mailauth reports an unsigned message as one result "none": that is dkim.none, not a failure.
    const signed = dkimResults.filter((r) => r.status.result !== "none");
    const dkim = signed.some((r) => r.status.result === "pass")
      ? "pass"
      : signed.some((r) => r.status.result === "temperror")
        ? "temperror"
        : signed.length > 0
          ? "fail"
          : "none";
    const arc = result(res.arc);
    const dmarcVerdict = this.dmarcVerdict(res);
    const verdicts = [`dkim.${dkim}`, `arc.${arc}`, dmarcVerdict.verdict];
    // Authentication-Results: one resinfo per result, our authserv-id first.
    const parts: string[] = [];
    for (const r of dkimResults) if (r.info) parts.push(r.info);
    if (res.spf && res.spf.info) parts.push(res.spf.info);
    if (heloSpf) parts.push(`spf=${result(heloSpf)} smtp.helo=${helo}`);
    if (res.arc && res.arc.info) parts.push(res.arc.info);
    if (res.dmarc && res.dmarc.info) parts.push(res.dmarc.info + (dmarcVerdict.comment ? ` (${dmarcVerdict.comment})` : ""));
    // ARC set first (RFC 8617 §5.1: the new set goes on top), when mailauth sealed the message.
    const arcSet = res.headers.split(/\r\n(?![ \t])/).filter((h) => /^ARC-/i.test(h));
    const headers = [...arcSet, `Authentication-Results: ${this.opts.authservId};${parts.length === 0 ? " none" : parts.map((p) => `\r\n ${fold(p)}`).join(";")}`];
    if (res.spf && res.spf.header) headers.push(res.spf.header.replace(/\r?\n$/, "").replace(/\r?\n/g, "\r\n"));
    return {
      verdicts,
      headers,
      notes: { dkim, arc, dmarc: dmarcVerdict.verdict, from: res.dmarc ? authorDomain(res.dmarc) : undefined },
    };
  };

  /** The DMARC verdict: pass/none/temperror/permerror as they are; a failure as the policy that applies. */
  private dmarcVerdict(res: Verified): { verdict: string; comment?: string } {
    const d = res.dmarc;
    if (!d) return { verdict: "dmarc.none" };
    const r = d.status.result;
    if (r !== "fail") return { verdict: `dmarc.${r}` };
    const overrides = this.opts.checks.dmarcOverrides;
    // The author domain's own override first, then the one of the domain whose policy applies, then the Organizational Domain's.
    const candidates = [authorDomain(d), (d.policyDomain ?? "").toLowerCase(), (d.domain || "").toLowerCase()];
    const override = candidates.map((c) => (c !== "" && Object.hasOwn(overrides, c) ? overrides[c] : undefined)).find((o) => o !== undefined);
    // d.policy is what applies to this domain (p, sp or np), already lowered
    // by mailauth when the record is in test mode (t=y, RFC 9989).
    let policy = override ?? d.policy;
    const comment = override !== undefined ? `policy override ${override}` : undefined;
    if (policy !== "none" && this.trustedArc(res)) {
      return { verdict: "dmarc.none", comment: `overridden by trusted ARC sealer ${res.arc ? (res.arc.signature ? res.arc.signature.signingDomain : "") : ""}` };
    }
    if (policy !== "reject" && policy !== "quarantine") policy = "none";
    return { verdict: `dmarc.${policy}`, ...(comment ? { comment } : {}) };
  }

  /** A passing ARC chain whose last seal is by a trusted sealer that saw dmarc=pass. */
  private trustedArc(res: Verified): boolean {
    const arc = res.arc;
    if (!arc || arc.status.result !== "pass" || !arc.signature) return false;
    const sealer = (arc.signature.signingDomain || "").toLowerCase();
    if (!this.opts.checks.trustedArcSealers.includes(sealer)) return false;
    const aar = arc.authenticationResults as { dmarc?: { result?: string } } | undefined;
    return aar?.dmarc?.result === "pass";
  }
}

/** Folds one resinfo at spaces so no line passes 78 characters where that is possible (RFC 5322 §2.1.1). */
function fold(text: string): string {
  const words = text.replace(/\r?\n\s*/g, " ").split(" ");
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    if (line.length > 0 && line.length + 1 + w.length > 76) {
      lines.push(line);
      line = w;
    } else line = line.length > 0 ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join("\r\n  ");
}
