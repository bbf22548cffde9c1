/**
 * WireResolver: a stub resolver speaking DNS to configured recursive servers
 * (RFC 1035), with a cache, for the whole server (SPF/DKIM/DMARC via
 * mailauth, MX and TLSA lookups for delivery).
 *
 * Trusts the configured recursive resolvers' answers; it validates no
 * DNSSEC itself, so `authenticated` is their AD bit (RFC 4035 §3.2.3, RFC
 * 6840 §5.7), which means something only over a trusted path (RFC 4035
 * §4.9.3, RFC 7672 §1.3): by default (trustAd "loopback") only when every
 * server is on loopback; "always" when the operator vouches for the path;
 * "never". An untrusted AD bit is cleared on every answer, so nothing above
 * (DANE, the MX "secure" flag) ever sees it. Trusts nothing else: responses
 * must match id, question and QR (see packet.ts), and are read over a socket
 * connected to the server; names are checked before anything is sent.
 *
 * Per attempt: UDP with EDNS0 (RFC 6891); TC=1 → the same question over TCP
 * to the same server (RFC 7766). `attempts` attempts go round the servers in
 * turn, each bounded by `timeoutMs`; timeouts, SERVFAIL, REFUSED, FORMERR,
 * NOTIMP and unreadable answers move on to the next, and after the last the
 * last failure is thrown.
 *
 * Cache (key: type + lower-case name): answers for min(TTLs, 86400) s;
 * NXDOMAIN/NODATA for min(SOA TTL, SOA MINIMUM, 300) s or 300 without an SOA
 * (RFC 2308 §5); failures never. Identical concurrent queries share one
 * exchange. Limits: no search domains, no DNSSEC validation, no 0x20 case
 * randomisation, one question per message, TCP connections not reused.
 */
import { randomInt } from "node:crypto";
import net from "node:net";
import { TtlCache } from "./cache.ts";
import type { Response } from "./packet.ts";
import { RCODE, buildQuery, inspectResponse, readAnswer } from "./packet.ts";
import type { Server } from "./transport.ts";
import { tcpExchange, udpExchange } from "./transport.ts";
import type { DnsAnswer, DnsResolver, RRType } from "./types.ts";
import { DnsError, asciiLower, checkQuestion, cloneRecords } from "./types.ts";

export interface WireResolverOptions {
  readonly servers: readonly Server[];
  /** Milliseconds per attempt (UDP, and again for TCP after TC=1). */
  readonly timeoutMs: number;
  /** Attempts in all, spread over the servers in turn. */
  readonly attempts: number;
  /** Cached questions at most; 0 disables the cache. */
  readonly cacheSize: number;
  /** Clock in milliseconds (tests inject one); Date.now by default. */
  readonly now?: () => number;
  /** Whose AD bit to believe: "loopback" (default: only when every server is on loopback), "always", "never". */
  readonly trustAd?: AdTrust;
}

/** dns.trust_ad: whose AD bit (DNSSEC validated) Wardmail believes. */
export type AdTrust = "loopback" | "always" | "never";

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");
LOOPBACK.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/** True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: addresses that never leave this host. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/%.*$/, "");
  const family = net.isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? "ipv4" : "ipv6");
}

/** Whether the AD bit of these servers is believed, under trust. */
export function adTrusted(servers: readonly { readonly host: string }[], trust: AdTrust = "loopback"): boolean {
  if (trust === "never") return false;
  if (trust === "always") return true;
  return servers.length > 0 && servers.every((s) => isLoopback(s.host));
}

type Outcome =
  | { readonly kind: "answer"; readonly records: unknown[]; readonly ttl: number; readonly authenticated: boolean }
  | {
      readonly kind: "error";
      readonly code: string;
      readonly authenticated: boolean;
      /** Seconds to cache an NXDOMAIN/NODATA; absent for failures, which are never cached. */
      readonly negativeTtl?: number;
    };

type Entry = Outcome & { readonly expires: number };

/** Bytes of answers kept in one resolver's cache at most (their estimated memory, `entryWeight`), whatever `cacheSize` allows. */
export const MAX_CACHE_BYTES = 8 * 1024 * 1024;
/** What an entry and each record cost beyond their contents (object headers, the key, the Map's slot), estimated. */
const ENTRY_OVERHEAD = 200;
const RECORD_OVERHEAD = 64;

/**
 * The memory a cached answer keeps, estimated from its records: each
 * string's length, each Buffer's bytes, an overhead per record and per
 * field. Linear in the answer (at most 64 KiB on the wire).
 */
export function entryWeight(entry: Entry): number {
  if (entry.kind !== "answer") return ENTRY_OVERHEAD;
  let w = ENTRY_OVERHEAD;
  const size = (v: unknown): number => (typeof v === "string" ? v.length : Buffer.isBuffer(v) ? v.length : 8);
  for (const r of entry.records) {
    w += RECORD_OVERHEAD;
    if (Array.isArray(r)) for (const x of r as unknown[]) w += 16 + size(x);
    else if (r !== null && typeof r === "object") for (const x of Object.values(r as Record<string, unknown>)) w += 16 + size(x);
    else w += size(r);
  }
  return w;
}

function rcodeError(rcode: number): string {
  switch (rcode) {
    case RCODE.SERVFAIL:
      return "ESERVFAIL";
    case RCODE.REFUSED:
      return "EREFUSED";
    case RCODE.FORMERR:
      return "EFORMERR";
    case RCODE.NOTIMP:
      return "ENOTIMP";
    default:
      return "EBADRESP";
  }
}

