/**
 * The one interface every transport implements (Maildir, LMTP here; the
 * remote SMTP transport in src/outbound has the same shape): deliver one
 * claimed message to some of its recipients, resolve with one outcome per
 * recipient given (by its queue index), never reject for a delivery problem.
 *
 * Where each recipient goes was decided once, when the message was queued
 * (src/sink router.ts), and stored with it; the queue manager (src/qmgr)
 * hands each transport the recipients its stored routes name, with their
 * destinations (`mailboxes`: Maildir paths, LMTP servers) as stored. A
 * transport never routes, never reads aliases or `[local]`.
 */
import type { ClaimedMessage, LmtpRoute, MaildirRoute, QueuedRecipient } from "../queue/index.ts";
import type { RemoteOutcome } from "../outbound/index.ts";

/** A queue recipient with where this transport is to put it. */
export interface RoutedRecipient extends QueuedRecipient {
  /**
   * Local mailboxes (lowercase addresses, distinct) for a local store
   * (Maildir, LMTP); the recipient's own address for a remote transport.
   */
  readonly mailboxes: readonly string[];
}

/** One recipient's outcome: delivered, deferred (with why) or failed (with status and diagnostic for the DSN). */
export type DeliveryOutcome = RemoteOutcome;

/** A queue recipient with the local mailboxes of its stored route that a local transport is to store. */
export interface LocalRecipient<M extends MaildirRoute | LmtpRoute> extends QueuedRecipient {
  readonly mailboxes: readonly M[];
}

export interface Transport<R extends QueuedRecipient = RoutedRecipient> {
  deliver(message: ClaimedMessage, recipients: readonly R[]): Promise<DeliveryOutcome[]>;
}

/** What became of one mailbox: stored, or why not. */
export type MailboxResult =
  | { readonly kind: "ok" }
  | { readonly kind: "temporary"; readonly error: string; readonly status?: string }
  | { readonly kind: "permanent"; readonly error: string; readonly status: string; readonly diagnostic?: string };

/**
 * A recipient's outcome from the results of its mailboxes: deferred when any
 * is temporary, else failed when any is permanent, else delivered.
 */
export function combineMailboxes(index: number, mailboxes: readonly string[], results: ReadonlyMap<string, MailboxResult>): DeliveryOutcome {
  const got = mailboxes.map((m) => results.get(m) ?? { kind: "temporary" as const, error: "not attempted" });
  const temporary = got.find((r) => r.kind === "temporary");
  const permanent = got.find((r) => r.kind === "permanent");
  if (temporary !== undefined) return { index, result: "deferred", error: temporary.error, ...(temporary.status !== undefined ? { status: temporary.status } : {}) };
  if (permanent !== undefined) return { index, result: "failed", error: permanent.error, status: permanent.status, ...(permanent.diagnostic !== undefined ? { diagnostic: permanent.diagnostic } : {}) };
  return { index, result: "delivered" };
}

/** At most n tasks at once; shared by the local transports (Maildir writes and LMTP sessions count together). */
export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiters.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    }
  }
}

export function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}
