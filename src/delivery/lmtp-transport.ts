/**
 * The LMTP transport (lmtp.ts, RFC 2033): the mailboxes it is handed, each
 * with the LMTP server its stored route names (local.lmtp when the message
 * was queued), go in one LMTP session per server with all
 * of the message's mailboxes there as recipients; a mailbox whose copy is
 * encrypted to its own keys (store-content.ts) gets a session of its own
 * (made and sent one after the other, so one encrypted copy is held at a
 * time). Sessions count against the shared semaphore. Per mailbox: 2xx
 * stored; 4xx, a refused or lost connection, a timeout: temporary; 5xx:
 * permanent (its reply becomes the DSN's status and diagnostic). A recipient
 * is deferred when any of its mailboxes is temporary, else failed when any is
 * permanent, else delivered.
 */
import { hostname as osHostname } from "node:os";
import type { Logger } from "pino";
import type { LmtpTarget } from "../config/index.ts";
import type { Timeouts } from "../outbound/index.ts";
import type { ClaimedMessage, LmtpRoute } from "../queue/index.ts";
import { deliverLmtp, describeTarget } from "./lmtp.ts";
import type { StoreContentSource } from "./store-content.ts";
import { combineMailboxes, type DeliveryOutcome, type LocalRecipient, type MailboxResult, type Semaphore, type Transport } from "./transport.ts";

export interface LmtpTransportOptions {
  /** Our name for LHLO (default os.hostname()). */
  readonly hostname?: string;
  /** Default lmtp.ts LMTP_TIMEOUTS; tests shorten them. */
  readonly timeouts?: Timeouts;
  readonly content: StoreContentSource;
  readonly writes: Semaphore;
  readonly logger: Logger;
}

export class LmtpTransport implements Transport<LocalRecipient<LmtpRoute>> {
  /** Mailboxes an LMTP server accepted a message for. */
  accepted = 0;

  private readonly opts: LmtpTransportOptions;

  constructor(opts: LmtpTransportOptions) {
    this.opts = opts;
  }

  async deliver(msg: ClaimedMessage, recipients: readonly LocalRecipient<LmtpRoute>[]): Promise<DeliveryOutcome[]> {
    const groups = new Map<string, { target: LmtpTarget; mailboxes: string[] }>();
    const results = new Map<string, MailboxResult>();
    for (const r of recipients) {
      for (const { mailbox, lmtp: target } of r.mailboxes) {
        const key = describeTarget(target);
        const group = groups.get(key) ?? { target, mailboxes: [] };
        if (!group.mailboxes.includes(mailbox)) group.mailboxes.push(mailbox);
        groups.set(key, group);
      }
    }
    const sessions = [...groups.values()].map((g) => this.opts.writes.run(() => this.atServer(msg, g.target, g.mailboxes)));
    for (const p of sessions) for (const [mailbox, r] of await p) results.set(mailbox, r);
    return recipients.map((r) => combineMailboxes(r.index, r.mailboxes.map((m) => m.mailbox), results));
  }

  /** The sessions for these mailboxes of the message at one server; never throws. */
  private async atServer(msg: ClaimedMessage, target: LmtpTarget, mailboxes: readonly string[]): Promise<Map<string, MailboxResult>> {
    const out = new Map<string, MailboxResult>();
    const plain: string[] = [];
    for (const mailbox of mailboxes) {
      const c = await this.opts.content.contentFor(msg, mailbox);
      if ("kind" in c) out.set(mailbox, c);
      else if (c.content === msg.content) plain.push(mailbox);
      else for (const [m, r] of await this.session(msg, target, [mailbox], c.content)) out.set(m, r);
    }
    if (plain.length > 0) for (const [m, r] of await this.session(msg, target, plain, msg.content)) out.set(m, r);
    return out;
  }

  /** One LMTP session for these mailboxes of the message; never throws. */
  private async session(msg: ClaimedMessage, target: LmtpTarget, mailboxes: readonly string[], content: Buffer): Promise<Map<string, MailboxResult>> {
    const where = describeTarget(target);
    const res = await deliverLmtp({
      target,
      helo: this.opts.hostname ?? osHostname(),
      message: { envelope: msg.envelope, content },
      mailboxes,
      ...(this.opts.timeouts !== undefined ? { timeouts: this.opts.timeouts } : {}),
    });
    const out = new Map<string, MailboxResult>();
    for (const r of res.mailboxes) {
      const said = `${r.code === 0 ? "" : `${r.code} `}${r.status} ${r.text}`;
      if (r.final === "delivered") {
        this.accepted++;
        out.set(r.mailbox, { kind: "ok" });
      } else if (r.final === "temporary") {
        out.set(r.mailbox, { kind: "temporary", error: `LMTP ${where}: ${said}`, status: r.status });
      } else {
        out.set(r.mailbox, { kind: "permanent", error: `LMTP ${where} said: ${said}`, status: r.status || "5.0.0", ...(r.code !== 0 ? { diagnostic: `smtp; ${said}` } : {}) });
      }
    }
    const log = { queueId: msg.id, session: msg.received.sessionId, lmtp: where, mailboxes: res.mailboxes.map((r) => `${r.mailbox} ${r.final} ${r.code} ${r.status}`) };
    if (res.error !== undefined) this.opts.logger.warn({ ...log, error: res.error }, "LMTP session failed");
    else this.opts.logger.debug(log, "LMTP session done");
    return out;
  }
}
