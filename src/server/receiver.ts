/**
 * The receiving host: answers the protocol core's questions for one worker.
 *
 * - AUTH: src/submission/auth.ts (SASL, brute-force guard).
 * - MAIL: an authenticated account may use only its own addresses, aliases
 *   and listed senders (553 5.7.1), within its hourly message limit
 *   (451 4.7.1); <> is allowed (bounces, MDNs) and its From: is still checked.
 * - RCPT: authenticated or trusted clients relay anywhere (authenticated
 *   ones within their hourly recipient limit, 452 4.7.1); everyone else only
 *   reaches local recipients (recipients.ts: 550 5.1.1 unknown, 554 5.7.1
 *   relay denied).
 * - Policy checks (src/policy; SPF, DKIM, ARC, DMARC from src/mailauth) run
 *   on mail from the MX listener that is neither authenticated nor from a
 *   trusted network: at MAIL (SPF) and at the end of content. Their
 *   decision rejects, tempfails, quarantines (Junk folder) or tags.
 * - Content checks (src/server/checks.ts: what a message carries, e.g.
 *   antivirus) run on every message, whatever the listener and the client,
 *   after the inbound checks; the most severe action of both wins.
 * - Compromised accounts (src/spam/hold.ts): an account whose sending
 *   jumps far above its usual level is held; its messages are accepted and
 *   queued on hold; refused recipients at RCPT count towards the hold.
 * - End of content: an authenticated account's From: header must be its
 *   own (550 5.7.1); then the message goes into a sink transaction
 *   (src/sink: alias expansion, our Received header, removal of the header
 *   fields we write ourselves) with the checks' header fields, and the 250
 *   goes out only once the sink says the message is durable.
 */
import type { Config } from "../config/index.ts";
import type { Question } from "../protocol/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import type { Envelope } from "../queue/index.ts";
import type { MessageSink, SinkTransaction } from "../sink/index.ts";
import type { AuthGuard, AuthService } from "../submission/index.ts";
import { checkFromHeader, Networks } from "../submission/index.ts";
import type { ConnectionInfo, HostAnswer, SessionHost } from "./connection.ts";
import { MEMORY_BUSY_MAIL, overMemoryBudget, residentSet } from "./memory.ts";
import { LocalRecipients, type AccountLookup } from "./recipients.ts";
import { CHECK_FAILED, CheckRunner, type CheckInput, type Decision, type Phase } from "../policy/index.ts";
import type { AccountHold } from "../spam/index.ts";

/** The checks' state for the whole connection (CheckInput.connection), made on first use. */
function connectionState(info: ConnectionInfo): Map<string, unknown> {
  return (info.scratch.connectionChecks ??= new Map<string, unknown>());
}

/** Transaction state key: the verdicts of every phase so far. */
const VERDICTS = "receiver.verdicts";
import { FORWARDING } from "../mailauth/index.ts";
import { MessageHead, type HeaderField } from "../message/index.ts";

const SENDER_OK: HostAnswer = { reply: reply(250, "2.1.0", "Sender ok") };
const RCPT_OK = reply(250, "2.1.5", "Recipient ok");
const NOT_OWNER = reply(553, "5.7.1", "Sender address not owned by authenticated user");
const MESSAGE_RATE = reply(451, "4.7.1", "Message rate limit exceeded for this account; try again later");
const RCPT_RATE = reply(452, "4.7.1", "Recipient rate limit exceeded for this account; try again later");
const NO_AUTH_SERVICE = reply(454, "4.7.0", "Temporary authentication failure");
/** More Received: headers than this means a mail loop (Postfix's hopcount_limit is 50 too). */
export const MAX_HOPS = 50;
const TOO_MANY_HOPS = reply(554, "5.4.6", "Too many hops: mail loop detected");

/** Received: header fields in the header section, in every spelling the shared header reader knows (src/message). */
function receivedCount(fields: readonly HeaderField[]): number {
  let n = 0;
  for (const f of fields) if (f.name === "received") n++;
  return n;
}

/** The account side the receiver needs (implemented by AccountStore). */
export interface ReceiverAccounts extends AccountLookup {
  maySendAs(account: string, address: string): boolean;
}

