/**
 * The open connections of one listener group (or of the whole worker), kept
 * so that a full pool finds the session to close (listeners.ts, evictIdle)
 * without looking at every connection for every newcomer:
 *
 * - members in the order of their last progress (a reply sent, content
 *   received): the most idle one that may be closed is the first that is
 *   not waiting for us (a question, the tarpit, a TLS handshake, the
 *   pregreet pause), not found by a scan of the pool;
 * - members per client key, and client keys by how many members they hold,
 *   so that the fairness rule looks only at the clients holding the most.
 *
 * Costs: add, delete and touch are O(1) (a JavaScript Set keeps insertion
 * order: a touch is a delete and an add); victim() walks the members that
 * are waiting at the head of the order, then the members of the clients
 * holding at least two more than the newcomer's.
 */

/** What the pool needs from a connection. */
export interface PoolMember {
  /** How long it made no progress (ms); -1 while it may not be closed. */
  idleFor(now: number): number;
  /** A client in relay.trusted_networks: never closed for fairness. */
  readonly trusted: boolean;
}

/** How long a session made no progress before a full pool may close it. */
export interface EvictionRule {
  /** For the oldest session (a newcomer whose client holds none here, or a trusted one). */
  readonly idleMs: number;
  /** For a session of the client holding the most (at least two more than the newcomer's). */
  readonly fairIdleMs: number;
  /** How long a look that found no session idle fairIdleMs is trusted. */
  readonly noVictimMs: number;
}

export class ConnectionPool<C extends PoolMember> implements Iterable<C> {
  /** Members, least recent progress first. */
  private readonly order = new Set<C>();
  private readonly keyOf = new Map<C, string>();
  private readonly byKey = new Map<string, Set<C>>();
  /** Client keys by the number of members they hold (only non-empty buckets). */
  private readonly buckets = new Map<number, Set<string>>();
  /** The largest bucket that is not empty (0: none). */
  private most = 0;
  /** Before this time (Date.now()) no member can be idle long enough to be closed. */
  private noVictimUntil = 0;

  private readonly rule: EvictionRule;

  constructor(rule: EvictionRule) {
    this.rule = rule;
  }

  get size(): number {
    return this.order.size;
  }

  [Symbol.iterator](): Iterator<C> {
    return this.order.values();
  }

  /** Members held by a client key. */
  count(key: string): number {
    return this.byKey.get(key)?.size ?? 0;
  }

  add(c: C, key: string): void {
    if (this.order.has(c)) return;
    this.order.add(c);
    this.keyOf.set(c, key);
    let s = this.byKey.get(key);
    if (s === undefined) {
      s = new Set();
      this.byKey.set(key, s);
    }
    s.add(c);
    this.move(key, s.size - 1, s.size);
  }

  /** Removes a member; false when it was not one. */
  delete(c: C): boolean {
    if (!this.order.delete(c)) return false;
    const key = this.keyOf.get(c) ?? "";
    this.keyOf.delete(c);
    const s = this.byKey.get(key);
    if (s !== undefined && s.delete(c)) {
      if (s.size === 0) this.byKey.delete(key);
      this.move(key, s.size + 1, s.size);
    }
    return true;
  }

  /** The member made progress: it goes to the end of the order. */
  touch(c: C): void {
    if (this.order.delete(c)) this.order.add(c);
  }

  /**
   * The member to close for a newcomer from client `key` (see evictIdle in
   * listeners.ts for the rule), or undefined when none may be closed now.
   */
  victim(key: string, trusted: boolean, now: number): C | undefined {
    if (now < this.noVictimUntil) return undefined;
    const mine = this.count(key);
    const floor = mine + 2;
    const wantFair = this.most >= floor;
    const wantOldest = mine === 0 || trusted;
    if (!wantFair && !wantOldest) return undefined;
    // The most idle member that may be closed: the first in the order that is not waiting for us.
    let oldest: C | undefined;
    let maxIdle = -1;
    for (const c of this.order) {
      const idle = c.idleFor(now);
      if (idle >= 0) {
        oldest = c;
        maxIdle = idle;
        break;
      }
    }
    const { idleMs, fairIdleMs, noVictimMs } = this.rule;
    // None idle fairIdleMs yet: none can be before the most idle one gets there (idle time only grows; a session
    // leaving a wait, e.g. the pregreet pause, may jump, so the answer is kept noVictimMs at most).
    if (maxIdle < fairIdleMs) {
      this.noVictimUntil = now + Math.min(fairIdleMs - Math.max(maxIdle, 0), noVictimMs);
      return undefined;
    }
    if (wantFair) {
      // The clients holding the most first; among those holding as many, the most idle session.
      for (let n = this.most; n >= floor; n--) {
        const keys = this.buckets.get(n);
        if (keys === undefined) continue;
        let fair: C | undefined;
        let fairIdle = 0;
        for (const k of keys) {
          for (const c of this.byKey.get(k) ?? []) {
            if (c.trusted) continue;
            const idle = c.idleFor(now);
            if (idle >= fairIdleMs && idle > fairIdle) {
              fair = c;
              fairIdle = idle;
            }
          }
        }
        if (fair !== undefined) return fair;
      }
    }
    return wantOldest && maxIdle >= idleMs ? oldest : undefined;
  }

  /** A key's count went from `from` to `to`: it changes buckets. */
  private move(key: string, from: number, to: number): void {
    if (from > 0) {
      const b = this.buckets.get(from);
      if (b !== undefined) {
        b.delete(key);
        if (b.size === 0) this.buckets.delete(from);
      }
    }
    if (to > 0) {
      let b = this.buckets.get(to);
      if (b === undefined) {
        b = new Set();
        this.buckets.set(to, b);
      }
      b.add(key);
    }
    if (to > this.most) this.most = to;
    while (this.most > 0 && !this.buckets.has(this.most)) this.most--;
  }
}
