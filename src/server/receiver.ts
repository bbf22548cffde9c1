/**
 * The receiving host: answers the protocol core's questions for one worker.
 * MAIL: accepted (sender policy comes with the submission and sender-auth
 * work); RCPT: local recipients only (recipients.ts); end of content: the
 * Received header is put on top and the message is handed to the spool, and
 * the 250 goes out only once the spool says the message is durable.
 */
import type { Config } from "../config/types.ts";
import type { Question } from "../protocol/session.ts";
import { reply } from "../protocol/reply.ts";
import { newQueueId, type Spool } from "../queue/index.ts";
import type { ReceivedInfo } from "../queue/types.ts";
import type { ConnectionInfo, HostAnswer, SessionHost } from "./connection.ts";
import { receivedHeader } from "./received.ts";
import { LocalRecipients } from "./recipients.ts";

const SENDER_OK: HostAnswer = { reply: reply(250, "2.1.0", "Sender ok") };
const RCPT_OK = reply(250, "2.1.5", "Recipient ok");

export class Receiver implements SessionHost {
  private readonly config: Config;
  private readonly spool: Spool;
  private readonly shard: number;
  readonly recipients: LocalRecipients;

  constructor(config: Config, spool: Spool, shard: number) {
    this.config = config;
    this.spool = spool;
    this.shard = shard;
    this.recipients = new LocalRecipients(config.local);
  }

  answer(q: Question, info: ConnectionInfo): HostAnswer | Promise<HostAnswer> {
    switch (q.type) {
      case "mail":
        return SENDER_OK;
      case "rcpt": {
        const v = this.recipients.check(q.path.address);
        if (!v.ok) {
          info.logger.info({ rcpt: q.path.address, code: v.reply.code }, "recipient refused");
          return { reply: v.reply };
        }
        return { reply: RCPT_OK, address: v.address };
      }
      case "message":
        return this.store(q.envelope, q.content, info);
    }
  }

  private async store(envelope: Extract<Question, { type: "message" }>["envelope"], content: Buffer, info: ConnectionInfo): Promise<HostAnswer> {
    const received: ReceivedInfo = {
      sessionId: info.sessionId,
      clientIp: info.clientIp,
      clientPort: info.clientPort,
      helo: info.helo,
      protocol: info.protocol,
      ...(info.tls ? { tls: info.tls } : {}),
      listener: info.listener,
      receivedAt: Date.now(),
    };
    const id = newQueueId(this.shard, received.receivedAt);
    const only = envelope.recipients.length === 1 ? envelope.recipients[0]?.address : undefined;
    const header = Buffer.from(receivedHeader(received, this.config.server.hostname, id, only), "utf8");
    const full = Buffer.concat([header, content], header.length + content.length);
    await this.spool.enqueue({ envelope, received, content: full }, id);
    info.logger.info(
      { queueId: id, from: envelope.mailFrom, rcpts: envelope.recipients.length, size: full.length, tls: info.tls?.version },
      "message accepted",
    );
    return { reply: reply(250, "2.0.0", `Ok: queued as ${id}`) };
  }
}
