/**
 * The trusted-network pipeline: a client in relay.trusted_networks that did
 * not authenticate (an application server, a local MTA). MAIL: any sender.
 * RCPT: any domain (relay); `%`, `!`, quoted local parts and address
 * literals are refused as for everyone (recipients.ts). End of content:
 * the content checks only (transaction.ts); no sender authentication, no
 * account limits.
 */
import type { HostAnswer } from "../host.ts";
import { BaseTransaction, RCPT_OK, SENDER_OK } from "./transaction.ts";

export class TrustedTransaction extends BaseTransaction {
  readonly role = "trusted";

  protected checkSender(): HostAnswer {
    return SENDER_OK;
  }

  protected checkRecipient(address: string): HostAnswer {
    const v = this.deps.recipients.check(address, true);
    if (!v.ok) {
      this.info.logger.info({ rcpt: address, code: v.reply.code }, "recipient refused");
      return { reply: v.reply };
    }
    return { reply: RCPT_OK, address: v.address };
  }
}
