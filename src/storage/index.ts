/**
 * Small SQLite helpers shared by the spool shards and the accounts database:
 * a write transaction, and the schema check-and-create on open.
 */
import type { DatabaseSync } from "node:sqlite";

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
