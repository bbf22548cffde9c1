/**
 * The local delivery agent of one spool shard: claims due messages, stores
 * them in the recipients' Maildirs (or hands them over LMTP to a local store
 * for the domains in local.lmtp), records per-recipient outcomes.
 *
 * Woken by the spool's `onCommitted` and by a timer (every `pollMs`) for
 * deferred retries and operator releases. At most `concurrency` messages are
 * in flight and at most `concurrency` Maildir writes run at once.
 *
 * Per recipient (resolve.ts): every mailbox it expands to is written, then
 * it is `delivered`. A mailbox reached by several recipients of the message
 * (through aliases) is written once, and mailboxes already stored for
 * recipients delivered in an earlier attempt are not written again.
 * Outcomes: an address outside the local domains goes to the remote
 * transport (src/outbound) when there is one, with the local copies written
 * meanwhile; without one, or for an alias with a target there (queued before
 * aliases were expanded at receipt), it is `deferred` ("remote delivery not
 * implemented"); an unknown local address is `failed`; a filesystem error is `deferred` and retried
 * with the spool's backoff. A mailbox write that failed while another of the
 * same recipient succeeded is retried with the recipient, so that mailbox may
 * get the message twice (at-least-once).
 *
 * LMTP (lmtp.ts, RFC 2033): a mailbox whose domain is in local.lmtp is not
 * written here; each message goes in one LMTP session per server with all
 * of its mailboxes there as recipients (sessions count against the same
 * `concurrency` as Maildir writes). Per mailbox: 2xx stored; 4xx, a
 * refused or lost connection, a timeout: temporary; 5xx: permanent. A
 * recipient is deferred when any of its mailboxes is temporary (the others
 * may get it again on the retry), else failed when any is permanent (with
 * the LMTP reply as the DSN's status and diagnostic), else delivered.
 *
 * Encrypt-on-store (src/e2e, with `encryption`): right before a Maildir
 * write or an LMTP transaction, a mailbox whose account has keys gets the
 * message encrypted to them (once per mailbox and message; unless it is
 * encrypted already); mailboxes with their own encrypted copy get their own
 * LMTP transaction. Keys that cannot be used any more make that mailbox
 * temporary (never stored in the clear instead).
 *
 * Past queue.lifetime every open recipient fails. Failures (and a delay
 * notice) become DSNs to the sender (src/outbound/bounces.ts), queued before
 * the outcome is recorded. Logs name queue id, recipient and mailbox, never
 * content.
 */
import { hostname as osHostname } from "node:os";
import type { Logger } from "pino";
import type { ClaimedMessage, Spool } from "../queue/index.ts";
import { deliverToMaildir } from "./maildir.ts";
import { mailboxPath, resolveRecipient } from "./resolve.ts";
import type { Config, LmtpTarget } from "../config/index.ts";
import type { QueuedRecipient } from "../queue/index.ts";
import type { RemoteOutcome } from "../outbound/index.ts";
import { dsnsFor } from "../outbound/index.ts";
import type { MessageSink } from "../sink/index.ts";
import type { Timeouts } from "../outbound/index.ts";
import type { LocalConfig } from "./resolve.ts";
import { deliverLmtp, describeTarget } from "./lmtp.ts";
import { isEncrypted, type StoreContent, type StoreEncryption } from "../e2e/index.ts";
import { DELIVERY_DELAY_BUCKETS, metrics } from "../metrics/index.ts";

export const REMOTE_NOT_IMPLEMENTED = "remote delivery not implemented";

