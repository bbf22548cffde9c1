/**
 * Shared vocabulary of the DNS folder: the record types we ask for, the error
 * class (node-style `code`, as node:dns and mailauth expect), the resolver
 * interface, and the checks every resolver applies before asking anything
 * (name syntax, record type) plus the copy made of cached answers.
 *
 * Trusts nothing from callers: names and types are checked here, so that a
 * name taken from a message or an SPF macro cannot become a malformed query.
 * Names are checked for length only (RFC 1035 §2.3.4: labels 1..63 octets,
 * 253 characters of text, i.e. 255 octets on the wire) and for control
 * characters and spaces, which no host name carries and which the encoder
 * would treat oddly. No IDNA conversion: callers pass A-labels.
 */

export type RRType = "A" | "AAAA" | "TXT" | "MX" | "PTR" | "CNAME" | "NS" | "TLSA" | "SOA" | "CAA";

export const RR_TYPES: readonly RRType[] = ["A", "AAAA", "TXT", "MX", "PTR", "CNAME", "NS", "TLSA", "SOA", "CAA"];

/** node's SOA shape (dns.resolveSoa). */
export interface SoaRecord {
  readonly nsname: string;
  readonly hostmaster: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minttl: number;
}

export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

export interface TlsaRecord {
  readonly usage: number;
  readonly selector: number;
  readonly matchingType: number;
  readonly data: Buffer;
}

/**
 * A CAA record (RFC 8659 §4.1). Node's resolveCaa shape differs
 * ({ critical, issue: "ca.example" }); ours keeps the tag and flags as sent.
 * `critical` is the Issuer Critical flag (bit 0, value 128). `value` is the
 * value decoded as UTF-8 and cut at MAX_CAA_VALUE characters.
 */
export interface CaaRecord {
  readonly critical: boolean;
  readonly flags: number;
  readonly tag: string;
  readonly value: string;
}

/** Longest CAA value kept (characters); the rest is cut off. */
export const MAX_CAA_VALUE = 1024;

/**
 * Error with a node-style code, as node:dns uses: "ENOTFOUND" (NXDOMAIN),
 * "ENODATA" (name exists, no record of that type), "ETIMEOUT", "ESERVFAIL",
 * "EREFUSED", "EFORMERR", "ENOTIMP", "EBADRESP" (answer malformed /
 * mismatched), "ECONNREFUSED", "EBADNAME" (name rejected, nothing sent),
 * "EBADQUERY" (record type not supported), "ECANCELLED" (resolver closed).
 */
export class DnsError extends Error {
  readonly code: string;
  readonly hostname: string;
  readonly rrtype: string;
  /**
   * For ENOTFOUND/ENODATA: the denial came with the AD bit (a validating
   * resolver proved it with DNSSEC, RFC 4035 §3.2.3). False for other codes.
   */
  readonly authenticated: boolean;
  /**
   * For ENOTFOUND/ENODATA from a resolver that knows it: the seconds the
   * denial may still be used (RFC 2308 negative caching). Undefined
   * otherwise (a failure, or a resolver that does not tell).
   */
  readonly ttl: number | undefined;

  constructor(code: string, hostname: string, rrtype: string, authenticated = false, ttl?: number) {
    super(`query${rrtype} ${code} ${hostname}`);
    this.name = "DnsError";
    this.code = code;
    this.hostname = hostname;
    this.rrtype = rrtype;
    this.authenticated = authenticated;
    this.ttl = ttl;
  }
}

export interface DnsAnswer {
  readonly records: unknown[];
  /** Seconds the answer may still be used (remaining time when served from the cache). */
  readonly ttl: number;
  /** AD bit of the response (RFC 4035 §3.2.3): the resolver validated it with DNSSEC. */
  readonly authenticated: boolean;
}

export interface DnsResolver {
  /**
   * Shaped like node's dns.promises.resolve(name, rrtype) — this is the shape
   * the `mailauth` library expects as its `resolver` option:
   * A/AAAA → string[]; TXT → string[][] (each record's character-strings,
   * one char per byte, as node does); MX → { exchange, priority }[];
   * PTR/CNAME/NS → string[]; TLSA → { usage, selector, matchingType, data }[];
   * SOA → [node's SOA object]; CAA → { critical, flags, tag, value }[].
   * Rejects only with DnsError.
   */
  resolve(name: string, rrtype: string): Promise<unknown[]>;
  /** Same records with TTL and the AD bit. */
  query(name: string, rrtype: RRType): Promise<DnsAnswer>;
}

/** ASCII-only lower case: DNS compares names case-insensitively for A-Z only (RFC 4343). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/**
 * The name to query (one trailing dot stripped), or undefined if it is not a
 * valid domain name: total ≤ 253 octets, labels 1..63 octets, no control
 * characters, spaces or DEL.
 */
export function normalizeName(name: unknown): string | undefined {
  if (typeof name !== "string") return undefined;
  const n = name.endsWith(".") ? name.slice(0, -1) : name;
  if (n.length === 0 || Buffer.byteLength(n) > 253) return undefined;
  if (/[\x00-\x20\x7f]/.test(n)) return undefined;
  for (const label of n.split(".")) {
    const len = Buffer.byteLength(label);
    if (len < 1 || len > 63) return undefined;
  }
  return n;
}

/** The record type in upper case, or a DnsError EBADQUERY for one we do not support. */
export function checkType(name: unknown, rrtype: unknown): RRType {
  const t = typeof rrtype === "string" ? rrtype.toUpperCase() : "";
  const found = RR_TYPES.find((x) => x === t);
  if (found === undefined) throw new DnsError("EBADQUERY", String(name), String(rrtype));
  return found;
}

/** Checks name and type the same way for every resolver; throws DnsError. */
export function checkQuestion(name: unknown, rrtype: unknown): { name: string; type: RRType } {
  const type = checkType(name, rrtype);
  const n = normalizeName(name);
  if (n === undefined) throw new DnsError("EBADNAME", String(name), type);
  return { name: n, type };
}

/** Copies records so that a caller mutating its answer cannot change the cache. */
export function cloneRecords(records: readonly unknown[]): unknown[] {
  return records.map((r) => {
    if (Array.isArray(r)) return [...(r as unknown[])];
    if (r !== null && typeof r === "object") {
      const copy: Record<string, unknown> = { ...(r as Record<string, unknown>) };
      if (Buffer.isBuffer(copy.data)) copy.data = Buffer.from(copy.data);
      return copy;
    }
    return r;
  });
}
