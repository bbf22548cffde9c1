/**
 * The Organizational Domain by the Public Suffix List, for the per-signature
 * DKIM alignment guess (`status.aligned`) that verifyDkim reports.
 *
 * mailauth makes that guess in tools.getAlignment() with
 * `tldts.getDomain(name, TLDTS_OPTS)` (the PSL snapshot bundled in tldts,
 * ICANN and private rules), falling back to the name itself. tldts drops a
 * leading dot and answers for the rest, so `.example.com` gets
 * `example.com` and a From: domain `.example.com` was guessed aligned with
 * d=example.com. A name whose first label is empty is not a domain name and
 * has no registrable domain (the PSL project's algorithm tests, in
 * ../shared/conformance/dmarc/psl-tests.txt, expect null). Everything else
 * is tldts's answer, with mailauth's options, unchanged.
 *
 * registrableDomain itself is in src/message/domain.ts (no mailauth tools
 * needed); this module adds the alignment guess.
 *
 * The DMARC verdict does not use the PSL: mailauth's dmarc() finds the
 * Organizational Domain with the RFC 9989 DNS Tree Walk.
 */
import { formatDomain } from "mailauth/lib/tools.js";
import { registrableDomain } from "../message/index.ts";

export { registrableDomain };

/**
 * mailauth's relaxed getAlignment(fromDomain, [signingDomain]) with
 * registrableDomain: the signing domain when both share an Organizational
 * Domain (a name without one stands for itself, as in mailauth), else false.
 */
export function relaxedAlignment(fromDomain: string, signingDomain: string): string | false {
  const fromOrg = formatDomain(registrableDomain(fromDomain) ?? fromDomain);
  if (fromOrg === "") return false;
  return formatDomain(registrableDomain(signingDomain) ?? signingDomain) === fromOrg ? signingDomain : false;
}
