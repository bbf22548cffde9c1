/**
 * DNS block- and allowlists (DNSBL/DNSWL, RFC 5782) as a check on the
 * connect phase, scored the way Postfix's postscreen does: every configured
 * zone that lists the client adds its weight (negative for an allowlist),
 * and a score at or above the threshold is the verdict "dnsbl.listed",
 * whose action comes from checks.actions (default reject: `550 5.7.1
 * Service unavailable; client [IP] blocked using ZONE`, given at MAIL, where
 * Wardmail acts on connect verdicts).
 *
 * Lookups: the client address reversed under each zone (IPv4: 4 octets,
 * "2.0.0.127.zone"; IPv6: 32 nibbles, RFC 5782 §2.4; an IPv4-mapped IPv6
 * address is looked up as IPv4), A records, all zones at once, through the
 * server's one resolver. NXDOMAIN or no A record: not listed.
 *
 * Error codes are not listings (the trap mox, Haraka and Stalwart operators
 * fell into): an answer outside 127.0.0.0/8 (an ISP rewriting NXDOMAIN, a
 * broken resolver), 127.0.0.1 (RFC 5782 §5 forbids it as an entry; URIBL
 * and SURBL answer it for refused queries), 127.0.0.255 (DNSWL.org: query
 * limit reached) and 127.255.255.0/24 (Spamhaus: 252 bad query name, 254
 * query through a public or open resolver, 255 too many queries). An answer
 * holding any of them is logged as an error and the zone counts as not
 * listing the client. A zone's `answers` networks narrow further what
 * counts (e.g. only the SBL and XBL codes of a combined list).
 *
 * Fail open: a lookup that fails (timeout, SERVFAIL, REFUSED, no server) or
 * does not finish within `timeout` counts as not listed and is logged as a
 * warning. A blocklist is a reputation signal from a third party: if its
 * outage made us refuse or defer every client, all mail would stop whenever
 * the list or our resolver is down, which is what an attacker would then
 * aim at; Postfix's postscreen and smtpd reject_rbl_client do the same.
 *
 * Cache: results per client address (per check instance, i.e. per worker),
 * for the smallest TTL of the answers that made them (at most 1 hour; 5
 * minutes when nothing was listed, as the resolver's negative caching), at
 * most MAX_CACHE entries, the oldest dropped first. A result with a failed
 * lookup is not cached. Concurrent connections from one address share one
 * lookup. The lookup starts when the client connects (prefetch), so the
 * answer is usually there by MAIL; its log lines are written once, by the
 * first MAIL that uses it.
 *
 * Trusts: the configured resolver's answers, after the checks above. Who is
 * looked up at all is the receiver's choice: MX clients that are neither
 * authenticated nor in relay.trusted_networks.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { DnsblZone } from "../config/index.ts";
import type { DnsResolver } from "../dns/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import type { Check, CheckInput, CheckLog, CheckOutcome } from "./index.ts";

/** Most client addresses whose result is kept (per worker). */
export const MAX_CACHE = 10_000;
/** Longest a listing is kept. */
const MAX_TTL_S = 3600;
/** How long "not listed" is kept (the DNS answer's negative TTL is not known here). */
const NEGATIVE_TTL_S = 300;

export interface DnsblOptions {
  readonly zones: readonly DnsblZone[];
  readonly threshold: number;
  /** Milliseconds for all lookups of one client. */
  readonly timeoutMs: number;
  readonly resolver: Pick<DnsResolver, "query">;
  /** The clock (tests). */
  readonly now?: () => number;
}

/** What one zone said about the client. */
export interface ZoneResult {
  readonly zone: string;
  readonly status: "listed" | "not-listed" | "error-code" | "failed";
  /** The A answers (listed, error-code, or answers outside the zone's `answers`). */
  readonly answers: readonly string[];
  /** Why failed: the DNS error code or "timeout". */
  readonly error?: string;
}

export interface DnsblResult {
  readonly score: number;
  readonly listed: boolean;
  readonly zones: readonly ZoneResult[];
}

