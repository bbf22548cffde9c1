/**
 * The spool's encryption keys and the sealing of record fields (AES-256-GCM,
 * node:crypto).
 *
 * Key file `<dataDir>/spool.keys` (KEY_FILE): JSON, mode 0600, owned by the
 * server's user; created atomically on first start (written to a temporary
 * file, fsynced, then hard-linked to its name, which fails if another thread
 * created it first: then that one is read). It holds every key a record may
 * still name, with an id; one is current and seals every new field. A file
 * readable by group or others is refused.
 *
 * Rotation (`wardmail spool rotate-key`): a new key becomes current and the
 * old ones are kept, marked retired. The file is replaced atomically (rename)
 * under a lock file. A running server re-reads the file when it changed (its
 * size, mtime or inode, looked at no more often than once a second before a
 * seal) and when a record names a key id it does not know, so new records
 * use the new key within a second, without a restart or signal. A retired
 * key is removed only by `prune` (`rotate-key --prune`), once no record of
 * any shard (the damaged table included) names it and it has been retired
 * longer than PRUNE_GRACE_MS (longer than a worker may still seal with it:
 * the reload interval plus SQLite's busy timeout).
 *
 * Sealed field layout: format byte (1), key id (uint32 BE), 12-byte random
 * nonce, ciphertext, 16-byte tag. The associated data binds the field to its
 * record and place: "wardmail-spool\0" + part + "\0" + queue id + the 5 header
 * bytes. So a field moved to another record or another column, or whose key
 * id was changed, fails to open, as does any changed byte.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { DamagedRecordError, SEALED_RECORD_VERSION } from "./record.ts";
import { listShards, openShardDb, shardPath } from "./db.ts";

export const KEY_FILE = "spool.keys";
const FILE_FORMAT = "wardmail-spool-keys";
const SEAL_FORMAT = 1;
const HEADER = 5;
const NONCE = 12;
const TAG = 16;
/** Bytes a sealed field adds to its plaintext. */
export const SEAL_OVERHEAD = HEADER + NONCE + TAG;
const AAD_TAG = Buffer.from("wardmail-spool\0", "latin1");
/** How often (at most) a seal looks whether the key file changed. */
const RELOAD_CHECK_MS = 1000;
/** A retired key younger than this is never pruned. */
export const PRUNE_GRACE_MS = 60_000;
/** A lock file older than this is taken as left by a crashed command. */
const STALE_LOCK_MS = 60_000;

export interface SpoolKey {
  readonly id: number;
  readonly key: Buffer;
  readonly created: number;
  /** When it stopped being current. */
  readonly retired?: number;
}

export interface KeyInfo {
  readonly id: number;
  readonly created: number;
  readonly retired?: number;
  readonly current: boolean;
}

/** Path of the key file of a data directory. */
export function keyFilePath(dataDir: string): string {
  return join(dataDir, KEY_FILE);
}

