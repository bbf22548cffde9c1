/**
 * The spool writer for one shard: the durable queue one worker process owns.
 *
 * Contract with the SMTP side: `enqueue(msg)` resolves with the queue id only
 * after the envelope and content are committed and fsynced; only then may the
 * server send 250. Enqueues are group committed: the first pending message
 * schedules a flush on setImmediate (or a flush runs at once when `maxBatch`
 * are pending), all pending messages go into ONE transaction, and every
 * promise of the batch resolves after the commit is on disk, or rejects
 * together if anything in it failed (the server then answers 451). Each
 * record is sealed with a checksum (record.ts).
 *
 * How the commit reaches the disk without blocking the event loop: SQLite
 * runs in WAL mode with synchronous=NORMAL, so COMMIT only writes the frames
 * to the -wal file; the spool then calls fdatasync() on that file in the
 * libuv thread pool and resolves the batch when it returns. That is the same
 * fsync synchronous=FULL would do inside COMMIT (SQLite itself still syncs
 * the WAL before a checkpoint and the WAL header when it restarts the log), but
 * the SMTP sessions keep running meanwhile, and every commit made while one
 * fdatasync runs is covered by the next one: a second level of group commit.
 * Delivery outcomes (they need no fdatasync) are written together: with a
 * commit of messages once OUTCOME_GROUP wait, or when every one waiting is
 * of a message handed over within the last OUTCOME_RECENT_COMMITS group
 * commits (its rows are in the leaves that commit writes anyway), else
 * OUTCOME_DELAY_MS after the first of them (and, when an fdatasync runs
 * then, when it returns), or by a `claimDue` that finds messages due; not
 * with every group commit of messages: the leaves holding the oldest rows
 * are rewritten once per group of outcomes. A `claimDue` that finds
 * nothing due (the queue manager asks whenever no fresh message waits in
 * memory) answers from the index and leaves the outcomes waiting (unless
 * one of them puts its message back due at once: recipients left open, none
 * deferred; then it writes them and claims that message again): at one
 * message per connection that claim was a transaction of its own for every
 * group commit, about ten WAL frames each (docs/benchmarks.md).
 *
 * Delivery side: `claimDue` moves due messages to `active` and returns them
 * checked (damaged ones are moved aside, never returned); `recordOutcome`
 * sets per-recipient results, so a retry never re-delivers a delivered
 * recipient. Outcomes are batched (see above, and outcome-queue.ts); claims and
 * outcome commits use synchronous=NORMAL, since losing them on power
 * failure only means a message is tried again (at-least-once delivery) and
 * the next durable commit makes them durable anyway. When every recipient is
 * final the message is done and its row and content are deleted.
 *
 * At rest (spool.encrypt, on by default): each record is sealed with the
 * current key of the keyring (keyring.ts) before it reaches SQLite: envelope
 * and received info as one sealed field, the content as another, and every
 * delivery error written later; the recipients rows carry no address. So no
 * plaintext of a message is ever in the database file, its WAL or freed
 * pages. With encryption off, records are written in the plaintext format.
 *
 * On open, whatever was `active` (in flight when the process died) goes back
 * to `queued`, due now. Design rule: one writer per shard file; the admin
 * side (store.ts) may change the same file concurrently.
 *
 * Views (composition over one shard database, store.ts ShardDatabase): the
 * Spool owns the file; what it hands out is `writer` (enqueue,
 * recordOutcome: the sink and the queue manager), `scheduler` (claimDue,
 * takeFresh, handoff, onCommitted: the queue manager) and `admin` (a
 * ShardStore: list, show, hold, release, retry, delete). Holding the writer
 * or the scheduler does not let one delete or release a message.
 *
 * Parts in their own files: the record as stored (pending.ts: checking,
 * sealing, the columns), the in-memory handoff and its bounds (handoff.ts),
 * the outcomes with retry backoff and expiry (outcomes.ts), and the outcomes
 * waiting for a transaction and when they are due (outcome-queue.ts).
 */