/**
 * The DnsError for an answer (NXDOMAIN, NODATA, a failure), without a stack
 * trace: these are expected outcomes (DMARC's tree walk meets an NXDOMAIN for
 * nearly every message), and capturing a stack cost more than a cached lookup.
 */
function answerError(code: string, name: string, type: RRType, authenticated: boolean, ttl: number | undefined): DnsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DnsError(code, name, type, authenticated, ttl);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export class WireResolver implements DnsResolver {
  readonly #servers: readonly Server[];
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #now: () => number;
  readonly #cache: TtlCache<Entry>;
  readonly #inflight = new Map<string, Promise<Outcome>>();
  readonly #abort = new AbortController();
  /** Whether the servers' AD bit is believed (see the header); false clears it on every answer. */
  readonly adTrusted: boolean;

  constructor(opts: WireResolverOptions) {
    if (opts.servers.length === 0) throw new RangeError("WireResolver needs at least one server");
    for (const s of opts.servers) {
      if (net.isIP(s.host) === 0) throw new RangeError(`DNS server must be an IP address: ${s.host}`);
      if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new RangeError(`bad DNS server port: ${s.port}`);
    }
    if (!(opts.timeoutMs > 0) || !Number.isFinite(opts.timeoutMs)) throw new RangeError("timeoutMs must be a positive number");
    if (!Number.isInteger(opts.attempts) || opts.attempts < 1) throw new RangeError("attempts must be a positive integer");
    if (!Number.isInteger(opts.cacheSize) || opts.cacheSize < 0) throw new RangeError("cacheSize must be an integer ≥ 0");
    this.#servers = opts.servers.map((s) => ({ host: s.host.replace(/%.*$/, ""), port: s.port }));
    this.#timeoutMs = opts.timeoutMs;
    this.#attempts = opts.attempts;
    this.#now = opts.now ?? Date.now;
    this.#cache = new TtlCache<Entry>(opts.cacheSize, this.#now, { max: MAX_CACHE_BYTES, weigh: entryWeight });
    this.adTrusted = adTrusted(this.#servers, opts.trustAd);
  }

  async resolve(name: string, rrtype: string): Promise<unknown[]> {
    const answer = await this.#lookup(name, rrtype);
    return answer.records;
  }

  async query(name: string, rrtype: RRType): Promise<DnsAnswer> {
    return this.#lookup(name, rrtype);
  }

  /** Aborts exchanges in flight (they fail with ECANCELLED), empties the cache; later queries fail too. */
  close(): void {
    this.#abort.abort();
    this.#cache.clear();
  }

  async #lookup(rawName: unknown, rawType: unknown): Promise<DnsAnswer> {
    const { name, type } = checkQuestion(rawName, rawType);
    if (this.#abort.signal.aborted) throw new DnsError("ECANCELLED", name, type);
    const key = `${type} ${asciiLower(name)}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      const remaining = Math.max(0, Math.ceil((cached.expires - this.#now()) / 1000));
      return this.#deliver(cached.kind === "answer" ? { ...cached, ttl: remaining } : { ...cached, negativeTtl: remaining }, name, type);
    }
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#exchange(name, type).then((outcome) => {
        this.#inflight.delete(key);
        this.#store(key, outcome);
        return outcome;
      });
      this.#inflight.set(key, pending);
    }
    return this.#deliver(await pending, name, type);
  }

  #deliver(outcome: Outcome, name: string, type: RRType): DnsAnswer {
    if (outcome.kind === "error") throw answerError(outcome.code, name, type, outcome.authenticated, outcome.negativeTtl);
    return { records: cloneRecords(outcome.records), ttl: outcome.ttl, authenticated: outcome.authenticated };
  }

  #store(key: string, outcome: Outcome): void {
    if (this.#abort.signal.aborted) return;
    if (outcome.kind === "answer") {
      this.#cache.set(key, { ...outcome, expires: this.#now() + outcome.ttl * 1000 });
    } else if (outcome.negativeTtl !== undefined) {
      this.#cache.set(key, { ...outcome, expires: this.#now() + outcome.negativeTtl * 1000 });
    }
  }

  /** All attempts for one question; never rejects. */
  async #exchange(name: string, type: RRType): Promise<Outcome> {
    const signal = this.#abort.signal;
    let lastCode = "ETIMEOUT";
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      const server = this.#servers[attempt % this.#servers.length];
      if (server === undefined) break;
      const id = randomInt(0, 0x10000);
      const payload = buildQuery(id, name, type);
      const judge = (msg: Buffer): ReturnType<typeof inspectResponse> => inspectResponse(msg, id, name, type);
      let result = await udpExchange<Response>(server, payload, this.#timeoutMs, judge, signal);
      if (result.ok && result.value.truncated) {
        result = await tcpExchange<Response>(server, payload, this.#timeoutMs, judge, signal);
      }
      if (!result.ok) {
        if (result.code === "ECANCELLED") return { kind: "error", code: "ECANCELLED", authenticated: false };
        lastCode = result.code;
        continue;
      }
      const res = result.value;
      const ad = res.authenticated && this.adTrusted;
      if (res.rcode !== RCODE.NOERROR && res.rcode !== RCODE.NXDOMAIN) {
        lastCode = rcodeError(res.rcode);
        continue;
      }
      const reading = readAnswer(res, name, type);
      if (reading.kind === "bad") {
        lastCode = "EBADRESP";
        continue;
      }
      if (reading.kind === "negative") {
        return { kind: "error", code: reading.code, authenticated: ad, negativeTtl: reading.ttl };
      }
      return { kind: "answer", records: reading.records, ttl: Math.min(reading.ttl, 86400), authenticated: ad };
    }
    return { kind: "error", code: lastCode, authenticated: false };
  }
}
