/**
 * The receiving host: answers the protocol core's questions for one worker,
 * as a thin adapter from the questions to the policy pipeline
 * (src/server/pipeline) and the AUTH service.
 *
 * - AUTH: src/submission/auth.ts (SASL, brute-force guard).
 * - MAIL: at the memory budget nothing new is taken on (451 4.3.1,
 *   memory.ts); else a new Transaction of the connection's role (mx,
 *   submission or trusted: the role is decided here, once per
 *   transaction, by src/server/pipeline roles.ts) answers it. A MAIL not
 *   accepted ends the transaction.
 * - RCPT and the end of content: the open transaction answers; after the
 *   message's answer the transaction ends. The connection also ends it when
 *   the protocol core's transaction ends (RSET, EHLO, STARTTLS, close).
 *
 * What each role does at MAIL, RCPT and the end of content (sender
 * ownership, rate limits, relay, the inbound and content checks, the hold
 * of compromised accounts, the From: check, the sink and the 250 once
 * durable) is in the pipeline's files, one per role.
 */
import type { Config } from "../config/index.ts";
import type { Question } from "../protocol/index.ts";
import { reply } from "../protocol/index.ts";
import type { Envelope } from "../queue/index.ts";
import type { MessageSink } from "../sink/index.ts";
import type { AuthGuard, AuthService } from "../submission/index.ts";
import { endTransaction, type ConnectionInfo, type HostAnswer, type SessionHost } from "./host.ts";
import { MEMORY_BUSY_MAIL, overMemoryBudget, residentSet } from "./memory.ts";
import { LocalRecipients, type AccountLookup } from "./recipients.ts";
import type { CheckRunner } from "../policy/index.ts";
import type { AccountHold } from "../spam/index.ts";
import { Pipelines, type Transaction } from "./pipeline/index.ts";

export { MAX_HOPS } from "./pipeline/index.ts";

const NO_AUTH_SERVICE = reply(454, "4.7.0", "Temporary authentication failure");

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
  private readonly auth: AuthService | undefined;
  private readonly pipelines: Pipelines;
  readonly recipients: LocalRecipients;

  constructor(deps: ReceiverDeps) {
    this.config = deps.config;
    this.auth = deps.auth;
    this.recipients = new LocalRecipients(deps.config.local, deps.accounts);
    const accounts = deps.accounts;
    this.pipelines = new Pipelines({
      config: deps.config,
      sink: deps.sink,
      recipients: this.recipients,
      ...(deps.checks ? { inbound: deps.checks } : {}),
      ...(deps.contentChecks ? { content: deps.contentChecks } : {}),
      ...(accounts ? { maySendAs: (account: string, address: string) => accounts.maySendAs(account, address) } : {}),
      ...(deps.guard ? { guard: deps.guard } : {}),
      ...(deps.hold ? { hold: deps.hold } : {}),
    });
  }

  /** A client connected: its connect-time lookups (DNSBL) start now, to be ready by MAIL. */
  connected(info: ConnectionInfo): void {
    this.pipelines.connected(info);
  }

  answer(q: Question, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    switch (q.type) {
      case "auth":
        if (!this.auth) return { reply: NO_AUTH_SERVICE };
        return this.auth.step(q.mechanism, q.response, q.first, info);
      case "mail":
        // A MAIL comes only outside a transaction: whatever was left of the last one ends here.
        endTransaction(info.scratch);
        // At the memory budget nothing new is taken on (src/server/memory.ts).
        if (overMemoryBudget(this.config.limits.memory_budget)) {
          info.logger.warn({ rss: residentSet() }, "memory budget reached; MAIL refused");
          return { reply: MEMORY_BUSY_MAIL };
        }
        return this.mail(q.envelope.mailFrom, info);
      case "rcpt":
        return this.transactionOf(info, q.envelope.mailFrom).rcpt(q.path.address, q.envelope.recipients.length);
      case "message":
        return this.message(q.envelope, q.content, info);
    }
  }

  /** MAIL: a new transaction of the connection's role; kept only when the sender is accepted. */
  private mail(from: string, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    const t = this.pipelines.open(info, from);
    info.scratch.transaction = t;
    return settle(t.mail(from), (a) => {
      if (a.reply.code >= 300) endTransaction(info.scratch);
    });
  }

  /** The end of content: the transaction's last question. */
  private message(envelope: Envelope, content: Buffer, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    const t = this.transactionOf(info, envelope.mailFrom);
    const done = (): void => {
      if (info.scratch.transaction === t) endTransaction(info.scratch);
    };
    try {
      const answer = t.data(envelope, content);
      if (answer instanceof Promise) return answer.finally(done);
      done();
      return answer;
    } catch (err) {
      done();
      throw err;
    }
  }

  /**
   * The open transaction. The protocol core asks RCPT and DATA only after an
   * accepted MAIL, which opened one; a host driven without a MAIL (a unit
   * test, a caller of its own) gets a transaction of the connection's role
   * opened now, without the MAIL hooks.
   */
  private transactionOf(info: ConnectionInfo, sender: string): Transaction {
    return (info.scratch.transaction ??= this.pipelines.open(info, sender));
  }
}

/** Runs then() on the answer, whether it came at once or later. */
function settle(a: HostAnswer | Promise<HostAnswer>, then: (a: HostAnswer) => void): HostAnswer | Promise<HostAnswer> {
  if (a instanceof Promise) {
    return a.then((x) => {
      then(x);
      return x;
    });
  }
  then(a);
  return a;
}