interface FileStamp {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

function stampOf(path: string): FileStamp {
  const st = statSync(path);
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

function parseKeyFile(text: string, path: string): { current: number; keys: SpoolKey[] } {
  const bad = (why: string): never => {
    throw new Error(`spool key file ${path}: ${why}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    bad("not valid JSON");
  }
  const o = raw as Record<string, unknown>;
  if (o === null || typeof o !== "object" || o.format !== FILE_FORMAT || o.version !== 1) bad(`not a ${FILE_FORMAT} version 1 file`);
  if (!Array.isArray(o.keys) || o.keys.length === 0 || o.keys.length > 10_000) bad("no keys");
  const keys: SpoolKey[] = (o.keys as unknown[]).map((k, i) => {
    const e = k as Record<string, unknown>;
    if (e === null || typeof e !== "object") bad(`keys[${i}] is not an object`);
    const id = e.id;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > 0xffffffff) bad(`keys[${i}].id is not a key id`);
    const key = typeof e.key === "string" ? Buffer.from(e.key, "base64") : Buffer.alloc(0);
    if (key.length !== 32) bad(`keys[${i}].key is not 32 bytes of base64`);
    if (typeof e.created !== "number") bad(`keys[${i}].created is not a time`);
    if (e.retired !== undefined && typeof e.retired !== "number") bad(`keys[${i}].retired is not a time`);
    return { id: id as number, key, created: e.created as number, ...(typeof e.retired === "number" ? { retired: e.retired } : {}) };
  });
  if (new Set(keys.map((k) => k.id)).size !== keys.length) bad("a key id is listed twice");
  const current = o.current;
  if (typeof current !== "number" || !keys.some((k) => k.id === current)) bad("current is not one of the keys");
  return { current: current as number, keys };
}

function serialise(current: number, keys: readonly SpoolKey[]): string {
  return JSON.stringify({
    format: FILE_FORMAT,
    version: 1,
    current,
    keys: keys.map((k) => ({ id: k.id, created: k.created, ...(k.retired !== undefined ? { retired: k.retired } : {}), key: k.key.toString("base64") })),
  }, null, 1) + "\n";
}

/** Writes a new file next to `path` (0600, fsynced) and returns its name. */
function writeTemp(path: string, text: string): string {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * True when a shard of the data directory holds a sealed record (in the queue
 * or set aside): then a missing key file must not be replaced by a new one,
 * which could never open them.
 */
export function hasSealedRecords(dataDir: string): boolean {
  for (const shard of listShards(dataDir)) {
    const db = openShardDb(shardPath(dataDir, shard), { create: false });
    try {
      const q = `SELECT (SELECT count(*) FROM messages WHERE version = ${SEALED_RECORD_VERSION}) + (SELECT count(*) FROM damaged WHERE version = ${SEALED_RECORD_VERSION}) AS n`;
      if (Number(db.prepare(q).get()?.n ?? 0) > 0) return true;
    } finally {
      db.close();
    }
  }
  return false;
}

export interface KeyringOptions {
  /** Create the file with a first key when it is missing (the server: yes; the CLI: no). */
  readonly create: boolean;
  /** Called on the new file before it gets its name (e.g. chown to the server's user). */
  readonly prepare?: (tmpPath: string) => void;
}

export class SpoolKeyring {
  readonly path: string;
  private keys = new Map<number, SpoolKey>();
  /** The same keys as KeyObjects: createCipheriv with one costs ~1.5 µs instead of ~11 µs with raw bytes. */
  private keyObjects = new Map<number, KeyObject>();
  private currentId = 0;
  private stamp: FileStamp | undefined;
  private lastCheck = 0;

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * Opens the key file of a data directory. With `create`, a missing file is
   * created with one fresh key; without it, undefined is returned for a
   * missing file. Throws for a file that is not a key file or that group or
   * others may read.
   */
  static open(dataDir: string, opts: KeyringOptions): SpoolKeyring | undefined {
    const ring = new SpoolKeyring(keyFilePath(dataDir));
    try {
      ring.load();
      return ring;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      if (!opts.create) return undefined;
    }
    if (hasSealedRecords(dataDir)) {
      throw new Error(`spool key file ${ring.path} is missing but the spool holds encrypted records: restore the key file (from a backup) before starting; a new key could not read them`);
    }
    const now = Date.now();
    const tmp = writeTemp(ring.path, serialise(1, [{ id: 1, key: randomBytes(32), created: now }]));
    try {
      opts.prepare?.(tmp);
      linkSync(tmp, ring.path);
      syncDir(dirname(ring.path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      unlinkSync(tmp);
    }
    ring.load();
    return ring;
  }

  private load(): void {
    const stamp = stampOf(this.path);
    const st = statSync(this.path);
    if ((st.mode & 0o077) !== 0) {
      throw new Error(`spool key file ${this.path} may be read by others (mode ${(st.mode & 0o777).toString(8)}); expected 600 (chmod 600 ${this.path})`);
    }
    const { current, keys } = parseKeyFile(readFileSync(this.path, "utf8"), this.path);
    this.keys = new Map(keys.map((k) => [k.id, k]));
    this.keyObjects = new Map(keys.map((k) => [k.id, createSecretKey(k.key)]));
    this.currentId = current;
    this.stamp = stamp;
    this.lastCheck = Date.now();
  }

  /**
   * Re-reads the file when it changed (or now, with force). A file that became
   * unreadable or invalid keeps the keys in memory; the error is returned.
   */
  refresh(force = false): Error | undefined {
    const now = Date.now();
    if (!force && now - this.lastCheck < RELOAD_CHECK_MS) return undefined;
    this.lastCheck = now;
    try {
      const s = stampOf(this.path);
      if (!force && this.stamp && s.ino === this.stamp.ino && s.size === this.stamp.size && s.mtimeMs === this.stamp.mtimeMs) return undefined;
      this.load();
      return undefined;
    } catch (err) {
      // Keep sealing with the key we have; opening a record under an unknown key fails as damaged.
      return err as Error;
    }
  }

  get currentKeyId(): number {
    return this.currentId;
  }

  /** The keys, oldest first, without their secret. */
  list(): KeyInfo[] {
    return [...this.keys.values()].sort((a, b) => a.id - b.id).map((k) => ({
      id: k.id,
      created: k.created,
      ...(k.retired !== undefined ? { retired: k.retired } : {}),
      current: k.id === this.currentId,
    }));
  }

  /** Random bytes taken NONCE at a time (one call to the CSPRNG per 4 KiB, not per field); never handed out twice. */
  private noncePool = Buffer.alloc(0);
  private nonceAt = 0;

  private nextNonce(): Buffer {
    if (this.nonceAt + NONCE > this.noncePool.length) {
      this.noncePool = randomBytes(NONCE * 341);
      this.nonceAt = 0;
    }
    const n = this.noncePool.subarray(this.nonceAt, this.nonceAt + NONCE);
    this.nonceAt += NONCE;
    return n;
  }

  /** Seals one field of record `id` under the current key. */
  seal(part: string, id: string, plaintext: Uint8Array): Buffer {
    this.refresh();
    const key = this.keyObjects.get(this.currentId) as KeyObject;
    const out = Buffer.allocUnsafe(SEAL_OVERHEAD + plaintext.byteLength);
    out[0] = SEAL_FORMAT;
    out.writeUInt32BE(this.currentId, 1);
    const nonce = this.nextNonce();
    nonce.copy(out, HEADER);
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(aad(part, id, out.subarray(0, HEADER)));
    let n = HEADER + NONCE;
    n += cipher.update(plaintext).copy(out, n);
    n += cipher.final().copy(out, n);
    cipher.getAuthTag().copy(out, n);
    return out;
  }

  /** Opens a sealed field of record `id`; throws DamagedRecordError when it is not intact or its key is unknown. */
  open(part: string, id: string, sealed: Uint8Array): Buffer {
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (buf.length < SEAL_OVERHEAD || buf[0] !== SEAL_FORMAT) throw new DamagedRecordError(`${part} is not a sealed field`);
    const keyId = buf.readUInt32BE(1);
    let key = this.keyObjects.get(keyId);
    if (!key) {
      this.refresh(true);
      key = this.keyObjects.get(keyId);
      if (!key) throw new DamagedRecordError(`${part} is sealed with unknown spool key ${keyId}`);
    }
    const decipher = createDecipheriv("aes-256-gcm", key, buf.subarray(HEADER, HEADER + NONCE), { authTagLength: TAG });
    decipher.setAAD(aad(part, id, buf.subarray(0, HEADER)));
    decipher.setAuthTag(buf.subarray(buf.length - TAG));
    try {
      const first = decipher.update(buf.subarray(HEADER + NONCE, buf.length - TAG));
      const last = decipher.final();
      return last.length === 0 ? first : Buffer.concat([first, last]);
    } catch {
      throw new DamagedRecordError(`${part} fails authentication (tampered, moved from another record, or wrong key)`);
    }
  }

  /**
   * Adds a fresh key and makes it current; the previous current key is marked
   * retired and kept. Returns the new key id.
   */
  rotate(opts: { prepare?: (tmpPath: string) => void } = {}): number {
    return this.update((current, keys) => {
      const now = Date.now();
      const id = Math.max(...keys.map((k) => k.id)) + 1;
      const next = keys.map((k) => (k.id === current && k.retired === undefined ? { ...k, retired: now } : k));
      next.push({ id, key: randomBytes(32), created: now });
      return { current: id, keys: next, result: id };
    }, opts.prepare);
  }

  /**
   * Removes retired keys that no record names (`inUse`: key ids named by any
   * record of any shard, read after the lock was taken) and that were retired
   * at least `graceMs` ago. Returns the removed ids.
   */
  prune(inUse: () => ReadonlySet<number>, opts: { graceMs?: number; prepare?: (tmpPath: string) => void } = {}): number[] {
    const grace = opts.graceMs ?? PRUNE_GRACE_MS;
    return this.update((current, keys) => {
      const used = inUse();
      const now = Date.now();
      const removed = keys.filter((k) => k.id !== current && k.retired !== undefined && now - k.retired >= grace && !used.has(k.id)).map((k) => k.id);
      return { current, keys: keys.filter((k) => !removed.includes(k.id)), result: removed };
    }, opts.prepare);
  }

  /** Read, change and replace the file under the lock. */
  private update<T>(fn: (current: number, keys: SpoolKey[]) => { current: number; keys: SpoolKey[]; result: T }, prepare?: (tmp: string) => void): T {
    const lock = `${this.path}.lock`;
    this.takeLock(lock);
    try {
      this.load();
      const { current, keys, result } = fn(this.currentId, [...this.keys.values()].sort((a, b) => a.id - b.id));
      const tmp = writeTemp(this.path, serialise(current, keys));
      try {
        prepare?.(tmp);
        renameSync(tmp, this.path);
      } catch (err) {
        try {
          unlinkSync(tmp);
        } catch {
          // already gone
        }
        throw err;
      }
      syncDir(dirname(this.path));
      this.load();
      return result;
    } finally {
      unlinkSync(lock);
    }
  }

  private takeLock(lock: string): void {
    try {
      closeSync(openSync(lock, "wx", 0o600));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = Date.now() - statSync(lock).mtimeMs;
      if (age < STALE_LOCK_MS) throw new Error(`spool key file is being changed by another command (${lock} exists); try again in a minute`);
      unlinkSync(lock);
      closeSync(openSync(lock, "wx", 0o600));
    }
  }
}

function aad(part: string, id: string, header: Buffer): Buffer {
  const p = Buffer.from(`${part}\0${id}`, "utf8");
  return Buffer.concat([AAD_TAG, p, header]);
}

/** The parsed key file of a data directory, or undefined when there is none (for backups). */
export function readKeyFile(dataDir: string): { current: number; keys: SpoolKey[] } | undefined {
  const path = keyFilePath(dataDir);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  return parseKeyFile(text, path);
}

/**
 * Writes a key file holding every key of `sets` (the current key of the last
 * one) to a new file `path`, 0600. A backup reads the key file before and
 * after its spool snapshots and keeps both: a key added or pruned meanwhile is
 * in one of them, so every record of the snapshot has its key.
 */
export function writeKeyUnion(path: string, sets: readonly { current: number; keys: readonly SpoolKey[] }[]): number {
  const byId = new Map<number, SpoolKey>();
  for (const set of sets) for (const k of set.keys) byId.set(k.id, k);
  const last = sets.at(-1);
  if (!last) throw new Error("no key set to write");
  const keys = [...byId.values()].sort((a, b) => a.id - b.id);
  const fd = openSync(path, "wx", 0o600);
  try {
    writeSync(fd, serialise(last.current, keys));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return keys.length;
}
