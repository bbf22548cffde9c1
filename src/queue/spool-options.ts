/** The spool's options and its counters (spool.ts). */
import type { SpoolKeyring } from "./keyring.ts";
import type { Logger } from "pino";

export interface SpoolOptions {
  /** Wardmail's data directory; the file is `<dataDir>/spool/shard-<shard>.db`. */
  readonly dataDir: string;
  readonly shard: number;
  readonly logger: Logger;
  /** Most messages in one group commit (default 256). */
  readonly maxBatch?: number;
  /** A batch whose contents reach this many bytes is committed at once (default 32 MiB). */
  readonly maxBatchBytes?: number;
  /** Content bytes kept in memory for the delivery agent (default 4 MiB; config limits.max_handoff_bytes). */
  readonly handoffMaxBytes?: number;
  /** SQLite busy timeout in ms (default 5000). */
  readonly busyTimeoutMs?: number;
  /** First retry delay after a deferral (default 60 s), doubling per attempt... */
  readonly retryBaseMs?: number;
  /** ...up to this (default 1 h). */
  readonly retryMaxMs?: number;
  /** Each delay is shortened by a random fraction up to this (default 0.1). */
  readonly retryJitter?: number;
  /** A recipient still deferred this long after the message arrived fails (default 5 days, RFC 5321 §4.5.4.1). */
  readonly expireAfterMs?: number;
  /** How long delivery outcomes wait to be written together (default OUTCOME_DELAY_MS, spool.ts); tests lengthen it. */
  readonly outcomeDelayMs?: number;
  /** Seal new records at rest (default true; config spool.encrypt). */
  readonly encrypt?: boolean;
  /** The keyring (default: `<dataDir>/spool.keys`, created when missing and encrypt is on). */
  readonly keyring?: SpoolKeyring;
}

export interface SpoolStats {
  readonly shard: number;
  readonly queued: number;
  readonly active: number;
  readonly deferred: number;
  readonly held: number;
  readonly damaged: number;
  /** Enqueued but not yet committed. */
  readonly pending: number;
  /** Group commits of enqueued messages that succeeded. */
  readonly commits: number;
  /** Messages made durable by those commits. */
  readonly committedMessages: number;
  /** Group commits that failed (their messages were rejected). */
  readonly failedCommits: number;
  /** Messages done (every recipient delivered or failed) since open. */
  readonly done: number;
}
