/**
 * DNS messages on the wire: building our queries and judging what comes back,
 * on top of the `dns-packet` library (encode/decode only; it has no types
 * package, so the few parts used are declared here and the module is loaded
 * with createRequire, which needs no ambient declaration).
 *
 * Trusts nothing in a response: before decoding, the id, QR bit and opcode
 * are checked; after decoding, the question (name compared case-insensitively,
 * type, class IN) must be ours. Anything else is ignored, which is the
 * cache-poisoning defence of RFC 5452 together with random ids and ports.
 * Decoding errors are reported as "malformed", never thrown.
 *
 * Answers are read as RFC 1035 §4.3.2 says: records of the asked type owned by
 * the end of a CNAME chain (at most 10 links) inside the answer section.
 * Negative answers take their TTL from the SOA in the authority section
 * (RFC 2308 §5: min of the SOA's TTL and MINIMUM), capped at 300 s.
 * Queries carry RD, the AD bit (RFC 6840 §5.7) and an EDNS0 OPT record with a
 * 1232-octet payload size (RFC 6891).
 */
import { createRequire } from "node:module";
import type { CaaRecord, RRType, SoaRecord } from "./types.ts";
import { MAX_CAA_VALUE, asciiLower } from "./types.ts";

export interface PacketQuestion {
  name: string;
  type: string;
  class?: string;
}

export interface PacketRecord {
  name: string;
  type: string;
  class?: string;
  ttl?: number;
  data?: unknown;
  udpPayloadSize?: number;
  extendedRcode?: number;
  ednsVersion?: number;
  flags?: number;
  options?: unknown[];
}

export interface Packet {
  id?: number;
  type?: "query" | "response";
  flags?: number;
  rcode?: string;
  questions?: PacketQuestion[];
  answers?: PacketRecord[];
  authorities?: PacketRecord[];
  additionals?: PacketRecord[];
}

/** The part of dns-packet 5.x this folder uses. */
export interface DnsPacketLib {
  encode(packet: Packet): Buffer;
  decode(buf: Buffer): Packet & { flag_tc: boolean; flag_ad: boolean; flag_qr: boolean };
  streamEncode(packet: Packet): Buffer;
  question: { decode(buf: Buffer, offset: number): PacketQuestion };
  readonly RECURSION_DESIRED: number;
  readonly AUTHENTIC_DATA: number;
  readonly TRUNCATED_RESPONSE: number;
  readonly AUTHORITATIVE_ANSWER: number;
}

const require = createRequire(import.meta.url);
export const dnsPacket = require("dns-packet") as DnsPacketLib;

export const EDNS_UDP_SIZE = 1232;
const MAX_CHAIN = 10;
const MAX_POSITIVE_TTL = 86400;
const MAX_NEGATIVE_TTL = 300;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A query for one name and type, RD and AD set, with an EDNS0 OPT record. */
export function buildQuery(id: number, name: string, type: RRType): Buffer {
  return dnsPacket.encode({
    id,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ name, type, class: "IN" }],
    additionals: [{ name: ".", type: "OPT", udpPayloadSize: EDNS_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] }],
  });
}

/** A response that answers our question. */
export interface Response {
  readonly truncated: boolean;
  readonly authenticated: boolean;
  /** Header RCODE; 16+ when EDNS extended it. */
  readonly rcode: number;
  readonly answers: readonly PacketRecord[];
  readonly authorities: readonly PacketRecord[];
}

export const IGNORE = Symbol("ignore");
export const MALFORMED = Symbol("malformed");
export type Verdict = Response | typeof IGNORE | typeof MALFORMED;

function questionMatches(q: PacketQuestion | undefined, name: string, type: RRType): boolean {
  return q !== undefined && asciiLower(q.name) === asciiLower(name) && q.type === type && (q.class ?? "IN") === "IN";
}

/**
 * Judges one received message against the question we asked under `id`.
 * IGNORE: not an answer to it (wrong id, not a response, other question).
 * MALFORMED: looks like ours but cannot be decoded.
 */
export function inspectResponse(buf: Buffer, id: number, name: string, type: RRType): Verdict {
  if (buf.length < 12) return IGNORE;
  if (buf.readUInt16BE(0) !== id) return IGNORE;
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) === 0 || ((flags >> 11) & 0xf) !== 0) return IGNORE;
  const truncated = (flags & dnsPacket.TRUNCATED_RESPONSE) !== 0;
  const authenticated = (flags & dnsPacket.AUTHENTIC_DATA) !== 0;
  const qdcount = buf.readUInt16BE(4);
  let decoded: ReturnType<DnsPacketLib["decode"]>;
  try {
    decoded = dnsPacket.decode(buf);
  } catch {
    // A truncated UDP answer may be cut inside a record; its question is enough to go to TCP.
    if (!truncated || qdcount !== 1) return MALFORMED;
    try {
      const q = dnsPacket.question.decode(buf, 12);
      return questionMatches(q, name, type) ? { truncated, authenticated, rcode: flags & 0xf, answers: [], authorities: [] } : IGNORE;
    } catch {
      return MALFORMED;
    }
  }
  const questions = decoded.questions ?? [];
  if (questions.length !== 1 || !questionMatches(questions[0], name, type)) return IGNORE;
  const opt = (decoded.additionals ?? []).find((r) => r.type === "OPT");
  const rcode = ((opt?.extendedRcode ?? 0) << 4) | (flags & 0xf);
  return { truncated, authenticated, rcode, answers: decoded.answers ?? [], authorities: decoded.authorities ?? [] };
}

