/**
 * Routing the records of an older Wardmail, queued before each recipient's
 * route was stored with it (schema 3 listed them in `unrouted`, db.ts). When
 * the writer opens the shard with a router (the sink's, src/sink Router), each
 * such record that passes its checks gets a route for every recipient still
 * without one, decided by the same rules as for new mail but in place (one
 * route per stored recipient: an alias reaching other domains cannot become
 * further recipients of a queued record, so it is `deferred`, as such a
 * recipient was before). The envelope is rewritten in its own format: a new
 * checksum (format 1) or sealed again (format 2). A record that fails its
 * checks is moved aside. In transactions of BATCH records (bounded memory);
 * a spool with nothing unrouted costs one count. After this, delivery never
 * routes: it reads the stored routes.
 */
import type { DatabaseSync, SQLOutputValue } from "node:sqlite";
import type { SpoolKeyring } from "./keyring.ts";
import { canonicalJson, DamagedRecordError, packMeta, RECORD_VERSION, recordChecksum, SEALED_RECORD_VERSION } from "./record.ts";
import type { QueuedMessage } from "./store.ts";
import type { RecipientRoute } from "./types.ts";

const BATCH = 64;
/** Most content bytes in one batch (a batch has one record at least). */
const BATCH_BYTES = 32 * 1024 * 1024;

type Row = Record<string, SQLOutputValue>;

/** Where one stored recipient address goes, decided in place (src/sink Router.routeInPlace). */
export type RecipientRouter = (address: string) => RecipientRoute;

export interface RouteOldHooks {
  /** Checks a full row (message and content) as read back; throws DamagedRecordError. */
  readonly verify: (row: Row) => QueuedMessage;
  /** Moves a record aside inside the running transaction. */
  readonly moveAside: (id: string, reason: string) => void;
  /** Runs fn in one durable write transaction. */
  readonly transaction: <T>(fn: () => T) => T;
  /** The keyring, for sealed records. */
  readonly keyring: () => SpoolKeyring;
}

export interface RouteOldResult {
  readonly routed: number;
  readonly damaged: number;
}

/** Stores a route for every recipient of the records listed in `unrouted`; returns how many were routed and set aside. */
export function routeOldRecords(db: DatabaseSync, router: RecipientRouter, hooks: RouteOldHooks): RouteOldResult {
  const count = Number(db.prepare("SELECT count(*) AS n FROM unrouted").get()?.n ?? 0);
  if (count === 0) return { routed: 0, damaged: 0 };
  // The next records by id with their content sizes, then each whole row: a batch holds at most BATCH records and BATCH_BYTES of content (one record at least), whatever max_message_size is.
  const sizes = db.prepare(`SELECT u.message_id AS id, coalesce(length(c.content), 0) AS n FROM unrouted u
                            LEFT JOIN contents c ON c.message_id = u.message_id ORDER BY u.message_id LIMIT ?`);
  const one = db.prepare(`SELECT m.*, c.content FROM messages m LEFT JOIN contents c ON c.message_id = m.id WHERE m.id = ?`);
  const next = (): Row[] => {
    const rows: Row[] = [];
    let bytes = 0;
    for (const r of sizes.all(BATCH)) {
      bytes += Number(r.n);
      if (rows.length > 0 && bytes > BATCH_BYTES) break;
      const row = one.get(String(r.id));
      if (row !== undefined) rows.push(row);
      else done.run(String(r.id));
    }
    return rows;
  };
  const updPlain = db.prepare("UPDATE messages SET envelope = ?, checksum = ? WHERE id = ?");
  const updSealed = db.prepare("UPDATE messages SET envelope = ? WHERE id = ?");
  const done = db.prepare("DELETE FROM unrouted WHERE message_id = ?");
  let routed = 0;
  let damaged = 0;
  // Rows of messages that are gone (delivered, deleted by the operator) first.
  hooks.transaction(() => db.prepare("DELETE FROM unrouted WHERE message_id NOT IN (SELECT id FROM messages)").run());
  // Each pass takes at least one record off the list: at most count passes (and one to see it empty).
  for (let pass = 0; pass <= count + 1; pass++) {
    const n = hooks.transaction(() => {
      const rows = next();
      for (const row of rows) {
        const id = String(row.id);
        done.run(id);
        let msg: QueuedMessage;
        try {
          msg = hooks.verify(row);
        } catch (err) {
          if (!(err instanceof DamagedRecordError)) throw err;
          hooks.moveAside(id, err.message);
          damaged++;
          continue;
        }
        if (msg.envelope.recipients.every((r) => r.route !== undefined)) continue;
        const envelope = { ...msg.envelope, recipients: msg.envelope.recipients.map((r) => (r.route !== undefined ? r : { ...r, route: router(r.address) })) };
        const envelopeJson = canonicalJson(envelope);
        const version = Number(row.version);
        if (version === SEALED_RECORD_VERSION) {
          updSealed.run(hooks.keyring().seal("meta", id, packMeta(envelopeJson, canonicalJson(msg.received))), id);
        } else if (version === RECORD_VERSION) {
          // The received text stays as stored; the checksum covers the new envelope text.
          updPlain.run(envelopeJson, recordChecksum(RECORD_VERSION, id, envelopeJson, String(row.received), msg.content), id);
        }
        routed++;
      }
      return rows.length;
    });
    if (n === 0) break;
  }
  return { routed, damaged };
}
