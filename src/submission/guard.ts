/**
 * Brute-force defence for AUTH and per-account sending limits, shared by
 * every worker thread and every process (the CLI included) through tables in
 * the accounts database (SQLite WAL; each update is one short write).
 *
 * Attempts are counted per client (IPv4 address or IPv6 /64, see
 * networks.ts) and per user name (the account an alias names, else the name
 * as typed, lowercased; known or not, so a lockout never tells whether a
 * user exists).
 *
 * Reserve, then verify. A mechanism asks admit() right before it checks a
 * secret; admit() decides in one write transaction (BEGIN IMMEDIATE, so
 * atomic across worker threads and processes) and, when it admits, counts
 * the attempt as a failure in advance. A burst of parallel attempts from one
 * client therefore checks at most ip_max_failures secrets, however many
 * connections it opens. A success gives its reservation back (success());
 * a failure has nothing left to record (nor has an exchange abandoned after
 * its check: a SCRAM client that leaves after a matching proof stays
 * counted). A refused attempt checks nothing, so its reply (454 4.7.0) is
 * the same whatever the password.
 *
 * - every failure delays its reply: failure_delay, doubled for each earlier
 *   attempt of the client or the name in their windows, capped at
 *   max_failure_delay;
 * - ip_max_failures in ip_window blocks the client from AUTH for ip_block;
 * - account_max_failures in account_window locks the name for account_lock,
 *   except from a client where the account logged in successfully within
 *   known_network_window (the owner keeps working while strangers guess).
 *   Attempts refused during a lock are not counted, so they cannot extend
 *   it; the count starts again at zero when a block or lock ends.
 * A success forgets the name's count (unless the name is locked), not the
 * client's: an attacker holding one valid account cannot reset its own
 * client counter by logging in between guesses.
 *
 * Sending limits use a sliding hour: this hour's count plus last hour's
 * weighted by the part of it still inside the window.
 */
