/**
 * Small SQLite helpers shared by the spool shards and the accounts database:
 * a write transaction, and the schema check-and-create on open.
 */
import type { DatabaseSync } from "node:sqlite";

/**
 * Puts a database into WAL mode. Switching a new file to WAL takes a lock
 * that SQLite's busy timeout does not wait for: when several worker threads
 * open the same new file at once, the others get "database is locked" at
 * once. Retried for up to 5 s, then the error stands.
 */
export function enableWal(db: DatabaseSync): void {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      db.exec("PRAGMA journal_mode = WAL");
      return;
    } catch (err) {
      if (!/database is locked|SQLITE_BUSY/i.test(String((err as Error).message)) || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // a short synchronous pause; this runs once at startup
    }
  }
}

/** Runs fn in one write transaction (BEGIN IMMEDIATE: checks and writes see one state); rolls back on a throw. */
export function writeTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

/**
 * Creates the schema of a fresh database (user_version 0) and refuses one
 * written by a newer Wardmail. `what` names the database in the error.
 */
export function applySchema(db: DatabaseSync, what: string, schema: string, version: number): void {
  const current = Number(db.prepare("PRAGMA user_version").get()?.user_version ?? 0);
  if (current > version) throw new Error(`${what} has schema version ${current}, newer than this Wardmail (${version})`);
  if (current < version) {
    writeTransaction(db, () => {
      db.exec(schema);
      db.exec(`PRAGMA user_version = ${version}`);
    });
  }
}
