/**
 * Encrypt-on-store (src/e2e) for the local transports: what to store for one
 * mailbox — the content as queued, or encrypted to the mailbox's keys (once
 * per mailbox and message; unless it is encrypted already). Keys that cannot
 * be used make the mailbox temporary (never stored in the clear instead).
 * Shared by the Maildir and LMTP transports of one queue manager.
 */
import type { Logger } from "pino";
import type { ClaimedMessage } from "../queue/index.ts";
import { isEncrypted, type StoreContent, type StoreEncryption } from "../e2e/index.ts";
import { errorText } from "./transport.ts";

export class StoreContentSource {
  /** Copies encrypted to a mailbox's keys. */
  encrypted = 0;
  /** isEncrypted(msg.content), computed once per message (a message object is delivered by one call at a time). */
  private readonly encryptedByMessage = new WeakMap<ClaimedMessage, boolean>();

  private readonly encryption: StoreEncryption | undefined;
  private readonly log: Logger;

  constructor(encryption: StoreEncryption | undefined, log: Logger) {
    this.encryption = encryption;
    this.log = log;
  }

  /** Never throws. */
  async contentFor(msg: ClaimedMessage, mailbox: string): Promise<{ readonly content: Buffer } | { readonly kind: "temporary"; readonly error: string }> {
    if (this.encryption === undefined) return { content: msg.content };
    let res: StoreContent;
    try {
      res = await this.encryption.contentFor(mailbox, msg.content, () => this.encryptedMemo(msg));
    } catch (err) {
      this.log.warn({ queueId: msg.id, session: msg.received.sessionId, mailbox, err: errorText(err) }, "encryption for storage failed");
      return { kind: "temporary", error: `encryption for storage failed: ${errorText(err)}` };
    }
    if (res.kind === "unusable") {
      this.log.warn({ queueId: msg.id, session: msg.received.sessionId, mailbox, error: res.error }, "not stored: the mailbox's encryption keys cannot be used");
      return { kind: "temporary", error: res.error };
    }
    if (res.kind === "encrypted") {
      this.encrypted++;
      this.log.info({ queueId: msg.id, session: msg.received.sessionId, mailbox, format: res.format, keys: res.fingerprints }, "encrypted for storage");
    } else if (res.why === "already encrypted") {
      this.log.info({ queueId: msg.id, session: msg.received.sessionId, mailbox }, "already encrypted; stored as it is");
    }
    return { content: res.content };
  }

  private encryptedMemo(msg: ClaimedMessage): boolean {
    let v = this.encryptedByMessage.get(msg);
    if (v === undefined) {
      v = isEncrypted(msg.content);
      this.encryptedByMessage.set(msg, v);
    }
    return v;
  }
}
