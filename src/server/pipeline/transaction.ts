/**
 * The policy object of one SMTP transaction, and what every listener role
 * shares of it.
 *
 * A Transaction is made at MAIL by the pipeline of the connection's role
 * (roles.ts decides the role, once) and lives until the transaction ends:
 * after the message's answer, at RSET, EHLO or STARTTLS, when MAIL is
 * refused, or when the connection closes (the connection then calls
 * close()). It answers the protocol core's questions of the transaction:
 *
 * - mail(from): the sender (the role's rules; the checks' connect, helo and
 *   mail hooks on the MX);
 * - rcpt(address, pending): one recipient, with the sender of MAIL known
 *   (CheckInput.mailFrom for the rcpt hooks);
 * - data(envelope, content): the end of content: the mail-loop limit (more
 *   than MAX_HOPS Received: fields, 554 5.4.6), the role's admission of the
 *   content (submission: the From: header), a sink transaction (src/sink:
 *   aliases, our Received header, removal of the header fields we write),
 *   the checks (the role's inbound data hooks, then the content checks of
 *   every message; the most severe action wins), then the commit: the 250
 *   goes out only once the sink says the message is durable;
 * - close(): the transaction is over; its state is dropped and it answers
 *   no more questions.
 *
 * Its state is typed (TransactionState of src/policy: the verdicts so far,
 * the SPF results of MAIL, the forwarding flag); the connection's state
 * (ConnectionState: SPF results kept per connection) is in the connection's
 * scratch. Nothing is kept in string-keyed maps.
 *
 * The message's header section is read once at the end of content (a
 * MessageHead of src/message: the fields, and the author parsed on first
 * use) and shared by the hop count, the role's admission (sender ownership
 * of the From: header), the checks (CheckInput.head: DMARC and the From:
 * rules, impersonation) and the sink's removal of the fields we write.
 */
import type { Config } from "../../config/index.ts";
import { MessageHead, type HeaderField } from "../../message/index.ts";
import { CHECK_FAILED, CheckRunner, ConnectionState, TransactionState, type CheckInput, type Decision, type Phase } from "../../policy/index.ts";
import { reply, type Reply } from "../../protocol/index.ts";
import type { Envelope } from "../../queue/index.ts";
import type { MessageSink, SinkTransaction } from "../../sink/index.ts";
import type { ConnectionInfo, HostAnswer } from "../host.ts";
import type { LocalRecipients } from "../recipients.ts";

/**
 * The listener roles, each with its own pipeline (roles.ts):
 * - mx: a client neither authenticated nor in relay.trusted_networks: local
 *   recipients only; the inbound checks (on the MX listener) and the
 *   content checks;
 * - submission: an authenticated client: sender ownership, hourly limits,
 *   the hold of accounts that look compromised, the From: header, relay;
 *   the content checks;
 * - trusted: a client in relay.trusted_networks without AUTH: relay; the
 *   content checks.
 */
export type Role = "mx" | "submission" | "trusted";

/** The policy object of one transaction (see the module comment). */
export interface Transaction {
  readonly role: Role;
  /** The state the checks share in this transaction. */
  readonly state: TransactionState;
  /** The sender named at MAIL ("" for <>). */
  readonly sender: string;
  /** True once close() was called. */
  readonly closed: boolean;
  mail(from: string): HostAnswer | Promise<HostAnswer>;
  rcpt(address: string, pending: number): HostAnswer | Promise<HostAnswer>;
  data(envelope: Envelope, content: Buffer): HostAnswer | Promise<HostAnswer>;
  close(): void;
}

/** What every role's transaction uses. */
export interface PipelineDeps {
  readonly config: Config;
  /** The one road into the queue. */
  readonly sink: MessageSink;
  readonly recipients: LocalRecipients;
  /** The checks of every message's content (src/server/checks.ts contentChecks); undefined: none. */
  readonly content: CheckRunner | undefined;
}

export const SENDER_OK: HostAnswer = { reply: reply(250, "2.1.0", "Sender ok") };
export const RCPT_OK = reply(250, "2.1.5", "Recipient ok");
/** More Received: headers than this means a mail loop (Postfix's hopcount_limit is 50 too). */
export const MAX_HOPS = 50;
const TOO_MANY_HOPS = reply(554, "5.4.6", "Too many hops: mail loop detected");

