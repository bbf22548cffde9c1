/**
 * The one road into the queue. Everything that queues a message goes
 * through a MessageSink: mail received over SMTP (src/server/receiver.ts),
 * delivery status notifications (src/delivery) and TLS reports
 * (src/outbound). A transaction is begun with the envelope's sender and
 * parameters and where the message comes from, gets its recipients, and
 * ends with commit(content) → queue id (durable) or abort().
 *
 * The sink owns what every queued message must get the same way:
 * - alias expansion and routing (as Postfix's virtual aliases in cleanup,
 *   router.ts): each recipient is resolved once, when it is added, and its
 *   route (local mailboxes with their Maildir paths or LMTP servers,
 *   discard, remote, failed) is stored with it in the queue; delivery never
 *   routes again. An alias that reaches other domains becomes its own
 *   envelope recipients, each with its own delivery state, so a retry for
 *   one remote target never sends again to the others; ORCPT keeps the
 *   address the client gave (RFC 3461 §4.2). Purely local aliases stay one
 *   recipient whose route lists its mailboxes.
 * - for mail from an SMTP client: removal of the header fields we write
 *   ourselves (Authentication-Results claiming our authserv-id,
 *   Received-SPF, X-Wardmail-Verdict, Return-Path), then our Received
 *   header on top, then the checks' fields;
 * - the queue id and the session facts stored with the message.
 * Local origins (DSN, TLS-RPT) have no client: no made-up address is
 * stored, their content is queued as built.
 */
import type { Logger } from "pino";
import { stripOwnHeaders, type HeaderField } from "../message/index.ts";
import { concatOwned, newQueueId, type SpoolWriter } from "../queue/index.ts";
import type { EnvelopeRecipient, ReceivedInfo, StoredEnvelope, StoredRecipient } from "../queue/index.ts";
import { receivedHeader } from "./received.ts";
import type { LocalConfig } from "./resolve.ts";
import { Router } from "./router.ts";

/** Where a message comes from. */
export type Origin =
  /** An SMTP client: the session facts (ReceivedInfo without the time, which the sink sets). */
  | { readonly kind: "smtp"; readonly session: Omit<ReceivedInfo, "receivedAt" | "quarantine"> }
  /** Wardmail itself: a DSN about a queued message, or a TLS report. */
  | { readonly kind: "local"; readonly source: "dsn" | "tlsrpt"; readonly ref: string };

/** The envelope without its recipients: those are added one by one. */
export type EnvelopeHead = Omit<StoredEnvelope, "recipients">;

export interface CommitOptions {
  /** Header fields put on top of the content after our Received (CRLF-ended lines). */
  readonly head?: string;
  /** The verdicts that quarantine the message (delivered to Junk). */
  readonly quarantine?: string;
  /** The header section of the content, already read (saves reading it again). */
  readonly fields?: readonly HeaderField[];
  /** Queue the message on hold (an account held as compromised, src/spam/hold.ts): not delivered until released. */
  readonly hold?: boolean;
}

export interface Committed {
  readonly id: string;
  /** Size of what was queued (our header fields included). */
  readonly size: number;
  readonly envelope: StoredEnvelope;
}

export interface SinkOptions {
  /** The shard's writer view: it can enqueue, never delete. */
  readonly spool: SpoolWriter;
  readonly shard: number;
  readonly hostname: string;
  /** Our authserv-id: incoming Authentication-Results claiming it are removed. */
  readonly authservId: string;
  readonly local: LocalConfig;
  /** server.dataDir: Maildir paths under it are stored relative to it (router.ts). */
  readonly dataDir?: string;
  /** True for an address that is an account (not an alias). */
  readonly isAccount?: (address: string) => boolean;
  /** Alias targets that lead nowhere are logged here (a config mistake), once per message. */
  readonly logger?: Logger;
  readonly now?: () => number;
}