import { EventEmitter } from "node:events";
import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";
import type { StatementSync } from "node:sqlite";
import type { Logger } from "pino";
import type { IncomingMessage } from "./types.ts";
import { checkIncoming } from "./record.ts";
import { SpoolKeyring } from "./keyring.ts";
import { sealPlaintextRecords } from "./migrate.ts";
import { routeOldRecords, type RecipientRouter } from "./route-old.ts";
import { openShardDb, shardPath } from "./db.ts";
import { newQueueId, shardOfId } from "./ids.ts";
import { DamagedRecordError } from "./record.ts";
import { ShardDatabase, ShardStore } from "./store.ts";
import { schedulerView, writerView, type SpoolScheduler, type SpoolWriter } from "./views.ts";
import { OutcomeWriter, type RecipientOutcome } from "./outcomes.ts";
import { OutcomeQueue } from "./outcome-queue.ts";
import { Claims } from "./claims.ts";
import { Handoff, HANDOFF_LEASE_MS, ownedContent } from "./handoff.ts";
import { freshEntry, prepareRecord, type PendingMessage, type PreparedMessage } from "./pending.ts";

export type { SpoolScheduler, SpoolWriter } from "./views.ts";
export type { RecipientOutcome } from "./outcomes.ts";
import type { OldestByState, QueuedMessage } from "./store.ts";
import type { SpoolOptions, SpoolStats } from "./spool-options.ts";
export type { SpoolOptions, SpoolStats } from "./spool-options.ts";

export type ClaimedMessage = QueuedMessage;

/** Delivery outcomes are written together this long after the first of them (src/limits/fixed.ts: spool_outcome_delay)... */
export const OUTCOME_DELAY_MS = 20;
/** ...and are written at once when this many wait (src/limits/fixed.ts: spool_outcome_batch)... */
export const OUTCOME_BATCH = 256;
/** ...and go with a commit of messages when at least this many wait (src/limits/fixed.ts: spool_outcome_group)... */
export const OUTCOME_GROUP = 16;
/** ...or when every one waiting is of a message handed over within this many group commits (src/limits/fixed.ts: spool_outcome_recent). */
export const OUTCOME_RECENT_COMMITS = 4;
export class Spool {
  readonly shard: number;
  readonly path: string;
  /** Enqueue and record outcomes; nothing else. */
  readonly writer: SpoolWriter;
  /** Claim due and fresh messages; nothing else. */
  readonly scheduler: SpoolScheduler;
  /** The operator's view of this shard (list, show, hold, release, retry, delete). */
  readonly admin: ShardStore;
  private readonly store: ShardDatabase;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private readonly outcomeWriter: OutcomeWriter;
  private readonly encrypt: boolean;
  private readonly events = new EventEmitter();
  private readonly w: {
    insertMessage: StatementSync;
    insertContent: StatementSync;
    holdNew: StatementSync;
    insertRecipient: StatementSync;
    due: StatementSync;
    claim: StatementSync;
    nextDue: StatementSync;
  };
  private pending: PendingMessage[] = [];
  private pendingBytes = 0;
  /** Claimed and not yet recorded (claims.ts): never claimed twice; when and how their outcomes are written. */
  private readonly claimed = new Claims(OUTCOME_RECENT_COMMITS);
  /** Delivery outcomes waiting for a transaction, and whether they are due (outcome-queue.ts). */
  private readonly outcomes: OutcomeQueue;
  private flushScheduled = false;
  /** A scheduled flush of due outcomes alone found an fdatasync running: it runs when that returns. */
  private flushAfterSync = false;
  /** Durable messages waiting for the delivery agent (see takeFresh). */
  private readonly handoff: Handoff;
  /** Committed to the WAL, waiting for the fdatasync that makes them durable. */
  private awaitingSync: PendingMessage[] = [];
  private syncing = false;
  /** Read-only descriptor of the -wal file, for fdatasync (opened after the first commit). */
  private walFd: number | undefined;
  private counters = { commits: 0, committedMessages: 0, failedCommits: 0, done: 0 };

