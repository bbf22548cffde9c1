/**
 * The addresses a reader sees in a text: a display name, a comment, or a
 * whole originator field read as one text (src/message/rfc2047.ts
 * readerForm: encoded words decoded, NFKC, look-alikes of "@" and "."
 * mapped, format characters dropped, white space around "@" and "."
 * ignored), with quotation marks looked through. Used by sender ownership
 * on submission and by the own-domain check on the MX, so both see the
 * same addresses.
 *
 * Linear: each "@" looks at its own run of characters on each side, and
 * runs end at the next "@".
 */
import { canonicalDomain } from "./address.ts";
import { readerForm } from "./rfc2047.ts";

const STOP = /[\s<>(),;:@[\]]/;
/**
 * Quotation marks a reader looks through: '"ceo"@bank.test', "'ceo'@bank.test"
 * and "“ceo”@bank.test" all read as ceo@bank.test.
 */
const QUOTES = /["'`\u2018-\u201f\u00ab\u00bb\u2039\u203a\u300c-\u300f\uff02\uff07]/g;

/** The addresses a reader would see in a text (linear: each "@" looks at its own run of characters on each side); domains in canonical (A-label) form. */
export function addressesIn(text: string): string[] {
  const s = readerForm(text).replace(QUOTES, "");
  const out: string[] = [];
  for (let at = s.indexOf("@"); at >= 0; at = s.indexOf("@", at + 1)) {
    let l = at;
    while (l > 0 && !STOP.test(s[l - 1] as string)) l--;
    let r = at + 1;
    while (r < s.length && !STOP.test(s[r] as string)) r++;
    const local = s.slice(l, at);
    const domain = s.slice(at + 1, r).replace(/\.+$/, "");
    if (local !== "" && /[^.]\.[^.]/.test(domain)) out.push(`${local}@${canonicalDomain(domain) ?? domain}`);
  }
  return out;
}

