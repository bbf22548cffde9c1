/**
 * The MX pipeline: a client neither authenticated nor in
 * relay.trusted_networks.
 *
 * - MAIL: on the MX listener, the inbound checks' connect, helo and mail
 *   hooks (DNSBL, SPF), acted on here, not before (as Postfix's
 *   smtpd_delay_reject): the client learns nothing until it names a
 *   sender, and the log has the whole story.
 * - RCPT: local recipients only (recipients.ts: 550 5.1.1 unknown, 554
 *   5.7.1 relay denied); then the rcpt hooks, which see the sender of MAIL;
 *   a refusal refuses only this recipient, and its verdicts do not follow
 *   the transaction.
 * - End of content: the inbound data hooks (DKIM, ARC, DMARC, the From:
 *   rules, impersonation), then the content checks (transaction.ts).
 *
 * On another listener (a submission port, where MAIL needs AUTH unless the
 * client is trusted) an unauthenticated, untrusted client gets the same
 * recipients rule and the content checks, without the inbound checks.
 */
import type { CheckRunner, Phase } from "../../policy/index.ts";
import type { ConnectionInfo, HostAnswer } from "../host.ts";
import { BaseTransaction, RCPT_OK, SENDER_OK, type PipelineDeps } from "./transaction.ts";

/** The inbound phases acted on at MAIL. */
const SENDER_PHASES: readonly Phase[] = ["connect", "helo", "mail"];

export class MxTransaction extends BaseTransaction {
  readonly role = "mx";

  /** inbound: the inbound checks (src/server/checks.ts inboundChecks) when the client came to the MX listener; undefined: none. */
  constructor(deps: PipelineDeps, info: ConnectionInfo, sender: string, inbound: CheckRunner | undefined) {
    super(deps, info, sender, inbound);
  }

  protected checkSender(from: string): HostAnswer | Promise<HostAnswer> {
    const inbound = this.inbound;
    // No hook before RCPT (e.g. only the impersonation check's data hook): the answer is at once, as without
    // checks, not a promise (which pauses the socket and answers a turn later). A new transaction has no
    // verdicts yet, so running no hook would decide nothing.
    if (inbound === undefined || !SENDER_PHASES.some((p) => inbound.has(p))) return SENDER_OK;
    return this.senderHooks(inbound, from);
  }

  private async senderHooks(inbound: CheckRunner, from: string): Promise<HostAnswer> {
    const d = await this.runPhases(inbound, SENDER_PHASES, this.input([]));
    if (d.reply) {
      this.info.logger.info({ from, verdicts: d.verdicts, action: d.action }, "sender refused by policy");
      return { reply: d.reply };
    }
    return SENDER_OK;
  }

  protected checkRecipient(address: string): HostAnswer | Promise<HostAnswer> {
    const v = this.deps.recipients.check(address, false);
    if (!v.ok) {
      this.info.logger.info({ rcpt: address, code: v.reply.code }, "recipient refused");
      return { reply: v.reply };
    }
    if (this.inbound?.has("rcpt")) return this.rcptHooks(this.inbound, v.address);
    return { reply: RCPT_OK, address: v.address };
  }

  /** The rcpt hooks, for one recipient (the sender of MAIL in CheckInput.mailFrom): a reply refuses only this recipient. */
  private async rcptHooks(inbound: CheckRunner, address: string): Promise<HostAnswer> {
    const d = await this.runPhases(inbound, ["rcpt"], this.input([address]));
    if (d.reply) {
      this.info.logger.info({ rcpt: address, verdicts: d.verdicts, action: d.action }, "recipient refused by policy");
      return { reply: d.reply };
    }
    return { reply: RCPT_OK, address };
  }
}