export interface ReceiverDeps {
  readonly config: Config;
  /** The one road into the queue. */
  readonly sink: MessageSink;
  readonly accounts?: ReceiverAccounts;
  readonly auth?: AuthService;
  readonly guard?: AuthGuard;
  /** Policy checks for inbound (MX) mail; undefined: none. */
  readonly checks?: CheckRunner;
  /** Checks of every message's content, whatever its source (src/server/checks.ts); undefined: none. */
  readonly contentChecks?: CheckRunner;
  /** The hold of accounts that look compromised (src/spam/hold.ts); undefined: none. */
  readonly hold?: AccountHold;
}

export class Receiver implements SessionHost {
  private readonly config: Config;
  private readonly sink: MessageSink;
  private readonly accounts: ReceiverAccounts | undefined;
  private readonly auth: AuthService | undefined;
  private readonly guard: AuthGuard | undefined;
  private readonly trusted: Networks;
  private readonly checks: CheckRunner | undefined;
  private readonly contentChecks: CheckRunner | undefined;
  private readonly hold: AccountHold | undefined;
  private readonly authservId: string;
  readonly recipients: LocalRecipients;

  constructor(deps: ReceiverDeps) {
    this.config = deps.config;
    this.sink = deps.sink;
    this.accounts = deps.accounts;
    this.auth = deps.auth;
    this.guard = deps.guard;
    this.trusted = new Networks(deps.config.relay.trustedNetworks);
    this.checks = deps.checks;
    this.contentChecks = deps.contentChecks;
    this.hold = deps.hold;
    this.authservId = deps.config.checks.authservId || deps.config.server.hostname;
    this.recipients = new LocalRecipients(deps.config.local, deps.accounts);
  }

  /** A checked client connected: its connect-time lookups (DNSBL) start now, to be ready by MAIL. */
  connected(info: ConnectionInfo): void {
    if (this.checked(info)) this.checks?.prefetch(info.clientIp);
  }

  answer(q: Question, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    switch (q.type) {
      case "auth":
        if (!this.auth) return { reply: NO_AUTH_SERVICE };
        return this.auth.step(q.mechanism, q.response, q.first, info);
      case "mail":
        // At the memory budget nothing new is taken on (src/server/memory.ts).
        if (overMemoryBudget(this.config.limits.memory_budget)) {
          info.logger.warn({ rss: residentSet() }, "memory budget reached; MAIL refused");
          return { reply: MEMORY_BUSY_MAIL };
        }
        if (this.checked(info)) return this.checkedMail(q.envelope.mailFrom, info);
        return this.mail(q.envelope.mailFrom, info);
      case "rcpt":
        return this.rcpt(q.path.address, q.envelope.mailFrom, q.envelope.recipients.length, info);
      case "message":
        return this.message(q.envelope, q.content, info);
    }
  }

  /** Inbound mail that the policy checks look at: MX listener, not authenticated, not trusted. */
  private checked(info: ConnectionInfo): boolean {
    return this.checks !== undefined && info.listener === "smtp" && info.authUser === undefined && !this.trusted.has(info.clientIp);
  }

  /**
   * MAIL on a checked connection: a fresh transaction state, then the
   * connect, helo and mail hooks. Connect and HELO verdicts are acted on
   * here, at MAIL, not before (as Postfix's smtpd_delay_reject): the client
   * learns nothing until it names a sender, and the log has the whole story.
   */
  private async checkedMail(from: string, info: ConnectionInfo): Promise<HostAnswer> {
    const state = new Map<string, unknown>();
    info.scratch.checks = state;
    const connection = connectionState(info);
    const d = await this.runPhases(["connect", "helo", "mail"], { ...this.inputOf(info), mailFrom: from, recipients: [], state, connection }, info);
    if (d.reply) {
      info.logger.info({ from, verdicts: d.verdicts, action: d.action }, "sender refused by policy");
      return { reply: d.reply };
    }
    return SENDER_OK;
  }

  /** Runs the hooks of the phases in order, stops at a reply; verdicts add up in the transaction state. */
  private async runPhases(phases: readonly Phase[], input: Omit<CheckInput, "signal">, info: ConnectionInfo, checks = this.checks as CheckRunner): Promise<Decision> {
    const seen = (input.state.get(VERDICTS) as string[] | undefined) ?? [];
    let last: Decision | undefined;
    for (const phase of phases) {
      if (!checks.has(phase)) continue;
      const d = await checks.run(phase, input, info.logger);
      if (d.failed) return d;
      last = checks.decide([...seen, ...d.verdicts], d.headers, d.replies);
      // A refused recipient's verdicts do not follow the transaction.
      if (phase !== "data" && last.reply) return last;
      seen.push(...d.verdicts);
      input.state.set(VERDICTS, seen);
    }
    return last ?? checks.decide(seen);
  }

