/**
 * SPF results shared by the tasks of one verifier thread (thread.ts: with
 * the process's shared pool, every worker's connections), each kept no
 * longer than the DNS answers it was computed from.
 *
 * An SPF evaluation (RFC 7208 §4) is a function of its inputs (client
 * address, sender, HELO identity, and the receiving host's name, which only
 * %{r} reads) and of the DNS answers it gets; for a client that opens one
 * connection per message (most senders) the same evaluation ran again for
 * every message: in a loaded server about 0.5 ms of CPU per connection for
 * the MAIL FROM and HELO identities. Here the result is kept under those
 * inputs (the key is exactly them) for as long as every answer it used may
 * still be used: the smallest TTL among them, a denial's (NXDOMAIN,
 * NODATA) negative TTL included (RFC 2308), and at most MAX_KEPT_MS.
 *
 * Not kept: temperror (a retry may pass), an evaluation that met an error
 * without a TTL (a timeout, a refused server, a name the resolver would not
 * ask, a resolver that does not give TTLs), one whose TXT answers hold the
 * %{t} macro (the current time), and one whose answers have TTL 0.
 * Bounded: at most `capacity` results (oldest out), each a small object
 * (mailauth's result: a header, a few short strings).
 */
import type { SPFResult } from "mailauth";

/** Results kept per verifier thread. */
export const SPF_CACHE_SIZE = 2048;
/** Longest a result is kept, whatever the TTLs (a connection's own memo keeps one as long). */
export const MAX_KEPT_MS = 5 * 60_000;

/** Records with the seconds they may be used (the DnsResolver's `query`). */
export type TtlQuery = (name: string, rrtype: string) => Promise<{ readonly records: unknown; readonly ttl: number }>;

/** What spf() gets as its resolver (node's dns.promises.resolve shape). */
export type SpfResolver = (name: string, rrtype: string) => Promise<unknown>;

interface Kept {
  readonly until: number;
  readonly result: SPFResult;
}

/** The %{t} macro letter, in either case (RFC 7208 §7.2: the current timestamp). */
const TIME_MACRO = /%\{t/i;

function readsTime(records: unknown): boolean {
  if (!Array.isArray(records)) return false;
  for (const r of records) {
    const text = Array.isArray(r) ? r.join("") : String(r);
    if (TIME_MACRO.test(text)) return true;
  }
  return false;
}

export class SpfCache {
  readonly #query: TtlQuery;
  readonly #capacity: number;
  readonly #now: () => number;
  readonly #kept = new Map<string, Kept>();

  constructor(query: TtlQuery, opts: { readonly capacity?: number; readonly now?: () => number } = {}) {
    this.#query = query;
    this.#capacity = opts.capacity ?? SPF_CACHE_SIZE;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#kept.size;
  }

  /** The key of one evaluation: every input that can change its result. */
  static key(clientIp: string, sender: string, helo: string, mta: string): string {
    return `${clientIp}\0${sender}\0${helo}\0${mta}`;
  }

  /**
   * The kept result for `key`, or a new evaluation: `evaluate` runs spf()
   * with the resolver it is given (answers with their TTL noted), and the
   * result is kept as long as they all may be used. `query`, when given,
   * asks instead of the cache's own (the verifier thread: the port of the
   * session worker whose task evaluates).
   */
  async get(key: string, evaluate: (resolver: SpfResolver) => Promise<SPFResult>, query?: TtlQuery): Promise<SPFResult> {
    return (await this.lookup(key, evaluate, query)).result;
  }

  /**
   * As get(), with the time (this cache's clock, ms) until which the result
   * may be used: 0 when it is not to be kept. A session thread keeps its
   * copy no longer (check.ts), so the rules above hold there too.
   */
  async lookup(key: string, evaluate: (resolver: SpfResolver) => Promise<SPFResult>, query?: TtlQuery): Promise<{ readonly result: SPFResult; readonly until: number }> {
    const now = this.#now();
    const known = this.#kept.get(key);
    if (known !== undefined) {
      if (known.until > now) return known;
      this.#kept.delete(key);
    }
    let ttl = MAX_KEPT_MS / 1000;
    let keep = true;
    const resolver: SpfResolver = async (name, rrtype) => {
      try {
        const a = await (query ?? this.#query)(name, rrtype);
        ttl = Math.min(ttl, a.ttl);
        if (rrtype === "TXT" && readsTime(a.records)) keep = false;
        return a.records;
      } catch (err) {
        const e = err as { code?: unknown; ttl?: unknown };
        if ((e.code === "ENOTFOUND" || e.code === "ENODATA") && typeof e.ttl === "number") ttl = Math.min(ttl, e.ttl);
        else keep = false;
        throw err;
      }
    };
    const result = await evaluate(resolver);
    const outcome = result.status?.result;
    if (keep && ttl > 0 && outcome !== undefined && outcome !== "temperror") {
      if (this.#kept.size >= this.#capacity) {
        const oldest = this.#kept.keys().next();
        if (oldest.done !== true) this.#kept.delete(oldest.value);
      }
      // From when the evaluation started: the TTLs were read then or later.
      const kept = { until: now + ttl * 1000, result };
      this.#kept.set(key, kept);
      return kept;
    }
    return { result, until: 0 };
  }
}
