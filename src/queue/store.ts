/**
 * One spool shard as a store of records: reading them back (with every check
 * of record.ts) and moving damaged ones aside (`ShardDatabase`, internal to
 * src/queue), and the admin view over it (`ShardStore`: list, show, hold,
 * release, retry, delete).
 *
 * The shard database is shared by composition: the Spool (spool.ts) owns one
 * and makes its writer view (enqueue, recordOutcome), its scheduler view
 * (claimDue, takeFresh, handoff) and its admin view (a ShardStore) over it,
 * so code holding the writer or the scheduler cannot delete. `ShardStore` is
 * also what `wardmail queue ...` uses, through QueueAdmin, on a file of its
 * own; it is safe while the server runs, because every change is one short
 * SQLite transaction and SQLite serialises it with the server's writer.
 * Nothing read from the file is
 * trusted: a damaged record is moved to the `damaged` table with its reason,
 * logged, and never returned as a message.
 *
 * Records are read in both formats (record.ts): version 1 in plaintext (an
 * older Wardmail, or spool.encrypt = false) and version 2 sealed with the
 * spool keyring (keyring.ts). A sealed field that fails to open (changed,
 * moved from another record, unknown key) makes the record damaged. The key
 * file is read when the first sealed field is met; a sealed record without a
 * key file is an error (not damage): nothing is moved aside until the key is
 * back.
 */
import type { DatabaseSync, SQLOutputValue, StatementSync } from "node:sqlite";
import { basename, dirname } from "node:path";
import pino from "pino";
import type { Logger } from "pino";
import type { MessageState, QueuedRecipient, QueueEntry, RecipientState } from "./types.ts";
import { DamagedRecordError, parseEnvelope, parseReceived, RECORD_VERSION, recordChecksum, SEALED_RECORD_VERSION, unpackMeta } from "./record.ts";
import { SpoolKeyring } from "./keyring.ts";
import { openShardDb } from "./db.ts";
import { checkShard } from "./ids.ts";

/** A queue entry with its content, as returned by `get` and `claimDue`. */
export interface QueuedMessage extends QueueEntry {
  readonly content: Buffer;
}

/** A record that failed its checks and was moved aside. */
/** When the oldest message in each waiting state was accepted (ms since the epoch); undefined when the state has none. */
export interface OldestByState {
  readonly queued: number | undefined;
  readonly deferred: number | undefined;
  readonly held: number | undefined;
}

export interface DamagedEntry {
  readonly id: string;
  readonly detectedAt: number;
  readonly reason: string;
  readonly shard: number;
}

export interface StoreOptions {
  readonly logger?: Logger;
  readonly busyTimeoutMs?: number;
  /** The data directory's keyring (default: `<dataDir>/spool.keys`, read when first needed). */
  readonly keyring?: SpoolKeyring;
}

export const MESSAGE_STATES: readonly MessageState[] = ["queued", "active", "deferred", "held", "done", "failed"];
const RECIPIENT_STATES: readonly RecipientState[] = ["queued", "delivered", "deferred", "failed"];

type Row = Record<string, SQLOutputValue>;

const MOVE_ASIDE_SQL = `
INSERT INTO damaged (id, detected_at, reason, version, state, envelope, received, size, created_at,
                     attempts, last_error, checksum, recipients, content)
SELECT id, ?, ?, version, state, envelope, received, size, created_at, attempts, last_error, checksum,
  (SELECT group_concat(quote(idx) || ' ' || quote(address) || ' ' || quote(state) || ' ' ||
                       quote(attempts) || ' ' || quote(last_error), char(10))
     FROM recipients r WHERE r.message_id = m.id),
  (SELECT content FROM contents c WHERE c.message_id = m.id)
FROM messages m WHERE id = ?`;

function asInt(v: SQLOutputValue, what: string): number {
  if (typeof v === "number" && Number.isSafeInteger(v)) return v;
  throw new DamagedRecordError(`${what} is not an integer`);
}
function asText(v: SQLOutputValue, what: string): string {
  if (typeof v === "string") return v;
  throw new DamagedRecordError(`${what} is not text`);
}
function asBlob(v: SQLOutputValue, what: string): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new DamagedRecordError(`${what} is not a blob`);
}

