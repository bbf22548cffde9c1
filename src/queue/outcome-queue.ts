/**
 * The delivery outcomes of a spool shard (spool.ts) waiting for a
 * transaction, and when they are due: the queue manager's recordOutcome
 * adds them here; the spool's commit or claim takes them all (take) and
 * hands them to the OutcomeWriter (outcomes.ts) inside its transaction.
 *
 * Delivery outcomes are written `delayMs` (OUTCOME_DELAY_MS) after the
 * first of them, or as soon as `batch` (OUTCOME_BATCH) wait (or by a
 * claim that finds messages due, or an explicit flush), in one transaction,
 * with whatever messages are pending then; a commit of messages in between
 * takes them along once `group` (OUTCOME_GROUP) wait, or when every one
 * waiting is `recent` (ridesWith). A transaction rewrites the
 * leaves it touches (the oldest rows' leaves of each table and index, the
 * freelist) whatever it holds: one per group of outcomes writes them once
 * for many messages instead of once for every group commit of messages (a
 * few messages each), and leaves most of those commits (a client waits for
 * each) small. Outcomes of recent messages (handed over from a group commit
 * only a few commits ago: the spool says so) are the exception: their rows
 * sit in the very leaves (table ends, index ends, freelist, header) that the
 * next commit of messages writes anyway, so riding along costs that commit
 * a frame or two, where a transaction of their own (or a claim's) wrote
 * about ten. Losing outcomes in a crash only means the messages are
 * delivered again (at-least-once), as for any outcome not yet committed.
 *
 * Bounded: `batch` waiting make them due at once; outcomes of a failed
 * transaction are kept (requeue) and tried again after RETRY_MS.
 */
import type { PendingOutcome } from "./outcomes.ts";

/** Outcomes whose transaction failed are tried again this long after. */
const RETRY_MS = 200;

export interface OutcomeQueueOptions {
  /** Outcomes are due this long after the first of them (spool.ts OUTCOME_DELAY_MS, or SpoolOptions.outcomeDelayMs)... */
  readonly delayMs: number;
  /** ...and at once when this many wait (OUTCOME_BATCH)... */
  readonly batch: number;
  /** ...and go with a commit of messages when at least this many wait (OUTCOME_GROUP). */
  readonly group: number;
  /** They became due: the spool schedules a flush (they go with its next commit). */
  readonly onDue: () => void;
  /** Outcomes of a failed transaction wait: the spool flushes again. */
  readonly onRetry: () => void;
}

export class OutcomeQueue {
  private readonly opts: OutcomeQueueOptions;
  private pending: PendingOutcome[] = [];
  /** How many of `pending` are not recent (add): while any is, a commit of messages takes them only once `group` wait. */
  private older = 0;
  /** How many of `pending` put their message back in the queue due at once (add): a claim must write them, not wait. */
  private requeueing = 0;
  /** Makes the pending outcomes due `delayMs` after the first (add). */
  private timer: NodeJS.Timeout | undefined;
  /** The pending outcomes go with the next commit (their delay passed, or `batch` wait). */
  private due = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(opts: OutcomeQueueOptions) {
    this.opts = opts;
  }

  /** Outcomes waiting. */
  get length(): number {
    return this.pending.length;
  }

  /** Whether the waiting outcomes must go with the next commit. */
  get isDue(): boolean {
    return this.due;
  }

  /** Whether a waiting outcome puts its message back in the queue due at once (a claim then writes them, though nothing else is due). */
  get requeuesNow(): boolean {
    return this.requeueing > 0;
  }

  /** Whether a commit of `messages` messages takes the waiting outcomes along (enough of them wait, or every one is recent). */
  ridesWith(messages: number): boolean {
    return messages > 0 && this.pending.length > 0 && (this.older === 0 || this.pending.length >= this.opts.group);
  }

  /**
   * One claimed message's outcomes: due after `delayMs`, or at once when
   * `batch` wait. `recent`: the message was committed only a few group
   * commits ago (its rows are in the leaves a commit of messages writes).
   * `requeues`: written, it leaves the message due at once (recipients
   * left open, none deferred).
   */
  add(o: PendingOutcome, recent = false, requeues = false): void {
    this.pending.push(o);
    if (!recent) this.older++;
    if (requeues) this.requeueing++;
    if (this.pending.length >= this.opts.batch) {
      this.due = true;
      this.opts.onDue();
      return;
    }
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending.length === 0) return;
      this.due = true;
      this.opts.onDue();
    }, this.opts.delayMs);
    this.timer.unref();
  }

  /** Takes every pending outcome for a transaction; none is due any more. */
  take(): PendingOutcome[] {
    const outcomes = this.pending;
    this.pending = [];
    this.older = 0;
    this.requeueing = 0;
    this.due = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    return outcomes;
  }

  /** Outcomes whose transaction failed are kept and tried again shortly. */
  requeue(outcomes: PendingOutcome[]): void {
    if (outcomes.length === 0) return;
    this.pending = outcomes.concat(this.pending);
    this.older += outcomes.length; // no longer known to be recent
    this.requeueing += outcomes.length; // nor known not to requeue their message
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.opts.onRetry();
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** No timer left (the spool closes; what is pending is taken by its last flush). */
  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