export interface LocalDeliveryOptions {
  readonly spool: Spool;
  /** Config values used: `server.dataDir` and the `[local]` section. */
  readonly dataDir: string;
  readonly local: LocalConfig;
  /** True for an account address (accounts have a mailbox like local.mailboxes). */
  readonly isAccount?: (address: string) => boolean;
  /** Delivery to other domains (src/outbound); without it such recipients stay deferred. */
  readonly remote?: RemoteDeliverer;
  /** Bounces (DSNs) and the queue lifetime; without it nothing is bounced. */
  /** DSNs: queued through `sink` (the one road into the queue), as a local origin. */
  readonly bounces?: { readonly hostname: string; readonly queue: Config["queue"]; readonly sink: MessageSink };
  readonly logger: Logger;
  /** Told the submitting account (received.auth) and how many of its recipients failed permanently (src/spam/hold.ts counts them). */
  readonly onPermanentFailures?: (account: string, count: number) => void;
  /** Messages in flight and concurrent Maildir writes (default 16). */
  readonly concurrency?: number;
  /** How often due (deferred, released) messages are looked for, in ms (default 1000). */
  readonly pollMs?: number;
  /** Host name in Maildir file names and LHLO (default os.hostname()). */
  readonly hostname?: string;
  /** LMTP timeouts (default lmtp.ts LMTP_TIMEOUTS); tests shorten them. */
  readonly lmtpTimeouts?: Timeouts;
  /** Encrypt-on-store (src/e2e): mail to a mailbox with keys is encrypted before it is written or sent over LMTP. */
  readonly encryption?: StoreEncryption;
}

export interface RemoteDeliverer {
  deliver(msg: ClaimedMessage, recipients: readonly QueuedRecipient[]): Promise<RemoteOutcome[]>;
}

export interface LocalDeliveryStats {
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

/** What became of one mailbox: stored, or why not. */
type MailboxResult =
  | { readonly kind: "ok" }
  | { readonly kind: "temporary"; readonly error: string; readonly status?: string }
  | { readonly kind: "permanent"; readonly error: string; readonly status: string; readonly diagnostic?: string };

class Semaphore {
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

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

export class LocalDelivery {
  private readonly spool: Spool;
  private readonly dataDir: string;
  private readonly local: LocalConfig;
  private readonly isAccount: ((address: string) => boolean) | undefined;
  private readonly remote: RemoteDeliverer | undefined;
  private readonly bounces: LocalDeliveryOptions["bounces"];
  private readonly onPermanentFailures: LocalDeliveryOptions["onPermanentFailures"];
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly pollMs: number;
  private readonly hostname: string | undefined;
  private readonly lmtpTimeouts: Timeouts | undefined;
  private readonly encryption: StoreEncryption | undefined;
  private readonly writes: Semaphore;
  private readonly inFlight = new Set<Promise<void>>();
  private running = false;
  private kickScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private counters = { delivered: 0, deferred: 0, failed: 0, stored: 0, lmtp: 0, encrypted: 0 };

  constructor(opts: LocalDeliveryOptions) {
    this.spool = opts.spool;
    this.dataDir = opts.dataDir;
    this.local = opts.local;
    this.isAccount = opts.isAccount;
    this.remote = opts.remote;
    this.bounces = opts.bounces;
    this.onPermanentFailures = opts.onPermanentFailures;
    this.log = opts.logger.child({ component: "local-delivery", shard: opts.spool.shard });
    this.concurrency = Math.max(1, opts.concurrency ?? 16);
    this.pollMs = Math.max(10, opts.pollMs ?? 1000);
    this.hostname = opts.hostname;
    this.lmtpTimeouts = opts.lmtpTimeouts;
    this.encryption = opts.encryption;
    this.writes = new Semaphore(this.concurrency);
  }

