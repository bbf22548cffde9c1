/**
 * Delivery outcomes of a spool shard (spool.ts): what the queue manager
 * reports per recipient, written inside the spool's next transaction.
 *
 * Delivered and failed are final; a final recipient is never changed again.
 * Deferred recipients are retried with exponential backoff plus jitter; a
 * recipient still deferred `expireAfterMs` after the message arrived fails.
 * When every recipient is final the message is done and its rows and content
 * are deleted. With encryption on, every delivery error is sealed before it
 * is stored (a remote reply may quote addresses).
 */
import { randomInt } from "node:crypto";
import type { StatementSync } from "node:sqlite";
import type { MessageState } from "./types.ts";
import type { ShardDatabase } from "./store.ts";

export interface RecipientOutcome {
  /** Index of the recipient in the envelope. */
  readonly index: number;
  readonly result: "delivered" | "deferred" | "failed";
  /** Why it was deferred or failed (logged and kept; never shown to SMTP clients as is). */
  readonly error?: string;
}

/** Outcomes of one claimed message, waiting for the next transaction. */
export interface PendingOutcome {
  readonly id: string;
  readonly outcomes: readonly RecipientOutcome[];
  readonly at: number;
}

export interface RetryOptions {
  /** First retry delay after a deferral, doubling per attempt... */
  readonly retryBaseMs: number;
  /** ...up to this. */
  readonly retryMaxMs: number;
  /** Each delay is shortened by a random fraction up to this (0..1). */
  readonly retryJitter: number;
  /** A recipient still deferred this long after the message arrived fails. */
  readonly expireAfterMs: number;
  /** Seal delivery errors with the shard's keyring. */
  readonly encrypt: boolean;
}

/** Applies outcomes to one shard database; the caller owns the transaction. */
export class OutcomeWriter {
  private readonly store: ShardDatabase;
  private readonly opts: RetryOptions;
  private readonly sql: {
    messageState: StatementSync;
    updateRecipient: StatementSync;
    openRecipients: StatementSync;
    requeue: StatementSync;
    defer: StatementSync;
  };

  constructor(store: ShardDatabase, opts: RetryOptions) {
    this.store = store;
    this.opts = opts;
    const p = (s: string): StatementSync => store.db.prepare(s);
    this.sql = {
      messageState: p("SELECT state, attempts, created_at FROM messages WHERE id = ?"),
      updateRecipient: p(`UPDATE recipients SET state = ?, attempts = attempts + 1, last_error = ?
                          WHERE message_id = ? AND idx = ? AND state IN ('queued', 'deferred')`),
      openRecipients: p("SELECT count(*) AS n FROM recipients WHERE message_id = ? AND state IN ('queued', 'deferred')"),
      requeue: p("UPDATE messages SET state = ?, next_attempt_at = ? WHERE id = ?"),
      defer: p("UPDATE messages SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?"),
    };
  }

  /** Retry delay after the n-th deferral (n >= 1), with jitter. */
  backoff(attempt: number): number {
    const { retryBaseMs, retryMaxMs, retryJitter } = this.opts;
    const base = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40));
    if (retryJitter === 0) return base;
    return Math.round(base * (1 - (retryJitter * randomInt(0, 1_000_001)) / 1_000_000));
  }

  /** Applies outcomes inside the caller's transaction; returns how many messages became done. */
  apply(list: readonly PendingOutcome[]): number {
    const log = this.store.log;
    let done = 0;
    for (const { id, outcomes, at } of list) {
      const row = this.sql.messageState.get(id);
      if (!row) continue; // deleted by the operator meanwhile
      const state = String(row.state) as MessageState;
      const createdAt = Number(row.created_at);
      let deferredError: string | undefined;
      const expired = at - createdAt >= this.opts.expireAfterMs;
      for (const o of outcomes) {
        let result = o.result;
        let error = o.error ?? null;
        if (result === "deferred" && expired) {
          result = "failed";
          error = `expired after ${Math.round((at - createdAt) / 3_600_000)} h: ${error ?? "deferred"}`;
        }
        if (result === "deferred") deferredError ??= error ?? "deferred";
        this.sql.updateRecipient.run(result, result === "delivered" ? null : this.errorColumn(id, `error:${o.index}`, error), id, o.index);
        if (result === "failed") log.warn({ queueId: id, index: o.index, error }, "recipient failed");
      }
      const open = Number(this.sql.openRecipients.get(id)?.n ?? 0);
      if (open === 0) {
        this.store.deleteRows(id);
        done++;
        log.debug({ queueId: id }, "message done");
        continue;
      }
      const nextState = state === "held" ? "held" : deferredError !== undefined ? "deferred" : "queued";
      if (deferredError !== undefined) {
        const attempts = Number(row.attempts) + 1;
        this.sql.defer.run(nextState, attempts, at + this.backoff(attempts), this.errorColumn(id, "error", deferredError), id);
      } else {
        this.sql.requeue.run(nextState, at, id);
      }
    }
    return done;
  }

  /** A delivery error as stored: sealed when encryption is on (remote replies may quote addresses). */
  private errorColumn(id: string, part: string, error: string | null): string | Buffer | null {
    if (error === null || !this.opts.encrypt) return error;
    return this.store.keyring.seal(part, id, Buffer.from(error, "utf8"));
  }
}
