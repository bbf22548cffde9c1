/**
 * The submission pipeline: an authenticated client (AUTH on a submission
 * listener, or on the MX where auth.on_mx allows it).
 *
 * - MAIL: within the account's hourly message limit (451 4.7.1); the
 *   sender must be one of the account's own addresses, aliases or listed
 *   senders (553 5.7.1); <> is allowed (bounces, MDNs) and its From: is
 *   still checked.
 * - RCPT: within the account's hourly recipient limit (452 4.7.1); any
 *   domain (relay). A refused recipient counts towards the hold of
 *   accounts that look compromised (src/spam/hold.ts).
 * - End of content: the From:, Sender:, Resent-From: and Resent-Sender:
 *   fields must be the account's own (src/submission checkFromHeader:
 *   550 5.7.1, or 550 5.6.0 for a malformed one); the content checks; a
 *   held account's message, or one that puts the account on hold, is
 *   accepted and queued on hold, so nothing is lost and the sender sees no
 *   difference (a new hold is logged as a warning with its reason); the
 *   message counts towards the account's hourly limits.
 */
import type { MessageHead } from "../../message/index.ts";
import { reply, type Reply } from "../../protocol/index.ts";
import type { AccountHold } from "../../spam/index.ts";
import { checkFromHeader, type AuthGuard } from "../../submission/index.ts";
import type { ConnectionInfo, HostAnswer } from "../host.ts";
import { BaseTransaction, RCPT_OK, SENDER_OK, type PipelineDeps } from "./transaction.ts";

const NOT_OWNER = reply(553, "5.7.1", "Sender address not owned by authenticated user");
const MESSAGE_RATE = reply(451, "4.7.1", "Message rate limit exceeded for this account; try again later");
const RCPT_RATE = reply(452, "4.7.1", "Recipient rate limit exceeded for this account; try again later");

/** What the submission pipeline needs beyond every role's. */
export interface SubmissionDeps {
  /** Whether the account may use the address (its own, an alias, a listed sender); undefined: no account may use any. */
  readonly maySendAs: ((account: string, address: string) => boolean) | undefined;
  /** The hourly limits per account; undefined: none. */
  readonly guard: AuthGuard | undefined;
  /** The hold of accounts that look compromised; undefined: none. */
  readonly hold: AccountHold | undefined;
}

export class SubmissionTransaction extends BaseTransaction {
  readonly role = "submission";
  private readonly account: string;
  private readonly sub: SubmissionDeps;

  /** account: the authenticated account (ConnectionInfo.authUser at MAIL). */
  constructor(deps: PipelineDeps, info: ConnectionInfo, sender: string, account: string, sub: SubmissionDeps) {
    super(deps, info, sender);
    this.account = account;
    this.sub = sub;
  }

  private owns(address: string): boolean {
    return this.sub.maySendAs?.(this.account, address) ?? false;
  }

  protected checkSender(from: string): HostAnswer {
    const account = this.account;
    if (this.sub.guard && !this.sub.guard.mayStartMessage(account)) {
      this.info.logger.warn({ user: account }, "message rate limit reached");
      return { reply: MESSAGE_RATE };
    }
    if (from !== "" && !this.owns(from)) {
      this.info.logger.warn({ user: account, from }, "sender not owned");
      return { reply: NOT_OWNER };
    }
    return SENDER_OK;
  }

  protected checkRecipient(address: string, pending: number): HostAnswer {
    const account = this.account;
    if (this.sub.guard && !this.sub.guard.mayAddRecipient(account, pending)) {
      this.info.logger.warn({ user: account }, "recipient rate limit reached");
      return { reply: RCPT_RATE };
    }
    const v = this.deps.recipients.check(address, true);
    if (!v.ok) {
      this.sub.hold?.recordRefused(account);
      this.info.logger.info({ rcpt: address, code: v.reply.code }, "recipient refused");
      return { reply: v.reply };
    }
    return { reply: RCPT_OK, address: v.address };
  }

  protected override admit(content: Buffer, msgHead: MessageHead): Reply | undefined {
    // The header section and author as the transaction read them (once per message).
    const refused = checkFromHeader(content, (a) => this.owns(a), msgHead);
    if (refused) this.info.logger.warn({ user: this.account, code: refused.code }, "From: header refused");
    return refused;
  }

  protected override holding(recipients: number): { readonly hold: boolean; readonly queued: (id: string, recipients: number) => void } {
    const account = this.account;
    const h = this.sub.hold?.check(account, recipients);
    return {
      hold: h !== undefined,
      queued: (id, queuedRecipients) => {
        if (h?.started) this.info.logger.warn({ user: account, reason: h.hold.reason, queueId: id }, "account held: its messages are queued on hold until `wardmail user release`");
        this.sub.guard?.recordMessage(account, queuedRecipients);
      },
    };
  }
}