import { randomBytes } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Config } from "../config/index.ts";
import { writeTransaction } from "../storage/index.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS auth_failures (
  key TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  window_start INTEGER NOT NULL,
  blocked_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS auth_known (
  account TEXT NOT NULL,
  client TEXT NOT NULL,
  last_ok INTEGER NOT NULL,
  PRIMARY KEY (account, client)
);
CREATE INDEX IF NOT EXISTS auth_known_last_ok ON auth_known (last_ok);
CREATE TABLE IF NOT EXISTS account_usage (
  account TEXT NOT NULL,
  hour INTEGER NOT NULL,
  messages INTEGER NOT NULL DEFAULT 0,
  recipients INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (account, hour)
);
`;

const HOUR = 3_600_000;
/** Known client networks kept per account (the most recent): an internal bound, not a client-visible limit. */
export const MAX_KNOWN_NETWORKS = 64;
/** Longest name counted (longer ones are cut): the key of one row. */
const MAX_NAME = 320;

/**
 * A random secret kept in the accounts database, created on first use and
 * the same for every worker and restart (e.g. the key that makes the fake
 * SCRAM salt of an unknown user stable, so it cannot be told from a real one).
 */
export function serverSecret(db: DatabaseSync, name: string): Buffer {
  db.exec("CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)");
  db.prepare("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)").run(name, randomBytes(32));
  const row = db.prepare("SELECT value FROM secrets WHERE name = ?").get(name) as { value: Uint8Array } | undefined;
  if (!row) throw new Error(`secret ${name} missing`);
  return Buffer.from(row.value);
}

/** Why an attempt is refused: the client is blocked, or the name is locked. */
export type Refusal = "client" | "user";

/** An admitted attempt: counted as a failure in advance until success() gives it back. */
export interface Attempt {
  readonly client: string;
  /** The name's key, when the attempt named one. */
  readonly nameKey: string | undefined;
  /** The name's count was raised (not while it is locked, when a known network may still try). */
  readonly nameCounted: boolean;
  /** The client's and the name's counts with this attempt: they set the delay of a failure. */
  readonly clientCount: number;
  readonly nameCount: number;
  /** This attempt reached a limit and started a block (client) or a lock (user). */
  readonly started: Refusal | undefined;
}

export interface FailureOutcome {
  /** Milliseconds to wait before replying. */
  readonly delayMs: number;
  /** This failure blocked the client. */
  readonly blocked: "client" | undefined;
}

interface Row {
  count: number;
  window_start: number;
  blocked_until: number;
}

const nameKey = (name: string): string => `user:${name.toLowerCase().slice(0, MAX_NAME)}`;

export class AuthGuard {
  private readonly db: DatabaseSync;
  private readonly policy: Config["auth"];
  private readonly limits: Config["accounts"];
  private readonly now: () => number;
  private readonly get: StatementSync;
  private readonly put: StatementSync;
  private readonly del: StatementSync;
  private readonly isKnown: StatementSync;
  private readonly putKnown: StatementSync;
  private readonly capKnown: StatementSync;
  private readonly pruneKnown: StatementSync;
  private readonly usage: StatementSync;
  private readonly addUsage: StatementSync;
  private readonly prune: StatementSync;

  constructor(db: DatabaseSync, config: Pick<Config, "auth" | "accounts">, now: () => number = Date.now) {
    this.db = db;
    this.policy = config.auth;
    this.limits = config.accounts;
    this.now = now;
    db.exec(SCHEMA);
    this.get = db.prepare("SELECT count, window_start, blocked_until FROM auth_failures WHERE key = ?");
    this.put = db.prepare(
      "INSERT INTO auth_failures (key, count, window_start, blocked_until) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT(key) DO UPDATE SET count = excluded.count, window_start = excluded.window_start, blocked_until = excluded.blocked_until",
    );
    this.del = db.prepare("DELETE FROM auth_failures WHERE key = ?");
    this.isKnown = db.prepare("SELECT 1 AS k FROM auth_known WHERE account = ? AND client = ? AND last_ok > ?");
    this.putKnown = db.prepare(
      "INSERT INTO auth_known (account, client, last_ok) VALUES (?, ?, ?) ON CONFLICT(account, client) DO UPDATE SET last_ok = excluded.last_ok",
    );
    this.capKnown = db.prepare(
      "DELETE FROM auth_known WHERE account = ? AND client NOT IN (SELECT client FROM auth_known WHERE account = ? ORDER BY last_ok DESC LIMIT ?)",
    );
    this.pruneKnown = db.prepare("DELETE FROM auth_known WHERE last_ok <= ?");
    this.usage = db.prepare("SELECT hour, messages, recipients FROM account_usage WHERE account = ? AND hour >= ?");
    this.addUsage = db.prepare(
      "INSERT INTO account_usage (account, hour, messages, recipients) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT(account, hour) DO UPDATE SET messages = messages + excluded.messages, recipients = recipients + excluded.recipients",
    );
    this.prune = db.prepare("DELETE FROM auth_failures WHERE blocked_until < ? AND window_start < ?");
  }

  /**
   * The row of key as it stands at t: a block or lock that has ended, or a
   * window that has passed, starts again from zero.
   */
  private current(key: string, t: number, windowMs: number): Row {
    const r = this.get.get(key) as Row | undefined;
    if (r === undefined) return { count: 0, window_start: t, blocked_until: 0 };
    if (r.blocked_until > t) return r;
    if (r.blocked_until !== 0 || t - r.window_start > windowMs) return { count: 0, window_start: t, blocked_until: 0 };
    return r;
  }

  /** The account logged in from this client within auth.known_network_window. */
  private known(account: string, client: string, t: number): boolean {
    const w = this.policy.knownNetworkWindow;
    return w > 0 && this.isKnown.get(account.toLowerCase(), client, t - w * 1000) !== undefined;
  }

  /** Why AUTH must be refused now without checking anything, if it must (read only; admit() decides). */
  blocked(client: string): Refusal | undefined {
    return ((this.get.get(client) as Row | undefined)?.blocked_until ?? 0) > this.now() ? "client" : undefined;
  }

  /**
   * Called right before a secret is checked: refuses (the client is blocked,
   * or the name is locked and the client is not a known network of it), or
   * admits and counts the attempt as a failure in advance, all in one write
   * transaction. `name` is the account an alias names, else the name as typed.
   */
  admit(client: string, name: string | undefined): Attempt | Refusal {
    const t = this.now();
    const p = this.policy;
    return writeTransaction(this.db, (): Attempt | Refusal => {
      const c = this.current(client, t, p.ipWindow * 1000);
      if (c.blocked_until > t) return "client";
      const key = name === undefined || name === "" ? undefined : nameKey(name);
      const n = key === undefined ? undefined : this.current(key, t, p.accountWindow * 1000);
      const locked = n !== undefined && n.blocked_until > t;
      if (locked && !this.known(name ?? "", client, t)) return "user";
      let started: Refusal | undefined;
      const clientCount = c.count + 1;
      if (clientCount >= p.ipMaxFailures) started = "client";
      this.put.run(client, clientCount, c.window_start, clientCount >= p.ipMaxFailures ? t + p.ipBlock * 1000 : 0);
      let nameCount = 0;
      if (key !== undefined && n !== undefined && !locked) {
        nameCount = n.count + 1;
        if (nameCount >= p.accountMaxFailures) started ??= "user";
        this.put.run(key, nameCount, n.window_start, nameCount >= p.accountMaxFailures ? t + p.accountLock * 1000 : 0);
      }
      this.prune.run(t, t - Math.max(p.ipWindow, p.accountWindow) * 1000);
      return { client, nameKey: key, nameCounted: key !== undefined && !locked, clientCount, nameCount, started };
    });
  }

  /** The delay before the reply to a failed admitted attempt (its failure is already counted). */
  delay(attempt: Attempt): number {
    return this.delayFor(Math.max(attempt.clientCount, attempt.nameCount));
  }

  private delayFor(count: number): number {
    const p = this.policy;
    return Math.min(p.failureDelay * 2 ** Math.min(Math.max(count - 1, 0), 30), p.maxFailureDelay);
  }

  /**
   * A failure that checked no secret (a malformed exchange, a refused
   * channel binding): counted for the client only; returns the reply delay.
   */
  failure(client: string): FailureOutcome {
    const t = this.now();
    const p = this.policy;
    return writeTransaction(this.db, (): FailureOutcome => {
      const c = this.current(client, t, p.ipWindow * 1000);
      if (c.blocked_until > t) return { delayMs: this.delayFor(c.count), blocked: undefined };
      const count = c.count + 1;
      this.put.run(client, count, c.window_start, count >= p.ipMaxFailures ? t + p.ipBlock * 1000 : 0);
      return { delayMs: this.delayFor(count), blocked: count >= p.ipMaxFailures ? "client" : undefined };
    });
  }

  /** Gives back one reservation under key; a block it alone completed ends. */
  private refund(key: string, max: number, t: number): void {
    const r = this.get.get(key) as Row | undefined;
    if (r === undefined || r.count <= 0) return;
    const count = r.count - 1;
    this.put.run(key, count, r.window_start, r.blocked_until > t && count < max ? 0 : r.blocked_until);
  }

  /**
   * A successful AUTH of `account` on an admitted attempt: the reservation
   * is given back, the name's count is forgotten unless it is locked, and
   * the client becomes a known network of the account.
   */
  success(attempt: Attempt, account: string): void {
    const t = this.now();
    const p = this.policy;
    writeTransaction(this.db, () => {
      this.refund(attempt.client, p.ipMaxFailures, t);
      const key = nameKey(account);
      if (attempt.nameCounted && attempt.nameKey !== undefined) this.refund(attempt.nameKey, p.accountMaxFailures, t);
      if (!(this.current(key, t, p.accountWindow * 1000).blocked_until > t)) this.del.run(key);
      if (p.knownNetworkWindow > 0) {
        const a = account.toLowerCase();
        this.putKnown.run(a, attempt.client, t);
        this.capKnown.run(a, a, MAX_KNOWN_NETWORKS);
        this.pruneKnown.run(t - p.knownNetworkWindow * 1000);
      }
    });
  }

  // ---- sending limits ----

  private sliding(account: string): { messages: number; recipients: number } {
    const t = this.now();
    const hour = Math.floor(t / HOUR);
    const rows = this.usage.all(account, hour - 1) as { hour: number; messages: number; recipients: number }[];
    const prevWeight = 1 - (t % HOUR) / HOUR;
    let messages = 0;
    let recipients = 0;
    for (const r of rows) {
      const w = r.hour === hour ? 1 : prevWeight;
      messages += r.messages * w;
      recipients += r.recipients * w;
    }
    return { messages, recipients };
  }

  /** True when the account may start one more message this hour. */
  mayStartMessage(account: string): boolean {
    return this.sliding(account).messages + 1 <= this.limits.maxMessagesPerHour;
  }

  /** True when the account may add one more recipient (`pending` already given in this transaction). */
  mayAddRecipient(account: string, pending: number): boolean {
    return this.sliding(account).recipients + pending + 1 <= this.limits.maxRecipientsPerHour;
  }

  /** Records an accepted message. */
  recordMessage(account: string, recipients: number): void {
    this.addUsage.run(account, Math.floor(this.now() / HOUR), 1, recipients);
  }
}
