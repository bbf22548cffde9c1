/**
 * The Maildir transport: stores a message in the Maildirs of the mailboxes
 * it is handed, at the paths their stored routes name (maildir.ts), one write per distinct mailbox even when
 * several recipients of the message reach it (through aliases), at most as
 * many writes at once as the shared semaphore lets through. Quarantined mail
 * (a DMARC quarantine verdict, say) goes to the mailbox's Junk folder.
 * Encrypt-on-store through store-content.ts. A filesystem error makes the
 * mailbox temporary; a recipient is deferred when any of its mailboxes is.
 */
import type { Logger } from "pino";
import type { ClaimedMessage, MaildirRoute } from "../queue/index.ts";
import { deliverToMaildir } from "./maildir.ts";
import { maildirOf } from "./mailbox-path.ts";
import type { StoreContentSource } from "./store-content.ts";
import { combineMailboxes, errorText, type DeliveryOutcome, type LocalRecipient, type MailboxResult, type Semaphore, type Transport } from "./transport.ts";

export interface MaildirTransportOptions {
  /** server.dataDir: stored Maildir paths that are relative are under it. */
  readonly dataDir: string;
  /** Host name in Maildir file names (default os.hostname()). */
  readonly hostname?: string;
  readonly content: StoreContentSource;
  readonly writes: Semaphore;
  readonly logger: Logger;
}

export class MaildirTransport implements Transport<LocalRecipient<MaildirRoute>> {
  /** Maildir files written. */
  stored = 0;

  private readonly opts: MaildirTransportOptions;

  constructor(opts: MaildirTransportOptions) {
    this.opts = opts;
  }

  async deliver(msg: ClaimedMessage, recipients: readonly LocalRecipient<MaildirRoute>[]): Promise<DeliveryOutcome[]> {
    const writes = new Map<string, Promise<MailboxResult>>();
    for (const r of recipients) {
      for (const m of r.mailboxes) {
        if (!writes.has(m.mailbox)) writes.set(m.mailbox, this.opts.writes.run(() => this.store(msg, r.address, m)));
      }
    }
    const results = new Map<string, MailboxResult>();
    for (const [mailbox, p] of writes) results.set(mailbox, await p);
    return recipients.map((r) => combineMailboxes(r.index, r.mailboxes.map((m) => m.mailbox), results));
  }

  /** Writes one copy at its stored path; resolves with the outcome instead of throwing. */
  private async store(msg: ClaimedMessage, rcpt: string, route: MaildirRoute): Promise<MailboxResult> {
    const log = this.opts.logger;
    const { mailbox } = route;
    try {
      const dir = maildirOf(this.opts.dataDir, route.maildir);
      const folder = msg.received.quarantine !== undefined ? { folder: "Junk" } : {};
      const c = await this.opts.content.contentFor(msg, mailbox);
      if ("kind" in c) return c;
      const res = await deliverToMaildir(
        dir,
        { returnPath: msg.envelope.mailFrom, deliveredTo: mailbox, content: c.content },
        { ...(this.opts.hostname !== undefined ? { hostname: this.opts.hostname } : {}), ...folder },
      );
      this.stored++;
      log.debug({ queueId: msg.id, session: msg.received.sessionId, rcpt, mailbox, file: res.name }, "stored in maildir");
      return { kind: "ok" };
    } catch (err) {
      log.warn({ queueId: msg.id, session: msg.received.sessionId, rcpt, mailbox, err: errorText(err) }, "maildir write failed");
      return { kind: "temporary", error: errorText(err) };
    }
  }
}