/** Outcome of reading a NOERROR/NXDOMAIN response. */
export type Reading =
  | { readonly kind: "answer"; readonly records: unknown[]; readonly ttl: number }
  | { readonly kind: "negative"; readonly code: "ENOTFOUND" | "ENODATA"; readonly ttl: number }
  | { readonly kind: "bad" };

function negativeTtl(authorities: readonly PacketRecord[]): number {
  const soa = authorities.find((r) => r.type === "SOA" && isObject(r.data));
  if (soa === undefined) return MAX_NEGATIVE_TTL;
  const minimum = (soa.data as { minimum?: unknown }).minimum;
  const m = typeof minimum === "number" ? minimum : MAX_NEGATIVE_TTL;
  return Math.min(wireTtl(soa.ttl), m > 0x7fffffff ? 0 : m, MAX_NEGATIVE_TTL);
}

/** RFC 2181 §8: a TTL with the top bit set is read as zero. */
function wireTtl(ttl: number | undefined): number {
  return ttl === undefined || ttl > 0x7fffffff ? 0 : ttl;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object";
}

/** Reads the records of `type` for `name` out of a NOERROR or NXDOMAIN response. */
export function readAnswer(res: Response, name: string, type: RRType): Reading {
  const inClass = res.answers.filter((r) => (r.class ?? "IN") === "IN");
  let owner = asciiLower(name);
  let ttl = MAX_POSITIVE_TTL;
  for (let link = 0; link <= MAX_CHAIN; link++) {
    const own = inClass.filter((r) => asciiLower(r.name) === owner);
    const rrset = own.filter((r) => r.type === type);
    if (rrset.length > 0) {
      const records: unknown[] = [];
      for (const r of rrset) {
        const shaped = shapeRecord(type, r.data);
        if (shaped === undefined) return { kind: "bad" };
        records.push(shaped);
        ttl = Math.min(ttl, wireTtl(r.ttl));
      }
      return { kind: "answer", records, ttl };
    }
    const cname = own.find((r) => r.type === "CNAME");
    if (cname === undefined || typeof cname.data !== "string") break;
    ttl = Math.min(ttl, wireTtl(cname.ttl));
    owner = asciiLower(cname.data);
    if (link === MAX_CHAIN) return { kind: "bad" };
  }
  return { kind: "negative", code: res.rcode === RCODE.NXDOMAIN ? "ENOTFOUND" : "ENODATA", ttl: negativeTtl(res.authorities) };
}

/** node prints IPv4-mapped IPv6 addresses in dotted form; ip-codec does not. */
function nodeIpv6(addr: string): string {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(addr);
  if (m === null) return addr;
  const hi = parseInt(m[1] ?? "0", 16);
  const lo = parseInt(m[2] ?? "0", 16);
  return `::ffff:${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/**
 * One decoded record in node's shape, or undefined if dns-packet gave
 * something unexpected. TXT character-strings become one JS char per byte
 * (latin1), exactly as node:dns (c-ares) does; see index.ts.
 */
export function shapeRecord(type: RRType, data: unknown): unknown {
  switch (type) {
    case "A":
    case "PTR":
    case "CNAME":
    case "NS":
      return typeof data === "string" ? data : undefined;
    case "AAAA":
      return typeof data === "string" ? nodeIpv6(data) : undefined;
    case "TXT": {
      const parts = Array.isArray(data) ? (data as unknown[]) : [data];
      const strings: string[] = [];
      for (const p of parts) {
        if (!Buffer.isBuffer(p)) return undefined;
        strings.push(p.toString("latin1"));
      }
      return strings;
    }
    case "MX": {
      if (!isObject(data) || typeof data.exchange !== "string" || typeof data.preference !== "number") return undefined;
      return { exchange: data.exchange, priority: data.preference };
    }
    case "TLSA": {
      if (!isObject(data) || !Buffer.isBuffer(data.certificate)) return undefined;
      const { usage, selector, matchingType } = data;
      if (typeof usage !== "number" || typeof selector !== "number" || typeof matchingType !== "number") return undefined;
      // A copy, so that the record does not keep the whole response buffer alive.
      return { usage, selector, matchingType, data: Buffer.from(data.certificate) };
    }
    case "SOA": {
      if (!isObject(data) || typeof data.mname !== "string" || typeof data.rname !== "string") return undefined;
      const soa: SoaRecord = {
        nsname: data.mname,
        hostmaster: data.rname,
        serial: Number(data.serial),
        refresh: Number(data.refresh),
        retry: Number(data.retry),
        expire: Number(data.expire),
        minttl: Number(data.minimum),
      };
      return soa;
    }
    case "CAA": {
      // dns-packet: flags (octet), tag (one character-string), value (the rest, as UTF-8).
      if (!isObject(data) || typeof data.flags !== "number" || typeof data.tag !== "string" || typeof data.value !== "string") return undefined;
      const caa: CaaRecord = { critical: (data.flags & 0x80) !== 0, flags: data.flags, tag: data.tag, value: data.value.slice(0, MAX_CAA_VALUE) };
      return caa;
    }
  }
}
