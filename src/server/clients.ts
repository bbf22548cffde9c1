/**
 * Per-client counters shared by every worker thread: open connections and
 * connection, message and recipient rates per client, and the memory of
 * early talkers (pregreet). A client is an IPv4 address or an IPv6 prefix
 * (limits.client_ipv6_prefix bits, /64 by default).
 *
 * The table lives in one SharedArrayBuffer made by the primary and handed to
 * each worker; it is a fixed-size open-addressing hash table of Int32 slots,
 * guarded by one spin lock (Atomics). Every operation holds the lock for a
 * few dozen array reads, so contention between a handful of workers is
 * negligible; SQLite would be far too slow for one call per connection.
 *
 * Bounds: the table has a fixed number of slots (memory is fixed, whatever
 * the clients do). A slot is reused once its client has no open connection,
 * has not been seen for STALE_S and is not remembered as an early talker.
 * When no slot is free within PROBE slots (an attack from a very large number
 * of addresses), the client is not counted (fail open): the per-listener
 * connection limits still hold, and refusing every new client would be the
 * attacker's goal.
 *
 * Rates are sliding one-minute windows: the estimate is the previous
 * minute's count weighted by the part of it still inside the window, plus
 * the current minute's count.
 */
import { isIPv4, isIPv6 } from "node:net";

/** Counter groups: the MX listener and the submission listeners are counted apart. */
export type ClientGroup = "mx" | "submission";
export type RateKind = "messages" | "recipients";

const SLOT = 24; // Int32 fields per slot
const F_TAG = 0; // 0 empty, 4 IPv4, 6 IPv6
// fields 1-4: the key (4 words)
const F_OPEN = 5; // + group (2 fields)
const F_SEEN = 7;
const F_BAN = 8;
const F_RATE = 9; // 4 rates × (minute, current, previous): conn mx, conn submission, messages, recipients
const F_PASS = 21; // passed the pregreet test until (seconds)
const F_SLOW = 22; // a command line of it timed out (slowloris): remembered until (seconds)
const RATE_CONN_MX = 0;
const RATE_CONN_SUB = 1;
const RATE_MESSAGES = 2;
const RATE_RECIPIENTS = 3;
const HEADER = 4; // lock, slot count, epoch (seconds)
const PROBE = 64;
const STALE_S = 120;
const SPIN_LIMIT = 10_000_000;
const KEY_CACHE = 4096;

/** Slots for a server: enough for every connection of every worker several times over. */
export function tableSlots(maxConnections: number, workers: number): number {
  let n = 4096;
  while (n < maxConnections * workers * 4 && n < 1 << 20) n *= 2;
  return n;
}

export class ClientTable {
  private readonly a: Int32Array;
  private readonly slots: number;
  private readonly prefix6: number;
  private readonly key = new Int32Array(5);
  /** Keys of recently seen addresses (this thread's; at most KEY_CACHE, then started again). */
  private readonly keyCache = new Map<string, Int32Array | null>();
  /** Calls (in this thread) that found no free slot and let the client through uncounted. */
  untracked = 0;

  /** A new, empty table's memory (done once, in the primary). */
  static allocate(slots: number): SharedArrayBuffer {
    const sab = new SharedArrayBuffer((HEADER + slots * SLOT) * 4);
    const a = new Int32Array(sab);
    a[1] = slots;
    a[2] = Math.floor(Date.now() / 1000);
    return sab;
  }

  constructor(sab: SharedArrayBuffer, ipv6Prefix: number) {
    this.a = new Int32Array(sab);
    this.slots = this.a[1] ?? 0;
    this.prefix6 = ipv6Prefix;
  }

