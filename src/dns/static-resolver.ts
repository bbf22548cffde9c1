/**
 * StaticResolver: a DnsResolver answering from a zone held in memory, for
 * tests anywhere in the project. Same result shapes, same name and type
 * checks and the same error codes as WireResolver, with no network at all.
 *
 * Zone keys are matched case-insensitively, one trailing dot ignored. A name
 * present without the asked type → ENODATA; absent → ENOTFOUND; "TIMEOUT" →
 * ETIMEOUT; "SERVFAIL" → ESERVFAIL. A "*" key is used for every name not
 * listed itself (e.g. { "*": "TIMEOUT" }: every query times out). A CNAME is
 * followed (at most 10 links) when the name has no records of the asked type;
 * `authenticated` is true only if every entry on the way says so.
 */
import type { CaaRecord, DnsAnswer, DnsResolver, MxRecord, RRType, SoaRecord, TlsaRecord } from "./types.ts";
import { DnsError, asciiLower, checkQuestion, cloneRecords, normalizeName } from "./types.ts";

export interface ZoneEntry {
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
  /** A string is one record of one character-string; an array is one record of several. */
  readonly TXT?: readonly (string | readonly string[])[];
  /** [priority, exchange] pairs. */
  readonly MX?: readonly (readonly [number, string])[];
  readonly PTR?: readonly string[];
  readonly CNAME?: string;
  readonly NS?: readonly string[];
  readonly TLSA?: readonly TlsaRecord[];
  readonly SOA?: SoaRecord;
  readonly CAA?: readonly CaaRecord[];
  /** The AD bit the answers carry (default false). */
  readonly authenticated?: boolean;
  /** TTL reported by query() (default 300). */
  readonly ttl?: number;
}

export type StaticZone = Readonly<Record<string, ZoneEntry | "TIMEOUT" | "SERVFAIL">>;

export interface StaticResolverOptions {
  /** Called once per resolve()/query() with the name and type as asked. */
  readonly calls?: (name: string, type: string) => void;
}

const MAX_CHAIN = 10;

function recordsOf(entry: ZoneEntry, type: RRType): unknown[] | undefined {
  switch (type) {
    case "A":
      return entry.A ? [...entry.A] : undefined;
    case "AAAA":
      return entry.AAAA ? [...entry.AAAA] : undefined;
    case "TXT":
      return entry.TXT?.map((r) => (typeof r === "string" ? [r] : [...r]));
    case "MX":
      return entry.MX?.map(([priority, exchange]): MxRecord => ({ exchange, priority }));
    case "PTR":
      return entry.PTR ? [...entry.PTR] : undefined;
    case "CNAME":
      return entry.CNAME === undefined ? undefined : [entry.CNAME];
    case "NS":
      return entry.NS ? [...entry.NS] : undefined;
    case "TLSA":
      return entry.TLSA?.map((t) => ({ usage: t.usage, selector: t.selector, matchingType: t.matchingType, data: Buffer.from(t.data) }));
    case "SOA":
      return entry.SOA ? [{ ...entry.SOA }] : undefined;
    case "CAA":
      return entry.CAA?.map((c) => ({ ...c }));
  }
}

export class StaticResolver implements DnsResolver {
  readonly #zone = new Map<string, ZoneEntry | "TIMEOUT" | "SERVFAIL">();
  readonly #calls: ((name: string, type: string) => void) | undefined;

  constructor(zone: StaticZone, opts: StaticResolverOptions = {}) {
    for (const [key, entry] of Object.entries(zone)) {
      const name = key === "*" ? "*" : normalizeName(key);
      if (name === undefined) throw new RangeError(`bad name in static zone: ${key}`);
      this.#zone.set(name === "*" ? name : asciiLower(name), entry);
    }
    this.#calls = opts.calls;
  }

  async resolve(name: string, rrtype: string): Promise<unknown[]> {
    const answer = await this.query(name, rrtype as RRType);
    return answer.records;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so that every failure is a rejection
  async query(rawName: string, rawType: RRType): Promise<DnsAnswer> {
    this.#calls?.(rawName, rawType);
    const { name, type } = checkQuestion(rawName, rawType);
    let owner = asciiLower(name);
    let authenticated = true;
    for (let link = 0; link <= MAX_CHAIN; link++) {
      const entry = this.#zone.get(owner) ?? this.#zone.get("*");
      if (entry === undefined) throw new DnsError("ENOTFOUND", name, type, authenticated);
      if (entry === "TIMEOUT") throw new DnsError("ETIMEOUT", name, type);
      if (entry === "SERVFAIL") throw new DnsError("ESERVFAIL", name, type);
      authenticated &&= entry.authenticated === true;
      const records = recordsOf(entry, type);
      if (records !== undefined && records.length > 0) {
        return { records: cloneRecords(records), ttl: entry.ttl ?? 300, authenticated };
      }
      if (entry.CNAME === undefined) throw new DnsError("ENODATA", name, type, authenticated);
      owner = asciiLower(entry.CNAME.replace(/\.$/, ""));
    }
    throw new DnsError("EBADRESP", name, type);
  }
}
