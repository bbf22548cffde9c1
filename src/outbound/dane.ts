/**
 * DANE for outbound SMTP (RFC 7672): the TLSA lookup for an MX host and the
 * check of the server's certificate chain against those records (RFC 6698
 * §2.1 matching; usage/selector/matching names from RFC 7218).
 *
 *   const tlsa = await tlsaFor(resolver, mx, mxSecure);
 *   secure + usable   → STARTTLS required, then verifyDane(socket, tlsa.records, mx)
 *   secure, unusable  → STARTTLS required, no authentication (RFC 7672 §2.2)
 *   insecure          → no DANE (MTA-STS or opportunistic TLS apply)
 *   bogus / error     → defer the delivery; never fall back to plaintext (§2.2)
 *
 * Trust: the AD bit of the configured validating resolver (src/dns). The
 * TLSA base domain must itself come from a secure chain: the caller says so
 * with `mxSecure` (the MX RRset and the MX host's address RRset were both
 * authenticated, RFC 7672 §2.2.1–2.2.2). Only DANE-TA(2) and DANE-EE(3) count
 * for SMTP (§3.1.3). DANE-EE: the leaf alone decides, no name or expiry
 * checks (§3.1.1). DANE-TA: a certificate above the leaf in the chain the
 * server presented must match (servers must send the TA, §3.1.2; only a
 * full-certificate record 2 0 0 may stand for a TA left out of the chain),
 * every link from the leaf up to it is checked here (issuer name, signature,
 * CA flag; validity periods below the TA), and the leaf must
 * be valid for the MX host (or another reference name the caller gives, such
 * as the TLSA base domain after CNAME expansion) by a DNS-ID, or by the CN
 * when it has no DNS-ID; wildcards only as the complete leftmost label
 * (§3.2.2–3.2.3).
 *
 * Limits: no CNAME expansion of the TLSA base domain (the caller passes the
 * name to query); path building follows the issuer links node derives from
 * the presented chain (at most 10 certificates). The SMTP client must
 * connect with rejectUnauthorized false and SNI = the MX host (§8.1), since
 * node's PKIX checks do not apply to DANE. Failure names: RFC 8460 §4.3.
 */
import { X509Certificate, createHash } from "node:crypto";
import type * as tls from "node:tls";
import type { DnsResolver, TlsaRecord } from "../dns/index.ts";
import { DnsError } from "../dns/index.ts";
import type { TlsRptResultType } from "./mta-sts.ts";

/** RFC 7218 names of the values used here. */
export const DANE_TA = 2;
export const DANE_EE = 3;
export const SELECTOR_CERT = 0;
export const SELECTOR_SPKI = 1;
export const MATCH_FULL = 0;
export const MATCH_SHA256 = 1;
export const MATCH_SHA512 = 2;

const MAX_CHAIN = 10;

export type TlsaLookup =
  /** `records`: the usable DANE-TA/DANE-EE records; `usable` false → TLS required but unauthenticated. `ignored`: records left out. */
  | { readonly state: "secure"; readonly records: readonly TlsaRecord[]; readonly usable: boolean; readonly ignored: number }
  | { readonly state: "insecure"; readonly detail: string }
  /** bogus: the resolver answered SERVFAIL (what a validating resolver says for bogus data); error: no answer. Both: defer. */
  | { readonly state: "bogus" | "error"; readonly reason: TlsRptResultType; readonly detail: string };

export type DaneCheck =
  | { readonly ok: true; readonly usage: typeof DANE_TA | typeof DANE_EE; readonly record: TlsaRecord }
  | { readonly ok: false; readonly reason: TlsRptResultType; readonly detail: string };

/** A record this client can use: usage 2/3, selector 0/1, matching 0/1/2 with data of the right length. */
export function usableTlsa(r: TlsaRecord): boolean {
  if (r.usage !== DANE_TA && r.usage !== DANE_EE) return false;
  if (r.selector !== SELECTOR_CERT && r.selector !== SELECTOR_SPKI) return false;
  if (r.matchingType === MATCH_SHA256) return r.data.length === 32;
  if (r.matchingType === MATCH_SHA512) return r.data.length === 64;
  return r.matchingType === MATCH_FULL && r.data.length > 0;
}

function isTlsa(v: unknown): v is TlsaRecord {
  if (v === null || typeof v !== "object") return false;
  const r = v as Partial<TlsaRecord>;
  return Number.isInteger(r.usage) && Number.isInteger(r.selector) && Number.isInteger(r.matchingType) && Buffer.isBuffer(r.data);
}

/**
 * The DANE state of `mxHost` for SMTP on `port`: queries TLSA
 * `_<port>._tcp.<mxHost>` when the MX host name is itself secure.
 */
