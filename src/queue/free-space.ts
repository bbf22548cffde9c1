/**
 * Free space on the spool's file system, and what "the disk is full" looks
 * like when a write fails.
 *
 * `FreeSpace` answers "is the file system holding the spool below the
 * floor?" (limits.min_free_space) for the MAIL command. It asks statfs(2)
 * (fs.promises.statfs, in libuv's thread pool) at most once per `ttlMs`
 * (default 1 s) and answers from that result meanwhile, so a flood of MAIL
 * commands costs one system call a second, not one each. Space is counted
 * as `bavail × bsize`: what an unprivileged writer may still use (the root
 * reserve of ext4 does not count). A statfs that fails is logged and
 * answered "not below" (fail open): the check is an early warning, and a
 * write that then runs out of space is still refused (isStorageFull).
 *
 * `isStorageFull(err)` tells a failed write that ran out of space (ENOSPC,
 * EDQUOT, SQLite's SQLITE_FULL, anywhere in the `cause` chain) from other
 * failures, so the server can answer `452 4.3.1` (RFC 3463: mail system
 * full) instead of a generic 451.
 */
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";

/** SQLite's primary result code for "database or disk is full". */
const SQLITE_FULL = 13;

/** True when err (or an error in its cause chain) says the file system or a quota is full. */
export function isStorageFull(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === "object" && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const x = e as { code?: unknown; errcode?: unknown };
    if (x.code === "ENOSPC" || x.code === "EDQUOT") return true;
    // node:sqlite puts the (extended) SQLite result code in errcode; the primary code is its low byte.
    if (typeof x.errcode === "number" && (x.errcode & 0xff) === SQLITE_FULL) return true;
  }
  return false;
}

export interface FreeSpaceOptions {
  /** A directory on the file system to watch (the spool directory). */
  readonly dir: string;
  /** Bytes that must stay free; 0 turns the check off. */
  readonly floor: number;
  readonly logger: Logger;
  /** How long one statfs answer is used (default 1000 ms). */
  readonly ttlMs?: number;
  /** The clock (tests). */
  readonly now?: () => number;
}

export class FreeSpace {
  private readonly dir: string;
  readonly floor: number;
  private readonly log: Logger;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** The last answer: free bytes (undefined when statfs failed) and when it was taken. */
  private last: { free: number | undefined; at: number } | undefined;
  private refreshing: Promise<void> | undefined;
  private low = false;

  constructor(opts: FreeSpaceOptions) {
    this.dir = opts.dir;
    this.floor = opts.floor;
    this.log = opts.logger;
    this.ttlMs = opts.ttlMs ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * True when the free space is below the floor, or would be once `need`
   * bytes (a message's declared SIZE) are written. Synchronous while the last
   * statfs answer is fresh, else a promise that resolves after one statfs
   * (shared by every caller meanwhile).
   */
  below(need = 0): boolean | Promise<boolean> {
    if (this.floor <= 0) return false;
    const last = this.last;
    if (last !== undefined && this.now() - last.at < this.ttlMs) return this.judge(last.free, need);
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
    return this.refreshing.then(() => this.judge(this.last?.free, need));
  }

  /** Free bytes of the last statfs (undefined before the first or after a failure). */
  get free(): number | undefined {
    return this.last?.free;
  }

  /** Below the floor, or below it once `need` more bytes are written. */
  private judge(free: number | undefined, need = 0): boolean {
    return free !== undefined && free - need < this.floor;
  }

  private async refresh(): Promise<void> {
    let free: number | undefined;
    try {
      const s = await statfs(this.dir);
      free = Number(s.bavail) * Number(s.bsize);
    } catch (err) {
      this.log.error({ dir: this.dir, err: (err as Error).message }, "statfs of the spool failed; free space unknown");
    }
    this.last = { free, at: this.now() };
    const low = this.judge(free);
    if (low !== this.low) {
      this.low = low;
      if (low) this.log.warn({ dir: this.dir, free, floor: this.floor }, "free space on the spool's file system below limits.min_free_space: MAIL gets 452 4.3.1");
      else this.log.info({ dir: this.dir, free, floor: this.floor }, "free space on the spool's file system back above limits.min_free_space");
    }
  }
}
