/**
 * The spool's claimed messages (spool.ts): handed to delivery (from memory,
 * `takeFresh`, or from the database, `claimDue`) and not yet recorded, so
 * that none is claimed twice, even if an operator re-queues one meanwhile.
 * For each it keeps what its outcome needs to be written at the right
 * time (outcome-queue.ts): the count of group commits when it was handed
 * over (a message claimed from the database is never recent), and how many
 * of its recipients were open then (an outcome that leaves some open, none
 * deferred, puts the message back in the queue due at once).
 */
import type { QueuedMessage } from "./store.ts";
import type { PendingOutcome, RecipientOutcome } from "./outcomes.ts";

interface Claim {
  /** Group commits when it was handed over; -Infinity: claimed from the database. */
  readonly commits: number;
  readonly open: number;
}

/** How its outcome goes: `recent` (it may ride with the next commit of messages), `requeues` (a claim must write it). */
export interface ClaimVerdict {
  readonly recent: boolean;
  readonly requeues: boolean;
}

export class Claims {
  private readonly claimed = new Map<string, Claim>();
  /** Outcomes of messages handed over within this many group commits are recent. */
  private readonly recentCommits: number;

  constructor(recentCommits: number) {
    this.recentCommits = recentCommits;
  }

  has(id: string): boolean {
    return this.claimed.has(id);
  }

  /** A fresh message handed over from memory after `commits` group commits. */
  fresh(m: QueuedMessage, commits: number): void {
    this.claimed.set(m.id, { commits, open: openRecipients(m) });
  }

  /** A message claimed from the database. */
  fromDb(m: QueuedMessage): void {
    this.claimed.set(m.id, { commits: Number.NEGATIVE_INFINITY, open: openRecipients(m) });
  }

  /** Outcomes written: their messages are no longer claimed. */
  forget(outcomes: readonly PendingOutcome[]): void {
    for (const o of outcomes) this.claimed.delete(o.id);
  }

  /** How the outcomes of claimed message `id` go, `commits` group commits so far (an unknown id: not recent, and written by the next claim). */
  judge(id: string, outcomes: readonly RecipientOutcome[], commits: number): ClaimVerdict {
    const claim = this.claimed.get(id);
    if (claim === undefined) return { recent: false, requeues: true };
    return {
      recent: commits - claim.commits <= this.recentCommits,
      // Recipients left open and none deferred: the message goes back due at once (outcomes.ts).
      requeues: outcomes.length < claim.open && !outcomes.some((o) => o.result === "deferred"),
    };
  }
}

function openRecipients(m: QueuedMessage): number {
  let n = 0;
  for (const r of m.recipients) if (r.state === "queued" || r.state === "deferred") n++;
  return n;
}
