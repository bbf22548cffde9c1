/**
 * Sealing the plaintext records (format 1) of an older Wardmail, or of a
 * spool that ran with spool.encrypt = false, when a shard is opened with
 * encryption on: each record that passes its checks is rewritten in format 2
 * (record.ts) in place, same id and state, in transactions of BATCH records
 * (bounded memory), with `secure_delete` on so that the pages the plaintext
 * leaves are zeroed, then a `wal_checkpoint(TRUNCATE)` so that the WAL frames
 * that held it are gone from the file too. A record that fails its checks is
 * moved aside as it is (the damaged table keeps what was found, plaintext
 * included, for the operator). Runs once per open; a spool without format 1
 * records costs one indexed count.
 */
import type { DatabaseSync, SQLOutputValue } from "node:sqlite";
import type { SpoolKeyring } from "./keyring.ts";
import { DamagedRecordError, packMeta, RECORD_VERSION, SEALED_RECORD_VERSION } from "./record.ts";

const BATCH = 64;

type Row = Record<string, SQLOutputValue>;

export interface MigrationHooks {
  /** Checks a full row (message and content) as read back; throws DamagedRecordError. */
  readonly verify: (row: Row) => void;
  /** Moves a record aside inside the running transaction. */
  readonly moveAside: (id: string, reason: string) => void;
  /** Runs fn in one durable write transaction. */
  readonly transaction: <T>(fn: () => T) => T;
}

export interface MigrationResult {
  readonly sealed: number;
  readonly damaged: number;
}

/** Seals every format 1 record of the shard; returns how many were sealed and how many were set aside. */
export function sealPlaintextRecords(db: DatabaseSync, ring: SpoolKeyring, hooks: MigrationHooks): MigrationResult {
  const count = Number(db.prepare("SELECT count(*) AS n FROM messages WHERE version = ?").get(RECORD_VERSION)?.n ?? 0);
  if (count === 0) return { sealed: 0, damaged: 0 };
  const select = db.prepare(`SELECT m.*, c.content FROM messages m LEFT JOIN contents c ON c.message_id = m.id
                             WHERE m.version = ? ORDER BY m.id LIMIT ?`);
  const rcpts = db.prepare("SELECT idx, last_error FROM recipients WHERE message_id = ? ORDER BY idx");
  const updMessage = db.prepare("UPDATE messages SET version = ?, envelope = ?, received = '', checksum = x'', last_error = ? WHERE id = ?");
  const updContent = db.prepare("UPDATE contents SET content = ? WHERE message_id = ?");
  const updRcpt = db.prepare("UPDATE recipients SET address = '', dsn = '', last_error = ? WHERE message_id = ? AND idx = ?");
  const seal = (part: string, id: string, v: SQLOutputValue | undefined): Buffer | null =>
    typeof v === "string" ? ring.seal(part, id, Buffer.from(v, "utf8")) : v instanceof Uint8Array ? Buffer.from(v) : null;
  let sealed = 0;
  let damaged = 0;
  db.exec("PRAGMA secure_delete = ON");
  try {
    // Each pass handles BATCH records; a set-aside record leaves the table, so every pass makes progress.
    for (let pass = 0; pass <= Math.ceil(count / BATCH) + 1; pass++) {
      const n = hooks.transaction(() => {
        const rows = select.all(RECORD_VERSION, BATCH);
        for (const row of rows) {
          const id = String(row.id);
          try {
            hooks.verify(row);
          } catch (err) {
            if (!(err instanceof DamagedRecordError)) throw err;
            hooks.moveAside(id, err.message);
            damaged++;
            continue;
          }
          const meta = packMeta(String(row.envelope), String(row.received));
          updMessage.run(SEALED_RECORD_VERSION, ring.seal("meta", id, meta), seal("error", id, row.last_error), id);
          updContent.run(ring.seal("content", id, row.content as Uint8Array), id);
          for (const r of rcpts.all(id)) {
            const idx = Number(r.idx);
            updRcpt.run(seal(`error:${idx}`, id, r.last_error), id, idx);
          }
          sealed++;
        }
        return rows.length;
      });
      if (n < BATCH) break;
    }
  } finally {
    db.exec("PRAGMA secure_delete = OFF");
  }
  // The WAL frames of the old pages go too (the database file's pages were zeroed by secure_delete).
  db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get();
  return { sealed, damaged };
}
