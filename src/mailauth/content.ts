/**
 * The content part of sender authentication: DKIM and ARC over one message
 * (and ARC sealing when it is forwarded). DMARC is evaluated by check.ts on
 * the worker, once per author domain of our own author parser (DNS and
 * alignment only, no parsing of the message). It runs in the verifier
 * thread (thread.ts), never on the event loop that serves the sessions:
 * mailauth's parsers are synchronous and not all linear, so the check's
 * deadline must be able to stop them (by ending the thread).
 *
 * The result is plain data (what check.ts reads), so it can cross threads.
 */
import type { ARCResult, AuthenticateResult, DKIMVerifyResult, SPFResult } from "mailauth";
// ARC from its own module; authenticate() (mailauth's index, which also loads BIMI) only when sealing.
import { arc } from "mailauth/lib/arc/index.js";
import { verifyDkim, type DkimKeyCache } from "./verify.ts";

export type Resolver = (name: string, rrtype: string) => Promise<unknown>;

/** What the DATA hook works from (a subset of mailauth's AuthenticateResult). */
export interface Verified {
  /** Each result as check.ts reads it (slim()). */
  readonly dkim: DKIMVerifyResult;
  /** Only when sealing (authenticate() evaluates SPF itself); else false, and check.ts uses the SPF result of MAIL it kept. */
  readonly spf: SPFResult | false;
  readonly arc: ARCResult | false;
  /** mailauth's own header block (only the ARC set is taken from it, when sealing). */
  readonly headers: string;
}

/** One message to verify. */
export interface ContentTask {
  readonly mailFrom: string;
  readonly clientIp: string;
  readonly helo: string;
  readonly authservId: string;
  /** Seal the message (ARC) for the next hop. */
  readonly seal?: { readonly domain: string; readonly selector: string; readonly privateKey: string };
}

/** DKIM and ARC (and the ARC seal when asked), as plain data. */
export async function verifyContent(content: Buffer, task: ContentTask, resolver: Resolver, keys: DkimKeyCache): Promise<Verified> {
  const res = task.seal ? await authenticateAndSeal(content, task, resolver) : await verify(content, task, resolver, keys);
  // Only plain data crosses the thread boundary (no key objects, no hidden properties), and only what check.ts reads.
  return JSON.parse(JSON.stringify({ ...res, dkim: slim(res.dkim) })) as Verified;
}

/**
 * What check.ts reads of the DKIM results: per signature its identity, the
 * resinfo for Authentication-Results and its status. The rest (signature,
 * canonicalized header, key and key record: about 2 KB per signature) stays
 * in the thread instead of being copied to the session thread for nothing.
 */
function slim(dkim: DKIMVerifyResult): DKIMVerifyResult {
  const results = (dkim.results ?? []).map((r) => ({
    ...(r.id !== undefined ? { id: r.id } : {}),
    signingDomain: r.signingDomain,
    selector: r.selector,
    info: r.info,
    status: { result: r.status.result, comment: r.status.comment, aligned: r.status.aligned, underSized: r.status.underSized },
  }));
  return { headerFrom: dkim.headerFrom, envelopeFrom: dkim.envelopeFrom, results } as unknown as DKIMVerifyResult;
}

/**
 * DKIM and ARC without running SPF again: the SPF result of MAIL (which
 * check.ts keeps) is the one DMARC uses. The same steps as mailauth's authenticate(), which costs a
 * third SPF evaluation per message.
 */
async function verify(content: Buffer, task: ContentTask, resolver: Resolver, keys: DkimKeyCache): Promise<Verified> {
  const dkim = await verifyDkim(content, { resolver: resolver as never, sender: task.mailFrom, strict: true }, keys);
  const arcResult = await arc(dkim.arc as never, { resolver: resolver as never, strict: true, ip: task.clientIp });
  return { dkim, spf: false, arc: arcResult, headers: "" };
}

/**
 * mailauth's authenticate(), which also seals (ARC) the message for the
 * next hop. Its DMARC result is not used (check.ts evaluates DMARC for our
 * author); the sealed ARC-Authentication-Results keep mailauth's.
 */
async function authenticateAndSeal(content: Buffer, task: ContentTask, resolver: Resolver): Promise<Verified> {
  const seal = task.seal;
  const { authenticate } = await import("mailauth");
  const res: AuthenticateResult = await authenticate(content, {
    sender: task.mailFrom,
    ip: task.clientIp,
    helo: task.helo,
    mta: task.authservId,
    resolver: resolver as never,
    disableBimi: true,
    strict: true,
    ...(seal ? { seal: { signingDomain: seal.domain, selector: seal.selector, privateKey: seal.privateKey } } : {}),
  });
  return { dkim: res.dkim, spf: res.spf, arc: res.arc, headers: res.headers };
}