/** Normalises an id typed by an operator. */
export function normaliseId(id: string): string {
  return id.trim().toLowerCase();
}

/**
 * One shard file: the checked reading of records, transactions, moving
 * damaged records aside. Internal to src/queue: the views (Spool's writer
 * and scheduler, ShardStore) are what other folders get.
 */
export class ShardDatabase {
  readonly shard: number;
  readonly path: string;
  readonly db: DatabaseSync;
  readonly log: Logger;
  private readonly sql: {
    getMessage: StatementSync;
    getRecipients: StatementSync;
    listMessages: StatementSync;
    listRecipients: StatementSync;
    moveAside: StatementSync;
    deleteRecipients: StatementSync;
    deleteContent: StatementSync;
    deleteMessage: StatementSync;
    exists: StatementSync;
    counts: StatementSync;
    oldest: StatementSync;
    damaged: StatementSync;
    damagedCount: StatementSync;
  };
  private durableMode = true;
  private closed = false;
  private ring: SpoolKeyring | undefined;
  /**
   * Whether verifyRow accepts plaintext (format 1) records. The writer turns
   * it off once it has sealed the old ones at open (encryption on): a
   * plaintext record found after that was not written by Wardmail.
   */
  acceptPlaintext = true;

  /** Use `ShardStore.openFile` or `Spool.open`. The file is `<dataDir>/spool/shard-<shard>.db`. */
  constructor(db: DatabaseSync, shard: number, path: string, logger: Logger, keyring?: SpoolKeyring) {
    checkShard(shard);
    this.db = db;
    this.shard = shard;
    this.path = path;
    this.log = logger.child({ shard });
    this.ring = keyring;
    const p = (s: string): StatementSync => db.prepare(s);
    this.sql = {
      getMessage: p(`SELECT m.*, c.content FROM messages m LEFT JOIN contents c ON c.message_id = m.id WHERE m.id = ?`),
      getRecipients: p("SELECT idx, address, state, attempts, last_error FROM recipients WHERE message_id = ? ORDER BY idx"),
      listMessages: p("SELECT id, version, state, envelope, received, size, created_at, next_attempt_at, attempts, last_error FROM messages ORDER BY id"),
      listRecipients: p("SELECT message_id, idx, address, state, attempts, last_error FROM recipients ORDER BY message_id, idx"),
      moveAside: p(MOVE_ASIDE_SQL),
      deleteRecipients: p("DELETE FROM recipients WHERE message_id = ?"),
      deleteContent: p("DELETE FROM contents WHERE message_id = ?"),
      deleteMessage: p("DELETE FROM messages WHERE id = ?"),
      exists: p("SELECT 1 AS x FROM messages WHERE id = ?"),
      counts: p("SELECT state, count(*) AS n FROM messages GROUP BY state"),
      // Three seeks in the (state, created_at) index, whatever the queue's size.
      oldest: p(
        "SELECT (SELECT min(created_at) FROM messages WHERE state = 'queued') AS queued," +
          " (SELECT min(created_at) FROM messages WHERE state = 'deferred') AS deferred," +
          " (SELECT min(created_at) FROM messages WHERE state = 'held') AS held",
      ),
      damaged: p("SELECT id, detected_at, reason FROM damaged ORDER BY detected_at, id"),
      damagedCount: p("SELECT count(*) AS n FROM damaged"),
    };
  }

  /**
   * Opens an existing shard file for administration (never creates one, never
   * recovers in-flight messages: that is the owning worker's job).
   * The shard number is taken from the file name `shard-<N>.db`.
   */
  static openFile(path: string, opts: StoreOptions = {}): ShardDatabase {
    const m = /^shard-(\d+)\.db$/.exec(basename(path));
    if (!m) throw new Error(`not a spool shard file name: ${path}`);
    const db = openShardDb(path, { create: false, busyTimeoutMs: opts.busyTimeoutMs });
    return new ShardDatabase(db, Number(m[1]), path, opts.logger ?? pino({ level: "silent" }), opts.keyring);
  }