  /** Starts claiming and delivering; idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.spool.enableHandoff();
    this.unsubscribe = this.spool.onCommitted(() => this.kick());
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
    if (!this.spool.isClosed) this.spool.flush();
  }

  stats(): LocalDeliveryStats {
    return { inFlight: this.inFlight.size, ...this.counters };
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
    while (this.running && !this.spool.isClosed && this.inFlight.size < this.concurrency) {
      let batch: ClaimedMessage[];
      try {
        // Fresh mail comes straight from memory; the database is for the rest.
        const room = this.concurrency - this.inFlight.size;
        batch = this.spool.takeFresh(room);
        if (batch.length === 0) batch = this.spool.claimDue(Date.now(), room);
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
    let outcomes: RemoteOutcome[];
    try {
      outcomes = await this.deliver(msg);
    } catch (err) {
      // Never leave a message active: defer whatever was pending.
      this.log.error({ queueId: msg.id, session: msg.received.sessionId, err }, "local delivery failed unexpectedly");
      outcomes = msg.recipients
        .filter((r) => r.state === "queued" || r.state === "deferred")
        .map((r) => ({ index: r.index, result: "deferred" as const, error: `internal error: ${errorText(err)}` }));
    }
    if (this.spool.isClosed) return; // recovered as queued on the next open
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
    if (this.spool.isClosed) return;
    const auth = msg.received.auth;
    if (auth !== undefined && this.onPermanentFailures !== undefined) {
      const permanent = outcomes.filter((o) => o.result === "failed" && (o.status ?? "5").startsWith("5")).length;
      if (permanent > 0) this.onPermanentFailures(auth, permanent);
    }
    this.spool.recordOutcome(msg.id, outcomes);
  }

  private async deliver(msg: ClaimedMessage): Promise<RemoteOutcome[]> {
    const pendingAll = msg.recipients.filter((r) => r.state === "queued" || r.state === "deferred");
    // Past its lifetime: every recipient still open fails (and is bounced).
    if (this.bounces && Date.now() - msg.createdAt >= this.bounces.queue.lifetime * 1000) {
      const hours = Math.round((Date.now() - msg.createdAt) / 3_600_000);
      return pendingAll.map((r) => ({ index: r.index, result: "failed" as const, status: "4.4.7", error: `message expired after ${hours} h in the queue: ${r.lastError ?? msg.lastError ?? "not delivered"}` }));
    }
    // Mailboxes already stored for recipients delivered in an earlier attempt.
    const stored = new Set<string>();
    for (const r of msg.recipients) {
      if (r.state !== "delivered") continue;
      const res = resolveRecipient(this.local, r.address, this.isAccount);
      if (res.remote.length === 0) for (const m of res.mailboxes) stored.add(m);
    }

    const pending = msg.recipients.filter((r) => r.state === "queued" || r.state === "deferred");
    const plan = new Map<number, readonly string[]>(); // recipient index -> mailboxes to write
    const outcomes = new Map<number, RemoteOutcome>();
    const remote: QueuedRecipient[] = [];
    for (const r of pending) {
      const res = resolveRecipient(this.local, r.address, this.isAccount);
      for (const s of res.skipped) {
        if (s.address !== r.address.toLowerCase()) {
          this.log.warn({ queueId: msg.id, session: msg.received.sessionId, rcpt: r.address, target: s.address, reason: s.reason }, "alias target skipped");
        }
      }
      if (res.remote.length > 0) {
        // Aliases to other domains were expanded before queueing, so this is a recipient in another domain.
        const direct = res.remote.length === 1 && res.mailboxes.length === 0 && res.remote[0] === r.address.toLowerCase();
        if (this.remote && direct) remote.push(r);
        else outcomes.set(r.index, { index: r.index, result: "deferred", error: REMOTE_NOT_IMPLEMENTED });
      } else if (res.mailboxes.length === 0 && res.discarded.length > 0) {
        // Only discarded targets: done, nothing to write (as Postfix's discard:).
        outcomes.set(r.index, { index: r.index, result: "delivered" });
      } else if (res.mailboxes.length === 0) {
        const reason = res.skipped.map((s) => s.reason).find((x) => x !== "no such mailbox") ?? "no such mailbox";
        outcomes.set(r.index, { index: r.index, result: "failed", error: reason });
      } else {
        plan.set(r.index, res.mailboxes.filter((m) => !stored.has(m)));
      }
    }

    // Remote recipients go out while the local copies are written.
    const remoteDone = remote.length > 0 && this.remote ? this.remote.deliver(msg, remote) : Promise.resolve([]);

    // One write per distinct Maildir mailbox; one LMTP session per server for the others.
    const writes = new Map<string, Promise<MailboxResult>>();
    const lmtp = new Map<string, { target: LmtpTarget; mailboxes: string[] }>();
    for (const [index, mailboxes] of plan) {
      const rcpt = msg.recipients[index]!;
      for (const mailbox of mailboxes) {
        const target = this.lmtpTarget(mailbox);
        if (target !== undefined) {
          const key = describeTarget(target);
          const group = lmtp.get(key) ?? { target, mailboxes: [] };
          if (!group.mailboxes.includes(mailbox)) group.mailboxes.push(mailbox);
          lmtp.set(key, group);
        } else if (!writes.has(mailbox)) {
          writes.set(mailbox, this.writes.run(() => this.store(msg, rcpt.address, mailbox)));
        }
      }
    }
    const sessions = [...lmtp.values()].map((g) => this.writes.run(() => this.lmtp(msg, g.target, g.mailboxes)));
    const results = new Map<string, MailboxResult>();
    for (const [mailbox, p] of writes) results.set(mailbox, await p);
    for (const p of sessions) for (const [mailbox, r] of await p) results.set(mailbox, r);

    for (const [index, mailboxes] of plan) {
      const got = mailboxes.map((m) => results.get(m) ?? { kind: "temporary" as const, error: "not attempted" });
      const temporary = got.find((r) => r.kind === "temporary");
      const permanent = got.find((r) => r.kind === "permanent");
      if (temporary !== undefined) {
        outcomes.set(index, { index, result: "deferred", error: temporary.error, ...(temporary.status !== undefined ? { status: temporary.status } : {}) });
      } else if (permanent !== undefined) {
        outcomes.set(index, { index, result: "failed", error: permanent.error, status: permanent.status, ...(permanent.diagnostic !== undefined ? { diagnostic: permanent.diagnostic } : {}) });
      } else {
        outcomes.set(index, { index, result: "delivered" });
      }
    }

    for (const o of await remoteDone) outcomes.set(o.index, o);
    const list = [...outcomes.values()].sort((a, b) => a.index - b.index);
    for (const o of list) {
      const rcpt = msg.recipients[o.index]!.address;
      metrics.inc("wardmail_deliveries_total", { outcome: o.result, destination: plan.has(o.index) ? "local" : o.result === "delivered" && o.remoteMta === undefined ? "discard" : "remote" });
      if (o.result === "delivered") {
        if (o.remoteMta !== undefined || plan.has(o.index)) metrics.observe("wardmail_delivery_delay_seconds", { destination: plan.has(o.index) ? "local" : "remote" }, Math.max(0, Date.now() - msg.received.receivedAt) / 1000, DELIVERY_DELAY_BUCKETS);
        this.counters.delivered++;
        const mailboxes = plan.get(o.index);
        if (mailboxes) this.log.info({ queueId: msg.id, session: msg.received.sessionId, rcpt, mailboxes }, "delivered locally");
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
    return list;
  }

  /** The LMTP server of a mailbox's domain, if it has one. */
  private lmtpTarget(mailbox: string): LmtpTarget | undefined {
    const table = this.local.lmtp;
    const domain = mailbox.slice(mailbox.lastIndexOf("@") + 1);
    return Object.hasOwn(table, domain) ? table[domain] : undefined;
  }

