/**
 * Compromised accounts: an authenticated account whose sending jumps far
 * above its usual level is held, so a stolen password cannot turn the
 * server into a spam cannon. Shared by every worker and the CLI through
 * tables in the accounts database (SQLite WAL, short writes), next to the
 * hourly account_usage counts of the sending limits (src/submission/guard.ts).
 *
 * The usual level: the account's messages and recipients per hour over the
 * last accounts.hold_history days (idle hours count as zero), without the
 * last two hours (the sliding window being judged). The last hour: this
 * hour's count plus last hour's weighted by the part still inside the
 * window (as the sending limits), plus the message being judged.
 *
 * Rules (config accounts.hold_*):
 * - volume: messages above hold_factor × usual and at least
 *   hold_min_messages, or recipients above hold_factor × usual and at least
 *   hold_min_recipients;
 * - refusals: refused recipients (unknown local users at our RCPT,
 *   permanent failures reported by the receiving server) at least
 *   hold_refused_min and at least hold_refused_percent % of the account's
 *   recipients in the last hour.
 *
 * A held account's messages are accepted and queued on hold (the receiver
 * passes `hold` to the spool); `wardmail user release` ends the hold and
 * releases them. The first reason is kept; holding again changes nothing.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Config } from "../config/index.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS account_holds (
  account TEXT PRIMARY KEY NOT NULL,
  since INTEGER NOT NULL,
  reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS account_refusals (
  account TEXT NOT NULL,
  hour INTEGER NOT NULL,
  refused INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (account, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS account_usage (
  account TEXT NOT NULL,
  hour INTEGER NOT NULL,
  messages INTEGER NOT NULL DEFAULT 0,
  recipients INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (account, hour)
);
`;

const HOUR = 3_600_000;
/** Longest reason kept (it is ours, built from numbers; a bound anyway). */
const MAX_REASON = 300;

export interface Hold {
  readonly account: string;
  /** Milliseconds since the epoch. */
  readonly since: number;
  readonly reason: string;
}

export interface Level {
  readonly messages: number;
  readonly recipients: number;
  readonly refused: number;
}

const round = (n: number): number => Math.round(n * 100) / 100;

export class AccountHold {
  private readonly policy: Config["accountHold"];
  private readonly now: () => number;
  private readonly sql: Record<"get" | "put" | "del" | "all" | "usage" | "history" | "refusals" | "prune" | "refuse", StatementSync>;

  constructor(db: DatabaseSync, policy: Config["accountHold"], now: () => number = Date.now) {
    this.policy = policy;
    this.now = now;
    db.exec(SCHEMA);
    const p = (s: string): StatementSync => db.prepare(s);
    this.sql = {
      get: p("SELECT account, since, reason FROM account_holds WHERE account = ?"),
      put: p("INSERT OR IGNORE INTO account_holds (account, since, reason) VALUES (?, ?, ?)"),
      del: p("DELETE FROM account_holds WHERE account = ?"),
      all: p("SELECT account, since, reason FROM account_holds ORDER BY account"),
      usage: p("SELECT hour, messages, recipients FROM account_usage WHERE account = ? AND hour >= ?"),
      history: p("SELECT coalesce(sum(messages), 0) AS m, coalesce(sum(recipients), 0) AS r FROM account_usage WHERE account = ? AND hour >= ? AND hour < ?"),
      refusals: p("SELECT hour, refused FROM account_refusals WHERE account = ? AND hour >= ?"),
      prune: p("DELETE FROM account_refusals WHERE account = ? AND hour < ?"),
      refuse: p("INSERT INTO account_refusals (account, hour, refused) VALUES (?, ?, ?) ON CONFLICT(account, hour) DO UPDATE SET refused = refused + excluded.refused"),
    };
  }

  /** The account's hold, if it is held. */
  held(account: string): Hold | undefined {
    const r = this.sql.get.get(account.toLowerCase()) as { account: string; since: number; reason: string } | undefined;
    return r === undefined ? undefined : { account: r.account, since: Number(r.since), reason: r.reason };
  }

