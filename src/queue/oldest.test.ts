// The oldest message per waiting state (wardmail_queue_oldest_seconds): from
// the (state, created_at) index, which schema version 2 adds to older shards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Spool } from "./spool.ts";
import { SCHEMA_VERSION as SPOOL_SCHEMA_VERSION, shardPath } from "./db.ts";
import { captureLogger, sampleMessage, tempDir } from "../../test/helpers/queue.ts";

function rawDb(dir: string): DatabaseSync {
  return new DatabaseSync(shardPath(dir, 0), { timeout: 5000 });
}

test("oldestCreatedAt: undefined for an empty state, else the earliest created_at of that state", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  t.after(() => spool.close());
  assert.deepEqual(spool.oldestCreatedAt(), { queued: undefined, deferred: undefined, held: undefined });
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await spool.enqueue({ ...sampleMessage(), hold: true }));
  const held = spool.oldestCreatedAt().held;
  assert.ok(held !== undefined && Math.abs(held - Date.now()) < 60_000);
  // Ages set by hand: one deferred, two held of which the older counts.
  const db = rawDb(dir);
  db.prepare("UPDATE messages SET created_at = ? WHERE id = ?").run(1_000, ids[0] ?? "");
  db.prepare("UPDATE messages SET state = 'deferred', created_at = ? WHERE id = ?").run(500, ids[1] ?? "");
  db.prepare("UPDATE messages SET created_at = ? WHERE id = ?").run(2_000, ids[2] ?? "");
  db.close();
  assert.deepEqual(spool.oldestCreatedAt(), { queued: undefined, deferred: 500, held: 1_000 });
});

test("a version 1 shard gains the (state, created_at) index on open; the query seeks it instead of scanning", (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const log = captureLogger();
  Spool.open({ dataDir: dir, shard: 0, logger: log.logger }).close();
  let db = rawDb(dir);
  db.exec("DROP INDEX messages_state_age; PRAGMA user_version = 1;");
  db.close();
  Spool.open({ dataDir: dir, shard: 0, logger: log.logger }).close();
  db = rawDb(dir);
  t.after(() => db.close());
  assert.equal(Number(db.prepare("PRAGMA user_version").get()?.user_version), SPOOL_SCHEMA_VERSION, "migrated to the current version");
  assert.ok(db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'messages_state_age'").get());
  const plan = db.prepare("EXPLAIN QUERY PLAN SELECT min(created_at) FROM messages WHERE state = 'held'").all().map((r) => String(r.detail)).join("\n");
  assert.match(plan, /USING COVERING INDEX messages_state_age/);
  assert.doesNotMatch(plan, /SCAN messages/);
});
