/**
 * Authentication-Results (RFC 8601): reading the authserv-id of an incoming
 * header, and removing the incoming ones that claim to be ours (§5: a
 * forged result with our id must never reach the reader or a filter that
 * trusts our id).
 *
 * Grammar (§2.2): authres-header = "Authentication-Results:" [CFWS]
 * authserv-id [ CFWS authres-version ] ( no-result / 1*resinfo ) [CFWS] CRLF,
 * authserv-id = value (RFC 2045: token or quoted-string). Comments in
 * parentheses may nest; quoted-strings may hold quoted-pairs.
 */
import { canonicalDomain } from "./address.ts";
import { removeFields, type HeaderField } from "./header.ts";
import { readerForm } from "./rfc2047.ts";

/** Skips CFWS (white space and nested comments) from i; returns the next index. */
function skipCfws(s: string, i: number): number {
  let depth = 0;
  while (i < s.length) {
    const c = s[i];
    if (depth > 0) {
      if (c === "\\") i += 2;
      else {
        if (c === "(") depth++;
        else if (c === ")") depth--;
        i++;
      }
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\n") i++;
    else if (c === "(") {
      depth = 1;
      i++;
    } else break;
  }
  return i;
}

const TSPECIALS = '()<>@,;:\\"/[]?= \t\r\n';

/** The authserv-id of an Authentication-Results value (lowercased), or undefined when there is none to read. */
export function authservIdOf(value: string): string | undefined {
  let i = skipCfws(value, 0);
  if (i >= value.length) return undefined;
  if (value[i] === '"') {
    let out = "";
    for (i++; i < value.length; i++) {
      const c = value[i] as string;
      if (c === "\\") {
        i++;
        out += value[i] ?? "";
      } else if (c === '"') return out.length > 0 ? out.toLowerCase() : undefined;
      else out += c;
    }
    return undefined; // unterminated
  }
  const start = i;
  while (i < value.length && !TSPECIALS.includes(value[i] as string) && (value.charCodeAt(i) > 0x20 && value.charCodeAt(i) !== 0x7f)) i++;
  return i > start ? value.slice(start, i).toLowerCase() : undefined;
}

/**
 * An authserv-id for comparison, as a reader would take it: NFKC, format
 * characters (zero-width, byte-order mark) and look-alikes of "." dropped or
 * mapped (src/message readerForm), lower case, without trailing dots, a
 * Unicode domain in its A-label form. "MX.Example.test.", "mx\u200B.example.test"
 * and "mx\uFF0Eexample.test" are all "mx.example.test".
 */
function sameId(id: string): string {
  const read = readerForm(id).toLowerCase().replace(/\.+$/, "");
  return canonicalDomain(read) ?? read;
}

/** The server's own authserv-id, compared in every message: its sameId() kept (the config's value does not change while it runs). */
let ownIdCache: { id: string; same: string } | undefined;
function ownId(id: string): string {
  if (ownIdCache?.id !== id) ownIdCache = { id, same: sameId(id) };
  return ownIdCache.same;
}

/**
 * Header fields Wardmail writes itself and trusts, so an incoming copy is a
 * forgery: Received-SPF and X-Wardmail-Verdict (all of them: we add ours),
 * Return-Path (the final delivery adds it, RFC 5321 §4.4; Postfix drops it
 * too), and Authentication-Results claiming our authserv-id.
 */
const OURS = new Set(["received-spf", "x-wardmail-verdict", "return-path"]);
// The spam score (src/spam), the impersonation and external-sender tags (src/impersonation).
for (const name of ["x-wardmail-spam", "x-wardmail-impersonation", "x-wardmail-external"]) OURS.add(name);

/**
 * Removes every header field we write ourselves (OURS, and the
 * Authentication-Results whose authserv-id is ours, with or without a
 * trailing dot, in any case), in every spelling the reader of src/message
 * knows (a byte-order mark or folding before the colon does not hide a
 * field). Only the header section is touched; the body and the other
 * fields stay byte for byte.
 */
export function stripOwnHeaders(content: Buffer, authservId: string, fields?: readonly HeaderField[]): Buffer {
  const ours = ownId(authservId);
  return removeFields(content, (f, value) => {
    if (OURS.has(f.name)) return true;
    if (f.name !== "authentication-results") return false;
    const id = authservIdOf(value());
    return id !== undefined && sameId(id) === ours;
  }, fields);
}