  private constructor(opts: SpoolOptions) {
    const path = shardPath(opts.dataDir, opts.shard);
    const db = openShardDb(path, { create: true, busyTimeoutMs: opts.busyTimeoutMs });
    const encrypt = opts.encrypt ?? true;
    let ring: SpoolKeyring | undefined;
    try {
      ring = opts.keyring ?? (encrypt ? SpoolKeyring.open(opts.dataDir, { create: true }) : undefined);
    } catch (err) {
      db.close();
      throw err;
    }
    this.store = new ShardDatabase(db, opts.shard, path, opts.logger, ring);
    this.shard = opts.shard;
    this.path = path;
    this.admin = new ShardStore(this.store, false);
    this.writer = writerView(this);
    this.scheduler = schedulerView(this);
    this.encrypt = encrypt;
    this.outcomes = new OutcomeQueue({
      delayMs: Math.max(0, opts.outcomeDelayMs ?? OUTCOME_DELAY_MS),
      batch: OUTCOME_BATCH,
      group: OUTCOME_GROUP,
      onDue: () => this.scheduleFlush(),
      onRetry: () => this.flush(),
    });
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? 32 * 1024 * 1024);
    this.handoff = new Handoff(opts.handoffMaxBytes);
    this.outcomeWriter = new OutcomeWriter(this.store, {
      retryBaseMs: opts.retryBaseMs ?? 60_000,
      retryMaxMs: opts.retryMaxMs ?? 3_600_000,
      retryJitter: Math.min(Math.max(opts.retryJitter ?? 0.1, 0), 1),
      expireAfterMs: opts.expireAfterMs ?? 5 * 24 * 3_600_000,
      encrypt,
    });
    const p = (s: string): StatementSync => db.prepare(s);
    this.w = {
      insertMessage: p(`INSERT INTO messages (id, version, state, envelope, received, size, created_at, next_attempt_at,
                          attempts, last_error, checksum) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, 0, NULL, ?)`),
      insertContent: p("INSERT INTO contents (message_id, content) VALUES (?, ?)"),
      holdNew: p("UPDATE messages SET state = 'held' WHERE id = ?"),
      insertRecipient: p("INSERT INTO recipients (message_id, idx, address, dsn, state, attempts) VALUES (?, ?, ?, ?, 'queued', 0)"),
      // Pick ids by the partial index first, then join only their contents.
      due: p(`SELECT m.*, c.content FROM (
                SELECT * FROM messages INDEXED BY messages_due
                WHERE state IN ('queued', 'deferred') AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) m
              LEFT JOIN contents c ON c.message_id = m.id ORDER BY m.next_attempt_at`),
      claim: p("UPDATE messages SET state = 'active' WHERE id = ?"),
      nextDue: p("SELECT min(next_attempt_at) AS t FROM messages INDEXED BY messages_due WHERE state IN ('queued', 'deferred')"),
    };
  }

  private get db(): ShardDatabase["db"] {
    return this.store.db;
  }
  private get log(): Logger {
    return this.store.log;
  }
  private get keyring(): SpoolKeyring {
    return this.store.keyring;
  }
  private transaction<T>(fn: () => T, durable = true): T {
    return this.store.transaction(fn, durable);
  }

  get isClosed(): boolean {
    return this.store.isClosed;
  }

  /** Opens (creating when missing) the shard and puts in-flight messages back in the queue. */
  static open(opts: SpoolOptions): Spool {
    const spool = new Spool(opts);
    try {
      spool.recover();
      if (spool.encrypt) spool.sealOldRecords();
    } catch (err) {
      spool.close();
      throw err;
    }
    return spool;
  }

  private recover(now = Date.now()): void {
    const n = this.transaction(
      () => {
        // Handed-off messages were still 'queued' with a lease: due now too.
        this.db.prepare("UPDATE messages SET next_attempt_at = ? WHERE state = 'queued' AND next_attempt_at > ?").run(now, now);
        return Number(this.db.prepare("UPDATE messages SET state = 'queued', next_attempt_at = ? WHERE state = 'active'").run(now).changes);
      },
    );
    const counts = this.store.counts();
    this.log.info({ recovered: n, queued: counts.queued, deferred: counts.deferred, held: counts.held, path: this.path,
      encrypt: this.encrypt, ...(this.encrypt ? { keyId: this.keyring.currentKeyId } : {}) }, "spool opened");
  }

  /** Plaintext records (an older Wardmail, or encryption off before) are sealed in place (migrate.ts). */
  private sealOldRecords(): void {
    const { sealed, damaged } = sealPlaintextRecords(this.db, this.keyring, {
      verify: (row) => void this.store.verifyRow(row),
      moveAside: (id, reason) => void this.store.moveAside(id, reason),
      transaction: (fn) => this.transaction(fn),
    });
    if (sealed + damaged > 0) this.log.info({ sealed, damaged, path: this.path }, "plaintext spool records sealed");
    this.store.acceptPlaintext = false;
  }

  /**
   * Records queued before routes were stored (an older Wardmail) get theirs,
   * once, from the sink's router (route-old.ts); the server calls this before
   * its queue manager starts. Until then such recipients are deferred.
   */
  routeOldRecords(router: RecipientRouter): { routed: number; damaged: number } {
    const { routed, damaged } = routeOldRecords(this.db, router, {
      verify: (row) => this.store.verifyRow(row),
      moveAside: (id, reason) => void this.store.moveAside(id, reason),
      transaction: (fn) => this.transaction(fn),
      keyring: () => this.keyring,
    });
    if (routed + damaged > 0) this.log.info({ routed, damaged, path: this.path }, "older spool records routed");
    return { routed, damaged };
  }

  /**
   * Queues a message. Resolves with its queue id once it is durable; rejects
   * when the message is malformed, the spool is closed, or its batch's commit
   * failed. The content Buffer must not be changed afterwards.
   * @param id a queue id from `newQueueId(shard)` when the caller needs it
   *   before the commit (for the Received header); a fresh one otherwise.
   */
  enqueue(msg: IncomingMessage, id?: string): Promise<string> {
    if (this.isClosed) return Promise.reject(new Error("spool is closed"));
    let prepared: PreparedMessage;
    try {
      const json = checkIncoming(msg.envelope, msg.received, msg.content);
      const createdAt = Date.now();
      // Ids come from newQueueId(), unique by construction (time, shard, counter);
      // only the shard is checked here, so no query runs per message.
      if (id !== undefined && shardOfId(id) !== this.shard) throw new Error(`queue id ${id} is not of shard ${this.shard}`);
      const queueId = id ?? newQueueId(this.shard, createdAt);
      const size = msg.content.byteLength;
      const handoff = msg.hold !== true && this.handoff.fits(size);
      // Kept in memory until delivered: it must not pin a shared pool slab (handoff.ts).
      if (handoff) msg = { ...msg, content: ownedContent(msg.content) };
      prepared = prepareRecord(msg, json, {
        id: queueId,
        createdAt,
        nextAttemptAt: handoff ? createdAt + HANDOFF_LEASE_MS : createdAt,
        handoff,
        keyring: this.encrypt ? this.keyring : undefined,
      });
      // Counted only once sealing succeeded: a message that never joins a batch holds no handoff place.
      if (handoff) this.handoff.reserve(size);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const promise = new Promise<string>((resolve, reject) => {
      this.pending.push({ ...prepared, resolve, reject });
    });
    this.pendingBytes += msg.content.byteLength;
    if (this.pending.length >= this.maxBatch || this.pendingBytes >= this.maxBatchBytes) this.commit(this.outcomes.isDue);
    else this.scheduleFlush();
    return promise;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      // Delivery outcomes alone (when due) wait while an fdatasync of the WAL
      // runs: they go with the next messages' commit, or when it returns
      // (they need no fdatasync). Messages are committed at once, so that their commit
      // overlaps the running fdatasync.
      if (this.syncing && this.pending.length === 0) this.flushAfterSync = true;
      else this.commit(this.outcomes.isDue);
    });
  }

  /** Commits everything pending now (enqueued messages and outcomes). Normally automatic. */
  flush(): void {
    this.commit(true);
  }

  /** Commits the pending messages, and the pending outcomes with them when `withOutcomes`. */
  private commit(withOutcomes: boolean): void {
    if (this.isClosed) return;
    const batch = this.pending;
    // Enough outcomes ride along with messages, so that no transaction of their own is needed.
    const takeOutcomes = withOutcomes || this.outcomes.ridesWith(batch.length);
    if (batch.length === 0 && (!takeOutcomes || this.outcomes.length === 0)) return;
    this.pending = [];
    this.pendingBytes = 0;
    const outcomes = takeOutcomes ? this.outcomes.take() : [];
    let done = 0;
    try {
      done = this.transaction(() => {
        const d = this.outcomeWriter.apply(outcomes);
        for (const m of batch) {
          this.w.insertMessage.run(m.id, m.version, m.envelopeCol, m.receivedCol, m.content.byteLength, m.createdAt,
            m.nextAttemptAt, m.checksum);
          this.w.insertContent.run(m.id, m.contentCol);
          if (m.msg.hold === true) this.w.holdNew.run(m.id);
          m.recipients.forEach((r, idx) => this.w.insertRecipient.run(m.id, idx, r.address, r.dsnJson));
        }
        return d;
      }, false);
    } catch (err) {
      if (batch.length > 0) this.counters.failedCommits++;
      this.log.error({ err, messages: batch.length, outcomes: outcomes.length }, "spool commit failed");
      const e = new Error("spool commit failed", { cause: err });
      // Their handoff places are free again (a full disk must not leave the handoff used up).
      this.dropHandoffs(batch);
      for (const m of batch) m.reject(e);
      this.outcomes.requeue(outcomes);
      return;
    }
    this.counters.done += done;
    this.claimed.forget(outcomes);
    if (batch.length > 0) {
      this.counters.commits++;
      this.awaitingSync.push(...batch);
      this.startSync();
    }
  }

  /** Starts an fdatasync of the WAL for everything committed so far, unless one is running. */
  private startSync(): void {
    if (this.syncing || this.awaitingSync.length === 0) return;
    const batch = this.awaitingSync;
    this.awaitingSync = [];
    let fd: number;
    try {
      fd = this.walFd ??= openSync(`${this.path}-wal`, "r");
    } catch (err) {
      this.syncFailed(batch, err);
      return;
    }
    this.syncing = true;
    fdatasync(fd, (err) => {
      this.syncing = false;
      if (err) this.syncFailed(batch, err);
      else this.synced(batch);
      if (this.isClosed) this.closeWal();
      else {
        if (this.flushAfterSync) {
          this.flushAfterSync = false;
          this.commit(this.outcomes.isDue); // outcomes due (and messages, when a maxBatch flush left some)
        }
        this.startSync();
      }
    });
  }

  private closeWal(): void {
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }

  private synced(batch: readonly PendingMessage[]): void {
    this.counters.committedMessages += batch.length;
    for (const m of batch) if (m.handoff) this.handoff.durable(freshEntry(m, this.shard), !this.isClosed);
    for (const m of batch) m.resolve(m.id);
    this.events.emit("committed", batch.length);
  }

  /**
   * The commit is in the database but may not be on disk: the client gets
   * 451 and will send again; the message may then be delivered twice, which
   * is better than a 250 for mail that a power cut could lose.
   */
  private syncFailed(batch: readonly PendingMessage[], err: unknown): void {
    this.dropHandoffs(batch);
    this.counters.failedCommits++;
    this.log.error({ err, messages: batch.length }, "spool fsync failed");
    const e = new Error("spool fsync failed", { cause: err });
    for (const m of batch) m.reject(e);
  }

  /** Handoff messages of a batch that will never be durable: no longer counted. */
  private dropHandoffs(batch: readonly PendingMessage[]): void {
    for (const m of batch) if (m.handoff) this.handoff.release(m.content.byteLength);
  }

  /** Calls cb (after the promises resolved) whenever newly enqueued messages were committed. Returns an unsubscribe function. */
  onCommitted(cb: (count: number) => void): () => void {
    this.events.on("committed", cb);
    return () => this.events.off("committed", cb);
  }

  /**
   * The delivery agent calls this once: from then on, freshly enqueued
   * messages are handed to it in memory (takeFresh) as soon as they are
   * durable, instead of being claimed back from the database.
   */
  enableHandoff(): void {
    this.handoff.enable();
  }

  /**
   * Up to `limit` messages that just became durable, taken over in memory: no
   * claim transaction and no read-back of the content. In the database they
   * stay `queued` with their first attempt leased HANDOFF_LEASE_MS ahead, so
   * claimDue does not pick them up meanwhile; after a crash, recovery makes
   * them due at once. They count as claimed until their outcome is recorded.
   */
  takeFresh(limit: number, now = Date.now()): ClaimedMessage[] {
    const out = this.handoff.take(limit, now, this.claimed);
    for (const m of out) this.claimed.fresh(m, this.counters.commits);
    return out;
  }

  /**
   * Claims up to `limit` messages due at `now`: they become `active` and are
   * returned with their content, checked. Damaged records are moved aside and
   * skipped. Pending outcomes are written in the same transaction. When
   * nothing is due the answer comes from the index, without a transaction:
   * the pending outcomes wait for a commit of messages or their delay
   * (unless one puts its message back due at once: then they are written
   * and that message is claimed).
   */
  claimDue(now: number, limit: number): ClaimedMessage[] {
    if (this.isClosed) throw new Error("spool is closed");
    const next = this.nextDueAt();
    // An outcome waiting that puts its message back due at once (requeuesNow) is written here, so that message is claimed again now.
    if ((next === undefined || next > now) && !this.outcomes.requeuesNow) return [];
    const outcomes = this.outcomes.take();
    let done = 0;
    let claimed: ClaimedMessage[];
    try {
      claimed = this.transaction(() => {
        done = this.outcomeWriter.apply(outcomes);
        const finished = new Set(outcomes.map((o) => o.id));
        const out: ClaimedMessage[] = [];
        for (const row of this.w.due.all(now, limit)) {
          const id = String(row.id);
          if (this.claimed.has(id) && !finished.has(id)) continue;
          let msg: ClaimedMessage;
          try {
            msg = this.store.verifyRow(row);
          } catch (err) {
            if (!(err instanceof DamagedRecordError)) throw err;
            this.store.moveAside(id, err.message, now);
            continue;
          }
          this.w.claim.run(id);
          out.push({ ...msg, state: "active" });
        }
        return out;
      }, false);
    } catch (err) {
      this.outcomes.requeue(outcomes);
      throw err;
    }
    this.counters.done += done;
    this.claimed.forget(outcomes);
    for (const m of claimed) this.claimed.fromDb(m);
    return claimed;
  }

  /**
   * Records what happened to the recipients of a claimed message. Delivered
   * and failed are final; a final recipient is never changed again. Deferred
   * recipients are retried with exponential backoff. A claimed message with
   * no outcomes (e.g. the agent stopped) goes back to the queue, due now.
   * Written with the next batch of outcomes (outcome-queue.ts), the
   * next claim that finds messages due, or `flush`; with the next commit of
   * messages when the message was handed over within the last
   * OUTCOME_RECENT_COMMITS group commits (its rows share that commit's leaves).
   */
  recordOutcome(id: string, outcomes: readonly RecipientOutcome[], now = Date.now()): void {
    if (this.isClosed) throw new Error("spool is closed");
    const { recent, requeues } = this.claimed.judge(id, outcomes, this.counters.commits);
    this.outcomes.add({ id, outcomes, at: now }, recent, requeues);
  }

  /** Retry delay after the n-th deferral (n >= 1), with jitter. */
  backoff(attempt: number): number {
    return this.outcomeWriter.backoff(attempt);
  }

  /** Re-reads the key file now (SIGHUP), when this spool has one; an unreadable file keeps the keys in memory. */
  refreshKeys(): void {
    if (!this.encrypt) return;
    const err = this.keyring.refresh(true);
    if (err) this.log.error({ err }, "spool key file not reloaded; the keys already read stay in use");
    else this.log.info({ keyId: this.keyring.currentKeyId }, "spool key file reloaded");
  }

  /** When the earliest queued or deferred message is due, or undefined when none is. */
  nextDueAt(): number | undefined {
    const t = this.w.nextDue.get()?.t;
    return typeof t === "number" ? t : undefined;
  }

  /** When the oldest queued, deferred and held message of this shard was accepted (index seeks, cheap at any queue size). */
  oldestCreatedAt(): OldestByState {
    return this.store.oldestCreatedAt();
  }

  stats(): SpoolStats {
    const c = this.store.counts();
    return {
      shard: this.shard,
      queued: c.queued,
      active: c.active,
      deferred: c.deferred,
      held: c.held,
      damaged: this.store.damagedCount(),
      pending: this.pending.length,
      ...this.counters,
    };
  }

  /** Commits what is pending, then closes the file. Later enqueues reject. */
  close(): void {
    if (this.isClosed) return;
    this.outcomes.stop();
    this.flush();
    for (const m of this.pending) m.reject(new Error("spool is closed"));
    this.pending = [];
    this.handoff.clear(); // still queued in the database: due at the next open
    this.pendingBytes = 0;
    // Whatever is committed but not yet synced is synced now, before closing.
    if (this.awaitingSync.length > 0 || this.syncing) {
      const batch = this.awaitingSync;
      this.awaitingSync = [];
      try {
        if (this.walFd !== undefined) fdatasyncSync(this.walFd);
        this.synced(batch);
      } catch (err) {
        this.syncFailed(batch, err);
      }
    }
    // An fdatasync still running closes the descriptor when it returns.
    if (!this.syncing) this.closeWal();
    this.events.removeAllListeners();
    this.store.close();
  }
}
