/**
 * The queue manager of one spool shard: claims due messages, sorts each
 * open recipient by the route stored with it when it was queued (route.ts;
 * decided by the sink, src/sink router.ts — never again here), hands them
 * to the transports — Maildir and LMTP (src/delivery) for local mailboxes,
 * the remote SMTP transport (src/outbound) for other domains — all through
 * one interface,
 * `deliver(message, recipients) → outcomes` (src/delivery/transport.ts),
 * then queues the DSNs and records the per-recipient outcomes.
 *
 * Woken by the spool's `onCommitted` and by a timer (every `pollMs`) for
 * deferred retries and operator releases. At most `concurrency` messages are
 * in flight and at most `concurrency` Maildir writes and LMTP sessions run
 * at once.
 *
 * Per recipient: every mailbox of its stored route is written (at the
 * stored Maildir path, or to the stored LMTP server), then it is
 * `delivered`. A mailbox reached by several recipients of the message
 * (through aliases) is written once, and mailboxes already stored for
 * recipients delivered in an earlier attempt are not written again. An
 * address outside the local domains goes to the remote transport when there
 * is one, with the local copies written meanwhile; without one it is
 * `deferred` ("remote delivery not implemented"), as is a recipient whose
 * stored route says deferred; an unknown local address (route failed) is
 * `failed`; a filesystem error is `deferred` and retried
 * with the spool's backoff. A mailbox write that failed while another of the
 * same recipient succeeded is retried with the recipient, so that mailbox may
 * get the message twice (at-least-once). A recipient with mailboxes in both
 * local transports is deferred when either defers it, else failed when
 * either fails it.
 *
 * Expiry is decided here, once: past queue.lifetime every open recipient
 * fails (4.4.7). Failures (and a delay notice) become DSNs to the sender
 * (src/outbound/bounces.ts), queued through the sink before the outcome is
 * recorded. Logs name queue id, recipient and mailbox, never content.
 */
import type { Logger } from "pino";
import type { ClaimedMessage, SpoolScheduler, SpoolWriter } from "../queue/index.ts";
import type { Config } from "../config/index.ts";
import { dsnsFor, type Timeouts } from "../outbound/index.ts";
import type { MessageSink } from "../sink/index.ts";
import { errorText, LmtpTransport, MaildirTransport, Semaphore, StoreContentSource, type DeliveryOutcome, type LocalRecipient, type Transport } from "../delivery/index.ts";
import type { LmtpRoute, MailboxRoute, MaildirRoute } from "../queue/index.ts";
import type { StoreEncryption } from "../e2e/index.ts";
import { DELIVERY_DELAY_BUCKETS, metrics } from "../metrics/index.ts";
import { routeMessage } from "./route.ts";

/** The two views of a shard the queue manager uses (a Spool has both): never its admin view. */
export interface QueueViews {
  readonly scheduler: SpoolScheduler;
  readonly writer: SpoolWriter;
}

export interface QueueManagerOptions {
  /** The shard's scheduler (claims) and writer (outcomes). */
  readonly spool: QueueViews;
  /** server.dataDir: the Maildir paths stored with the routes are relative to it (unless absolute). */
  readonly dataDir: string;
  /** Delivery to other domains (src/outbound); without it such recipients stay deferred. */
  readonly remote?: Transport;
  /** Bounces (DSNs) and the queue lifetime; without it nothing is bounced or expired. DSNs are queued through `sink` (the one road into the queue), as a local origin. */
  readonly bounces?: { readonly hostname: string; readonly queue: Config["queue"]; readonly sink: MessageSink };
  readonly logger: Logger;
  /** Told the submitting account (received.auth) and how many of its recipients failed permanently (src/spam/hold.ts counts them). */
  readonly onPermanentFailures?: (account: string, count: number) => void;
  /** Messages in flight and concurrent Maildir writes / LMTP sessions (default 16). */
  readonly concurrency?: number;
  /** How often due (deferred, released) messages are looked for, in ms (default 1000). */
  readonly pollMs?: number;
  /** Host name in Maildir file names and LHLO (default os.hostname()). */
  readonly hostname?: string;
  /** LMTP timeouts (default src/delivery LMTP_TIMEOUTS); tests shorten them. */
  readonly lmtpTimeouts?: Timeouts;
  /** Encrypt-on-store (src/e2e): mail to a mailbox with keys is encrypted before it is written or sent over LMTP. */
  readonly encryption?: StoreEncryption;
}

