/**
 * What the receiving side hands to the spool, and what the queue holds.
 * The spool stores the envelope and the content exactly as given: content is
 * already CRLF-clean and dot-unstuffed, with Wardmail's Received header on top.
 */

export type { Envelope, EnvelopeRecipient, RecipientDsn } from "../protocol/index.ts";
import type { Envelope, RecipientDsn } from "../protocol/index.ts";

/** Facts about the SMTP session the message came in on. */
export interface ReceivedInfo {
  readonly sessionId: string;
  readonly clientIp: string;
  readonly clientPort: number;
  /** The name the client gave in EHLO/HELO. */
  readonly helo: string;
  /** "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" (RFC 3848). */
  readonly protocol: string;
  readonly tls?: { readonly version: string; readonly cipher: string };
  /** Listener role: "smtp", "submission", "submissions". */
  readonly listener: string;
  /** The account that submitted the message with SMTP AUTH, if any. */
  readonly auth?: string;
  /** Set when a policy check quarantined the message (the verdict, e.g. "dmarc.quarantine"): delivered to Junk. */
  readonly quarantine?: string;
  /** Milliseconds since the epoch. */
  readonly receivedAt: number;
}

export interface IncomingMessage {
  readonly envelope: Envelope;
  readonly received: ReceivedInfo;
  /** Full message content: Received header first, CRLF line endings, no dot-stuffing. */
  readonly content: Buffer;
  /** Queue it on hold (state "held"), e.g. from an account held as compromised; released by `wardmail queue release`. */
  readonly hold?: boolean;
}

/** Per-recipient state (design §2.5). */
export type RecipientState = "queued" | "delivered" | "deferred" | "failed";
/** Whole-message state. */
export type MessageState = "queued" | "active" | "deferred" | "held" | "done" | "failed";

export interface QueuedRecipient {
  readonly index: number;
  readonly address: string;
  readonly dsn: RecipientDsn;
  readonly state: RecipientState;
  readonly attempts: number;
  readonly lastError?: string;
}

export interface QueueEntry {
  readonly id: string;
  readonly state: MessageState;
  readonly envelope: Envelope;
  readonly received: ReceivedInfo;
  readonly recipients: readonly QueuedRecipient[];
  readonly size: number;
  readonly createdAt: number;
  readonly nextAttemptAt: number;
  readonly attempts: number;
  readonly lastError?: string;
  /** Which spool shard file holds it. */
  readonly shard: number;
}