/** Why an A answer is an error code rather than a listing, or undefined when it may be a listing. */
export function errorCode(answer: string): string | undefined {
  if (!isIPv4(answer)) return "not an IPv4 address";
  const [a, b, c, d] = answer.split(".").map(Number);
  if (a !== 127) return "outside 127.0.0.0/8 (NXDOMAIN rewriting or a broken resolver)";
  if (b === 0 && c === 0 && d === 1) return "127.0.0.1 is never a listing (RFC 5782 §5); lists answer it for refused queries";
  if (b === 0 && c === 0 && d === 255) return "127.0.0.255: query refused (DNSWL.org: limit reached)";
  if (b === 255 && c === 255) return "127.255.255.x: query refused (Spamhaus: 252 bad name, 254 public or open resolver, 255 too many queries)";
  return undefined;
}

function ipv4Number(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

/** True when the IPv4 address is in one of the "a.b.c.d/prefix" networks. */
function inNetworks(ip: string, networks: readonly string[]): boolean {
  const n = ipv4Number(ip);
  return networks.some((net) => {
    const [base = "", prefix = "32"] = net.split("/");
    const bits = Number(prefix);
    const size = 2 ** (32 - bits);
    return Math.floor(n / size) === Math.floor(ipv4Number(base) / size);
  });
}

/** The name to look up under a zone for a client address (RFC 5782 §2.1, §2.4), or undefined for a non-IP. */
export function reversedName(ip: string, zone: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const v4 = mapped?.[1] ?? ip;
  if (isIPv4(v4)) return `${v4.split(".").reverse().join(".")}.${zone}`;
  if (!isIPv6(ip)) return undefined;
  // Expand "::" and any embedded IPv4 tail to 8 groups of 4 hex digits.
  let text = ip.toLowerCase().replace(/%.*$/, "");
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail?.[1]) {
    const o = tail[1].split(".").map(Number);
    text = text.slice(0, -tail[1].length) + `${((o[0] ?? 0) * 256 + (o[1] ?? 0)).toString(16)}:${((o[2] ?? 0) * 256 + (o[3] ?? 0)).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  const nibbles = groups.map((g) => g.padStart(4, "0")).join("");
  return `${[...nibbles].reverse().join(".")}.${zone}`;
}

class Timeout extends Error {}

export class DnsblCheck implements Check {
  readonly name = "dnsbl";
  private readonly zones: readonly DnsblZone[];
  private readonly threshold: number;
  private readonly timeoutMs: number;
  private readonly resolver: Pick<DnsResolver, "query">;
  private readonly now: () => number;
  /** reported: its log lines were given to a connect hook (a prefetched result has not been yet). */
  private readonly cache = new Map<string, { result: DnsblResult; expires: number; reported: boolean }>();
  private readonly inFlight = new Map<string, Promise<{ result: DnsblResult; ttl: number | undefined }>>();

  constructor(opts: DnsblOptions) {
    this.zones = opts.zones;
    this.threshold = opts.threshold;
    this.timeoutMs = opts.timeoutMs;
    this.resolver = opts.resolver;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Starts the lookup when the client connects, so that the connect hook,
   * run at MAIL, finds the result waiting (or in flight) instead of
   * starting it then. Never throws.
   */
  readonly prefetch = (clientIp: string): void => {
    if (this.cached(clientIp) === undefined) this.lookup(clientIp).catch(() => undefined);
  };

  readonly connect = async (input: CheckInput): Promise<CheckOutcome> => {
    const ip = input.clientIp;
    const hit = this.cached(ip);
    const { result, fresh } = hit ? { result: hit.result, fresh: !hit.reported } : { result: await this.lookup(ip), fresh: true };
    if (hit) hit.reported = true;
    else {
      const entry = this.cache.get(ip);
      if (entry) entry.reported = true;
    }
    const listedBy = result.zones.filter((z) => z.status === "listed");
    const logs: CheckLog[] = [];
    if (fresh) {
      for (const z of result.zones) {
        if (z.status === "error-code") {
          logs.push({ level: "error", msg: "DNSBL answered with an error code, not a listing; not counted (check the list's terms and that dns.servers is your own resolver)", fields: { client: ip, zone: z.zone, answers: z.answers } });
        } else if (z.status === "failed") {
          logs.push({ level: "warn", msg: "DNSBL lookup failed; not counted (fail open)", fields: { client: ip, zone: z.zone, error: z.error } });
        }
      }
    }
    const fields = { client: ip, score: result.score, threshold: this.threshold, listedBy: listedBy.map((z) => z.zone), cached: !fresh };
    if (listedBy.length > 0) logs.push({ level: "info", msg: result.listed ? "client listed by DNSBL" : "client on a DNS list, under the threshold", fields });
    if (!result.listed) return { verdicts: [], logs, notes: fields };
    // Blocklists that listed the client, for the reply (allowlists are never named).
    const named = listedBy.filter((z) => (this.zones.find((c) => c.zone === z.zone)?.weight ?? 0) > 0).map((z) => z.zone);
    const refusal: Reply = reply(550, "5.7.1", `Service unavailable; client [${ip}] blocked using ${named.join(", ")}`);
    return { verdicts: ["dnsbl.listed"], logs, notes: fields, replies: { "dnsbl.listed": refusal } };
  };

  private cached(ip: string): { result: DnsblResult; expires: number; reported: boolean } | undefined {
    const hit = this.cache.get(ip);
    if (hit === undefined) return undefined;
    if (hit.expires > this.now()) return hit;
    this.cache.delete(ip);
    return undefined;
  }

  /** Looks the client up in every zone (one lookup per address at a time) and caches the result. */
  async lookup(ip: string): Promise<DnsblResult> {
    let p = this.inFlight.get(ip);
    if (p === undefined) {
      p = this.ask(ip).finally(() => this.inFlight.delete(ip));
      this.inFlight.set(ip, p);
    }
    const { result, ttl } = await p;
    if (ttl !== undefined && !this.cache.has(ip)) {
      if (this.cache.size >= MAX_CACHE) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(ip, { result, expires: this.now() + ttl * 1000, reported: false });
    }
    return result;
  }

  private async ask(ip: string): Promise<{ result: DnsblResult; ttl: number | undefined }> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Timeout()), this.timeoutMs);
    });
    try {
      const answers = await Promise.all(this.zones.map((z) => this.askZone(ip, z, deadline)));
      let score = 0;
      // Kept as long as the shortest-lived answer: a record's TTL, NEGATIVE_TTL_S for a denial; not at all after a failure.
      let ttl: number | undefined = MAX_TTL_S;
      for (const a of answers) {
        if (a.result.status === "listed") score += this.zones.find((z) => z.zone === a.result.zone)?.weight ?? 0;
        if (a.result.status === "failed") ttl = undefined;
        else if (ttl !== undefined) ttl = Math.min(ttl, a.ttl ?? NEGATIVE_TTL_S);
      }
      const zones = answers.map((a) => a.result);
      return { result: { score, listed: score >= this.threshold, zones }, ttl };
    } finally {
      clearTimeout(timer);
    }
  }

  /** One zone: listed, not listed, an error code or a failed lookup; ttl when an answer had one. */
  private async askZone(ip: string, z: DnsblZone, deadline: Promise<never>): Promise<{ result: ZoneResult; ttl?: number }> {
    const name = reversedName(ip, z.zone);
    if (name === undefined) return { result: { zone: z.zone, status: "not-listed", answers: [] } };
    let records: string[];
    let ttl: number;
    try {
      const a = await Promise.race([this.resolver.query(name, "A"), deadline]);
      records = a.records.map(String);
      ttl = Math.max(1, Math.min(MAX_TTL_S, a.ttl));
    } catch (err) {
      const given = (err as { code?: unknown }).code;
      const code = err instanceof Timeout ? "timeout" : typeof given === "string" ? given : err instanceof Error ? err.message : "error";
      if (code === "ENOTFOUND" || code === "ENODATA") return { result: { zone: z.zone, status: "not-listed", answers: [] } };
      return { result: { zone: z.zone, status: "failed", answers: [], error: code } };
    }
    if (records.length === 0) return { result: { zone: z.zone, status: "not-listed", answers: [] }, ttl };
    if (records.some((r) => errorCode(r) !== undefined)) return { result: { zone: z.zone, status: "error-code", answers: records }, ttl };
    const counted = z.answers.length === 0 ? records : records.filter((r) => inNetworks(r, z.answers));
    return { result: { zone: z.zone, status: counted.length > 0 ? "listed" : "not-listed", answers: records }, ttl };
  }
}