  /**
   * A new connection from ip: checks the early-talker memory, the open
   * connections and the connection rate of its group, and counts it when
   * allowed ("ok"; call release() when it closes). With refuseSlow, a client
   * remembered as slow (markSlow) is refused too ("slow"), in the same look-up.
   */
  connect(ip: string, group: ClientGroup, maxOpen: number, perMinute: number, checkBan: boolean, refuseSlow = false): "ok" | "banned" | "concurrency" | "rate" | "slow" {
    return this.locked(ip, "ok", (s, now) => {
      if (checkBan && (this.a[s + F_BAN] ?? 0) > now) return "banned";
      // (refuseSlow: the listener group is under pressure; see markSlow.)
      if (refuseSlow && (this.a[s + F_SLOW] ?? 0) > now) return "slow";
      const open = s + F_OPEN + (group === "mx" ? 0 : 1);
      if ((this.a[open] ?? 0) >= maxOpen) return "concurrency";
      const rate = group === "mx" ? RATE_CONN_MX : RATE_CONN_SUB;
      if (this.estimate(s, rate, now) >= perMinute) return "rate";
      this.bump(s, rate, now);
      this.a[open] = (this.a[open] ?? 0) + 1;
      return "ok";
    });
  }

  /** The connection counted by connect() closed. */
  release(ip: string, group: ClientGroup): void {
    this.locked(ip, undefined, (s) => {
      const open = s + F_OPEN + (group === "mx" ? 0 : 1);
      if ((this.a[open] ?? 0) > 0) this.a[open] = (this.a[open] ?? 0) - 1;
      return undefined;
    });
  }

  /** Counts one message or recipient; false when the client is over perMinute (not counted then). */
  take(ip: string, kind: RateKind, perMinute: number): boolean {
    return this.locked(ip, true, (s, now) => {
      const rate = kind === "messages" ? RATE_MESSAGES : RATE_RECIPIENTS;
      if (this.estimate(s, rate, now) >= perMinute) return false;
      this.bump(s, rate, now);
      return true;
    });
  }

  /** Remembers ip as an early talker for seconds. */
  ban(ip: string, seconds: number): void {
    this.locked(ip, undefined, (s, now) => {
      this.a[s + F_BAN] = now + seconds;
      return undefined;
    });
  }

  /**
   * Remembers that ip passed the pregreet test, for seconds. Unlike an early
   * talker, a pass does not keep the slot: it may be forgotten when the slot
   * is reused, which costs only another test.
   */
  pass(ip: string, seconds: number): void {
    this.locked(ip, undefined, (s, now) => {
      this.a[s + F_PASS] = now + seconds;
      return undefined;
    });
  }

  /**
   * Remembers ip as a slow client for seconds: a session of it let a command
   * line time out (bytes trickled into a line that never ends, the slowloris
   * signature). connect() with refuseSlow refuses it while the mark lasts.
   * Like a pass, the mark does not keep the slot.
   */
  markSlow(ip: string, seconds: number): void {
    this.locked(ip, undefined, (s, now) => {
      this.a[s + F_SLOW] = now + seconds;
      return undefined;
    });
  }

  /** ip passed the pregreet test recently. */
  passed(ip: string): boolean {
    return this.locked(ip, false, (s, now) => (this.a[s + F_PASS] ?? 0) > now);
  }

  /** Open connections of ip's group (for tests and logs). */
  open(ip: string, group: ClientGroup): number {
    return this.locked(ip, 0, (s) => this.a[s + F_OPEN + (group === "mx" ? 0 : 1)] ?? 0);
  }

  private estimate(s: number, rate: number, now: number): number {
    const f = s + F_RATE + rate * 3;
    const minute = Math.floor(now / 60);
    const at = this.a[f] ?? 0;
    const cur = this.a[f + 1] ?? 0;
    const prev = this.a[f + 2] ?? 0;
    if (at === minute) return cur + (prev * (60 - (now % 60))) / 60;
    if (at === minute - 1) return (cur * (60 - (now % 60))) / 60;
    return 0;
  }

  private bump(s: number, rate: number, now: number): void {
    const f = s + F_RATE + rate * 3;
    const minute = Math.floor(now / 60);
    const at = this.a[f] ?? 0;
    if (at !== minute) {
      this.a[f + 2] = at === minute - 1 ? (this.a[f + 1] ?? 0) : 0;
      this.a[f + 1] = 0;
      this.a[f] = minute;
    }
    this.a[f + 1] = (this.a[f + 1] ?? 0) + 1;
  }

