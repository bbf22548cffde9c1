/**
 * Lookalike domains: is a domain one of ours to a hurried reader without
 * being it? Pure functions, linear in the length of the names (domains are
 * at most 253 characters; the edit test is a single scan, not a table).
 *
 * - skeleton: punycode decoded, NFKC, lower case, accents dropped, Unicode
 *   confusables mapped to the Latin letter they imitate (Cyrillic and Greek
 *   look-alikes, fullwidth forms through NFKC), then the classic glyph
 *   tricks folded: "rn" → "m", "vv" → "w", "0" → "o", "1"/"l"/"i"/"|" → "l",
 *   "5" → "s". Two domains with one skeleton read the same (in the spirit of
 *   Unicode TS #39 confusable skeletons; a subset, no table download).
 * - one edit: Damerau-Levenshtein distance 1 (a character added, removed,
 *   changed, or two neighbours swapped) on the Unicode names, for names of
 *   at least MIN_EDIT_LABEL characters before the public suffix (short
 *   names are one edit away from too many real domains).
 * - other TLD: the same registrable label under another public suffix
 *   (example.net, example.co.uk for example.org).
 */
import { domainToUnicode } from "node:url";
import { registrableDomain } from "../message/index.ts";

/** Shortest label (before the public suffix) the one-edit rule applies to. */
export const MIN_EDIT_LABEL = 4;

/** Letters that imitate Latin ones (Cyrillic, Greek, IPA, Latin variants) → the Latin letter. */
const CONFUSABLES: Readonly<Record<string, string>> = {
  // Cyrillic
  "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o",
  "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ո": "n",
  "ս": "u", "ց": "g",
  // Greek
  "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
  "ω": "w", "γ": "y", "ϲ": "c", "ϳ": "j",
  // Latin variants and IPA
  "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʟ": "l", "ɪ": "i", "ɴ": "n", "ʀ": "r", "ꞵ": "b", "ß": "ss", "æ": "ae", "œ": "oe",
  "ø": "o", "đ": "d", "ħ": "h", "ł": "l", "ŧ": "t",
};
const CONFUSABLE_RE = new RegExp(`[${Object.keys(CONFUSABLES).filter((k) => k.length === 1).join("")}]`, "gu");

/** The Unicode form of a domain (A-labels decoded), lower case, without a trailing dot. */
export function unicodeDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, "");
  const u = domainToUnicode(d);
  return (u === "" ? d : u).normalize("NFKC");
}

/** The skeleton: what a reader takes the name for (see the module comment). */
export function skeleton(domain: string): string {
  return unicodeDomain(domain)
    .normalize("NFD")
    .replace(/\p{M}/gu, "")
    .replace(CONFUSABLE_RE, (c) => CONFUSABLES[c] ?? c)
    .replace(/rn/g, "m")
    .replace(/vv/g, "w")
    .replace(/0/g, "o")
    .replace(/[1il|]/g, "l")
    .replace(/5/g, "s");
}

/** True when a and b differ by exactly one edit (insert, delete, substitute, or swap of neighbours). Linear. */
export function oneEditApart(a: string, b: string): boolean {
  const x = [...a];
  const y = [...b];
  if (Math.abs(x.length - y.length) > 1) return false;
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  if (i === x.length && i === y.length) return false; // equal
  const rest = (p: number, q: number): boolean => x.slice(p).join("") === y.slice(q).join("");
  if (x.length === y.length) {
    if (rest(i + 1, i + 1)) return true; // substitute
    return x[i] === y[i + 1] && x[i + 1] === y[i] && rest(i + 2, i + 2); // swap
  }
  return x.length > y.length ? rest(i + 1, i) : rest(i, i + 1);
}

/** The registrable domain split into its label and public suffix ("example", "co.uk"), in Unicode. */
function split(domain: string): { label: string; suffix: string; registrable: string } | undefined {
  const reg = registrableDomain(domain);
  if (reg === null) return undefined;
  const u = unicodeDomain(reg);
  const dot = u.indexOf(".");
  if (dot <= 0) return undefined;
  return { label: u.slice(0, dot), suffix: u.slice(dot + 1), registrable: reg };
}

export type LookalikeKind = "skeleton" | "one edit" | "other TLD";

export interface Lookalike {
  /** The local domain it imitates. */
  readonly of: string;
  readonly kind: LookalikeKind;
}

/** A domain that is ours: one of `local`, a subdomain of one, or in the same registrable domain. */
export function isOurs(domain: string, local: readonly string[]): boolean {
  const d = domain.toLowerCase();
  const reg = registrableDomain(d);
  return local.some((l) => d === l || d.endsWith(`.${l}`) || (reg !== null && reg === registrableDomain(l)));
}

/**
 * The local domain `domain` (canonical, A-labels) imitates, if any: its
 * registrable domain has the skeleton of one of ours, is one edit away from
 * it, or has its label under another public suffix. Our own domains and
 * their subdomains never are.
 */
export function lookalikeOf(domain: string, local: readonly string[]): Lookalike | undefined {
  if (isOurs(domain, local)) return undefined;
  const d = split(domain);
  if (d === undefined) return undefined;
  for (const l of local) {
    const o = split(l);
    if (o === undefined) continue;
    const dReg = unicodeDomain(d.registrable);
    const oReg = unicodeDomain(o.registrable);
    if (skeleton(dReg) === skeleton(oReg)) return { of: l, kind: "skeleton" };
    if (Math.min([...d.label].length, [...o.label].length) >= MIN_EDIT_LABEL && oneEditApart(dReg, oReg)) return { of: l, kind: "one edit" };
    if (d.label === o.label && d.suffix !== o.suffix) return { of: l, kind: "other TLD" };
  }
  return undefined;
}