  /**
   * What to store for one mailbox: the content as queued, or encrypted to the
   * mailbox's keys (encrypt-on-store); a temporary failure when its keys
   * cannot be used or read. Never throws.
   */
  private async contentFor(msg: ClaimedMessage, mailbox: string): Promise<{ readonly content: Buffer } | { readonly kind: "temporary"; readonly error: string }> {
    if (this.encryption === undefined) return { content: msg.content };
    let res: StoreContent;
    try {
      res = await this.encryption.contentFor(mailbox, msg.content, this.encryptedMemo(msg));
    } catch (err) {
      this.log.warn({ queueId: msg.id, session: msg.received.sessionId, mailbox, err: errorText(err) }, "encryption for storage failed");
      return { kind: "temporary", error: `encryption for storage failed: ${errorText(err)}` };
    }
    if (res.kind === "unusable") {
      this.log.warn({ queueId: msg.id, session: msg.received.sessionId, mailbox, error: res.error }, "not stored: the mailbox's encryption keys cannot be used");
      return { kind: "temporary", error: res.error };
    }
    if (res.kind === "encrypted") {
      this.counters.encrypted++;
      this.log.info({ queueId: msg.id, session: msg.received.sessionId, mailbox, format: res.format, keys: res.fingerprints }, "encrypted for storage");
    } else if (res.why === "already encrypted") {
      this.log.info({ queueId: msg.id, session: msg.received.sessionId, mailbox }, "already encrypted; stored as it is");
    }
    return { content: res.content };
  }

