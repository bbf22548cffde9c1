/**
 * QueueAdmin: the whole spool of a data directory as one queue, for
 * `wardmail queue list|show|hold|release|retry|delete`.
 *
 * Opens every `shard-*.db` in `<dataDir>/spool/` (never creates one) and
 * routes a command to the shard written in the queue id (ids.ts), falling back
 * to the other shards. Safe while the server runs: each change is one short
 * SQLite transaction (see store.ts). Ids are accepted in any case and with
 * surrounding blanks; text that is not a queue id is refused with an error.
 */
import type { MessageState, QueueEntry } from "./types.ts";
import { listShards, shardPath } from "./db.ts";
import { isQueueId, shardOfId } from "./ids.ts";
import { normaliseId, ShardStore } from "./store.ts";
import type { DamagedEntry, QueuedMessage, StoreOptions } from "./store.ts";
import { SpoolKeyring } from "./keyring.ts";

export class QueueAdmin {
  private readonly stores: ReadonlyMap<number, ShardStore>;

  private constructor(stores: Map<number, ShardStore>) {
    this.stores = stores;
  }

  /** Opens every shard of the data directory (none is fine: an empty queue). */
  static open(dataDir: string, opts: StoreOptions = {}): QueueAdmin {
    const stores = new Map<number, ShardStore>();
    try {
      // One keyring for every shard (never created here: the server creates it).
      const keyring = opts.keyring ?? SpoolKeyring.open(dataDir, { create: false });
      const o: StoreOptions = { ...opts, ...(keyring ? { keyring } : {}) };
      for (const shard of listShards(dataDir)) stores.set(shard, ShardStore.openFile(shardPath(dataDir, shard), o));
    } catch (err) {
      for (const s of stores.values()) s.close();
      throw err;
    }
    return new QueueAdmin(stores);
  }

  /** Shard numbers opened. */
  get shards(): number[] {
    return [...this.stores.keys()];
  }

  /** Every message of every shard without content, oldest first. */
  list(): QueueEntry[] {
    const all: QueueEntry[] = [];
    for (const s of this.stores.values()) all.push(...s.list());
    return all.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  /** One message with content; undefined for an unknown id. Throws DamagedRecordError for a damaged one. */
  get(id: string): QueuedMessage | undefined {
    for (const s of this.route(id)) {
      const m = s.get(id);
      if (m) return m;
    }
    return undefined;
  }

  hold(id: string): boolean {
    return this.route(id).some((s) => s.hold(id));
  }

  release(id: string): boolean {
    return this.route(id).some((s) => s.release(id));
  }

  retry(id: string): boolean {
    return this.route(id).some((s) => s.retry(id));
  }

  delete(id: string): boolean {
    return this.route(id).some((s) => s.delete(id));
  }

  /** Records moved aside as damaged, in every shard. */
  damaged(): DamagedEntry[] {
    return [...this.stores.values()].flatMap((s) => s.damaged()).sort((a, b) => a.detectedAt - b.detectedAt);
  }

  /** Spool key ids that some record of some shard (damaged ones included) needs. */
  keysInUse(): Set<number> {
    const used = new Set<number>();
    for (const s of this.stores.values()) for (const k of s.keysInUse()) used.add(k);
    return used;
  }

  /** Number of messages in each state over all shards. */
  counts(): Record<MessageState, number> {
    const out: Record<MessageState, number> = { queued: 0, active: 0, deferred: 0, held: 0, done: 0, failed: 0 };
    for (const s of this.stores.values()) {
      for (const [k, v] of Object.entries(s.counts())) out[k as MessageState] += v;
    }
    return out;
  }

  close(): void {
    for (const s of this.stores.values()) s.close();
  }

  /** The shard the id names first, then the others. */
  private route(id: string): ShardStore[] {
    const norm = normaliseId(id);
    if (!isQueueId(norm)) throw new Error(`not a queue id: ${JSON.stringify(id.slice(0, 64))}`);
    const first = this.stores.get(shardOfId(norm) ?? -1);
    const rest = [...this.stores.values()].filter((s) => s !== first);
    return first ? [first, ...rest] : rest;
  }
}

