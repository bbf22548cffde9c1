/**
 * A small TTL cache for DNS answers: entries expire at an absolute time of an
 * injected clock, and the map keeps at most `capacity` entries, evicting the
 * least recently used (a Map's insertion order; a hit re-inserts the entry).
 * Capacity 0 stores nothing. What goes in, and for how long, is decided by
 * the resolver (RFC 1035 TTLs, RFC 2308 negative caching); this file only
 * keeps the bookkeeping bounded.
 *
 * With `bytes`, the entries' weights (an estimate of the memory each keeps,
 * `weigh`) are bounded too: least recently used entries go until the sum is
 * at most `bytes.max`, and an entry heavier than that alone is not stored.
 * A bound in entries alone lets a few large answers (a 64 KiB TXT answer
 * from a hostile zone, under ever new names) hold far more memory than the
 * entry count suggests.
 */

export interface Expiring {
  /** Absolute expiry in the clock's milliseconds. */
  readonly expires: number;
}

export interface ByteBound<V> {
  /** Sum of the entries' weights at most. */
  readonly max: number;
  /** The memory an entry keeps, estimated (bytes). */
  readonly weigh: (value: V) => number;
}

export class TtlCache<V extends Expiring> {
  readonly #capacity: number;
  readonly #now: () => number;
  readonly #bytes: ByteBound<V> | undefined;
  readonly #map = new Map<string, { readonly value: V; readonly weight: number }>();
  #weight = 0;

  constructor(capacity: number, now: () => number, bytes?: ByteBound<V>) {
    this.#capacity = capacity;
    this.#now = now;
    this.#bytes = bytes;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Sum of the entries' weights (0 without a byte bound). */
  get weight(): number {
    return this.#weight;
  }

  /** The live entry for `key`, now the most recently used; expired entries are dropped. */
  get(key: string): V | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    this.#map.delete(key);
    if (e.value.expires <= this.#now()) {
      this.#weight -= e.weight;
      return undefined;
    }
    this.#map.set(key, e);
    return e.value;
  }

  /** Stores an entry unless it is already expired, the cache is disabled or the entry alone is over the byte bound. */
  set(key: string, value: V): void {
    if (this.#capacity <= 0 || value.expires <= this.#now()) return;
    const weight = this.#bytes === undefined ? 0 : this.#bytes.weigh(value);
    if (this.#bytes !== undefined && weight > this.#bytes.max) return;
    this.#drop(key);
    this.#map.set(key, { value, weight });
    this.#weight += weight;
    // Bounded: at most one pass over the entries above the bounds.
    while (this.#map.size > this.#capacity || (this.#bytes !== undefined && this.#weight > this.#bytes.max)) {
      const oldest = this.#map.keys().next();
      if (oldest.done === true) break;
      this.#drop(oldest.value);
    }
  }

  clear(): void {
    this.#map.clear();
    this.#weight = 0;
  }

  #drop(key: string): void {
    const e = this.#map.get(key);
    if (e === undefined) return;
    this.#map.delete(key);
    this.#weight -= e.weight;
  }
}