  /** isEncrypted(msg.content), computed once per message (a message object is delivered by one call at a time). */
  private readonly encryptedByMessage = new WeakMap<ClaimedMessage, boolean>();
  private encryptedMemo(msg: ClaimedMessage): boolean {
    let v = this.encryptedByMessage.get(msg);
    if (v === undefined) {
      v = isEncrypted(msg.content);
      this.encryptedByMessage.set(msg, v);
    }
    return v;
  }

  /**
   * The LMTP sessions for these mailboxes of the message at one server:
   * one per mailbox whose copy is encrypted to its own keys (made and sent
   * one after the other, so one encrypted copy is held at a time), then one
   * for every mailbox that gets the content as queued. Never throws.
   */
  private async lmtp(msg: ClaimedMessage, target: LmtpTarget, mailboxes: readonly string[]): Promise<Map<string, MailboxResult>> {
    const out = new Map<string, MailboxResult>();
    const plain: string[] = [];
    for (const mailbox of mailboxes) {
      const c = await this.contentFor(msg, mailbox);
      if ("kind" in c) out.set(mailbox, c);
      else if (c.content === msg.content) plain.push(mailbox);
      else for (const [m, r] of await this.lmtpSession(msg, target, [mailbox], c.content)) out.set(m, r);
    }
    if (plain.length > 0) for (const [m, r] of await this.lmtpSession(msg, target, plain, msg.content)) out.set(m, r);
    return out;
  }

  /** One LMTP session for these mailboxes of the message; never throws. */
  private async lmtpSession(msg: ClaimedMessage, target: LmtpTarget, mailboxes: readonly string[], content: Buffer): Promise<Map<string, MailboxResult>> {
    const where = describeTarget(target);
    const res = await deliverLmtp({
      target,
      helo: this.hostname ?? osHostname(),
      message: { envelope: msg.envelope, content },
      mailboxes,
      ...(this.lmtpTimeouts !== undefined ? { timeouts: this.lmtpTimeouts } : {}),
    });
    const out = new Map<string, MailboxResult>();
    for (const r of res.mailboxes) {
      const said = `${r.code === 0 ? "" : `${r.code} `}${r.status} ${r.text}`;
      if (r.final === "delivered") {
        this.counters.lmtp++;
        out.set(r.mailbox, { kind: "ok" });
      } else if (r.final === "temporary") {
        out.set(r.mailbox, { kind: "temporary", error: `LMTP ${where}: ${said}`, status: r.status });
      } else {
        out.set(r.mailbox, { kind: "permanent", error: `LMTP ${where} said: ${said}`, status: r.status || "5.0.0", ...(r.code !== 0 ? { diagnostic: `smtp; ${said}` } : {}) });
      }
    }
    const log = { queueId: msg.id, session: msg.received.sessionId, lmtp: where, mailboxes: res.mailboxes.map((r) => `${r.mailbox} ${r.final} ${r.code} ${r.status}`) };
    if (res.error !== undefined) this.log.warn({ ...log, error: res.error }, "LMTP session failed");
    else this.log.debug(log, "LMTP session done");
    return out;
  }

  /** Writes one copy; resolves with the outcome instead of throwing. */
  private async store(msg: ClaimedMessage, rcpt: string, mailbox: string): Promise<MailboxResult> {
    try {
      const dir = mailboxPath(this.dataDir, this.local.maildir, mailbox);
      // Quarantined mail (a DMARC quarantine verdict, say) goes to the mailbox's Junk folder.
      const folder = msg.received.quarantine !== undefined ? { folder: "Junk" } : {};
      const c = await this.contentFor(msg, mailbox);
      if ("kind" in c) return c;
      const res = await deliverToMaildir(
        dir,
        { returnPath: msg.envelope.mailFrom, deliveredTo: mailbox, content: c.content },
        { ...(this.hostname !== undefined ? { hostname: this.hostname } : {}), ...folder },
      );
      this.counters.stored++;
      this.log.debug({ queueId: msg.id, session: msg.received.sessionId, rcpt, mailbox, file: res.name }, "stored in maildir");
      return { kind: "ok" };
    } catch (err) {
      this.log.warn({ queueId: msg.id, session: msg.received.sessionId, rcpt, mailbox, err: errorText(err) }, "maildir write failed");
      return { kind: "temporary", error: errorText(err) };
    }
  }
}
