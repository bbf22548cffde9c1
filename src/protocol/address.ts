/**
 * Parsing of the arguments of MAIL and RCPT: the path in angle brackets and
 * the ESMTP parameters after it (RFC 5321 §4.1.2, §4.1.3; RFC 6531 for UTF-8;
 * RFC 3461 xtext; RFC 1870 SIZE; RFC 6152 BODY).
 *
 * Trusts nothing: the input is the rest of a command line from the network.
 * Strict on purpose: no address without angle brackets, no source routes
 * (they are a relay trick; RFC 5321 §4.1.1.3 lets us not honour them), no
 * control characters, lengths capped as RFC 5321 §4.5.3.1 says. Returns a
 * Reply on error so the caller can answer without guessing.
 */
import { type Reply } from "./reply.ts";
import { R } from "./replies.ts";

export interface ParsedPath {
  /** "" for the null path <>; else local@domain as given (local part unquoted form kept). */
  readonly address: string;
  readonly local: string;
  readonly domain: string;
  /** True when the address holds non-ASCII characters (needs SMTPUTF8). */
  readonly utf8: boolean;
}

export interface ParsedArgs {
  readonly path: ParsedPath;
  /** Parameter keyword (uppercase) → value (undefined when given without "="). */
  readonly params: ReadonlyMap<string, string | undefined>;
}

const MAX_PATH = 256;
const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;

/** atext of RFC 5322 §3.2.3, as a per-code-point test. */
function isAtext(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    "!#$%&'*+-/=?^_`{|}~".includes(String.fromCharCode(c))
  );
}

const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Checks a domain (ASCII LDH labels, or U-labels when utf8 is allowed). */
export function isValidDomain(domain: string, allowUtf8: boolean): boolean {
  if (domain.length === 0 || Buffer.byteLength(domain) > MAX_DOMAIN) return false;
  const labels = domain.split(".");
  for (const label of labels) {
    if (LDH_LABEL.test(label)) continue;
    if (!allowUtf8) return false;
    // U-label: letters/digits of any script plus hyphen, not at the ends.
    if (!/^[\p{L}\p{N}\p{M}](?:[\p{L}\p{N}\p{M}-]*[\p{L}\p{N}\p{M}])?$/u.test(label)) return false;
    if (Buffer.byteLength(label) > 63) return false;
  }
  return true;
}

/** RFC 5321 §4.1.3 address-literal: [IPv4] or [IPv6:...]. */
function isAddressLiteral(s: string): boolean {
  if (!s.startsWith("[") || !s.endsWith("]")) return false;
  const inner = s.slice(1, -1);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(inner)) return inner.split(".").every((o) => Number(o) <= 255);
  if (/^IPv6:[0-9A-Fa-f:.]{2,}$/.test(inner)) return true;
  return false;
}

function parseLocal(local: string, allowUtf8: boolean): boolean {
  if (local.length === 0 || Buffer.byteLength(local) > MAX_LOCAL) return false;
  if (local.startsWith('"')) {
    // Quoted-string: qtextSMTP or quoted-pairSMTP, no controls.
    if (local.length < 2 || !local.endsWith('"')) return false;
    for (let i = 1; i < local.length - 1; i++) {
      const c = local.charCodeAt(i);
      if (c === 0x5c) {
        i++;
        const n = local.charCodeAt(i);
        if (i >= local.length - 1 || n < 0x20 || n > 0x7e) return false;
        continue;
      }
      if (c === 0x22) return false;
      if (c < 0x20 || c === 0x7f) return false;
      if (c > 0x7e && !allowUtf8) return false;
    }
    return true;
  }
  // Dot-string: atoms separated by single dots.
  const atoms = local.split(".");
  for (const atom of atoms) {
    if (atom.length === 0) return false;
    for (const ch of atom) {
      const c = ch.codePointAt(0) ?? 0;
      if (c > 0x7f) {
        if (!allowUtf8) return false;
        continue;
      }
      if (!isAtext(c)) return false;
    }
  }
  return true;
}


/**
 * Parses "<path> params..." (what follows "FROM:" or "TO:").
 * @param allowNull true for MAIL (the null reverse-path <>).
 * @param postmasterOk true for RCPT (RFC 5321 §4.5.1: <postmaster> without domain).
 */
