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
 * The DMARC verdict does not use the PSL: mailauth's dmarc() finds the
 * Organizational Domain with the RFC 9989 DNS Tree Walk.
 */
import { createRequire } from "node:module";
import { formatDomain, TLDTS_OPTS } from "mailauth/lib/tools.js";

interface Tldts {
  getDomain(name: string, options: object): string | null;
}

/** tldts as mailauth resolves it: mailauth's own dependency, the PSL it uses. */
const tldts = createRequire(import.meta.resolve("mailauth"))("tldts") as Tldts;

/** The registrable domain of `name` by the PSL, or null (none, or not a domain name: an empty label other than the root's trailing dot). */
export function registrableDomain(name: string | null | undefined): string | null {
  if (name === null || name === undefined) return null;
  const trimmed = name.trim();
  if (trimmed.replace(/\.$/, "").split(".").some((label) => label === "")) return null;
  return tldts.getDomain(trimmed, TLDTS_OPTS);
}

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