export interface QueueManagerStats {
  readonly inFlight: number;
  readonly delivered: number;
  readonly deferred: number;
  readonly failed: number;
  /** Maildir files written. */
  readonly stored: number;
  /** Mailboxes an LMTP server accepted the message for. */
  readonly lmtp: number;
  /** Copies encrypted to a mailbox's keys before storing (encrypt-on-store). */
  readonly encrypted: number;
}

/** wardmail_deliveries_total by outcome and destination, bound once per series (src/metrics Registry.counter). */
const deliveriesBound = new Map<string, { inc(): void }>();
function deliveriesTotal(outcome: DeliveryOutcome["result"], destination: "local" | "remote" | "discard"): { inc(): void } {
  const key = `${outcome}/${destination}`;
  let c = deliveriesBound.get(key);
  if (c === undefined) deliveriesBound.set(key, (c = metrics.counter("wardmail_deliveries_total", { outcome, destination })));
  return c;
}

/** wardmail_delivery_delay_seconds by destination, bound once. */
const delayBound = new Map<string, { observe(value: number): void }>();
function deliveryDelay(destination: "local" | "remote"): { observe(value: number): void } {
  let h = delayBound.get(destination);
  if (h === undefined) delayBound.set(destination, (h = metrics.histogram("wardmail_delivery_delay_seconds", { destination }, DELIVERY_DELAY_BUCKETS)));
  return h;
}

/** Two outcomes of one recipient from two transports: deferred wins, then failed. */
function worse(a: DeliveryOutcome | undefined, b: DeliveryOutcome): DeliveryOutcome {
  if (a === undefined) return b;
  const rank = (o: DeliveryOutcome): number => (o.result === "deferred" ? 2 : o.result === "failed" ? 1 : 0);
  return rank(b) > rank(a) ? b : a;
}

export class QueueManager {
  private readonly scheduler: SpoolScheduler;
  private readonly writer: SpoolWriter;
  private readonly remote: Transport | undefined;
  private readonly maildir: MaildirTransport;
  private readonly lmtp: LmtpTransport;
  private readonly content: StoreContentSource;
  private readonly bounces: QueueManagerOptions["bounces"];
  private readonly onPermanentFailures: QueueManagerOptions["onPermanentFailures"];
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly pollMs: number;
  private readonly inFlight = new Set<Promise<void>>();
  private running = false;
  private kickScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private counters = { delivered: 0, deferred: 0, failed: 0 };

  constructor(opts: QueueManagerOptions) {
    this.scheduler = opts.spool.scheduler;
    this.writer = opts.spool.writer;
    this.remote = opts.remote;
    this.bounces = opts.bounces;
    this.onPermanentFailures = opts.onPermanentFailures;
    this.log = opts.logger.child({ component: "local-delivery", shard: opts.spool.scheduler.shard });
    this.concurrency = Math.max(1, opts.concurrency ?? 16);
    this.pollMs = Math.max(10, opts.pollMs ?? 1000);
    const writes = new Semaphore(this.concurrency);
    this.content = new StoreContentSource(opts.encryption, this.log);
    const hostname = opts.hostname !== undefined ? { hostname: opts.hostname } : {};
    this.maildir = new MaildirTransport({ dataDir: opts.dataDir, ...hostname, content: this.content, writes, logger: this.log });
    this.lmtp = new LmtpTransport({ ...hostname, ...(opts.lmtpTimeouts !== undefined ? { timeouts: opts.lmtpTimeouts } : {}), content: this.content, writes, logger: this.log });
  }

