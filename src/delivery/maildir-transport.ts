/**
 * The Maildir transport: stores a message in the Maildirs of the mailboxes
 * it is handed (maildir.ts), one write per distinct mailbox even when
 * several recipients of the message reach it (through aliases), at most as
 * many writes at once as the shared semaphore lets through. Quarantined mail
 * (a DMARC quarantine verdict, say) goes to the mailbox's Junk folder.
 * Encrypt-on-store through store-content.ts. A filesystem error makes the
 * mailbox temporary; a recipient is deferred when any of its mailboxes is.
 */
import type { Logger } from "pino";
import type { ClaimedMessage } from "../queue/index.ts";
import { deliverToMaildir } from "./maildir.ts";
import { mailboxPath } from "./resolve.ts";
import type { StoreContentSource } from "./store-content.ts";
import { combineMailboxes, errorText, type DeliveryOutcome, type MailboxResult, type RoutedRecipient, type Semaphore, type Transport } from "./transport.ts";

export interface MaildirTransportOptions {
  /** server.dataDir: relative Maildir paths are under it. */
  readonly dataDir: string;
  /** local.maildir: the path template (%d, %n). */
  readonly maildir: string;
  /** Host name in Maildir file names (default os.hostname()). */
  readonly hostname?: string;
  readonly content: StoreContentSource;
  readonly writes: Semaphore;
  readonly logger: Logger;
}

export class MaildirTransport implements Transport {
  /** Maildir files written. */
  stored = 0;

  private readonly opts: MaildirTransportOptions;

  constructor(opts: MaildirTransportOptions) {
    this.opts = opts;
  }

  async deliver(msg: ClaimedMessage, recipients: readonly RoutedRecipient[]): Promise<DeliveryOutcome[]> {
    const writes = new Map<string, Promise<MailboxResult>>();
    for (const r of recipients) {
      for (const mailbox of r.mailboxes) {
        if (!writes.has(mailbox)) writes.set(mailbox, this.opts.writes.run(() => this.store(msg, r.address, mailbox)));
      }
    }
    const results = new Map<string, MailboxResult>();
    for (const [mailbox, p] of writes) results.set(mailbox, await p);
    return recipients.map((r) => combineMailboxes(r.index, r.mailboxes, results));
  }

  /** Writes one copy; resolves with the outcome instead of throwing. */
  private async store(msg: ClaimedMessage, rcpt: string, mailbox: string): Promise<MailboxResult> {
    const log = this.opts.logger;
    try {
      const dir = mailboxPath(this.opts.dataDir, this.opts.maildir, mailbox);
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
