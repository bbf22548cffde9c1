/**
 * Sender authentication as a policy check (src/policy), glue over the
 * `mailauth` library, which does the algorithms: SPF (RFC 7208), DKIM (RFC
 * 6376, RFC 8463), ARC (RFC 8617), DMARC (RFC 7489). mailauth runs in strict
 * mode: rsa-sha1 signatures and RSA keys under 1024 bits never pass (RFC
 * 8301), and the RFC processing limits apply (10 DNS-querying SPF terms, 2
 * void lookups). Every DNS question goes through the injected resolver.
 *
 * MAIL: SPF for the MAIL FROM identity (postmaster@HELO for <>) and for the
 * HELO identity, each evaluated once per connection, in a verifier thread
 * (one task for both), and the result shared there by every connection
 * with the same inputs for as long as the DNS answers it used may be
 * (spf-cache.ts); verdicts spf.<result> (so an operator can reject SPF fail
 * before DATA). SPF only waits for DNS: its task is not ended at the
 * check's deadline (the check fails closed and the answer is dropped), so
 * a slow sender never ends the thread other connections' tasks are in.
 * DATA: DKIM, ARC and DMARC (with the SPF result; content.ts, run in
 * verifier threads: at the check's deadline the task is abandoned there, or its thread ended when stuck: offload.ts), verdicts dkim.<result>,
 * arc.<result>, dmarc.<result or policy>: a DMARC failure becomes
 * "dmarc.reject", "dmarc.quarantine" or "dmarc.none" by the policy that
 * applies (the domain's, lowered by mailauth for t=y, or the operator's
 * override), unless a trusted ARC sealer vouches for the message.
 *
 * The author (RFC5322.From) is ours to find, not mailauth's: src/message
 * reads the From: field(s) in every spelling, and a message without
 * exactly one From: field holding valid mailboxes gets the verdict
 * from.missing, from.duplicate, from.invalid or from.multiple_domains
 * (RFC 7489 §6.6.1, RFC 9989 §5.3.1 let a receiver refuse them), never a
 * quiet dmarc=none. DMARC is evaluated for every author domain found (at
 * most MAX_AUTHOR_DOMAINS; more count as failing under reject) and the
 * strictest result is the verdict, so an operator who accepts such
 * messages still gets each domain's policy applied.
 *
 * Our own domains (local.domains, and their subdomains) from outside: MAIL
 * FROM in one of them without SPF pass is local.mail_from; a From: in one
 * of them without DMARC pass, a verifying DKIM signature of that domain or
 * SPF pass for it (or for a parent or subdomain of it within our domains)
 * is local.from; a temporary DNS error on the way is local.temperror; a
 * From: whose display name or comment shows a reader an address in one of
 * them while its address is elsewhere is local.from_name.
 *
 * mailauth itself runs only in the verifier threads: this module loads
 * none of it (types only), so a session thread's isolate never holds
 * mailauth, tldts, Joi or libmime (tens of MB each); it sends the few
 * inputs (client address, HELO, MAIL FROM, the author mailboxes, the SPF
 * result, the content) and reads back plain results (results.ts).
 *
 * State (typed, src/policy state.ts): MAIL keeps its SPF results in the
 * transaction (state.spf, state.heloSpf) for DATA, and per connection
 * (connection.spf) for the next transaction.
 *
 * Headers: Authentication-Results (RFC 8601) with our
 * authserv-id, then Received-SPF (RFC 7208 §9.1). When the host marks the
 * message as forwarded to another domain (state.forwarding) and a sealing key is
 * configured, the message is ARC-sealed (a new ARC set on top) so the next
 * hop can trust our results.
 */
import type { DMARCResult, SPFResult } from "mailauth";
import type { Config } from "../config/index.ts";
import { SPF_PER_CONNECTION, type Check, type CheckInput, type CheckOutcome } from "../policy/index.ts";
import { addressesIn, canonicalDomain, fieldValue, headOf, MAX_PARSED_FIELDS, type Author, type HeaderField } from "../message/index.ts";
import type { Verified } from "./content.ts";
import { VerifierPool, type TtlResolver } from "./offload.ts";
import { authorDomain, type SpfAnswer } from "./results.ts";
import { SPF_CACHE_SIZE, SpfCache } from "./spf-cache.ts";
import type { PoolLink } from "../threads/index.ts";