  /** Starts claiming and delivering; idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.scheduler.enableHandoff();
    this.unsubscribe = this.scheduler.onCommitted(() => this.kick());
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops claiming; resolves when every delivery in flight has finished and its outcome is committed. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    if (!this.writer.isClosed) this.writer.flush();
  }

  stats(): QueueManagerStats {
    return { inFlight: this.inFlight.size, ...this.counters, stored: this.maildir.stored, lmtp: this.lmtp.accepted, encrypted: this.content.encrypted };
  }

  private kick(): void {
    if (!this.running || this.kickScheduled) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      this.pump();
    });
  }

  /** Claims as many due messages as there is room for and starts them. */
  private pump(): void {
    while (this.running && !this.scheduler.isClosed && this.inFlight.size < this.concurrency) {
      let batch: ClaimedMessage[];
      try {
        // Fresh mail comes straight from memory; the database is for the rest.
        const room = this.concurrency - this.inFlight.size;
        batch = this.scheduler.takeFresh(room);
        if (batch.length === 0) batch = this.scheduler.claimDue(Date.now(), room);
      } catch (err) {
        this.log.error({ err }, "claiming due messages failed; will try again");
        return;
      }
      if (batch.length === 0) return;
      for (const msg of batch) {
        const p: Promise<void> = this.process(msg).finally(() => {
          this.inFlight.delete(p);
          this.kick();
        });
        this.inFlight.add(p);
      }
    }
  }

  private async process(msg: ClaimedMessage): Promise<void> {
    let outcomes: DeliveryOutcome[];
    try {
      outcomes = await this.deliver(msg);
    } catch (err) {
      // Never leave a message active: defer whatever was pending.
      this.log.error({ queueId: msg.id, session: msg.received.sessionId, err }, "local delivery failed unexpectedly");
      outcomes = msg.recipients
        .filter((r) => r.state === "queued" || r.state === "deferred")
        .map((r) => ({ index: r.index, result: "deferred" as const, error: `internal error: ${errorText(err)}` }));
    }
    if (this.writer.isClosed) return; // recovered as queued on the next open
    // Bounces are queued (durably) before the outcomes that caused them are recorded.
    if (this.bounces) {
      for (const dsn of dsnsFor(msg, outcomes, this.bounces)) {
        try {
          const { recipients, ...head } = dsn.envelope;
          const t = this.bounces.sink.begin(head, { kind: "local", source: "dsn", ref: msg.id });
          for (const r of recipients) t.add(r);
          const { id } = await t.commit(dsn.content);
          this.log.info({ queueId: msg.id, dsn: id, to: msg.envelope.mailFrom }, "delivery status notification queued");
        } catch (err) {
          this.log.error({ queueId: msg.id, err: errorText(err) }, "could not queue a DSN; the recipients stay deferred");
          outcomes = outcomes.map((o) => (o.result === "failed" ? { ...o, result: "deferred" as const } : o));
        }
      }
    }
    if (this.writer.isClosed) return;
    const auth = msg.received.auth;
    if (auth !== undefined && this.onPermanentFailures !== undefined) {
      const permanent = outcomes.filter((o) => o.result === "failed" && (o.status ?? "5").startsWith("5")).length;
      if (permanent > 0) this.onPermanentFailures(auth, permanent);
    }
    this.writer.recordOutcome(msg.id, outcomes);
  }

  /** Past queue.lifetime: every recipient still open fails (and is bounced). The only place the lifetime is applied. */
  private expired(msg: ClaimedMessage): DeliveryOutcome[] | undefined {
    if (!this.bounces || Date.now() - msg.createdAt < this.bounces.queue.lifetime * 1000) return undefined;
    const hours = Math.round((Date.now() - msg.createdAt) / 3_600_000);
    return msg.recipients
      .filter((r) => r.state === "queued" || r.state === "deferred")
      .map((r) => ({ index: r.index, result: "failed" as const, status: "4.4.7", error: `message expired after ${hours} h in the queue: ${r.lastError ?? msg.lastError ?? "not delivered"}` }));
  }

