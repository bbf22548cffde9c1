/**
 * The views a Spool (spool.ts) hands out over its shard: the writer
 * (enqueue, recordOutcome) and the scheduler (claims, handoff). Frozen
 * objects with only those functions: whoever holds one cannot reach the
 * Spool's other side, nor the admin view (hold, release, delete).
 */
import type { Spool, ClaimedMessage, RecipientOutcome } from "./spool.ts";
import type { IncomingMessage } from "./types.ts";

/** The writer view of a shard: what the sink (and the queue manager, for outcomes) may do. */
export interface SpoolWriter {
  readonly shard: number;
  readonly isClosed: boolean;
  /** See Spool.enqueue. */
  enqueue(msg: IncomingMessage, id?: string): Promise<string>;
  /** See Spool.recordOutcome. */
  recordOutcome(id: string, outcomes: readonly RecipientOutcome[], now?: number): void;
  /** Commits whatever is pending now. */
  flush(): void;
}

/** The scheduler view of a shard: what the queue manager claims with. */
export interface SpoolScheduler {
  readonly shard: number;
  readonly isClosed: boolean;
  enableHandoff(): void;
  onCommitted(cb: (count: number) => void): () => void;
  takeFresh(limit: number, now?: number): ClaimedMessage[];
  claimDue(now: number, limit: number): ClaimedMessage[];
  nextDueAt(): number | undefined;
  backoff(attempt: number): number;
}

export function writerView(spool: Spool): SpoolWriter {
  return Object.freeze({
    shard: spool.shard,
    get isClosed(): boolean {
      return spool.isClosed;
    },
    enqueue: (msg: IncomingMessage, id?: string) => spool.enqueue(msg, id),
    recordOutcome: (id: string, outcomes: readonly RecipientOutcome[], now?: number) => spool.recordOutcome(id, outcomes, now),
    flush: () => spool.flush(),
  });
}

export function schedulerView(spool: Spool): SpoolScheduler {
  return Object.freeze({
    shard: spool.shard,
    get isClosed(): boolean {
      return spool.isClosed;
    },
    enableHandoff: () => spool.enableHandoff(),
    onCommitted: (cb: (count: number) => void) => spool.onCommitted(cb),
    takeFresh: (limit: number, now?: number) => spool.takeFresh(limit, now),
    claimDue: (now: number, limit: number) => spool.claimDue(now, limit),
    nextDueAt: () => spool.nextDueAt(),
    backoff: (attempt: number) => spool.backoff(attempt),
  });
}
