/**
 * A small TTL cache for DNS answers: entries expire at an absolute time of an
 * injected clock, and the map keeps at most `capacity` entries, evicting the
 * least recently used (a Map's insertion order; a hit re-inserts the entry).
 * Capacity 0 stores nothing. What goes in, and for how long, is decided by
 * the resolver (RFC 1035 TTLs, RFC 2308 negative caching); this file only
 * keeps the bookkeeping bounded.
 */

export interface Expiring {
  /** Absolute expiry in the clock's milliseconds. */
  readonly expires: number;
}

export class TtlCache<V extends Expiring> {
  readonly #capacity: number;
  readonly #now: () => number;
  readonly #map = new Map<string, V>();

  constructor(capacity: number, now: () => number) {
    this.#capacity = capacity;
    this.#now = now;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The live entry for `key`, now the most recently used; expired entries are dropped. */
  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v === undefined) return undefined;
    this.#map.delete(key);
    if (v.expires <= this.#now()) return undefined;
    this.#map.set(key, v);
    return v;
  }

  /** Stores an entry unless it is already expired or the cache is disabled. */
  set(key: string, value: V): void {
    if (this.#capacity <= 0 || value.expires <= this.#now()) return;
    this.#map.delete(key);
    this.#map.set(key, value);
    // Bounded: at most one pass over the entries above capacity.
    while (this.#map.size > this.#capacity) {
      const oldest = this.#map.keys().next();
      if (oldest.done === true) break;
      this.#map.delete(oldest.value);
    }
  }

  clear(): void {
    this.#map.clear();
  }
}