export function parsePathAndParams(input: string, allowNull: boolean, postmasterOk: boolean): ParsedArgs | Reply {
  // RFC 5321 has no space after the colon; common clients send one. Accept spaces only.
  const s = input.replace(/^ +/, "");
  if (!s.startsWith("<")) return R.badPath("address must be in angle brackets");
  const close = s.indexOf(">");
  if (close < 0) return R.badPath("missing '>'");
  const inner = s.slice(1, close);
  const rest = s.slice(close + 1);
  if (rest.length > 0 && !rest.startsWith(" ")) return R.badPath("unexpected text after '>'");
  if (Buffer.byteLength(inner) > MAX_PATH) return R.addressTooLong;
  // Spaces can only be valid inside a quoted local part (checked by parseLocal).
  if (/[\x00-\x1f\x7f]/.test(inner)) return R.badPath("control character in address");

  const params = parseParams(rest);
  if (!(params instanceof Map)) return params;

  if (inner === "") {
    if (!allowNull) return R.badPath("empty address");
    return { path: { address: "", local: "", domain: "", utf8: false }, params };
  }
  if (inner.startsWith("@")) return R.sourceRoute;

  const utf8 = /[^\x00-\x7f]/.test(inner);
  if (postmasterOk && inner.toLowerCase() === "postmaster") {
    return { path: { address: inner, local: inner, domain: "", utf8: false }, params };
  }
  const at = inner.lastIndexOf("@");
  if (at <= 0) return R.badPath("missing domain");
  const local = inner.slice(0, at);
  const domain = inner.slice(at + 1);
  if (!parseLocal(local, true)) return R.badPath("invalid local part");
  if (!isAddressLiteral(domain) && !isValidDomain(domain, true)) return R.badPath("invalid domain");
  return { path: { address: inner, local, domain, utf8 }, params };
}

const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

/** Splits " KEY=VALUE KEY2" into a map; duplicate keywords are an error. */
export function parseParams(rest: string): Map<string, string | undefined> | Reply {
  const map = new Map<string, string | undefined>();
  const parts = rest.split(" ").filter((p) => p.length > 0);
  for (const part of parts) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? undefined : part.slice(eq + 1);
    if (!KEYWORD.test(key)) return R.badParamSyntax;
    if (value !== undefined && (value.length === 0 || /[\x00-\x20=\x7f]/.test(value))) {
      return R.badParamValue(key);
    }
    if (map.has(key)) return R.duplicateParam(key);
    map.set(key, value);
  }
  return map;
}

/**
 * RFC 3461 §4 xtext, as the client codec sends ENVID and ORCPT: bytes
 * outside "!".."~", "+" and "=" become "+HH".
 */
export function encodeXtext(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    out += b >= 0x21 && b <= 0x7e && b !== 0x2b && b !== 0x3d ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes RFC 3461 §4 xtext ("+" HEX HEX). Returns undefined if malformed.
 * xtext carries octets: they are read as UTF-8 (so encodeXtext gives the
 * same xtext back: an ORCPT with "+C3+A9" is relayed as "+C3+A9"), or as
 * Latin-1 when they are not UTF-8.
 */
export function decodeXtext(s: string): string | undefined {
  return xtext(s, true);
}

/**
 * decodeXtext for values that must be UTF-8 (an ORCPT: its registered
 * address types, rfc822 and utf-8 (RFC 6533), carry no other octets).
 * Undefined when malformed or not UTF-8: Latin-1 would be relayed
 * re-encoded, with other octets than the client gave.
 */
export function decodeXtextUtf8(s: string): string | undefined {
  return xtext(s, false);
}

function xtext(s: string, latin1: boolean): string | undefined {
  const bytes = Buffer.allocUnsafe(s.length);
  let n = 0;
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      const b = parseInt(hex, 16);
      if (b > 0x7f) ascii = false;
      bytes[n++] = b;
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c === 0x3d) {
      return undefined;
    } else {
      bytes[n++] = c;
    }
  }
  const octets = bytes.subarray(0, n);
  if (ascii) return octets.toString("latin1");
  try {
    return UTF8.decode(octets);
  } catch {
    return latin1 ? octets.toString("latin1") : undefined;
  }
}
