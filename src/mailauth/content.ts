/**
 * The verifier threads' part of sender authentication (thread.ts runs it):
 * DKIM and ARC over one message (and ARC sealing when it is forwarded),
 * then DMARC once per author mailbox that check.ts found with our own
 * author parser; and SPF for the identities of MAIL (evaluateSpf). All of
 * mailauth runs here, never on the event loop that serves the sessions
 * (whose isolates then never load mailauth, tldts, Joi or libmime):
 * mailauth's parsers are synchronous and not all linear, so the check's
 * deadline must be able to stop them (by ending the thread).
 *
 * The result is plain data (only the fields check.ts reads), so it can
 * cross threads and keeps little alive in the session while it waits.
 */
import type { ARCResult, AuthenticateResult, DKIMVerifyResult, DMARCResult, SPFResult } from "mailauth";
// ARC from its own module; authenticate() (mailauth's index, which also loads BIMI) only when sealing.
import { arc } from "mailauth/lib/arc/index.js";
// SPF from its own module: mailauth's index also loads BIMI, its VMC parser and an HTTP client.
import { spf } from "mailauth/lib/spf/index.js";
import { evaluateDmarc } from "./dmarc.ts";
import { SpfCache, type SpfResolver, type TtlQuery } from "./spf-cache.ts";
import { verifyDkim, type DkimKeyCache } from "./verify.ts";
import type { SpfAnswer, SpfTask } from "./results.ts";

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
  /** DMARC for each of the task's `authors`, in their order (what check.ts reads of each). */
  readonly dmarc: readonly (DMARCResult | false)[];
}

/** One message to verify. */
export interface ContentTask {
  readonly mailFrom: string;
  readonly clientIp: string;
  readonly helo: string;
  readonly authservId: string;
  /** Seal the message (ARC) for the next hop. */
  readonly seal?: { readonly domain: string; readonly selector: string; readonly privateKey: string };
  /** The SPF result of MAIL, for DMARC (when sealing, authenticate() evaluates SPF itself and that one counts). */
  readonly spf?: SPFResult | false;
  /** One mailbox per author domain to evaluate DMARC for (check.ts: at most MAX_AUTHOR_DOMAINS). */
  readonly authors?: readonly string[];
}

/** DKIM and ARC (and the ARC seal when asked), then DMARC for each author, as plain data. */
export async function verifyContent(content: Buffer, task: ContentTask, resolver: Resolver, keys: DkimKeyCache): Promise<Verified> {
  const res = task.seal ? await authenticateAndSeal(content, task, resolver) : await verify(content, task, resolver, keys);
  // Only plain data (no key objects, no hidden properties), built field by field: slim() gives the DKIM
  // results as a JSON copy would (no undefined fields), and of the ARC and SPF results DMARC and
  // check.ts read only strings (arcResult.status.result; slimArc, slimSpf), which a copy leaves as they are.
  const dkim = slim(res.dkim);
  const spfResult = task.seal ? res.spf : (task.spf ?? false);
  const dmarc = await Promise.all((task.authors ?? []).map((author) => dmarcFor(author, dkim, spfResult, res.arc, resolver)));
  // Back to the session: only what check.ts reads.
  return { dkim, spf: res.spf && slimSpf(res.spf), arc: res.arc && slimArc(res.arc), headers: res.headers, dmarc: dmarc.map((d) => d && slimDmarc(d)) };
}

/** DMARC (dmarc.ts: mailauth's, with the guard for a record set at the author domain) for one author mailbox. */
function dmarcFor(author: string, dkim: DKIMVerifyResult, spfResult: SPFResult | false, arcResult: ARCResult | false, resolver: Resolver): Promise<DMARCResult | false> {
  const passing = (dkim.results ?? []).filter((r) => r.status.result === "pass");
  return evaluateDmarc({
    headerFrom: [author],
    fromFields: 1,
    spfDomains: spfResult && spfResult.status.result === "pass" && spfResult.domain ? [spfResult.domain] : [],
    dkimDomains: passing.map((r) => ({ ...(r.id !== undefined ? { id: r.id } : {}), domain: r.signingDomain ?? "", ...(r.status.aligned !== undefined ? { aligned: r.status.aligned } : {}), ...(r.status.underSized !== undefined ? { underSized: r.status.underSized } : {}) })),
    ...(arcResult ? { arcResult } : {}),
    resolver,
    strict: true,
  });
}

