/**
 * Opening one spool shard database (`<dataDir>/spool/shard-<N>.db`) and its
 * schema. Used by the writer (Spool) and by the admin side (ShardAdmin).
 *
 * SQLite in WAL mode: readers never block the one writer, and a second
 * process (the CLI) may open the same file; `busy_timeout` makes a writer wait
 * for the other's short transaction instead of failing. `synchronous=FULL` is
 * the connection default, so every commit is fsynced unless a caller lowers it
 * for one transaction on purpose (Spool does so for state changes it can
 * afford to lose, see spool.ts). The schema version is kept in
 * `PRAGMA user_version`; a file written by a newer Wardmail is refused.
 */
import type { DatabaseSync } from "node:sqlite";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { openDatabase } from "../storage/index.ts";
import { checkShard } from "./ids.ts";

export const SCHEMA_VERSION = 3;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  envelope TEXT NOT NULL,
  received TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  checksum BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (next_attempt_at) WHERE state IN ('queued', 'deferred');
-- The oldest message in a state (metrics: wardmail_queue_oldest_seconds) in
-- one index seek, and the counts by state from the index instead of the table.
CREATE INDEX IF NOT EXISTS messages_state_age ON messages (state, created_at);
-- Content apart from the state, so a state change never rewrites 10 KB of
-- overflow pages (SQLite rewrites a whole row on UPDATE).
CREATE TABLE IF NOT EXISTS contents (
  message_id TEXT PRIMARY KEY NOT NULL,
  content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
  message_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  address TEXT NOT NULL,
  dsn TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
-- Records queued before each recipient's route was stored with it (schema
-- 3): routed once by the writer when it opens the shard (route-old.ts).
CREATE TABLE IF NOT EXISTS unrouted (
  message_id TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS damaged (
  id TEXT NOT NULL,
  detected_at INTEGER NOT NULL,
  reason TEXT NOT NULL,
  -- Copied as found, whatever their types: no declared type, no conversion.
  version, state, envelope, received, size, created_at,
  attempts, last_error, checksum, recipients, content
);
`;

/** Path of a shard's database file. */
export function shardPath(dataDir: string, shard: number): string {
  checkShard(shard);
  return join(dataDir, "spool", `shard-${shard}.db`);
}

/** The shard numbers that have a database file in `<dataDir>/spool/`, ascending. */
export function listShards(dataDir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(join(dataDir, "spool"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const shards: number[] = [];
  for (const name of names) {
    const m = /^shard-(0|[1-9]\d{0,3})\.db$/.exec(name);
    if (m) shards.push(Number(m[1]));
  }
  return shards.sort((a, b) => a - b);
}

export interface OpenOptions {
  /** Busy timeout in ms (default 5000). */
  readonly busyTimeoutMs?: number;
  /** Create the file and directory when missing (writer: yes; admin: no). */
  readonly create: boolean;
}

/**
 * Steps from older shard files: 2 adds the (state, created_at) index; 3
 * lists every record already queued as unrouted (their recipients have no
 * stored route yet).
 */
const MIGRATIONS = [
  { to: 2, up: "CREATE INDEX IF NOT EXISTS messages_state_age ON messages (state, created_at);" },
  {
    to: 3,
    up: `CREATE TABLE IF NOT EXISTS unrouted (message_id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
         INSERT OR IGNORE INTO unrouted (message_id) SELECT id FROM messages;`,
  },
] as const;

/** SQLite page cache of one spool connection (src/limits/fixed.ts: spool_sqlite_cache). */
export const SPOOL_CACHE_BYTES = 512 * 1024;

/** Opens a shard database with Wardmail's settings and schema. */
export function openShardDb(path: string, opts: OpenOptions): DatabaseSync {
  // The spool holds mail: the file is created 0600.
  return openDatabase(path, {
    create: opts.create,
    what: "spool database",
    schema: SCHEMA,
    version: SCHEMA_VERSION,
    migrations: MIGRATIONS,
    pragmas: [
      "synchronous = FULL",
      // Keep a large WAL from staying large after a burst.
      "journal_size_limit = 67108864",
      // Deleted content is not overwritten: that tripled the cost of completing
      // a message. Freed pages (and the WAL) may hold delivered mail until reused.
      "secure_delete = OFF",
      // SQLite's own page cache of this connection (default 2000 KiB, in
      // malloc, per connection): the spool's rows are written once and read
      // back soon, while the OS page cache still holds them.
      `cache_size = -${SPOOL_CACHE_BYTES / 1024}`,
    ],
    ...(opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {}),
    foreignKeys: false,
  });
}