  /** Runs fn on ip's slot (found or claimed) under the lock; fallback when ip cannot be keyed or no slot is free. */
  private locked<T>(ip: string, fallback: T, fn: (slot: number, now: number) => T): T {
    if (!this.makeKey(ip) || this.slots === 0) return fallback;
    const now = Math.floor(Date.now() / 1000) - (this.a[2] ?? 0);
    this.lock();
    try {
      const s = this.find(now);
      if (s < 0) {
        this.untracked++;
        return fallback;
      }
      this.a[s + F_SEEN] = now;
      return fn(s, now);
    } finally {
      Atomics.store(this.a, 0, 0);
    }
  }

  private lock(): void {
    for (let i = 0; Atomics.compareExchange(this.a, 0, 0, 1) !== 0; i++) {
      // A thread that died holding the lock (terminated mid-call) must not stop the others.
      if (i > SPIN_LIMIT) {
        Atomics.store(this.a, 0, 0);
        i = 0;
      }
    }
  }

  /** The slot of this.key: its own, else the first free or stale one in its probe run; -1 when none. */
  private find(now: number): number {
    const k = this.key;
    let h = Math.imul(k[0] ?? 0, 0x9e3779b1);
    for (let i = 1; i < 5; i++) h = Math.imul(h ^ (k[i] ?? 0), 0x85ebca6b) ^ (h >>> 13);
    const start = (h >>> 0) % this.slots;
    let free = -1;
    for (let p = 0; p < PROBE && p < this.slots; p++) {
      const s = HEADER + ((start + p) % this.slots) * SLOT;
      const tag = this.a[s + F_TAG] ?? 0;
      if (tag === k[0] && this.a[s + 1] === k[1] && this.a[s + 2] === k[2] && this.a[s + 3] === k[3] && this.a[s + 4] === k[4]) return s;
      if (free < 0 && (tag === 0 || this.reusable(s, now))) free = s;
    }
    if (free >= 0) {
      this.a.fill(0, free, free + SLOT);
      for (let i = 0; i < 5; i++) this.a[free + i] = k[i] ?? 0;
    }
    return free;
  }

  private reusable(s: number, now: number): boolean {
    return (
      this.a[s + F_OPEN] === 0 && this.a[s + F_OPEN + 1] === 0 && (this.a[s + F_BAN] ?? 0) <= now && now - (this.a[s + F_SEEN] ?? 0) > STALE_S
    );
  }

  /** Fills this.key with [tag, 4 words] for ip; false for something that is no IP address. */
  private makeKey(ip: string): boolean {
    // A connection asks several times (connect, pregreet pass, each MAIL and RCPT, release): the parsed key is kept.
    const cached = this.keyCache.get(ip);
    if (cached !== undefined) {
      if (cached === null) return false;
      this.key.set(cached);
      return true;
    }
    const ok = this.parseKey(ip);
    if (this.keyCache.size >= KEY_CACHE) this.keyCache.clear();
    this.keyCache.set(ip, ok ? this.key.slice() : null);
    return ok;
  }

  private parseKey(ip: string): boolean {
    // IPv4-mapped → IPv4, as submission's plainIp; not imported from there: this file runs in the main
    // thread too, and src/submission/index.ts would load the SMTP protocol and AUTH modules into it.
    const p = ip.startsWith("::ffff:") && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
    const k = this.key;
    if (isIPv4(p)) {
      const o = p.split(".");
      k[0] = 4;
      k[1] = (Number(o[0]) << 24) | (Number(o[1]) << 16) | (Number(o[2]) << 8) | Number(o[3]);
      k[2] = k[3] = k[4] = 0;
      return true;
    }
    if (!isIPv6(p)) return false;
    const groups = expand6(p);
    k[0] = 6;
    for (let w = 0; w < 4; w++) {
      const bits = Math.max(0, Math.min(32, this.prefix6 - w * 32));
      const word = (((groups[w * 2] ?? 0) << 16) | (groups[w * 2 + 1] ?? 0)) >>> 0;
      const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
      k[w + 1] = (word & mask) | 0;
    }
    return true;
  }
}

/** The 8 16-bit groups of an IPv6 address (a trailing dotted IPv4 part becomes two groups). */
function expand6(ip: string): number[] {
  let s = ip.split("%")[0] ?? ip;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const o = v4.slice(1).map(Number);
    s = `${s.slice(0, -v4[0].length)}${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head = "", tail] = s.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = tail === undefined ? [] : new Array<string>(Math.max(0, 8 - h.length - t.length)).fill("0");
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16) || 0);
}
