/**
 * The registrable domain of a name by the Public Suffix List: the
 * Organizational Domain guess behind DKIM's per-signature alignment
 * (src/mailauth/psl.ts) and the lookalike check (src/impersonation).
 *
 * It is tldts's `getDomain(name, { allowIcannDomains: true,
 * allowPrivateDomains: true })`, the options mailauth uses (its
 * `TLDTS_OPTS`; src/mailauth/psl.test.ts checks that they stay the same),
 * with tldts as mailauth resolves it (mailauth's own dependency, so the
 * same PSL snapshot). tldts drops a leading dot and answers for the rest,
 * so `.example.com` would get `example.com`; a name whose first label is
 * empty is not a domain name and has no registrable domain (the PSL
 * project's algorithm tests expect null).
 *
 * Here and not in src/mailauth: this needs only tldts, and a thread that
 * does not verify mail (checks off) does not load mailauth's tools.
 */
import { createRequire } from "node:module";

interface Tldts {
  getDomain(name: string, options: object): string | null;
}

/** mailauth's TLDTS_OPTS. */
export const TLDTS_OPTIONS: Readonly<{ allowIcannDomains: true; allowPrivateDomains: true }> = { allowIcannDomains: true, allowPrivateDomains: true };

let tldts: Tldts | undefined;

/** The registrable domain of `name`, or null (an IP address, a public suffix, an empty label). */
export function registrableDomain(name: string | null | undefined): string | null {
  if (name === null || name === undefined) return null;
  const trimmed = name.trim();
  if (trimmed.replace(/\.$/, "").split(".").some((label) => label === "")) return null;
  tldts ??= createRequire(import.meta.resolve("mailauth"))("tldts") as Tldts;
  return tldts.getDomain(trimmed, TLDTS_OPTIONS);
}