  /** What every check sees of the connection. */
  private inputOf(info: ConnectionInfo): Pick<CheckInput, "clientIp" | "helo" | "listener" | "authUser" | "tls"> {
    return {
      clientIp: info.clientIp,
      helo: info.helo,
      listener: info.listener,
      ...(info.authUser !== undefined ? { authUser: info.authUser } : {}),
      ...(info.tls ? { tls: info.tls } : {}),
    };
  }

  private mail(from: string, info: ConnectionInfo): HostAnswer {
    const account = info.authUser;
    if (account === undefined) return SENDER_OK;
    if (this.guard && !this.guard.mayStartMessage(account)) {
      info.logger.warn({ user: account }, "message rate limit reached");
      return { reply: MESSAGE_RATE };
    }
    if (from !== "" && !this.owns(account, from)) {
      info.logger.warn({ user: account, from }, "sender not owned");
      return { reply: NOT_OWNER };
    }
    return SENDER_OK;
  }

  private owns(account: string, address: string): boolean {
    return this.accounts?.maySendAs(account, address) ?? false;
  }

  private rcpt(address: string, from: string, pending: number, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    const account = info.authUser;
    const relay = account !== undefined || this.trusted.has(info.clientIp);
    if (account !== undefined && this.guard && !this.guard.mayAddRecipient(account, pending)) {
      info.logger.warn({ user: account }, "recipient rate limit reached");
      return { reply: RCPT_RATE };
    }
    const v = this.recipients.check(address, relay);
    if (!v.ok) {
      if (account !== undefined) this.hold?.recordRefused(account);
      info.logger.info({ rcpt: address, code: v.reply.code }, "recipient refused");
      return { reply: v.reply };
    }
    if (this.checked(info) && this.checks?.has("rcpt")) return this.checkedRcpt(v.address, from, info);
    return { reply: RCPT_OK, address: v.address };
  }

  /** The rcpt hooks, for one recipient: a reply refuses only this recipient. */
  private async checkedRcpt(address: string, from: string, info: ConnectionInfo): Promise<HostAnswer> {
    const state = info.scratch.checks ?? new Map<string, unknown>();
    const connection = connectionState(info);
    const d = await this.runPhases(["rcpt"], { ...this.inputOf(info), mailFrom: from, recipients: [address], state, connection }, info);
    if (d.reply) {
      info.logger.info({ rcpt: address, verdicts: d.verdicts, action: d.action }, "recipient refused by policy");
      return { reply: d.reply };
    }
    return { reply: RCPT_OK, address };
  }

  private message(envelope: Envelope, content: Buffer, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    // A mail loop: refuse at the door instead of bouncing later (as Postfix's hopcount_limit).
    // The header section is read once here, for the hop count, for removing the fields we write ourselves,
    // and (with the author, parsed once on first use) for sender ownership and the checks.
    const msgHead = new MessageHead(content);
    const fields = msgHead.fields;
    if (receivedCount(fields) > MAX_HOPS) {
      info.logger.warn({ from: envelope.mailFrom }, "too many Received headers (mail loop)");
      return { reply: TOO_MANY_HOPS };
    }
    const account = info.authUser;
    if (account !== undefined) {
      const refused = checkFromHeader(content, (a) => this.owns(account, a), msgHead);
      if (refused) {
        info.logger.warn({ user: account, code: refused.code }, "From: header refused");
        return { reply: refused };
      }
    }
    const txn = this.begin(envelope, info);
    if (this.checked(info) || this.contentChecks !== undefined) return this.checkedMessage(txn, envelope, content, msgHead, info);
    return this.commit(txn, content, fields, info);
  }

  /** A sink transaction for the message, its recipients added (aliases resolved there, once). */
  private begin(envelope: Envelope, info: ConnectionInfo): SinkTransaction {
    const { recipients, ...head } = envelope;
    const txn = this.sink.begin(head, {
      kind: "smtp",
      session: {
        sessionId: info.sessionId,
        clientIp: info.clientIp,
        clientPort: info.clientPort,
        helo: info.helo,
        protocol: info.protocol,
        ...(info.tls ? { tls: info.tls } : {}),
        listener: info.listener,
        ...(info.authUser !== undefined ? { auth: info.authUser } : {}),
      },
    });
    for (const r of recipients) txn.add(r);
    return txn;
  }