  /** The keyring, read from the data directory on first use; throws (not as damage) when there is no key file. */
  get keyring(): SpoolKeyring {
    if (this.ring) return this.ring;
    const dataDir = dirname(dirname(this.path));
    const ring = SpoolKeyring.open(dataDir, { create: false });
    if (!ring) throw new Error(`the spool holds encrypted records but its key file ${dataDir}/spool.keys is missing; restore it`);
    return (this.ring = ring);
  }

  /** Envelope and received JSON texts of a message row, opened when sealed. */
  private metaOf(row: Row, id: string, version: number): { envelopeJson: string; receivedJson: string } {
    if (version === RECORD_VERSION) {
      return { envelopeJson: asText(row.envelope ?? null, "envelope"), receivedJson: asText(row.received ?? null, "received") };
    }
    if (version === SEALED_RECORD_VERSION) return unpackMeta(this.keyring.open("meta", id, asBlob(row.envelope ?? null, "envelope")));
    throw new DamagedRecordError(`unknown record format version ${version}`);
  }

  /** A last_error value: plaintext, or sealed (as `part` of record id). */
  private errorText(v: SQLOutputValue | undefined, id: string, part: string): string | undefined {
    if (typeof v === "string") return v;
    if (v instanceof Uint8Array) return this.keyring.open(part, id, v).toString("utf8");
    if (v === null || v === undefined) return undefined;
    throw new DamagedRecordError(`${part} is neither text nor sealed`);
  }