/** Received: header fields in the header section, in every spelling the shared header reader knows (src/message). */
function receivedCount(fields: readonly HeaderField[]): number {
  let n = 0;
  for (const f of fields) if (f.name === "received") n++;
  return n;
}

/** What the commit of a message needs beyond its content. */
interface CommitExtra {
  readonly head?: string;
  readonly quarantine?: string;
}

/** The state and the end of content every role shares; a role adds its rules at MAIL, RCPT and before the sink. */
export abstract class BaseTransaction implements Transaction {
  abstract readonly role: Role;
  readonly state = new TransactionState();
  protected readonly deps: PipelineDeps;
  protected readonly info: ConnectionInfo;
  /** The inbound checks this transaction runs (the MX on its listener); undefined: none. */
  protected readonly inbound: CheckRunner | undefined;
  private from: string;
  private over = false;

  /** sender: the reverse-path of the MAIL that opens the transaction ("" for <>). */
  constructor(deps: PipelineDeps, info: ConnectionInfo, sender: string, inbound?: CheckRunner) {
    this.deps = deps;
    this.info = info;
    this.from = sender;
    this.inbound = inbound;
  }

  get sender(): string {
    return this.from;
  }

  get closed(): boolean {
    return this.over;
  }

  close(): void {
    this.over = true;
  }

  mail(from: string): HostAnswer | Promise<HostAnswer> {
    this.live();
    this.from = from;
    return this.checkSender(from);
  }

  rcpt(address: string, pending: number): HostAnswer | Promise<HostAnswer> {
    this.live();
    return this.checkRecipient(address, pending);
  }

  data(envelope: Envelope, content: Buffer): HostAnswer | Promise<HostAnswer> {
    this.live();
    const info = this.info;
    // A mail loop: refuse at the door instead of bouncing later (as Postfix's hopcount_limit).
    // The header section is read once here, for the hop count, for removing the fields we write ourselves,
    // and (with the author, parsed once on first use) for sender ownership and the checks.
    const msgHead = new MessageHead(content);
    const fields = msgHead.fields;
    if (receivedCount(fields) > MAX_HOPS) {
      info.logger.warn({ from: envelope.mailFrom }, "too many Received headers (mail loop)");
      return { reply: TOO_MANY_HOPS };
    }
    const refused = this.admit(content, msgHead);
    if (refused) return { reply: refused };
    const txn = this.begin(envelope);
    if (this.inbound === undefined && this.deps.content === undefined) return this.commit(txn, content, fields);
    return this.judge(txn, envelope, content, msgHead);
  }

  /** The role's rules at MAIL. */
  protected abstract checkSender(from: string): HostAnswer | Promise<HostAnswer>;

  /** The role's rules at RCPT (pending: recipients accepted so far). */
  protected abstract checkRecipient(address: string, pending: number): HostAnswer | Promise<HostAnswer>;

  /** The role's admission of the content (its header section and author read once: msgHead) before it goes into the sink; a reply refuses it. */
  protected admit(_content: Buffer, _msgHead: MessageHead): Reply | undefined {
    return undefined;
  }

  /** Whether the message is queued on hold (submission: src/spam/hold.ts), and what to do once it is queued. */
  protected holding(_recipients: number): { readonly hold: boolean; readonly queued?: (id: string, recipients: number) => void } {
    return { hold: false };
  }

  /** A question after close(): the connection's bookkeeping went wrong; the client gets a 451, nothing is queued. */
  private live(): void {
    if (this.over) throw new Error(`${this.role} transaction already closed`);
  }

  /** What every check sees of the connection and the transaction (at the end of content: the content and its head, read once). */
  protected input(recipients: readonly string[], content?: Buffer, msgHead?: MessageHead): Omit<CheckInput, "signal"> {
    const info = this.info;
    return {
      clientIp: info.clientIp,
      helo: info.helo,
      listener: info.listener,
      ...(info.authUser !== undefined ? { authUser: info.authUser } : {}),
      ...(info.tls ? { tls: info.tls } : {}),
      mailFrom: this.from,
      recipients,
      ...(content !== undefined ? { content } : {}),
      ...(msgHead !== undefined ? { head: msgHead } : {}),
      state: this.state,
      connection: (info.scratch.checks ??= new ConnectionState()),
    };
  }