  /** Every held account. */
  list(): Hold[] {
    return (this.sql.all.all() as { account: string; since: number; reason: string }[]).map((r) => ({ account: r.account, since: Number(r.since), reason: r.reason }));
  }

  /** Holds the account (the first reason stays); true when it was not held before. */
  hold(account: string, reason: string): boolean {
    return this.sql.put.run(account.toLowerCase(), this.now(), reason.slice(0, MAX_REASON)).changes > 0;
  }

  /** Ends the hold; true when the account was held. */
  release(account: string): boolean {
    return this.sql.del.run(account.toLowerCase()).changes > 0;
  }

  /** Counts recipients of the account that were refused (at our RCPT, or permanently by the next hop). */
  recordRefused(account: string, count = 1): void {
    if (count <= 0) return;
    const hour = Math.floor(this.now() / HOUR);
    // Only the last hour counts: older rows of the account go (the table stays small).
    this.sql.prune.run(account.toLowerCase(), hour - 1);
    this.sql.refuse.run(account.toLowerCase(), hour, count);
  }

  /** The last hour (sliding) of the account. */
  lastHour(account: string): Level {
    const t = this.now();
    const hour = Math.floor(t / HOUR);
    const prevWeight = 1 - (t % HOUR) / HOUR;
    const w = (h: number): number => (h === hour ? 1 : prevWeight);
    let messages = 0;
    let recipients = 0;
    let refused = 0;
    for (const r of this.sql.usage.all(account, hour - 1) as { hour: number; messages: number; recipients: number }[]) {
      messages += r.messages * w(r.hour);
      recipients += r.recipients * w(r.hour);
    }
    for (const r of this.sql.refusals.all(account.toLowerCase(), hour - 1) as { hour: number; refused: number }[]) refused += r.refused * w(r.hour);
    return { messages, recipients, refused };
  }

  /** The usual level: mean per hour over the history days, the last two hours left out. */
  usual(account: string): { messages: number; recipients: number } {
    const hour = Math.floor(this.now() / HOUR);
    const hours = this.policy.holdHistory * 24;
    const r = this.sql.history.get(account, hour - 1 - hours, hour - 1) as { m: number; r: number };
    return { messages: Number(r.m) / hours, recipients: Number(r.r) / hours };
  }

  /**
   * Judges the account with one more message of `recipients` recipients:
   * the reason to hold it, or undefined. Reads only.
   */
  judge(account: string, recipients: number): string | undefined {
    const p = this.policy;
    const last = this.lastHour(account);
    const messages = last.messages + 1;
    const rcpts = last.recipients + recipients;
    if (p.holdFactor > 0) {
      const usual = this.usual(account);
      if (messages >= p.holdMinMessages && messages > p.holdFactor * usual.messages) {
        return `${round(messages)} messages in the last hour, over ${p.holdFactor} x its usual ${round(usual.messages)} per hour`;
      }
      if (rcpts >= p.holdMinRecipients && rcpts > p.holdFactor * usual.recipients) {
        return `${round(rcpts)} recipients in the last hour, over ${p.holdFactor} x its usual ${round(usual.recipients)} per hour`;
      }
    }
    if (p.holdRefusedPercent > 0 && last.refused >= p.holdRefusedMin) {
      const total = last.refused + last.recipients;
      if (last.refused * 100 >= p.holdRefusedPercent * total) {
        return `${round(last.refused)} of ${round(total)} recipients refused in the last hour (at least ${p.holdRefusedPercent} %)`;
      }
    }
    return undefined;
  }

  /**
   * For a message the account is submitting: its hold, existing or new
   * (judge() found a reason; then `started` is true).
   */
  check(account: string, recipients: number): { hold: Hold; started: boolean } | undefined {
    const existing = this.held(account);
    if (existing) return { hold: existing, started: false };
    const reason = this.judge(account, recipients);
    if (reason === undefined) return undefined;
    const started = this.hold(account, reason);
    const hold = this.held(account);
    return hold ? { hold, started } : undefined;
  }
}
