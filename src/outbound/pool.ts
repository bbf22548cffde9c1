/**
 * The outbound connection cache (as Postfix's scache): a connection that
 * delivered its batch and is still in step is kept open, idle, for the next
 * batch to the same destination, instead of a new TCP connection, STARTTLS
 * handshake and EHLO for every batch.
 *
 * Bounds, per worker:
 * - idle at most outbound.connection_cache_time seconds (0: no cache at
 *   all), then QUIT;
 * - at most outbound.max_connections_per_domain idle connections per
 *   destination, and MAX_CACHED in all (a full cache QUITs the newcomer);
 * - a connection carries at most outbound.messages_per_connection messages
 *   and lives at most outbound.connection_max_age seconds; past either it
 *   is not cached (nor taken) any more.
 *
 * The key is the whole identity of a connection: the destination (the
 * policy domain, or the relay), MX host name, address and port, our EHLO
 * name, the TLS requirement it was opened under (mode, source, MTA-STS
 * policy id, TLSA records, relay CA file: compared whole, so a connection
 * is reused only under the identical, hence as strict, policy) and the
 * relay credentials it authenticated with (by a hash: the password is not
 * kept in the key). A connection whose peer closes it while idle leaves the
 * cache at once; one that is unusable when taken (RSET or the first MAIL
 * refused, closed meanwhile) is reported "stale" by the session and the
 * caller sends the batch again on a fresh connection.
 */
/** What the cache needs of a connection (connect.ts C). */
export interface Reusable {
  /** Parked after a batch, socket open. */
  readonly idle: boolean;
  /** Messages handed to it so far. */
  readonly sent: number;
  /** Date.now() when it was opened. */
  readonly openedAt: number;
  /** QUIT and close. */
  quit(): void;
}

/** Most idle connections kept per worker, all destinations together. */
export const MAX_CACHED = 32;

export interface CacheLimits {
  /** Idle time, ms; 0 turns the cache off. */
  readonly idleMs: number;
  /** Idle connections per destination key. */
  readonly perDestination: number;
  /** Messages over one connection, in all. */
  readonly maxMessages: number;
  /** Age of a connection, ms. */
  readonly maxAgeMs: number;
}

interface Entry<C extends Reusable> {
  readonly conn: C;
  readonly timer: NodeJS.Timeout;
}

export class ConnectionCache<C extends Reusable> {
  private readonly limits: CacheLimits;
  private readonly idle = new Map<string, Entry<C>[]>();
  private count = 0;
  /** Connections taken from the cache (for tests and logs). */
  hits = 0;

  constructor(limits: CacheLimits) {
    this.limits = limits;
  }

  get enabled(): boolean {
    return this.limits.idleMs > 0;
  }

  /** Idle connections now. */
  get size(): number {
    return this.count;
  }

  /** Whether this connection may carry `more` messages yet (count and age). */
  private fresh(conn: C, more: number): boolean {
    return conn.sent + more <= this.limits.maxMessages && Date.now() - conn.openedAt < this.limits.maxAgeMs;
  }

  /** An idle connection for this key that may carry `n` more messages, out of the cache; undefined when none. */
  take(key: string, n: number): C | undefined {
    const list = this.idle.get(key);
    while (list !== undefined && list.length > 0) {
      const e = list.pop() as Entry<C>;
      this.drop(key, list, e);
      if (e.conn.idle && this.fresh(e.conn, n)) {
        this.hits++;
        return e.conn;
      }
      e.conn.quit();
    }
    return undefined;
  }

  /** Parks a connection that finished its batch; QUITs it when it may not be kept. */
  put(key: string, conn: C): void {
    if (!conn.idle) return;
    const list = this.idle.get(key) ?? [];
    if (!this.enabled || !this.fresh(conn, 1) || list.length >= this.limits.perDestination || this.count >= MAX_CACHED) {
      conn.quit();
      return;
    }
    const timer = setTimeout(() => {
      const l = this.idle.get(key);
      const i = l?.findIndex((x) => x.conn === conn) ?? -1;
      if (l !== undefined && i >= 0) {
        this.drop(key, l, l[i] as Entry<C>);
        conn.quit();
      }
    }, this.limits.idleMs);
    timer.unref();
    list.push({ conn, timer });
    this.idle.set(key, list);
    this.count++;
  }

  /** The socket of a cached connection went away (peer closed it): forget it. */
  forget(conn: C): void {
    for (const [key, list] of this.idle) {
      const i = list.findIndex((x) => x.conn === conn);
      if (i >= 0) return this.drop(key, list, list[i] as Entry<C>);
    }
  }

  /** QUITs every idle connection (shutdown). */
  closeAll(): void {
    for (const [key, list] of [...this.idle]) {
      for (const e of [...list]) {
        this.drop(key, list, e);
        e.conn.quit();
      }
    }
  }

  /** Takes an entry out (take() may have popped it already). */
  private drop(key: string, list: Entry<C>[], e: Entry<C>): void {
    clearTimeout(e.timer);
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
    this.count--;
    if (list.length === 0) this.idle.delete(key);
  }
}