  /** Runs the inbound hooks of the phases in order, stops at a reply; verdicts add up in the transaction state. */
  protected async runPhases(checks: CheckRunner, phases: readonly Phase[], input: Omit<CheckInput, "signal">): Promise<Decision> {
    const seen = this.state.verdicts;
    let last: Decision | undefined;
    for (const phase of phases) {
      if (!checks.has(phase)) continue;
      const d = await checks.run(phase, input, this.info.logger);
      if (d.failed) return d;
      last = checks.decide([...seen, ...d.verdicts], d.headers, d.replies);
      // A refused recipient's verdicts do not follow the transaction.
      if (phase !== "data" && last.reply) return last;
      seen.push(...d.verdicts);
    }
    return last ?? checks.decide([...seen]);
  }

  /** A sink transaction for the message, its recipients added (aliases resolved there, once). */
  private begin(envelope: Envelope): SinkTransaction {
    const info = this.info;
    const { recipients, ...head } = envelope;
    const txn = this.deps.sink.begin(head, {
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
   * End of content with checks to run: the inbound DATA hooks (when the
   * role runs them), then the content checks (every message); the decision
   * includes MAIL's verdicts.
   */
  private async judge(txn: SinkTransaction, given: Envelope, content: Buffer, msgHead: MessageHead): Promise<HostAnswer> {
    const info = this.info;
    const fields = msgHead.fields;
    // Only the MX runs inbound checks, and its clients cannot relay: an
    // expansion means an alias sends the message on to another domain, and
    // the sender-authentication check then ARC-seals it.
    if (txn.forwards) this.state.forwarding = true;
    const input = this.input(given.recipients.map((r) => r.address), content, msgHead);
    let decision: Decision | undefined;
    if (this.inbound !== undefined) {
      // A check that failed or timed out: 451, whatever else was found (fail closed).
      decision = await this.runPhases(this.inbound, ["data"], input);
      if (decision.failed) return this.refuse(txn, decision.reply ?? CHECK_FAILED);
    }
    if (this.deps.content !== undefined && !decision?.reply) {
      const earlier = decision ? { earlier: { verdicts: decision.verdicts, headers: decision.headers } } : {};
      const d = await this.deps.content.run("data", { ...input, ...earlier }, info.logger);
      if (d.failed) return this.refuse(txn, d.reply ?? CHECK_FAILED);
      decision = decision ? CheckRunner.merge(decision, d) : d;
    }
    if (decision === undefined) return this.commit(txn, content, fields);
    // Nothing found (a content check with no verdict): a line only at debug level.
    const level = decision.verdicts.length > 0 ? "info" : "debug";
    if (info.logger.isLevelEnabled(level)) info.logger[level]({ from: given.mailFrom, verdicts: decision.verdicts, action: decision.action, triggered: decision.triggered }, "checks");
    if (decision.reply) return this.refuse(txn, decision.reply);
    const extra = [...decision.headers];
    if (decision.action === "tag" || decision.action === "quarantine") extra.push(`X-Wardmail-Verdict: ${decision.triggered.join(", ")} (${decision.action})`);
    const head = extra.map((h) => `${h}\r\n`).join("");
    const quarantine = decision.action === "quarantine" ? decision.triggered.join(",") : undefined;
    return this.commit(txn, content, fields, { head, ...(quarantine !== undefined ? { quarantine } : {}) });
  }

  private refuse(txn: SinkTransaction, r: Reply): HostAnswer {
    txn.abort();
    return { reply: r };
  }

  /** Queues the message through the sink; the 250 names the queue id. */
  private async commit(txn: SinkTransaction, content: Buffer, fields: readonly HeaderField[], opts: CommitExtra = {}): Promise<HostAnswer> {
    const info = this.info;
    const { hold, queued } = this.holding(txn.envelope.recipients.length);
    const { id, size, envelope } = await txn.commit(content, { ...opts, fields, ...(hold ? { hold: true } : {}) });
    queued?.(id, envelope.recipients.length);
    info.logger.info({ queueId: id, from: envelope.mailFrom, rcpts: envelope.recipients.length, size, tls: info.tls?.version, user: info.authUser, ...(hold ? { held: true } : {}) }, "message accepted");
    return { reply: reply(250, "2.0.0", `Ok: queued as ${id}`) };
  }
}