  /** Key ids named by any sealed field of this shard, the damaged table included. */
  keysInUse(): Set<number> {
    const used = new Set<number>();
    const add = (v: SQLOutputValue | undefined): void => {
      if (v instanceof Uint8Array && v.byteLength === 4) used.add(Buffer.from(v).readUInt32BE(0));
    };
    const queries = [
      "SELECT DISTINCT substr(envelope, 2, 4) AS k FROM messages WHERE version = 2 AND typeof(envelope) = 'blob'",
      "SELECT DISTINCT substr(c.content, 2, 4) AS k FROM contents c JOIN messages m ON m.id = c.message_id WHERE m.version = 2 AND typeof(c.content) = 'blob'",
      "SELECT DISTINCT substr(last_error, 2, 4) AS k FROM messages WHERE typeof(last_error) = 'blob'",
      "SELECT DISTINCT substr(last_error, 2, 4) AS k FROM recipients WHERE typeof(last_error) = 'blob'",
      "SELECT DISTINCT substr(envelope, 2, 4) AS k FROM damaged WHERE version = 2 AND typeof(envelope) = 'blob'",
      "SELECT DISTINCT substr(content, 2, 4) AS k FROM damaged WHERE version = 2 AND typeof(content) = 'blob'",
      "SELECT DISTINCT substr(last_error, 2, 4) AS k FROM damaged WHERE typeof(last_error) = 'blob'",
    ];
    for (const q of queries) for (const r of this.db.prepare(q).all()) add(r.k);
    // Recipient errors of damaged records are kept quoted in its text column: X'01<key id>...'.
    for (const r of this.db.prepare("SELECT recipients FROM damaged WHERE recipients LIKE '%X''01%'").all()) {
      for (const m of String(r.recipients).matchAll(/X'01([0-9A-F]{8})/g)) used.add(Number.parseInt(m[1]!, 16));
    }
    return used;
  }

  /**
   * Runs fn in one write transaction. `durable` false lowers synchronous to
   * NORMAL for this commit: it may be lost on power failure (never torn), and
   * becomes durable with the next durable commit.
   */
  transaction<T>(fn: () => T, durable = true): T {
    if (durable !== this.durableMode) {
      this.db.exec(durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
      this.durableMode = durable;
    }
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec("COMMIT");
      return result;
    } catch (err) {
      if (this.db.isTransaction) {
        try {
          this.db.exec("ROLLBACK");
        } catch (rollbackErr) {
          this.log.error({ err: rollbackErr }, "spool rollback failed");
        }
      }
      throw err;
    }
  }

  /**
   * Turns a full message row into a checked entry; throws DamagedRecordError.
   * Reads the recipients rows itself.
   */
  verifyRow(row: Row): QueuedMessage {
    const id = asText(row.id ?? null, "id");
    const version = asInt(row.version ?? null, "version");
    const { envelopeJson, receivedJson } = this.metaOf(row, id, version);
    if (row.content === null || row.content === undefined) throw new DamagedRecordError("content is missing");
    let content = asBlob(row.content, "content");
    if (version === SEALED_RECORD_VERSION) {
      content = this.keyring.open("content", id, content);
    } else {
      if (!this.acceptPlaintext) throw new DamagedRecordError("plaintext record in an encrypted spool (not written by this server)");
      const checksum = asBlob(row.checksum ?? null, "checksum");
      if (!recordChecksum(version, id, envelopeJson, receivedJson, content).equals(checksum)) {
        throw new DamagedRecordError("checksum mismatch");
      }
    }
    const size = asInt(row.size ?? null, "size");
    if (size !== content.byteLength) throw new DamagedRecordError("size does not match content");
    const rcpts = this.sql.getRecipients.all(id);
    return { ...this.entryFrom(row, envelopeJson, receivedJson, rcpts), content };
  }

  private entryFrom(row: Row, envelopeJson: string, receivedJson: string, rcptRows: readonly Row[]): QueueEntry {
    const id = asText(row.id ?? null, "id");
    // Sealed records keep the addresses only in the sealed envelope.
    const sealed = row.version === SEALED_RECORD_VERSION;
    const envelope = parseEnvelope(envelopeJson);
    const received = parseReceived(receivedJson);
    const state = asText(row.state ?? null, "state") as MessageState;
    if (!MESSAGE_STATES.includes(state)) throw new DamagedRecordError(`unknown message state ${JSON.stringify(state)}`);
    if (rcptRows.length !== envelope.recipients.length) {
      throw new DamagedRecordError(`recipient rows (${rcptRows.length}) do not match the envelope (${envelope.recipients.length})`);
    }
    const recipients: QueuedRecipient[] = rcptRows.map((r, i) => {
      const fromEnvelope = envelope.recipients[i]!;
      if (asInt(r.idx ?? null, "recipient idx") !== i || asText(r.address ?? null, "recipient address") !== (sealed ? "" : fromEnvelope.address)) {
        throw new DamagedRecordError(`recipient row ${i} does not match the envelope`);
      }
      const rstate = asText(r.state ?? null, "recipient state") as RecipientState;
      if (!RECIPIENT_STATES.includes(rstate)) throw new DamagedRecordError(`unknown recipient state ${JSON.stringify(rstate)}`);
      const lastError = this.errorText(r.last_error, id, `error:${i}`);
      return {
        index: i,
        address: fromEnvelope.address,
        dsn: fromEnvelope.dsn,
        ...(fromEnvelope.route !== undefined ? { route: fromEnvelope.route } : {}),
        state: rstate,
        attempts: asInt(r.attempts ?? null, "recipient attempts"),
        ...(typeof lastError === "string" ? { lastError } : {}),
      };
    });
    const lastError = this.errorText(row.last_error, id, "error");
    return {
      id,
      state,
      envelope,
      received,
      recipients,
      size: asInt(row.size ?? null, "size"),
      createdAt: asInt(row.created_at ?? null, "created_at"),
      nextAttemptAt: asInt(row.next_attempt_at ?? null, "next_attempt_at"),
      attempts: asInt(row.attempts ?? null, "attempts"),
      ...(typeof lastError === "string" ? { lastError } : {}),
      shard: this.shard,
    };
  }

  /**
   * Moves a record to the `damaged` table (content kept there for the
   * operator) and logs it. Runs inside the caller's transaction when there is
   * one, else in its own. Returns false when it could not be moved.
   */
  moveAside(id: string, reason: string, now = Date.now()): boolean {
    const move = (): void => {
      this.sql.moveAside.run(now, reason, id);
      this.deleteRows(id);
    };
    try {
      if (this.db.isTransaction) move();
      else this.transaction(move);
      this.log.error({ queueId: id, reason }, "damaged spool record moved aside");
      return true;
    } catch (err) {
      this.log.error({ queueId: id, reason, err }, "damaged spool record could not be moved aside");
      return false;
    }
  }

  /** True when a message with this id is in the queue. */
  has(id: string): boolean {
    return this.sql.exists.get(id) !== undefined;
  }

  /** Deletes a message's rows inside the caller's transaction. */
  deleteRows(id: string): boolean {
    this.sql.deleteRecipients.run(id);
    this.sql.deleteContent.run(id);
    return this.sql.deleteMessage.run(id).changes > 0;
  }

  /** Every message of this shard without content, oldest first. Damaged ones are moved aside and left out. */
  list(): QueueEntry[] {
    const rcpts = new Map<string, Row[]>();
    for (const r of this.sql.listRecipients.all()) {
      const key = String(r.message_id);
      let list = rcpts.get(key);
      if (!list) rcpts.set(key, (list = []));
      list.push(r);
    }
    const out: QueueEntry[] = [];
    const damaged: { id: string; reason: string }[] = [];
    for (const row of this.sql.listMessages.all()) {
      try {
        const version = asInt(row.version ?? null, "version");
        const { envelopeJson, receivedJson } = this.metaOf(row, String(row.id), version);
        out.push(this.entryFrom(row, envelopeJson, receivedJson, rcpts.get(String(row.id)) ?? []));
      } catch (err) {
        if (!(err instanceof DamagedRecordError)) throw err;
        damaged.push({ id: String(row.id), reason: err.message });
      }
    }
    for (const d of damaged) this.moveAside(d.id, d.reason);
    return out;
  }

  /**
   * One message with its content, checked. Undefined for an unknown id.
   * A damaged record is moved aside and a DamagedRecordError is thrown.
   */
  get(id: string): QueuedMessage | undefined {
    id = normaliseId(id);
    const row = this.sql.getMessage.get(id);
    if (!row) return undefined;
    try {
      return this.verifyRow(row);
    } catch (err) {
      if (!(err instanceof DamagedRecordError)) throw err;
      this.moveAside(id, err.message);
      throw new DamagedRecordError(`queue entry ${id} is damaged (${err.message}); moved aside`);
    }
  }

  /** Records moved aside as damaged, oldest first. */
  damaged(): DamagedEntry[] {
    return this.sql.damaged.all().map((r) => ({
      id: String(r.id),
      detectedAt: Number(r.detected_at),
      reason: String(r.reason),
      shard: this.shard,
    }));
  }

  damagedCount(): number {
    return Number(this.sql.damagedCount.get()?.n ?? 0);
  }

  /** Number of messages in each state. */
  counts(): Record<MessageState, number> {
    const out: Record<MessageState, number> = { queued: 0, active: 0, deferred: 0, held: 0, done: 0, failed: 0 };
    for (const r of this.sql.counts.all()) {
      const state = String(r.state) as MessageState;
      if (MESSAGE_STATES.includes(state)) out[state] = Number(r.n);
    }
    return out;
  }

  /** When the oldest queued, deferred and held message was accepted (ms since the epoch), undefined for a state with none. */
  oldestCreatedAt(): OldestByState {
    const r = this.sql.oldest.get();
    const at = (v: unknown): number | undefined => (typeof v === "number" || typeof v === "bigint" ? Number(v) : undefined);
    return { queued: at(r?.queued), deferred: at(r?.deferred), held: at(r?.held) };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/**
 * The admin view of one shard (what QueueAdmin and `wardmail queue` use, and
 * a Spool's `admin`): list, show, hold, release, retry, delete, damaged
 * records, counts. Over a shard database of its own (openFile) or the
 * Spool's (closing it is then the Spool's business).
 */
export class ShardStore {
  private readonly s: ShardDatabase;
  private readonly owns: boolean;
  private readonly sql: { isActive: StatementSync; hold: StatementSync; release: StatementSync; retry: StatementSync; exists: StatementSync };
  private readonly log: Logger;

  /** Use `ShardStore.openFile` or a Spool's `admin`. */
  constructor(s: ShardDatabase, owns: boolean) {
    this.s = s;
    this.owns = owns;
    this.log = s.log;
    const p = (q: string): StatementSync => s.db.prepare(q);
    this.sql = {
      exists: p("SELECT 1 AS x FROM messages WHERE id = ?"),
      isActive: p("SELECT 1 AS x FROM messages WHERE id = ? AND state = 'active'"),
      hold: p("UPDATE messages SET state = 'held' WHERE id = ?"),
      release: p("UPDATE messages SET state = 'queued', next_attempt_at = ? WHERE id = ? AND state = 'held'"),
      retry: p("UPDATE messages SET next_attempt_at = ? WHERE id = ? AND state IN ('queued', 'deferred')"),
    };
  }

  /**
   * Opens an existing shard file for administration (never creates one, never
   * recovers in-flight messages: that is the owning worker's job).
   * The shard number is taken from the file name `shard-<N>.db`.
   */
  static openFile(path: string, opts: StoreOptions = {}): ShardStore {
    return new ShardStore(ShardDatabase.openFile(path, opts), true);
  }

  get shard(): number {
    return this.s.shard;
  }

  get path(): string {
    return this.s.path;
  }

  /** Every message of this shard without content, oldest first. Damaged ones are moved aside and left out. */
  list(): QueueEntry[] {
    return this.s.list();
  }

  /**
   * One message with its content, checked. Undefined for an unknown id.
   * A damaged record is moved aside and a DamagedRecordError is thrown.
   */
  get(id: string): QueuedMessage | undefined {
    return this.s.get(id);
  }

  /** Holds a message: it is never claimed until released. False for an unknown id. */
  hold(id: string): boolean {
    id = normaliseId(id);
    const changed = this.s.transaction(() => this.sql.hold.run(id).changes) > 0;
    if (changed) this.log.info({ queueId: id }, "message held");
    return changed;
  }

  /** Releases a held message: queued and due now. True when the id exists (held or not). */
  release(id: string, now = Date.now()): boolean {
    id = normaliseId(id);
    return this.s.transaction(() => {
      if (this.sql.release.run(now, id).changes > 0) {
        this.log.info({ queueId: id }, "message released");
        return true;
      }
      return this.sql.exists.get(id) !== undefined;
    });
  }

  /**
   * Makes a queued or deferred message due now. True when it was (or is being
   * delivered right now); false for an unknown id and for a held message,
   * which stays held until released.
   */
  retry(id: string, now = Date.now()): boolean {
    id = normaliseId(id);
    return this.s.transaction(() => {
      if (this.sql.retry.run(now, id).changes > 0) return true;
      return this.sql.isActive.get(id) !== undefined;
    });
  }

  /** Deletes a message and its content. False for an unknown id. */
  delete(id: string): boolean {
    id = normaliseId(id);
    const deleted = this.s.transaction(() => this.s.deleteRows(id));
    if (deleted) this.log.info({ queueId: id }, "message deleted by operator");
    return deleted;
  }

  /** Records moved aside as damaged, oldest first. */
  damaged(): DamagedEntry[] {
    return this.s.damaged();
  }

  damagedCount(): number {
    return this.s.damagedCount();
  }

  /** Number of messages in each state. */
  counts(): Record<MessageState, number> {
    return this.s.counts();
  }

  /** Key ids named by any sealed field of this shard, the damaged table included. */
  keysInUse(): Set<number> {
    return this.s.keysInUse();
  }

  get isClosed(): boolean {
    return this.s.isClosed;
  }

  /** Closes the file when this view opened it (openFile); a Spool's admin view leaves it to the Spool. */
  close(): void {
    if (this.owns) this.s.close();
  }
}