export type MailauthResolver = (name: string, rrtype: string) => Promise<unknown>;

export interface SenderAuthOptions {
  readonly resolver: MailauthResolver;
  /** The same resolver's records with their TTL: the verifier threads keep answers that long. */
  readonly query?: TtlResolver;
  readonly authservId: string;
  readonly checks: Pick<Config["checks"], "trustedArcSealers" | "dmarcOverrides">;
  /** Our own domains (local.domains): mail from outside that claims them must be authenticated. */
  readonly localDomains?: readonly string[];
  /** ARC sealing key for forwarded mail (when the host sets state.forwarding); undefined: no sealing. */
  readonly seal?: { readonly domain: string; readonly selector: string; readonly privateKey: string };
  /** The process's shared task pools (src/threads PoolLink): the verifier threads are then the primary's, one set for every worker. */
  readonly pools?: PoolLink;
}

const SPF_KEPT_MS = 5 * 60_000;

/** Author domains DMARC is evaluated for; a message naming more gets dmarc.reject for the rest. */
export const MAX_AUTHOR_DOMAINS = 10;

/** Strictest first: the verdict of a message with several author domains is the first of these any of them got. */
const DMARC_SEVERITY = ["dmarc.reject", "dmarc.quarantine", "dmarc.temperror", "dmarc.permerror", "dmarc.none", "dmarc.pass"];

