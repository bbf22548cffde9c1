/**
 * The disk-space guard in front of the receiving host (a SessionHost that
 * wraps another, e.g. the Receiver):
 *
 * - MAIL, on every listener: when the spool's file system has less free
 *   space than limits.min_free_space, `452 4.3.1 Insufficient system
 *   storage` (RFC 5321 §4.2.2 452, RFC 3463 4.3.1 "mail system full"), as
 *   Postfix's queue_minfree. The client tries again later; nothing is
 *   accepted that the spool may not be able to hold, and the space left
 *   keeps local delivery and outcome records going, which frees space.
 *   A client that declared SIZE= (RFC 1870) gets the same 452 when the
 *   message would take the free space below the floor (RFC 1870 §6.3:
 *   452 for a size the server cannot take now but might later).
 * - End of content: a message whose spool commit failed because the disk or
 *   a quota is full (ENOSPC, EDQUOT, SQLITE_FULL; see isStorageFull) gets
 *   `452 4.3.1` too, never a 250 (the spool resolves only after a durable
 *   commit), and the client keeps the message.
 *
 * Everything else goes to the wrapped host unchanged.
 */
import { reply } from "../protocol/index.ts";
import type { Question } from "../protocol/index.ts";
import { isStorageFull, type FreeSpace } from "../queue/index.ts";
import type { ConnectionInfo, HostAnswer, SessionHost } from "./connection.ts";

export const STORAGE_FULL = reply(452, "4.3.1", "Insufficient system storage; try again later");

export class StorageGuard implements SessionHost {
  private readonly host: SessionHost;
  private readonly space: FreeSpace;

  constructor(host: SessionHost, space: FreeSpace) {
    this.host = host;
    this.space = space;
  }

  connected(info: ConnectionInfo): void {
    this.host.connected?.(info);
  }

  answer(q: Question, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    if (q.type === "mail") {
      const below = this.space.below(q.size ?? 0);
      if (below === false) return this.host.answer(q, info);
      if (below === true) return this.refuse(info, q.size);
      return below.then((b) => (b ? this.refuse(info, q.size) : this.host.answer(q, info)));
    }
    if (q.type === "message") {
      return Promise.resolve(this.host.answer(q, info)).catch((err: unknown) => {
        if (!isStorageFull(err)) throw err;
        info.logger.error({ from: q.envelope.mailFrom, size: q.content.length, err: (err as Error).message }, "spool full: message refused with 452 4.3.1");
        return { reply: STORAGE_FULL };
      });
    }
    return this.host.answer(q, info);
  }

  private refuse(info: ConnectionInfo, size?: number): HostAnswer {
    info.logger.info({ free: this.space.free, floor: this.space.floor, ...(size !== undefined ? { size } : {}) }, "MAIL refused: free space below limits.min_free_space");
    return { reply: STORAGE_FULL };
  }
}
