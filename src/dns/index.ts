/**
 * DNS for Wardmail: one resolver for the whole server.
 *
 *   const resolver = createResolver(config.dns);       // WireResolver
 *   await resolver.resolve("example.com", "MX");        // node's dns.promises.resolve shape
 *   await resolver.query("_25._tcp.mx.example.com", "TLSA"); // + ttl and the AD bit
 *   spf({ ..., resolver: mailauthResolver(resolver) });  // mailauth's resolver option
 *
 * Tests use StaticResolver (a zone in memory) instead.
 *
 * What it trusts: the configured recursive resolvers, and their AD bit
 * (RFC 4035 §3.2.3, RFC 6840 §5.7) only over a trusted path: when every
 * server is on loopback, or the operator says so (dns.trust_ad); otherwise
 * the AD bit is cleared and DANE is off. Everything in a response is checked
 * against the question (RFC 5452 defences: random id and port, connected
 * socket, id/question/QR match). RFCs: 1035 (messages, UDP/TCP), 6891 (EDNS0,
 * 1232-octet payload), 7766 (TCP after TC=1), 2308 (negative caching), 2181
 * §8 (TTLs), 4035/6840 (AD). Limits: a stub only — no recursion, no DNSSEC
 * validation of its own, no search domains.
 *
 * TXT decoding: each character-string becomes a JS string with one character
 * per octet (latin1), because that is what node:dns (c-ares) returns, which
 * we checked against a loopback server (dns.test.ts compares the two): octet
 * 0xE9 gives "é" (U+00E9), and the UTF-8 octets C3 A9 give "Ã©", not "é".
 * Code wanting UTF-8 can recover the octets with Buffer.from(s, "latin1").
 * This is lossless and keeps mailauth's behaviour identical to running it on
 * node:dns; decoding as UTF-8 would merge invalid octets into U+FFFD.
 */
export type { CaaRecord, DnsAnswer, DnsResolver, MxRecord, RRType, SoaRecord, TlsaRecord } from "./types.ts";
export { DnsError, MAX_CAA_VALUE } from "./types.ts";
export { WireResolver, adTrusted, isLoopback } from "./wire-resolver.ts";
export type { AdTrust, WireResolverOptions } from "./wire-resolver.ts";
export { StaticResolver } from "./static-resolver.ts";
export type { StaticResolverOptions, StaticZone, ZoneEntry } from "./static-resolver.ts";
export { createResolver, mailauthResolver, resolverServers, systemNameservers } from "./system.ts";
