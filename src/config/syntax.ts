/**
 * Value syntax used by the config checker: domain names, mail addresses,
 * listen addresses, user/group names, and a short human description of any
 * TOML value for error messages.
 *
 * Each parser returns either `{ ok: true, value }` with the normalised value
 * (domains and addresses lowercased, trailing dot removed, IPv6 compressed) or
 * `{ ok: false, expected }` where `expected` reads after "expected ...".
 * Pure functions; no I/O.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { ListenAddress } from "./types.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string };

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS host name in ASCII (A-label) form: labels of letters, digits and
 * hyphens, 1..63 characters, not starting or ending with a hyphen, 253
 * characters at most. Lowercased; one trailing dot is dropped.
 */
export function parseDomain(input: string): Parsed<string> {
  const expected =
    "a domain name (labels of letters, digits and hyphens, 1 to 63 characters each, separated by dots)";
  let s = input.toLowerCase();
  if (s.endsWith(".")) s = s.slice(0, -1);
  if (s.length === 0 || s.length > 253) return { ok: false, expected };
  if (/[^\x20-\x7e]/.test(s)) {
    return { ok: false, expected: `${expected}; write internationalised names in their xn-- form` };
  }
  for (const label of s.split(".")) {
    if (!LABEL_RE.test(label)) return { ok: false, expected };
  }
  // A name made of digits only in its last label would read as an IP address.
  if (/^[0-9]+$/.test(s.slice(s.lastIndexOf(".") + 1))) return { ok: false, expected };
  return { ok: true, value: s };
}

// RFC 5322 atext, minus "/" and "\" so a local part can never name a
// directory when it is substituted into a maildir path. Non-ASCII is allowed
// (RFC 6531 SMTPUTF8 local parts).
const ATOM_RE = /^[A-Za-z0-9!#$%&'*+=?^_`{|}~\u0080-\u{10ffff}-]+$/u;

/** "local@domain" with a dot-atom local part (64 octets at most) and a valid domain; lowercased. */
export function parseAddress(input: string): Parsed<string> {
  const expected = 'a mail address "local@domain" (dot-atom local part without "/", and a domain name)';
  const at = input.lastIndexOf("@");
  if (at <= 0 || at === input.length - 1) return { ok: false, expected };
  const local = input.slice(0, at);
  const domain = parseDomain(input.slice(at + 1));
  if (!domain.ok) return { ok: false, expected };
  if (Buffer.byteLength(local, "utf8") > 64) return { ok: false, expected: `${expected}, local part at most 64 octets` };
  for (const atom of local.split(".")) {
    if (!ATOM_RE.test(atom)) return { ok: false, expected };
  }
  return { ok: true, value: `${local.toLowerCase()}@${domain.value}` };
}

/** Domain part of an already-parsed address. */
export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1);
}

/** Canonical text of an IPv6 address (compressed, lowercase), without brackets. */
function canonicalIPv6(host: string): string {
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

/**
 * "host:port" (IPv4) or "[v6]:port"; the host must be an IP literal, the port
 * a decimal integer from 1 to 65535. IPv6 is returned without brackets, in
 * canonical form, so equal addresses compare equal as strings.
 */
export function parseListen(input: string): Parsed<ListenAddress> {
  const expected = '"IPv4:port" or "[IPv6]:port" with an IP address (not a name) and a port from 1 to 65535';
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(input);
  if (v6) {
    host = v6[1] ?? "";
    portText = v6[2] ?? "";
    if (!isIPv6(host) || host.includes("%")) return { ok: false, expected };
    host = canonicalIPv6(host);
  } else {
    const colon = input.lastIndexOf(":");
    if (colon < 0) return { ok: false, expected };
    host = input.slice(0, colon);
    portText = input.slice(colon + 1);
    if (isIPv6(host)) return { ok: false, expected: `${expected}; put IPv6 addresses in brackets` };
    if (!isIPv4(host)) return { ok: false, expected };
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return { ok: false, expected };
  const port = Number(portText);
  if (port < 1 || port > 65535) return { ok: false, expected };
  return { ok: true, value: { host, port } };
}

/** Text form of a listen address, as the operator would write it. */
export function formatListen(a: ListenAddress): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** True when binding both addresses would collide (same port; equal, or one is the wildcard of the other's family). */
export function listenOverlaps(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const family = (h: string) => (h.includes(":") ? 6 : 4);
  if (family(a.host) !== family(b.host)) return false;
  const wildcard = (h: string) => h === "0.0.0.0" || h === "::";
  return wildcard(a.host) || wildcard(b.host);
}

/** A POSIX user or group name, or a numeric id; "" means unset. */
export function parseAccount(input: string): Parsed<string> {
  if (input === "" || /^[0-9]{1,10}$/.test(input) || /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(input)) {
    return { ok: true, value: input };
  }
  return { ok: false, expected: 'a user or group name (letters, digits, "_", ".", "-"; 32 characters at most), a numeric id, or ""' };
}

/** Short description of a TOML value for "got ..." in messages. Strings are quoted and cut at 60 characters. */
export function describe(value: unknown): string {
  if (typeof value === "string") {
    const cut = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(cut);
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  if (value !== null && typeof value === "object") return "a table";
  return String(value);
}

/** True for a TOML table as smol-toml returns it (not an array, not a date). */
export function isTable(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Date);
}