/** What check.ts reads of a DMARC result: its outcome, author domain, policy and resinfo. */
function slimDmarc(d: DMARCResult): DMARCResult {
  const from = d.status.header?.from;
  return {
    status: { result: d.status.result, ...(from !== undefined ? { header: { from } } : {}) },
    domain: d.domain,
    ...(d.policyDomain !== undefined ? { policyDomain: d.policyDomain } : {}),
    policy: d.policy,
    info: d.info,
  } as unknown as DMARCResult;
}

/** What check.ts reads of the ARC result: its outcome and resinfo, the last sealer and what that sealer saw of DMARC. */
function slimArc(a: ARCResult): ARCResult {
  const aar = a.authenticationResults as { dmarc?: { result?: string } } | undefined;
  const dmarcSeen = aar?.dmarc?.result;
  return {
    status: { result: a.status.result },
    info: a.info,
    ...(a.signature ? { signature: { signingDomain: a.signature.signingDomain } } : {}),
    ...(dmarcSeen !== undefined ? { authenticationResults: { dmarc: { result: dmarcSeen } } } : {}),
  } as unknown as ARCResult;
}

/** What check.ts reads of an SPF result: its outcome, domain, resinfo and Received-SPF header. */
function slimSpf(r: SPFResult): SPFResult {
  return { status: { result: r.status.result }, domain: r.domain, info: r.info, header: r.header } as unknown as SPFResult;
}

/**
 * SPF (RFC 7208) for the identities of one MAIL, each through `cache`
 * (spf-cache.ts: kept within the TTLs of the answers it used), as plain data.
 * `wrap` gives the resolver of this task (the thread notes whose code resumes).
 */
export async function evaluateSpf(task: SpfTask["spf"], cache: SpfCache, wrap: (r: SpfResolver) => SpfResolver, query?: TtlQuery): Promise<SpfAnswer[]> {
  const { clientIp: ip, helo, mta } = task;
  const results = await Promise.all(
    task.senders.map((sender) => cache.lookup(SpfCache.key(ip, sender, helo, mta), (r) => spf({ sender, ip, helo, mta, resolver: wrap(r) as never, strict: true }), query)),
  );
  return results.map((r) => ({ result: slimSpf(JSON.parse(JSON.stringify(r.result)) as SPFResult), until: r.until }));
}

/**
 * What check.ts reads of the DKIM results: per signature its identity, the
 * resinfo for Authentication-Results and its status. The rest (signature,
 * canonicalized header, key and key record: about 2 KB per signature) stays
 * in the thread instead of being copied to the session thread for nothing.
 */
function slim(dkim: DKIMVerifyResult): DKIMVerifyResult {
  const results = (dkim.results ?? []).map((r) =>
    defined({
      id: r.id,
      signingDomain: r.signingDomain,
      selector: r.selector,
      info: r.info,
      status: defined({ result: r.status.result, comment: r.status.comment, aligned: r.status.aligned, underSized: r.status.underSized }),
    }),
  );
  // headerFrom: the From: addresses mailauth found (strings); envelopeFrom: a string or false.
  return defined({ headerFrom: dkim.headerFrom && [...dkim.headerFrom], envelopeFrom: dkim.envelopeFrom, results }) as unknown as DKIMVerifyResult;
}

/**
 * The object without its undefined fields, as JSON.parse(JSON.stringify())
 * gives it for fields that are strings, finite numbers, booleans, null,
 * plain objects and arrays of strings (all that slim() puts in).
 */
function defined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/**
 * DKIM and ARC without running SPF again: the SPF result of MAIL (which
 * check.ts keeps) is the one DMARC uses. The same steps as mailauth's authenticate(), which costs a
 * third SPF evaluation per message.
 */
async function verify(content: Buffer, task: ContentTask, resolver: Resolver, keys: DkimKeyCache): Promise<Omit<Verified, "dmarc">> {
  const dkim = await verifyDkim(content, { resolver: resolver as never, sender: task.mailFrom, strict: true }, keys);
  const arcResult = await arc(dkim.arc as never, { resolver: resolver as never, strict: true, ip: task.clientIp });
  return { dkim, spf: false, arc: arcResult, headers: "" };
}

/**
 * mailauth's authenticate(), which also seals (ARC) the message for the
 * next hop. Its DMARC result is not used (check.ts evaluates DMARC for our
 * author); the sealed ARC-Authentication-Results keep mailauth's.
 */
async function authenticateAndSeal(content: Buffer, task: ContentTask, resolver: Resolver): Promise<Omit<Verified, "dmarc">> {
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
