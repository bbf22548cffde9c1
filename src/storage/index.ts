/**
 * Small SQLite helpers shared by every Wardmail database (spool shards,
 * accounts, MTA-STS cache, TLS-RPT counts): opening with the file created
 * 0600, WAL, a write transaction, and the schema check-and-create on open.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";

export interface OpenDatabaseOptions {
  /** Create the directory (0700) and the file (0600) when missing; else a missing file is an error. */
  readonly create: boolean;
  /** Names the database in errors ("accounts database"; the path is added). */
  readonly what: string;
  readonly schema: string;
  readonly version: number;
  /** PRAGMA statements after WAL is on ("synchronous = FULL", ...). */
  readonly pragmas: readonly string[];
  readonly busyTimeoutMs?: number;
  /** node:sqlite's default is on. */
  readonly foreignKeys?: boolean;
}

/**
 * Opens a database file: created 0600 first when asked (SQLite gives its
 * -wal and -shm files the database file's permissions; an empty file is a
 * valid empty database), never created otherwise (DatabaseSync would), WAL
 * mode, the pragmas, the schema. Closed again if any of that fails.
 */
export function openDatabase(path: string, opts: OpenDatabaseOptions): DatabaseSync {
  if (opts.create) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, "", { mode: 0o600, flag: "wx" });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  } else if (!existsSync(path)) {
    throw new Error(`no ${opts.what} at ${path}`);
  }
  const db = new DatabaseSync(path, { timeout: opts.busyTimeoutMs ?? 5000, enableForeignKeyConstraints: opts.foreignKeys ?? true });
  try {
    enableWal(db);
    for (const p of opts.pragmas) db.exec(`PRAGMA ${p}`);
    applySchema(db, `${opts.what} ${path}`, opts.schema, opts.version);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

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
