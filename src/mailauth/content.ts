/**
 * The content part of sender authentication: DKIM, ARC and DMARC over one
 * message (and ARC sealing when it is forwarded). It runs in the verifier
 * thread (thread.ts), never on the event loop that serves the sessions:
 * mailauth's parsers are synchronous and not all linear, so the check's
 * deadline must be able to stop them (by ending the thread).
 *
 * The result is plain data (what check.ts reads), so it can cross threads.
 */
import { arc, authenticate, type ARCResult, type AuthenticateResult, type DKIMVerifyResult, type DMARCResult, type SPFResult } from "mailauth";
import { evaluateDmarc, inheritedPastRecordSet, watchDmarcAnswers } from "./dmarc.ts";
import { verifyDkim, type DkimKeyCache } from "./verify.ts";

export type Resolver = (name: string, rrtype: string) => Promise<unknown>;

/** What the DATA hook works from (a subset of mailauth's AuthenticateResult). */
export interface Verified {
  readonly dkim: DKIMVerifyResult;
  readonly spf: SPFResult | false;
  readonly arc: ARCResult | false;
  readonly dmarc: DMARCResult | false;
  /** mailauth's own header block (only the ARC set is taken from it, when sealing). */
  readonly headers: string;
}

/** One message to verify. */
export interface ContentTask {
  readonly mailFrom: string;
  readonly clientIp: string;
  readonly helo: string;
  readonly authservId: string;
  /** The SPF result of MAIL (used by DMARC); ignored when sealing (authenticate() evaluates SPF itself). */
  readonly spf: SPFResult | false;
  /** Seal the message (ARC) for the next hop. */
  readonly seal?: { readonly domain: string; readonly selector: string; readonly privateKey: string };
}

/** DKIM, ARC and DMARC (and the ARC seal when asked), as plain data. */
export async function verifyContent(content: Buffer, task: ContentTask, resolver: Resolver, keys: DkimKeyCache): Promise<Verified> {
  const res = task.seal ? await authenticateAndSeal(content, task, resolver) : await verify(content, task, resolver, keys);
  // Only plain data crosses the thread boundary (no key objects, no hidden properties).
  return JSON.parse(JSON.stringify(res)) as Verified;
}

/**
 * DKIM, ARC and DMARC without running SPF again: the SPF result of MAIL is
 * the one DMARC uses. The same steps as mailauth's authenticate(), which
 * costs a third SPF evaluation per message.
 */
async function verify(content: Buffer, task: ContentTask, resolver: Resolver, keys: DkimKeyCache): Promise<Verified> {
  const dkim = await verifyDkim(content, { resolver: resolver as never, sender: task.mailFrom, strict: true }, keys);
  const arcResult = await arc(dkim.arc as never, { resolver: resolver as never, strict: true, ip: task.clientIp });
  const dmarcResult = await dmarc(dkim, task.spf, arcResult, resolver);
  return { dkim, spf: task.spf, arc: arcResult, dmarc: dmarcResult, headers: "" };
}

/** DMARC (dmarc.ts: mailauth's, with the guard for a record set at the author domain) over the other results. */
async function dmarc(dkim: DKIMVerifyResult, spfResult: SPFResult | false, arcResult: ARCResult | false, resolver: Resolver): Promise<DMARCResult | false> {
  if (dkim.headerFrom.length === 0) return false;
  const passing = (dkim.results ?? []).filter((r) => r.status.result === "pass");
  return evaluateDmarc({
    headerFrom: dkim.headerFrom,
    fromFields: dkim.fromFields,
    spfDomains: spfResult && spfResult.status.result === "pass" && spfResult.domain ? [spfResult.domain] : [],
    dkimDomains: passing.map((r) => ({ ...(r.id !== undefined ? { id: r.id } : {}), domain: r.signingDomain ?? "", ...(r.status.aligned !== undefined ? { aligned: r.status.aligned } : {}), ...(r.status.underSized !== undefined ? { underSized: r.status.underSized } : {}) })),
    ...(arcResult ? { arcResult } : {}),
    resolver,
    strict: true,
  });
}

/**
 * mailauth's authenticate(), which also seals (ARC) the message for the
 * next hop. Its DMARC result is replaced by the guarded one (dmarc.ts) in
 * the rare case the guard applies; the sealed ARC-Authentication-Results
 * keep mailauth's.
 */
async function authenticateAndSeal(content: Buffer, task: ContentTask, resolver: Resolver): Promise<Verified> {
  const seal = task.seal;
  const watched = watchDmarcAnswers(resolver);
  const res: AuthenticateResult = await authenticate(content, {
    sender: task.mailFrom,
    ip: task.clientIp,
    helo: task.helo,
    mta: task.authservId,
    resolver: watched.resolver as never,
    disableBimi: true,
    strict: true,
    ...(seal ? { seal: { signingDomain: seal.domain, selector: seal.selector, privateKey: seal.privateKey } } : {}),
  });
  const dmarcResult = inheritedPastRecordSet(res.dmarc, watched.answers) ? await dmarc(res.dkim, res.spf, res.arc, resolver) : res.dmarc;
  return { dkim: res.dkim, spf: res.spf, arc: res.arc, dmarc: dmarcResult, headers: res.headers };
}
