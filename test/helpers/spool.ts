/**
 * A spool shard for unit tests of src/queue (spool.test.ts,
 * spool-outcomes.test.ts): opened in a temporary data directory, closed and
 * removed after the test; and a raw SQLite connection to a shard file.
 */
import { DatabaseSync } from "node:sqlite";
import { Spool, shardPath } from "../../src/queue/index.ts";
import { captureLogger, tempDir } from "./queue.ts";

export function withSpool(t: { after: (fn: () => void) => void }, extra: Partial<Parameters<typeof Spool.open>[0]> = {}) {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, ...extra });
  t.after(() => {
    spool.close();
    cleanup();
  });
  return { dir, spool, log };
}

/** The shard file opened directly (another connection, as `wardmail queue` or a crash check would). */
export function rawDb(dir: string, shard = 0): DatabaseSync {
  return new DatabaseSync(shardPath(dir, shard), { timeout: 5000 });
}