  private async deliver(msg: ClaimedMessage): Promise<DeliveryOutcome[]> {
    const expired = this.expired(msg);
    if (expired !== undefined) return expired;
    const routes = routeMessage(msg, { hasRemote: this.remote !== undefined });
    const outcomes = new Map<number, DeliveryOutcome>(routes.decided);

    // Remote recipients go out while the local copies are written.
    const remoteDone = routes.remote.length > 0 && this.remote ? this.remote.deliver(msg, routes.remote) : Promise.resolve([]);

    // Each local mailbox goes to the LMTP server or the Maildir its stored route names.
    const toMaildir: LocalRecipient<MaildirRoute>[] = [];
    const toLmtp: LocalRecipient<LmtpRoute>[] = [];
    for (const [index, mailboxes] of routes.local) {
      const rcpt = msg.recipients[index]!;
      const viaLmtp = mailboxes.filter((m): m is LmtpRoute => "lmtp" in m);
      const viaMaildir = mailboxes.filter((m): m is MaildirRoute => "maildir" in m);
      if (viaLmtp.length > 0) toLmtp.push({ ...rcpt, mailboxes: viaLmtp });
      if (viaMaildir.length > 0) toMaildir.push({ ...rcpt, mailboxes: viaMaildir });
      if (mailboxes.length === 0) outcomes.set(index, { index, result: "delivered" }); // all stored in an earlier attempt
    }
    const local = await Promise.all([toMaildir.length > 0 ? this.maildir.deliver(msg, toMaildir) : [], toLmtp.length > 0 ? this.lmtp.deliver(msg, toLmtp) : []]);
    for (const list of local) for (const o of list) outcomes.set(o.index, worse(outcomes.get(o.index), o));

    for (const o of await remoteDone) outcomes.set(o.index, o);
    const list = [...outcomes.values()].sort((a, b) => a.index - b.index);
    this.account(msg, list, routes.local);
    return list;
  }

  /** Counters, metrics and one log line per recipient outcome. */
  private account(msg: ClaimedMessage, list: readonly DeliveryOutcome[], plan: ReadonlyMap<number, readonly MailboxRoute[]>): void {
    for (const o of list) {
      const rcpt = msg.recipients[o.index]!.address;
      deliveriesTotal(o.result, plan.has(o.index) ? "local" : o.result === "delivered" && o.remoteMta === undefined ? "discard" : "remote").inc();
      if (o.result === "delivered") {
        if (o.remoteMta !== undefined || plan.has(o.index)) deliveryDelay(plan.has(o.index) ? "local" : "remote").observe(Math.max(0, Date.now() - msg.received.receivedAt) / 1000);
        this.counters.delivered++;
        const mailboxes = plan.get(o.index);
        if (mailboxes) this.log.info({ queueId: msg.id, session: msg.received.sessionId, rcpt, mailboxes: mailboxes.map((m) => m.mailbox) }, "delivered locally");
        else if (o.remoteMta !== undefined) this.log.info({ queueId: msg.id, session: msg.received.sessionId, rcpt, mx: o.remoteMta }, "delivered to the remote MX");
        else this.log.info({ queueId: msg.id, session: msg.received.sessionId, rcpt }, "discarded (local.discard)");
      } else if (o.result === "deferred") {
        this.counters.deferred++;
        this.log.warn({ queueId: msg.id, session: msg.received.sessionId, rcpt, error: o.error }, "delivery deferred");
      } else {
        this.counters.failed++;
        this.log.warn({ queueId: msg.id, session: msg.received.sessionId, rcpt, error: o.error }, "delivery failed");
      }
    }
  }
}