  /**
   * End of content with checks to run: the inbound DATA hooks (on a checked
   * connection), then the content checks (every message); the decision
   * includes MAIL's verdicts.
   */
  private async checkedMessage(txn: SinkTransaction, given: Envelope, content: Buffer, msgHead: MessageHead, info: ConnectionInfo): Promise<HostAnswer> {
    const fields = msgHead.fields;
    const state = info.scratch.checks ?? new Map<string, unknown>();
    // Checked clients cannot relay, so an expansion means an alias sends the
    // message on to another domain: the check then ARC-seals it.
    if (txn.forwards) state.set(FORWARDING, true);
    const recipients = given.recipients.map((r) => r.address);
    const connection = connectionState(info);
    const input = { ...this.inputOf(info), mailFrom: given.mailFrom, recipients, content, head: msgHead, state, connection };
    let decision: Decision | undefined;
    if (this.checked(info)) {
      // A check that failed or timed out: 451, whatever else was found (fail closed).
      decision = await this.runPhases(["data"], input, info);
      if (decision.failed) return this.refuse(txn, decision.reply ?? CHECK_FAILED);
    }
    if (this.contentChecks !== undefined && !decision?.reply) {
      const earlier = decision ? { earlier: { verdicts: decision.verdicts, headers: decision.headers } } : {};
      const d = await this.contentChecks.run("data", { ...input, ...earlier, state: new Map<string, unknown>() }, info.logger);
      if (d.failed) return this.refuse(txn, d.reply ?? CHECK_FAILED);
      decision = decision ? CheckRunner.merge(decision, d) : d;
    }
    if (decision === undefined) return this.commit(txn, content, fields, info);
    // Nothing found (a content check with no verdict): a line only at debug level.
    const level = decision.verdicts.length > 0 ? "info" : "debug";
    if (info.logger.isLevelEnabled(level)) info.logger[level]({ from: given.mailFrom, verdicts: decision.verdicts, action: decision.action, triggered: decision.triggered }, "checks");
    if (decision.reply) return this.refuse(txn, decision.reply);
    const extra = [...decision.headers];
    if (decision.action === "tag" || decision.action === "quarantine") extra.push(`X-Wardmail-Verdict: ${decision.triggered.join(", ")} (${decision.action})`);
    const head = extra.map((h) => `${h}\r\n`).join("");
    const quarantine = decision.action === "quarantine" ? decision.triggered.join(",") : undefined;
    return this.commit(txn, content, fields, info, { head, ...(quarantine !== undefined ? { quarantine } : {}) });
  }

  private refuse(txn: SinkTransaction, r: Reply): HostAnswer {
    txn.abort();
    return { reply: r };
  }

  /**
   * Queues the message through the sink; the 250 names the queue id. A
   * submitting account that is held, or that this message puts on hold
   * (src/spam/hold.ts): its message is accepted and queued on hold, so
   * nothing is lost and the sender sees no difference. A new hold is logged
   * as a warning with its reason.
   */
  private async commit(txn: SinkTransaction, content: Buffer, fields: readonly HeaderField[], info: ConnectionInfo, opts: { head?: string; quarantine?: string } = {}): Promise<HostAnswer> {
    const account = info.authUser;
    const h = account !== undefined ? this.hold?.check(account, txn.envelope.recipients.length) : undefined;
    const held = h !== undefined;
    const { id, size, envelope } = await txn.commit(content, { ...opts, fields, ...(held ? { hold: true } : {}) });
    if (h?.started) info.logger.warn({ user: account, reason: h.hold.reason, queueId: id }, "account held: its messages are queued on hold until `wardmail user release`");
    if (account !== undefined) this.guard?.recordMessage(account, envelope.recipients.length);
    info.logger.info({ queueId: id, from: envelope.mailFrom, rcpts: envelope.recipients.length, size, tls: info.tls?.version, user: account, ...(held ? { held: true } : {}) }, "message accepted");
    return { reply: reply(250, "2.0.0", `Ok: queued as ${id}`) };
  }
}
