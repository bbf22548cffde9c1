/**
 * FreeSpace (statfs with a short cache, the floor) and isStorageFull (which
 * failures mean "disk full"), against the real file system and a real
 * SQLite database that runs out of pages.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { FreeSpace, isStorageFull } from "./free-space.ts";
import { captureLogger, tempDir } from "../../test/helpers/queue.ts";

test("isStorageFull: SQLite's SQLITE_FULL (as node:sqlite reports it), ENOSPC and EDQUOT in the cause chain; nothing else", () => {
  const { dir, cleanup } = tempDir();
  const db = new DatabaseSync(join(dir, "t.db"));
  try {
    db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8");
    let full: unknown;
    try {
      db.prepare("INSERT INTO t VALUES (?)").run(Buffer.alloc(1024 * 1024));
    } catch (err) {
      full = err;
    }
    assert.ok(full instanceof Error, "the insert failed");
    assert.equal(isStorageFull(full), true, String(full));
    assert.equal(isStorageFull(new Error("spool commit failed", { cause: full })), true);
    let other: unknown;
    try {
      db.exec("INSERT INTO nosuchtable VALUES (1)");
    } catch (err) {
      other = err;
    }
    assert.equal(isStorageFull(other), false);
  } finally {
    db.close();
    cleanup();
  }
  const enospc = Object.assign(new Error("no space"), { code: "ENOSPC" });
  assert.equal(isStorageFull(new Error("spool fsync failed", { cause: enospc })), true);
  assert.equal(isStorageFull(Object.assign(new Error("quota"), { code: "EDQUOT" })), true);
  assert.equal(isStorageFull(Object.assign(new Error("io"), { code: "EIO" })), false);
  assert.equal(isStorageFull("ENOSPC"), false);
  assert.equal(isStorageFull(undefined), false);
});

test("FreeSpace: below the floor or not, one statfs per ttl, answered synchronously meanwhile", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const s = await statfs(dir);
    const free = s.bavail * s.bsize;
    let now = 1000;
    const log = captureLogger();
    const high = new FreeSpace({ dir, floor: free + 1024 * 1024 * 1024 * 1024, logger: log.logger, now: () => now });
    const first = high.below();
    assert.ok(first instanceof Promise, "the first answer needs a statfs");
    assert.equal(await first, true);
    assert.equal(high.below(), true, "answered from the cache");
    now += 999;
    assert.equal(high.below(), true);
    now += 1;
    assert.ok(high.below() instanceof Promise, "stale after the ttl");
    assert.ok(log.lines.some((l) => String(l.msg).includes("below limits.min_free_space")));

    const low = new FreeSpace({ dir, floor: 1, logger: log.logger, now: () => now });
    assert.equal(await low.below(), false);
    // A declared size (MAIL SIZE=) that would take the space below the floor.
    assert.equal(low.below(free * 2), true);
    assert.equal(low.below(1024), false);
    const off = new FreeSpace({ dir, floor: 0, logger: log.logger });
    assert.equal(off.below(), false, "0 turns the floor off");
    const missing = new FreeSpace({ dir: join(dir, "gone"), floor: 1, logger: log.logger });
    assert.equal(await missing.below(), false, "statfs failing: not below (fail open), logged");
    assert.ok(log.has("statfs of the spool failed; free space unknown"));
  } finally {
    cleanup();
  }
});
