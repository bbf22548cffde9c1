/**
 * The in-memory handoff of a spool shard (spool.ts): messages that just
 * became durable go straight to the delivery agent, without a claim
 * transaction or a read-back of their content.
 *
 * Bounded in entries (HANDOFF_MAX) and in content bytes (`maxBytes`, durable
 * or not yet): a message that does not fit is simply claimed from the
 * database when due. In the database a handed-off message stays `queued`
 * with its first attempt leased HANDOFF_LEASE_MS ahead, so claimDue leaves it
 * alone meanwhile; after a crash, recovery makes it due at once.
 *
 * Every content kept here owns its memory (ownedContent): Node 24 hands
 * out Buffers under 32 KiB as views into a shared 64 KiB pool slab
 * (Buffer.poolSize), and a kept view pins its whole slab. 1,024 waiting
 * 10 KiB messages pinned about 64 MiB per worker that way, six times their
 * bytes, outside every bound here.
 */
import type { QueuedMessage } from "./store.ts";

/** Most durable messages kept in memory for the delivery agent. */
export const HANDOFF_MAX = 1024;
/** Content bytes kept in memory for the delivery agent by default (past it: claimed from the database when due). */
export const HANDOFF_MAX_BYTES = 4 * 1024 * 1024;
/** How far the first attempt of a handed-off message is leased in the database. */
export const HANDOFF_LEASE_MS = 10 * 60_000;

/**
 * `parts` concatenated into a Buffer with memory of its own, exactly as
 * large as its content (never a view into Node's shared allocation pool):
 * for content that is kept (handoff, in flight), so that it pins no more
 * memory than its bytes.
 */
export function concatOwned(parts: readonly Uint8Array[], total = parts.reduce((n, p) => n + p.byteLength, 0)): Buffer {
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const p of parts) {
    out.set(p.byteLength > total - at ? p.subarray(0, total - at) : p, at);
    at += p.byteLength;
    if (at >= total) break;
  }
  if (at < total) out.fill(0, at);
  return out;
}

/** `buf` itself when it owns its whole memory, else a copy that does (concatOwned). */
export function ownedContent(buf: Buffer): Buffer {
  return buf.byteOffset === 0 && buf.buffer.byteLength === buf.byteLength ? buf : concatOwned([buf], buf.byteLength);
}

export class Handoff {
  private readonly maxBytes: number;
  private on = false;
  /** Durable messages waiting for the delivery agent. */
  private ready: QueuedMessage[] = [];
  /** Places taken by messages not yet durable. */
  private pending = 0;
  /** Content bytes of the handoff messages, durable or not yet. */
  private bytes = 0;

  constructor(maxBytes = HANDOFF_MAX_BYTES) {
    this.maxBytes = maxBytes;
  }

  /** The delivery agent takes fresh messages from now on. */
  enable(): void {
    this.on = true;
  }

  /** Whether a new message of `size` content bytes would get a place (see reserve). */
  fits(size: number): boolean {
    return this.on && this.ready.length + this.pending < HANDOFF_MAX && this.bytes + size <= this.maxBytes;
  }

  /** Takes a place for a message that is on its way to the disk. */
  reserve(size: number): void {
    this.pending++;
    this.bytes += size;
  }

  /** A reserved message is durable: ready for takeFresh, or (spool closing) its place is freed. */
  durable(entry: QueuedMessage, keep: boolean): void {
    this.pending--;
    if (keep) this.ready.push(entry);
    else this.bytes -= entry.size;
  }

  /** A reserved message will never be durable: its place is free again. */
  release(size: number): void {
    this.pending--;
    this.bytes -= size;
  }

  /**
   * Up to `limit` ready messages whose lease has not run out and that are not
   * in `claimed` (past its lease the database path owns a message: claimDue
   * may have taken it). The caller marks those returned as claimed.
   */
  take(limit: number, now: number, claimed: { has(id: string): boolean }): QueuedMessage[] {
    const out: QueuedMessage[] = [];
    while (out.length < limit && this.ready.length > 0) {
      const m = this.ready.shift() as QueuedMessage;
      this.bytes -= m.size;
      if (m.nextAttemptAt <= now || claimed.has(m.id)) continue;
      out.push(m);
    }
    return out;
  }

  /** Forgets the ready messages (still queued in the database: due at the next open). */
  clear(): void {
    this.ready = [];
    this.bytes = 0;
  }
}