export async function tlsaFor(resolver: DnsResolver, mxHost: string, mxSecure: boolean, port = 25): Promise<TlsaLookup> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad port ${port}`);
  if (!mxSecure) return { state: "insecure", detail: "MX host name not from a DNSSEC-validated answer" };
  const host = mxHost.endsWith(".") ? mxHost.slice(0, -1) : mxHost;
  const name = `_${port}._tcp.${host}`;
  let answer;
  try {
    answer = await resolver.query(name, "TLSA");
  } catch (err) {
    const code = err instanceof DnsError ? err.code : "";
    if (code === "ENOTFOUND" || code === "ENODATA") {
      return { state: "insecure", detail: `${code} for TLSA ${name}${err instanceof DnsError && err.authenticated ? " (authenticated denial)" : " (unsigned)"}` };
    }
    const detail = `TLSA ${name}: ${code !== "" ? code : String(err)}`;
    return { state: code === "ESERVFAIL" ? "bogus" : "error", reason: "dnssec-invalid", detail };
  }
  if (!answer.authenticated) return { state: "insecure", detail: `TLSA ${name} answer without AD` };
  if (!answer.records.every(isTlsa)) return { state: "bogus", reason: "dnssec-invalid", detail: `TLSA ${name}: malformed records` };
  const all = answer.records;
  const records = all.filter(usableTlsa);
  return { state: "secure", records, usable: records.length > 0, ignored: all.length - records.length };
}

// ---------------------------------------------------------------------------
// DER: the SubjectPublicKeyInfo of a certificate, byte for byte

interface Tlv {
  readonly tag: number;
  readonly start: number; // first octet of the header
  readonly body: number; // first octet of the contents
  readonly end: number; // one past the contents
}

function readTlv(der: Buffer, at: number, limit: number): Tlv | undefined {
  const tag = der[at];
  const first = der[at + 1];
  if (tag === undefined || first === undefined || (tag & 0x1f) === 0x1f) return undefined;
  let len = first;
  let body = at + 2;
  if (first >= 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) {
      const b = der[body + i];
      if (b === undefined) return undefined;
      len = len * 256 + b;
    }
    body += n;
  }
  const end = body + len;
  return end <= limit ? { tag, start: at, body, end } : undefined;
}

/** Certificate → tbsCertificate → [version] serial signature issuer validity subject SPKI (RFC 5280 §4.1). */
export function spkiOf(certDer: Buffer): Buffer | undefined {
  const cert = readTlv(certDer, 0, certDer.length);
  if (cert?.tag !== 0x30) return undefined;
  const tbs = readTlv(certDer, cert.body, cert.end);
  if (tbs?.tag !== 0x30) return undefined;
  let at = tbs.body;
  let field = readTlv(certDer, at, tbs.end);
  if (field?.tag === 0xa0) {
    at = field.end;
    field = readTlv(certDer, at, tbs.end);
  }
  const expected = [0x02, 0x30, 0x30, 0x30, 0x30, 0x30]; // serial, signature, issuer, validity, subject, SPKI
  for (let i = 0; i < expected.length; i++) {
    if (field === undefined || field.tag !== expected[i]) return undefined;
    if (i === expected.length - 1) return certDer.subarray(field.start, field.end);
    at = field.end;
    field = readTlv(certDer, at, tbs.end);
  }
  return undefined;
}

/** RFC 6698 §2.1.2–2.1.3: does the record match this certificate? */
export function tlsaMatches(record: TlsaRecord, certDer: Buffer): boolean {
  const selected = record.selector === SELECTOR_CERT ? certDer : record.selector === SELECTOR_SPKI ? spkiOf(certDer) : undefined;
  if (selected === undefined) return false;
  switch (record.matchingType) {
    case MATCH_FULL:
      return selected.equals(record.data);
    case MATCH_SHA256:
      return createHash("sha256").update(selected).digest().equals(record.data);
    case MATCH_SHA512:
      return createHash("sha512").update(selected).digest().equals(record.data);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// The check after the handshake

/**
 * The presented chain, leaf first, following node's issuer links; undefined
 * without a peer certificate. Uses getPeerCertificate(true) only: in node 24
 * getPeerX509Certificate() leaves later getPeerCertificate() calls empty.
 */
function peerChain(socket: tls.TLSSocket): X509Certificate[] | undefined {
  let link: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < MAX_CHAIN && link !== undefined && Buffer.isBuffer(link.raw); i++) {
    const cert = certificateOf(link.raw);
    if (cert === undefined || seen.has(cert.fingerprint256)) break;
    seen.add(cert.fingerprint256);
    chain.push(cert);
    link = link.issuerCertificate as tls.DetailedPeerCertificate | undefined;
  }
  return chain.length > 0 ? chain : undefined;
}

function validAt(cert: X509Certificate, now: number): boolean {
  return cert.validFromDate.getTime() <= now && now <= cert.validToDate.getTime();
}

/** RFC 7672 §3.2.3 name check: DNS-ID (CN only without DNS-IDs), wildcard only as the whole leftmost label. */
function leafMatchesNames(leaf: X509Certificate, names: readonly string[]): boolean {
  return names.some((n) => leaf.checkHost(n, { subject: "default", wildcards: true, partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined);
}

export interface VerifyDaneOptions {
  /** More reference identifiers for DANE-TA (e.g. the TLSA base domain after CNAME expansion, the next-hop domain). */
  readonly names?: readonly string[];
  /** Clock in ms for DANE-TA validity periods (tests). */
  readonly now?: number;
}

/**
 * After the TLS handshake with a DANE-protected MX: does the presented chain
 * satisfy one of the usable TLSA records? Records with other usages are
 * ignored; with no usable record the answer is "tlsa-invalid".
 */
export function verifyDane(socket: tls.TLSSocket, records: readonly TlsaRecord[], mxHost: string, opts: VerifyDaneOptions = {}): DaneCheck {
  const usable = records.filter(usableTlsa);
  if (usable.length === 0) return { ok: false, reason: "tlsa-invalid", detail: "no usable TLSA record" };
  const chain = peerChain(socket);
  const leaf = chain?.[0];
  if (chain === undefined || leaf === undefined) return { ok: false, reason: "validation-failure", detail: "no peer certificate" };

  for (const r of usable) {
    if (r.usage === DANE_EE && tlsaMatches(r, leaf.raw)) return { ok: true, usage: DANE_EE, record: r };
  }

  const tas = usable.filter((r) => r.usage === DANE_TA);
  if (tas.length === 0) return { ok: false, reason: "tlsa-invalid", detail: "no DANE-EE record matches the server certificate" };
  // Walk up from the leaf while each link verifies; stop at the first certificate a DANE-TA record matches.
  let found: { depth: number; record: TlsaRecord } | undefined;
  for (let depth = 1; depth < chain.length && found === undefined; depth++) {
    const child = chain[depth - 1];
    const issuer = chain[depth];
    if (child === undefined || issuer === undefined) break;
    if (!issues(issuer, child)) return { ok: false, reason: "tlsa-invalid", detail: `chain broken at depth ${depth} before a DANE-TA match` };
    const record = tas.find((r) => tlsaMatches(r, issuer.raw));
    if (record !== undefined) found = { depth, record };
  }
  // A full TA certificate in DNS (2 0 0) may be left out of the chain by the server (RFC 7671 §5.2.2);
  // not when the chain already ends in a self-signed root, which is then what must match.
  const top = chain[chain.length - 1];
  const topIsRoot = top !== undefined && top.checkIssued(top) && top.verify(top.publicKey);
  for (const record of tas) {
    if (found !== undefined || top === undefined || topIsRoot || record.selector !== SELECTOR_CERT || record.matchingType !== MATCH_FULL) continue;
    const ta = certificateOf(record.data);
    if (ta !== undefined && chain.length > 0 && !ta.raw.equals(top.raw) && issues(ta, top)) found = { depth: chain.length, record };
  }
  if (found === undefined) return { ok: false, reason: "tlsa-invalid", detail: "no TLSA record matches the presented chain" };

  const now = opts.now ?? Date.now();
  const expired = chain.slice(0, found.depth).findIndex((c) => !validAt(c, now));
  if (expired >= 0) return { ok: false, reason: "certificate-expired", detail: `certificate at depth ${expired} outside its validity period` };
  const host = mxHost.endsWith(".") ? mxHost.slice(0, -1) : mxHost;
  const names = [host, ...(opts.names ?? []).map((n) => (n.endsWith(".") ? n.slice(0, -1) : n))];
  if (!leafMatchesNames(leaf, names)) return { ok: false, reason: "certificate-host-mismatch", detail: `certificate is not valid for ${names.join(", ")}` };
  return { ok: true, usage: DANE_TA, record: found.record };
}

/** `issuer` is a CA whose name and key issued `child`. */
function issues(issuer: X509Certificate, child: X509Certificate): boolean {
  return issuer.ca && child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

function certificateOf(der: Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(der);
  } catch {
    return undefined;
  }
}

/** verifyDane bound to one MX and its records: the SMTP client's post-handshake `verify(socket)` hook. */
export function daneVerifier(records: readonly TlsaRecord[], mxHost: string, opts: VerifyDaneOptions = {}): (socket: tls.TLSSocket) => DaneCheck {
  return (socket) => verifyDane(socket, records, mxHost, opts);
}
