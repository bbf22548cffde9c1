/**
 * The pipelines of the listener roles, assembled in one place: which role a
 * transaction has (decided once, at MAIL, from the connection), and what
 * each role's transaction is made of.
 *
 * | role       | who                                   | MAIL                      | RCPT                             | end of content                        |
 * |------------|---------------------------------------|---------------------------|----------------------------------|---------------------------------------|
 * | mx         | not authenticated, not trusted        | connect/helo/mail hooks   | local only; rcpt hooks           | inbound data hooks; content checks    |
 * | submission | authenticated (AUTH)                  | hourly limit; ownership   | hourly limit; relay; hold count  | From: ownership; content checks; hold |
 * | trusted    | relay.trusted_networks, without AUTH  | any sender                | relay                            | content checks                        |
 *
 * The inbound checks (src/server/checks.ts inboundChecks) run only for an
 * mx transaction on the MX listener ("smtp"); the content checks
 * (contentChecks) for every transaction. A new check is one line in its
 * road in checks.ts; a new role is one class and one line here.
 */
import { Networks, type AuthGuard } from "../../submission/index.ts";
import type { CheckRunner } from "../../policy/index.ts";
import type { Config } from "../../config/index.ts";
import type { MessageSink } from "../../sink/index.ts";
import type { AccountHold } from "../../spam/index.ts";
import type { ConnectionInfo } from "../host.ts";
import type { LocalRecipients } from "../recipients.ts";
import { MxTransaction } from "./mx.ts";
import { SubmissionTransaction, type SubmissionDeps } from "./submission.ts";
import type { PipelineDeps, Role, Transaction } from "./transaction.ts";
import { TrustedTransaction } from "./trusted.ts";

export interface PipelineOptions {
  readonly config: Config;
  readonly sink: MessageSink;
  readonly recipients: LocalRecipients;
  /** Policy checks for inbound (MX) mail; undefined: none. */
  readonly inbound?: CheckRunner;
  /** Checks of every message's content, whatever its source; undefined: none. */
  readonly content?: CheckRunner;
  /** Whether an account may use an address as its sender (AccountStore.maySendAs); undefined: no account may use any. */
  readonly maySendAs?: (account: string, address: string) => boolean;
  readonly guard?: AuthGuard;
  readonly hold?: AccountHold;
}

/** The listener the inbound checks run on. */
const MX_LISTENER = "smtp";

export class Pipelines {
  private readonly deps: PipelineDeps;
  private readonly inbound: CheckRunner | undefined;
  private readonly submission: SubmissionDeps;
  private readonly trusted: Networks;

  constructor(opts: PipelineOptions) {
    this.deps = { config: opts.config, sink: opts.sink, recipients: opts.recipients, content: opts.content };
    this.inbound = opts.inbound;
    this.submission = { maySendAs: opts.maySendAs, guard: opts.guard, hold: opts.hold };
    this.trusted = new Networks(opts.config.relay.trustedNetworks);
  }

  /** The role of a transaction on this connection now (AUTH and the client address decide; the listener only whether the inbound checks run). */
  roleOf(info: ConnectionInfo): Role {
    return this.decide(info).role;
  }

  private decide(info: ConnectionInfo): { readonly role: "submission"; readonly account: string } | { readonly role: "trusted" | "mx" } {
    if (info.authUser !== undefined) return { role: "submission", account: info.authUser };
    if (this.trusted.has(info.clientIp)) return { role: "trusted" };
    return { role: "mx" };
  }

  /** The inbound checks an mx transaction on this connection runs; undefined: none (another listener, or none configured). */
  private inboundFor(info: ConnectionInfo): CheckRunner | undefined {
    return info.listener === MX_LISTENER ? this.inbound : undefined;
  }

  /** A client connected: on the MX listener, an untrusted client's connect-time lookups (DNSBL) start now, to be ready by MAIL. */
  connected(info: ConnectionInfo): void {
    if (this.roleOf(info) === "mx") this.inboundFor(info)?.prefetch(info.clientIp);
  }

  /** A new transaction (at MAIL, for the sender it names), with the pipeline of the connection's role. */
  open(info: ConnectionInfo, sender: string): Transaction {
    const d = this.decide(info);
    switch (d.role) {
      case "submission":
        return new SubmissionTransaction(this.deps, info, sender, d.account, this.submission);
      case "trusted":
        return new TrustedTransaction(this.deps, info, sender);
      case "mx":
        return new MxTransaction(this.deps, info, sender, this.inboundFor(info));
    }
  }
}
