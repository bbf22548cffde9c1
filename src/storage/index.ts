/**
 * Small SQLite helpers shared by every Wardmail database (spool shards,
 * accounts, MTA-STS cache, TLS-RPT counts): opening with the file created
 * 0600, WAL, a write transaction, and the schema check-and-create on open.
 *
 * Schema versions: every database keeps its version in PRAGMA user_version.
 * A fresh file (version 0) gets the whole schema; a file of an older
 * version is brought forward by the database's ordered migration steps
 * (each names the version it leads to), all in one write transaction
 * (a failing step leaves the file as it was); a file of a newer version
 * (written by a later Wardmail) is refused with a clear error.
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
  /** Steps from older versions, in order; the last leads to `version`. */
  readonly migrations?: readonly Migration[];
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
    applySchema(db, `${opts.what} ${path}`, opts.schema, opts.version, opts.migrations);
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

/** One step of a database's schema history: SQL (or a function) taking version to-1 to version `to`. */
export interface Migration {
  readonly to: number;
  readonly up: string | ((db: DatabaseSync) => void);
}

function userVersion(db: DatabaseSync): number {
  return Number(db.prepare("PRAGMA user_version").get()?.user_version ?? 0);
}

/**
 * Creates the schema of a fresh database (user_version 0), migrates an
 * older one by the ordered `migrations` (every version from the file's to
 * `version` must have its step) in one write transaction, and refuses one
 * written by a newer Wardmail. `what` names the database in the errors.
 */
export function applySchema(db: DatabaseSync, what: string, schema: string, version: number, migrations: readonly Migration[] = []): void {
  for (let i = 0; i < migrations.length; i++) {
    const m = migrations[i];
    if (m === undefined || !Number.isInteger(m.to) || m.to < 2 || m.to > version || (i > 0 && m.to <= (migrations[i - 1]?.to ?? 0))) {
      throw new Error(`${what}: migration steps must lead in increasing order to versions 2..${version}`);
    }
  }
  const seen = userVersion(db);
  if (seen > version) throw new Error(`${what} has schema version ${seen}, newer than this Wardmail (${version}): run the Wardmail release that wrote it, or restore a backup made before the upgrade`);
  if (seen === version) return;
  writeTransaction(db, () => {
    // Read again under the write lock: another thread may have migrated meanwhile.
    const current = userVersion(db);
    if (current === version) return;
    if (current > version) throw new Error(`${what} has schema version ${current}, newer than this Wardmail (${version})`);
    if (current === 0) {
      db.exec(schema);
    } else {
      const steps = migrations.filter((m) => m.to > current);
      const expected = Array.from({ length: version - current }, (_, i) => current + 1 + i);
      if (steps.map((m) => m.to).join() !== expected.join()) {
        throw new Error(`${what} has schema version ${current}: this Wardmail (${version}) has no migration for ${expected.filter((v) => !steps.some((m) => m.to === v)).join(", ")}`);
      }
      for (const m of steps) {
        try {
          if (typeof m.up === "string") db.exec(m.up);
          else m.up(db);
        } catch (err) {
          throw new Error(`${what}: migration to schema version ${m.to} failed (nothing changed): ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    db.exec(`PRAGMA user_version = ${version}`);
  });
}
