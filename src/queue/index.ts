/**
 * The durable queue (spool): public face of src/queue/.
 *
 * - Spool: the owner of a shard in a worker process (spool.ts), handing out
 *   views over it: `writer` (SpoolWriter: enqueue, recordOutcome),
 *   `scheduler` (SpoolScheduler: claimDue, takeFresh, handoff) and `admin`
 *   (a ShardStore).
 * - QueueAdmin / ShardStore: inspection and operator commands, safe while
 *   the server runs (admin.ts, store.ts).
 * - Contract types shared with the SMTP side and delivery (types.ts),
 *   among them each recipient's route as the sink stored it (RecipientRoute);
 *   records of an older Wardmail get theirs once (route-old.ts,
 *   Spool.routeOldRecords).
 */
export type * from "./types.ts";
export { Spool } from "./spool.ts";
export { concatOwned, ownedContent } from "./handoff.ts";
export type { RecipientRouter } from "./route-old.ts";
export type { SpoolOptions, ClaimedMessage, RecipientOutcome, SpoolStats, SpoolWriter, SpoolScheduler } from "./spool.ts";
export { ShardStore } from "./store.ts";
export type { QueuedMessage, DamagedEntry, StoreOptions, OldestByState } from "./store.ts";
export { QueueAdmin } from "./admin.ts";
export { DamagedRecordError, RECORD_VERSION, SEALED_RECORD_VERSION, MAX_CONTENT_BYTES } from "./record.ts";
export { newQueueId, isQueueId, shardOfId } from "./ids.ts";
export { shardPath, listShards, SCHEMA_VERSION as SPOOL_SCHEMA_VERSION } from "./db.ts";
export { FreeSpace, isStorageFull } from "./free-space.ts";
export { SpoolKeyring, KEY_FILE, keyFilePath, PRUNE_GRACE_MS, SEAL_OVERHEAD, readKeyFile, writeKeyUnion, hasSealedRecords } from "./keyring.ts";
export type { KeyInfo, KeyringOptions } from "./keyring.ts";
export type { FreeSpaceOptions } from "./free-space.ts";