export class MessageSink {
  private readonly opts: SinkOptions;
  /** Where each recipient goes (router.ts); also routes the records of an older Wardmail (src/queue Spool.routeOldRecords). */
  readonly router: Router;

  constructor(opts: SinkOptions) {
    this.opts = opts;
    this.router = new Router({ local: opts.local, ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}), ...(opts.isAccount !== undefined ? { isAccount: opts.isAccount } : {}) });
  }

  begin(head: EnvelopeHead, origin: Origin): SinkTransaction {
    return new SinkTransaction(this.opts, this.router, head, origin);
  }
}

export class SinkTransaction {
  private readonly opts: SinkOptions;
  private readonly router: Router;
  private readonly head: EnvelopeHead;
  private readonly origin: Origin;
  private readonly recipients: StoredRecipient[] = [];
  private readonly seen = new Set<string>();
  private expanded = false;
  private state: "open" | "committed" | "aborted" = "open";

  constructor(opts: SinkOptions, router: Router, head: EnvelopeHead, origin: Origin) {
    this.opts = opts;
    this.router = router;
    this.head = head;
    this.origin = origin;
  }

  /** Adds a recipient as the client (or the DSN, the report) named it, resolving its aliases and deciding its route now. */
  add(r: EnvelopeRecipient): void {
    if (this.state !== "open") throw new Error(`sink transaction already ${this.state}`);
    const x = this.router.expand(r);
    if (x.forwards) this.expanded = true;
    for (const s of x.skipped) this.opts.logger?.warn({ rcpt: r.address, target: s.address, reason: s.reason }, "alias target skipped");
    for (const k of x.recipients) this.keep(k);
  }

  private keep(r: StoredRecipient): void {
    const key = r.address.toLowerCase();
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.recipients.push(r);
  }

  /** An alias sent a recipient on to another domain (the checks then ARC-seal the message). */
  get forwards(): boolean {
    return this.expanded;
  }

  /** The envelope as it will be queued. */
  get envelope(): StoredEnvelope {
    return { ...this.head, recipients: this.recipients.slice() };
  }

  /** Queues the message; resolves with its queue id once it is durable. */
  async commit(content: Buffer, opts: CommitOptions = {}): Promise<Committed> {
    if (this.state !== "open") throw new Error(`sink transaction already ${this.state}`);
    if (this.recipients.length === 0) throw new Error("sink transaction without recipients");
    this.state = "committed";
    const now = (this.opts.now ?? Date.now)();
    const id = newQueueId(this.opts.shard, now);
    const envelope = this.envelope;
    let full: Buffer;
    let received: ReceivedInfo;
    if (this.origin.kind === "smtp") {
      received = { ...this.origin.session, ...(opts.quarantine !== undefined ? { quarantine: opts.quarantine } : {}), receivedAt: now };
      const only = envelope.recipients.length === 1 ? envelope.recipients[0]?.address : undefined;
      const top = Buffer.from(receivedHeader(received, this.opts.hostname, id, only) + (opts.head ?? ""), "utf8");
      const body = stripOwnHeaders(content, this.opts.authservId, opts.fields);
      // Memory of its own: the queue may keep it until delivery (src/queue handoff.ts).
      full = concatOwned([top, body], top.length + body.length);
    } else {
      received = {
        sessionId: `${this.origin.source}-${this.origin.ref}`,
        clientIp: "",
        clientPort: 0,
        helo: this.opts.hostname,
        protocol: "local",
        listener: this.origin.source,
        ...(opts.quarantine !== undefined ? { quarantine: opts.quarantine } : {}),
        receivedAt: now,
      };
      full = opts.head ? Buffer.concat([Buffer.from(opts.head, "utf8"), content]) : content;
    }
    await this.opts.spool.enqueue({ envelope, received, content: full, ...(opts.hold === true ? { hold: true } : {}) }, id);
    return { id, size: full.length, envelope };
  }

  /** Drops the transaction; nothing was queued. */
  abort(): void {
    if (this.state === "open") this.state = "aborted";
  }
}
