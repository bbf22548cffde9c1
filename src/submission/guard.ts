/**
 * Brute-force defence for AUTH and per-account sending limits, shared by
 * every worker thread and every process (the CLI included) through tables in
 * the accounts database (SQLite WAL; each update is one short write).
 *
 * Failures are counted per client (IPv4 address or IPv6 /64, see
 * networks.ts) and per user name as typed (lowercased), known or not, so a
 * lockout never tells whether a user exists:
 * - every failure delays its reply: failure_delay, doubled for each earlier
 *   failure of the client in the window, capped at max_failure_delay;
 * - ip_max_failures in ip_window blocks the client from AUTH for ip_block;
 * - account_max_failures in account_window locks the name for account_lock.
 * While blocked or locked, AUTH is refused with 454 4.7.0 before any
 * password is checked (correct or not), which also stops the attacker from
 * learning anything more. A success clears the name's count, not the
 * client's: an attacker holding one valid account cannot reset its own
 * client counter by logging in between guesses.
 *
 * Sending limits use a sliding hour: this hour's count plus last hour's
 * weighted by the part of it still inside the window.
 */
import { randomBytes } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Config } from "../config/types.ts";
import { writeTransaction } from "../storage/index.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS auth_failures (
  key TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  window_start INTEGER NOT NULL,
  blocked_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS account_usage (
  account TEXT NOT NULL,
  hour INTEGER NOT NULL,
  messages INTEGER NOT NULL DEFAULT 0,
  recipients INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (account, hour)
);
`;

const HOUR = 3_600_000;

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

export interface FailureOutcome {
  /** Milliseconds to wait before replying. */
  readonly delayMs: number;
  /** This failure blocked the client or locked the name. */
  readonly blocked: "client" | "user" | undefined;
}

interface Row {
  count: number;
  window_start: number;
  blocked_until: number;
}

export class AuthGuard {
  private readonly db: DatabaseSync;
  private readonly policy: Config["auth"];
  private readonly limits: Config["accounts"];
  private readonly now: () => number;
  private readonly get: StatementSync;
  private readonly put: StatementSync;
  private readonly del: StatementSync;
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
    this.usage = db.prepare("SELECT hour, messages, recipients FROM account_usage WHERE account = ? AND hour >= ?");
    this.addUsage = db.prepare(
      "INSERT INTO account_usage (account, hour, messages, recipients) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT(account, hour) DO UPDATE SET messages = messages + excluded.messages, recipients = recipients + excluded.recipients",
    );
    this.prune = db.prepare("DELETE FROM auth_failures WHERE blocked_until < ? AND window_start < ?");
  }

  private row(key: string): Row | undefined {
    return this.get.get(key) as Row | undefined;
  }

  /** Why AUTH must be refused now without checking anything, if it must. */
  blocked(client: string, user?: string): "client" | "user" | undefined {
    const t = this.now();
    if ((this.row(client)?.blocked_until ?? 0) > t) return "client";
    if (user !== undefined && (this.row(`user:${user.toLowerCase()}`)?.blocked_until ?? 0) > t) return "user";
    return undefined;
  }

  /** Records a failed AUTH; returns the reply delay and whether a block started. */
  failure(client: string, user: string | undefined): FailureOutcome {
    const t = this.now();
    const p = this.policy;
    let blocked: FailureOutcome["blocked"];
    let clientCount = 0;
    writeTransaction(this.db, () => {
      clientCount = this.bump(client, t, p.ipWindow * 1000, p.ipMaxFailures, p.ipBlock * 1000);
      if (clientCount >= p.ipMaxFailures) blocked = "client";
      if (user !== undefined && user !== "") {
        const n = this.bump(`user:${user.toLowerCase().slice(0, 320)}`, t, p.accountWindow * 1000, p.accountMaxFailures, p.accountLock * 1000);
        if (n >= p.accountMaxFailures && blocked === undefined) blocked = "user";
      }
      this.prune.run(t, t - Math.max(p.ipWindow, p.accountWindow) * 1000);
    });
    const delayMs = Math.min(p.failureDelay * 2 ** Math.min(Math.max(clientCount - 1, 0), 30), p.maxFailureDelay);
    return { delayMs, blocked };
  }

  /** Counts one failure under key; returns the count in the current window. Starts a block at the threshold. */
  private bump(key: string, t: number, windowMs: number, max: number, blockMs: number): number {
    const r = this.row(key);
    const fresh = r === undefined || t - r.window_start > windowMs;
    const count = fresh ? 1 : r.count + 1;
    const start = fresh ? t : r.window_start;
    const blockedUntil = count >= max ? t + blockMs : (r?.blocked_until ?? 0);
    // A block starts a new window, so the next count after it begins at zero.
    this.put.run(key, count >= max ? 0 : count, count >= max ? t : start, blockedUntil);
    return count;
  }

  /** A successful AUTH: the name's failures are forgotten (the client's are not). */
  success(user: string): void {
    this.del.run(`user:${user.toLowerCase()}`);
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
