/**
 * DMARC by mailauth's dmarc(), with one guard.
 *
 * When the author domain publishes more than one DMARC record, policy
 * discovery ends there and DMARC does not apply (RFC 7489 §6.6.3 step 6:
 * "If the remaining set contains multiple records or no records, policy
 * discovery terminates and DMARC processing is not applied"; mailauth's own
 * RFC 9989 §4.10 compliance case "bis-multiple-records-no-org-inherit", in
 * ../shared/conformance/dmarc, expects the same). mailauth 7.1.0 discards
 * such a set and goes on walking the tree, so the subdomain got its parent's
 * policy: a record its owner did not publish for it.
 *
 * The guard watches the `_dmarc` answers mailauth gets (no extra question).
 * Only when the author domain's answer holds two or more DMARC records and
 * the policy came from another domain does it evaluate again, with every
 * other `_dmarc` name answered "no such name": the result is then mailauth's
 * own for "no policy found" (dmarc=none).
 */
import type { DMARCOptions, DMARCResult } from "mailauth";
// From its own module: mailauth's index also loads BIMI, its VMC parser and an HTTP client.
import { dmarc } from "mailauth/lib/dmarc/index.js";
import { authorDomain } from "./results.ts";

type Resolver = (name: string, rrtype: string) => Promise<unknown>;

/** mailauth's test for a DMARC record among a name's TXT records (lib/dmarc/get-dmarc-record.js). */
const DMARC_RECORD = /^[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)/;

function dmarcRecords(answer: unknown): number {
  if (!Array.isArray(answer)) return 0;
  return answer.filter((row: unknown) => DMARC_RECORD.test((Array.isArray(row) ? row.join("") : String(row)).trim())).length;
}

export { authorDomain };

/** A resolver that records the `_dmarc` TXT answers it passes on. */
export function watchDmarcAnswers(resolver: Resolver): { resolver: Resolver; answers: Map<string, unknown> } {
  const answers = new Map<string, unknown>();
  const watching: Resolver = async (name, rrtype) => {
    const answer = await resolver(name, rrtype);
    if (rrtype === "TXT" && /^_dmarc\./i.test(name)) answers.set(name.toLowerCase().replace(/\.+$/, ""), answer);
    return answer;
  };
  return { resolver: watching, answers };
}

/** True when mailauth applied another domain's policy although the author domain published several DMARC records. */
export function inheritedPastRecordSet(result: DMARCResult | false, answers: ReadonlyMap<string, unknown>): boolean {
  const author = authorDomain(result);
  if (!result || author === "" || result.status.result === "none") return false;
  return dmarcRecords(answers.get(`_dmarc.${author}`)) >= 2 && (result.policyDomain ?? "").toLowerCase() !== author;
}

/** mailauth's dmarc() with the guard above. */
export async function evaluateDmarc(opts: Omit<DMARCOptions, "resolver"> & { resolver: Resolver }): Promise<DMARCResult | false> {
  const watched = watchDmarcAnswers(opts.resolver);
  const first = await dmarc({ ...opts, resolver: watched.resolver as never });
  if (!first || !inheritedPastRecordSet(first, watched.answers)) return first;
  const own = `_dmarc.${authorDomain(first)}`;
  const stopping: Resolver = (name, rrtype) => {
    if (rrtype === "TXT" && /^_dmarc\./i.test(name) && name.toLowerCase().replace(/\.+$/, "") !== own) {
      return Promise.reject(Object.assign(new Error(`queryTXT ENOTFOUND ${name}`), { code: "ENOTFOUND" }));
    }
    return opts.resolver(name, rrtype);
  };
  return dmarc({ ...opts, resolver: stopping as never });
}