const PROBLEM_TEXT: Record<string, string> = {
  missing: "no From: field",
  duplicate: "more than one From: field",
  invalid: "From: field without a valid address",
  multiple_domains: "From: mailboxes in more than one domain",
};

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

  /** Our own domains, canonical. */
  private readonly local: ReadonlySet<string>;
  /**
   * This thread's copies of the verifier threads' kept SPF results, each
   * used no longer than there (the `until` the thread's cache gave it): a
   * client seen before costs no round trip to a verifier thread at MAIL.
   * At most SPF_CACHE_SIZE (oldest out).
   */
  private readonly spfKept = new Map<string, SpfAnswer>();

  constructor(opts: SenderAuthOptions) {
    this.opts = opts;
    this.local = new Set((opts.localDomains ?? []).map((d) => canonicalDomain(d.replace(/\.+$/, "")) ?? d.toLowerCase()));
    // SPF results are shared within their DNS TTLs in the verifier threads (spf-cache.ts), when the resolver gives TTLs (`query`).
    this.verifier = new VerifierPool(opts.resolver, { ...(opts.query ? { query: opts.query } : {}), ...(opts.pools ? { link: opts.pools } : {}) });
  }

  /** Ends the verifier threads. */
  close(): void {
    this.verifier.close();
  }

  /**
   * True when the domain (canonical) is one of ours or a subdomain of one:
   * a reader takes "it@mail.example.org" for someone of example.org as
   * readily as "it@example.org".
   */
  private ours(domain: string): boolean {
    for (let d = domain; ; ) {
      if (this.local.has(d)) return true;
      const dot = d.indexOf(".");
      if (dot < 0) return false;
      d = d.slice(dot + 1);
    }
  }

  /** True when the address (local@domain) is in one of our domains or a subdomain of one. */
  private isLocal(address: string): boolean {
    const d = canonicalDomain(address.slice(address.lastIndexOf("@") + 1).replace(/\.+$/, ""));
    return d !== undefined && this.ours(d);
  }

  /**
   * A passing identity (DKIM d= or the SPF domain) vouches for an author
   * domain of ours when it is that domain, or one of the two is a subdomain
   * of the other within our domains (relaxed alignment, RFC 7489 §3.1).
   */
  private vouches(identity: string, domain: string): boolean {
    const id = identity.toLowerCase().replace(/\.+$/, "");
    if (id === domain) return true;
    return this.ours(id) && (domain.endsWith(`.${id}`) || id.endsWith(`.${domain}`));
  }

  readonly mail = async (input: CheckInput): Promise<CheckOutcome> => {
    const helo = heloIdentity(input.helo, input.clientIp);
    // RFC 7208 §2.3: the HELO identity, checked as postmaster@HELO (not for
    // address literals). With <>, the MAIL FROM identity is that same one.
    const heloSender = helo.startsWith("[") ? undefined : `postmaster@${helo}`;
    const sameIdentity = input.mailFrom === "" && heloSender !== undefined;
    const senders = [sameIdentity ? (heloSender) : input.mailFrom, ...(heloSender === undefined || sameIdentity ? [] : [heloSender])];
    const [mailFrom, heloOwn] = await this.spfOnce(input, senders, helo);
    if (mailFrom === undefined) throw new Error("SPF: no result");
    const heloResult = sameIdentity ? mailFrom : (heloOwn ?? false);
    input.state.spf = mailFrom;
    input.state.heloSpf = heloResult;
    const verdicts = [`spf.${result(mailFrom)}`];
    // One of our domains from outside: only a client our SPF record names may use it.
    if (input.mailFrom !== "" && this.isLocal(input.mailFrom) && result(mailFrom) !== "pass") verdicts.push(result(mailFrom) === "temperror" ? "local.temperror" : "local.mail_from");
    return { verdicts, notes: { spf: result(mailFrom), spfHelo: result(heloResult) } };
  };

  /**
   * One SPF evaluation per (sender, HELO) per connection: the client address
   * is the connection's, so a second transaction with the same identities
   * (the HELO identity is the same for every message of a connection) gets
   * the same result. Results that may change on a retry (temperror) are not
   * kept; a result is used for at most SPF_KEPT_MS (a long-lived connection
   * sees DNS changes), and a connection keeps at most SPF_PER_CONNECTION.
   * The identities not known yet go to a verifier thread in one task.
   */
  private spfOnce(input: CheckInput, senders: readonly string[], helo: string): Promise<SPFResult[]> {
    const memo = input.connection?.spf;
    const now = Date.now();
    const results: (Promise<SPFResult> | undefined)[] = senders.map((sender) => {
      const known = memo?.get(`${helo}\0${sender}`);
      return known !== undefined && now - known.at < SPF_KEPT_MS ? known.result : undefined;
    });
    const mta = this.opts.authservId;
    const keyOf = (sender: string): string => SpfCache.key(input.clientIp, sender, helo, mta);
    // Results the verifier threads keep, copied here with their time limit.
    for (const [i, sender] of senders.entries()) {
      if (results[i] !== undefined) continue;
      const kept = this.spfKept.get(keyOf(sender));
      if (kept === undefined) continue;
      if (kept.until > now) {
        results[i] = Promise.resolve(kept.result);
        if (memo !== undefined) this.remember(memo, `${helo}\0${sender}`, now, results[i]);
      } else this.spfKept.delete(keyOf(sender));
    }
    const missing = senders.filter((_, i) => results[i] === undefined);
    if (missing.length === 0) return Promise.all(results as Promise<SPFResult>[]);
    // Without the check's deadline signal: SPF only waits for DNS (each question under dns.timeout, at most
    // 10 lookups, RFC 7208 §4.6.4) and its evaluation is shared in the thread by every connection with the
    // same inputs (spf-cache.ts), so a slow sender costs only its own check (failed closed at the deadline by
    // the CheckRunner, the answer dropped), neither the thread (offload.ts: a deadline ends it when stuck)
    // nor the evaluation another connection waits for.
    const batch = this.verifier.spf({ clientIp: input.clientIp, helo, mta, senders: missing }).then((answers) => {
      for (const [i, a] of answers.entries()) {
        const sender = missing[i];
        if (sender === undefined || !(a.until > Date.now())) continue;
        if (this.spfKept.size >= SPF_CACHE_SIZE) this.spfKept.delete(this.spfKept.keys().next().value as string);
        this.spfKept.set(keyOf(sender), a);
      }
      return answers.map((a) => a.result);
    });
    let at = 0;
    return Promise.all(
      senders.map((sender, i) => {
        const kept = results[i];
        if (kept !== undefined) return kept;
        const n = at++;
        const pending = batch.then((rs) => {
          const r = rs[n];
          if (r === undefined) throw new Error("SPF: no result");
          return r;
        });
        if (memo !== undefined) this.remember(memo, `${helo}\0${sender}`, now, pending);
        return pending;
      }),
    );
  }

  /** Keeps a pending SPF result for the connection (see spfOnce); forgotten when it fails or is temperror. */
  private remember(memo: NonNullable<CheckInput["connection"]>["spf"], key: string, now: number, pending: Promise<SPFResult>): void {
    const known = memo.get(key);
    if (known === undefined && memo.size >= SPF_PER_CONNECTION) return;
    const entry = { at: now, result: pending };
    memo.set(key, entry);
    const forget = (): void => {
      if (memo.get(key) === entry) memo.delete(key);
    };
    pending.then((r) => {
      if (result(r) === "temperror") forget();
    }, forget);
  }

  readonly data = async (input: CheckInput): Promise<CheckOutcome> => {
    const content = input.content ?? Buffer.alloc(0);
    const helo = heloIdentity(input.helo, input.clientIp);
    const sealing = this.opts.seal !== undefined && input.state.forwarding;
    const spfResult: SPFResult | false = input.state.spf ?? false;
    const heloSpf = input.state.heloSpf;
    // The header section and the author as the transaction read them, once per message.
    const head = headOf(content, input.head);
    const { fields, author } = head;
    // DMARC for each author domain (at most MAX_AUTHOR_DOMAINS), in the verifier thread with DKIM and ARC.
    const evaluated = author.domains.slice(0, MAX_AUTHOR_DOMAINS);
    const authors = evaluated.map((domain) => author.mailboxes.find((m) => m.domain === domain)?.address ?? `postmaster@${domain}`);
    // What the From: field shows a reader is read now: nothing here needs the content once the thread has it.
    const showsLocal = this.showsLocal(content, fields, author);
    // Of the SPF result, DMARC reads the outcome and the domain only.
    const spfForDmarc = spfResult && ({ status: { result: spfResult.status.result }, domain: spfResult.domain } as SPFResult);
    const task = { mailFrom: input.mailFrom, clientIp: input.clientIp, helo, authservId: this.opts.authservId, ...(sealing && this.opts.seal ? { seal: this.opts.seal } : {}), spf: spfForDmarc, authors };
    const verified = await this.verifier.verify(content, task, input.signal);
    // Sealing evaluates SPF again in the thread (mailauth's authenticate()); otherwise the result of MAIL is the one.
    const res: Verified = task.seal ? verified : { ...verified, spf: spfResult };
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
    const dmarcs = this.dmarcAll(author, evaluated, res);
    const dmarcVerdict = this.strictest(dmarcs);
    // A From: problem first: it is the reason a refusal names when DMARC fails too.
    const verdicts = [`dkim.${dkim}`, `arc.${arc}`, ...(author.problem !== undefined ? [`from.${author.problem}`] : []), dmarcVerdict.verdict];
    const local = this.localAuthor(author, dmarcs, res);
    if (local !== undefined) verdicts.push(local);
    else if (showsLocal && !this.trustedArc(res)) verdicts.push("local.from_name");
    // Authentication-Results: one resinfo per result, our authserv-id first.
    const parts: string[] = [];
    for (const r of dkimResults) if (r.info) parts.push(r.info);
    if (res.spf && res.spf.info) parts.push(res.spf.info);
    if (heloSpf) parts.push(`spf=${result(heloSpf)} smtp.helo=${pvalue(helo)}`);
    if (res.arc && res.arc.info) parts.push(res.arc.info);
    for (const d of dmarcs) if (d.result && d.result.info) parts.push(d.result.info + (d.verdict.comment ? ` (${d.verdict.comment})` : ""));
    if (author.problem !== undefined && author.problem !== "multiple_domains") parts.push(`dmarc=permerror (${PROBLEM_TEXT[author.problem] ?? author.problem})`);
    // ARC set first (RFC 8617 §5.1: the new set goes on top), when mailauth sealed the message.
    const arcSet = res.headers.split(/\r\n(?![ \t])/).filter((h) => /^ARC-/i.test(h));
    const headers = [...arcSet, `Authentication-Results: ${this.opts.authservId};${parts.length === 0 ? " none" : parts.map((p) => `\r\n ${fold(p)}`).join(";")}`];
    if (res.spf && res.spf.header) headers.push(res.spf.header.replace(/\r?\n$/, "").replace(/\r?\n/g, "\r\n"));
    return {
      verdicts,
      headers,
      notes: { dkim, arc, dmarc: dmarcVerdict.verdict, from: author.domains.join(","), ...(author.problem !== undefined ? { fromProblem: author.problem } : {}) },
    };
  };

  /** The DMARC results of the evaluated author domains (the thread's, in their order) with their verdicts; the rest count as failing under reject. */
  private dmarcAll(author: Author, evaluated: readonly string[], res: Verified): { domain: string; result: DMARCResult | false; verdict: { verdict: string; comment?: string } }[] {
    const out = evaluated.map((domain, i) => {
      const r = res.dmarc[i] ?? false;
      return { domain, result: r, verdict: this.dmarcVerdict(r, res) };
    });
    for (const domain of author.domains.slice(MAX_AUTHOR_DOMAINS)) out.push({ domain, result: false, verdict: { verdict: "dmarc.reject", comment: `not evaluated: more than ${MAX_AUTHOR_DOMAINS} author domains` } });
    return out;
  }

  /** The strictest DMARC verdict over the author domains; dmarc.permerror without any. */
  private strictest(dmarcs: readonly { verdict: { verdict: string; comment?: string } }[]): { verdict: string; comment?: string } {
    let best: { verdict: string; comment?: string } = { verdict: "dmarc.permerror" };
    let rank = dmarcs.length === 0 ? -1 : Infinity;
    for (const d of dmarcs) {
      const r = DMARC_SEVERITY.indexOf(d.verdict.verdict);
      const at = r < 0 ? DMARC_SEVERITY.length : r;
      if (at < rank) {
        rank = at;
        best = d.verdict;
      }
    }
    return best;
  }

  /**
   * local.from when an author domain is one of ours (or a subdomain of one)
   * and the message is not authenticated for it: no DMARC pass, no
   * verifying DKIM signature that vouches for it, no SPF pass for it, no
   * trusted ARC sealer that saw DMARC pass. local.temperror when DMARC
   * could not tell.
   */
  private localAuthor(author: Author, dmarcs: readonly { domain: string; result: DMARCResult | false }[], res: Verified): string | undefined {
    let verdict: string | undefined;
    for (const domain of author.domains) {
      if (!this.ours(domain)) continue;
      const d = dmarcs.find((x) => x.domain === domain)?.result;
      if (d && d.status.result === "pass") continue;
      // A trusted ARC sealer (a list our users write to) saw DMARC pass before it changed the message.
      if (this.trustedArc(res)) continue;
      if ((res.dkim.results ?? []).some((r) => r.status.result === "pass" && this.vouches(r.signingDomain ?? "", domain))) continue;
      if (res.spf && res.spf.status.result === "pass" && this.vouches(res.spf.domain ?? "", domain)) continue;
      if (d && d.status.result === "temperror") verdict ??= "local.temperror";
      else return "local.from";
    }
    return verdict;
  }

  /**
   * local.from_name: the From: field shows a reader an address in one of
   * our domains (in a display name or comment, decoded and normalised as
   * src/message addressesIn reads it: "ceo@example.org" <x@elsewhere.test>)
   * while no author mailbox is in that domain. Many readers show only the
   * name. A trusted ARC sealer that saw DMARC pass vouches for the message
   * (a list that writes "'alice@example.org' via List"): the caller asks.
   */
  private showsLocal(content: Buffer, fields: readonly HeaderField[], author: Author): boolean {
    if (this.local.size === 0) return false;
    let seen = 0;
    for (const f of fields) {
      if (f.name !== "from") continue;
      // Bounded like the author (more From: fields are from.duplicate anyway).
      if (++seen > MAX_PARSED_FIELDS) break;
      for (const shown of addressesIn(fieldValue(content, f))) {
        const domain = shown.slice(shown.lastIndexOf("@") + 1);
        if (this.ours(domain) && !author.domains.includes(domain)) return true;
      }
    }
    return false;
  }

  /** The DMARC verdict: pass/none/temperror/permerror as they are; a failure as the policy that applies. */
  private dmarcVerdict(d: DMARCResult | false, res: Verified): { verdict: string; comment?: string } {
    // Our author parser found a domain mailauth would not take: an error, never a quiet none.
    if (!d) return { verdict: "dmarc.permerror" };
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

/**
 * A client-given text as an Authentication-Results property value (RFC
 * 8601 §2.2 pvalue: a token, else a quoted-string), so that "EHLO
 * x;dmarc=pass" cannot add a result of its own to our header.
 */
export function pvalue(text: string): string {
  return /^[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+$/.test(text) ? text : `"${text.replace(/[\\"]/g, "\\$&")}"`;
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
