/**
 * What the receiving side hands to the spool, and what the queue holds.
 * The spool stores the envelope and the content exactly as given: content is
 * already CRLF-clean and dot-unstuffed, with Wardmail's Received header on top.
 */

export type { Envelope, EnvelopeRecipient, RecipientDsn } from "../protocol/index.ts";
import type { Envelope, EnvelopeRecipient, RecipientDsn } from "../protocol/index.ts";

/** An LMTP server as stored with a route (the shape of config.local.lmtp's values). */
export type StoredLmtpTarget = { readonly host: string; readonly port: number } | { readonly path: string };

/** A local mailbox stored in its Maildir directory. */
export interface MaildirRoute {
  readonly mailbox: string;
  /** local.maildir filled for the mailbox: relative to server.data_dir unless absolute. */
  readonly maildir: string;
}
/** A local mailbox handed to an LMTP server. */
export interface LmtpRoute {
  readonly mailbox: string;
  readonly lmtp: StoredLmtpTarget;
}
/** Where one local mailbox's copy goes: its Maildir directory, or an LMTP server. */
export type MailboxRoute = MaildirRoute | LmtpRoute;

/**
 * Where a recipient goes, decided once by the sink (src/sink) when the
 * message is queued, and stored with it: the queue manager and the
 * transports use it as it is and never look at aliases or `[local]` again.
 * - local: the mailboxes it expands to (aliases resolved), each with its store;
 * - discard: local.discard, delivered without a copy;
 * - remote: an address in another domain, for the remote transport;
 * - failed: nowhere to go (no such mailbox, an alias loop): fails at delivery;
 * - deferred: not deliverable as queued (a record from before routes were
 *   stored whose alias reaches other domains, an unsafe mailbox path): stays
 *   deferred until it expires, as before.
 */
export type RecipientRoute =
  | { readonly kind: "local"; readonly mailboxes: readonly MailboxRoute[] }
  | { readonly kind: "discard" }
  | { readonly kind: "remote"; readonly domain: string }
  | { readonly kind: "failed"; readonly reason: string }
  | { readonly kind: "deferred"; readonly reason: string };

/** An envelope recipient as queued: with its route (absent only in records queued before routes were stored). */
export interface StoredRecipient extends EnvelopeRecipient {
  readonly route?: RecipientRoute;
}

/** The envelope as the spool stores it: the protocol's envelope, each recipient with its route. */
export interface StoredEnvelope extends Envelope {
  readonly recipients: readonly StoredRecipient[];
}

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
  readonly envelope: StoredEnvelope;
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
  /** Where it goes, as the sink decided when it was queued (see RecipientRoute). */
  readonly route?: RecipientRoute;
  readonly state: RecipientState;
  readonly attempts: number;
  readonly lastError?: string;
}

export interface QueueEntry {
  readonly id: string;
  readonly state: MessageState;
  readonly envelope: StoredEnvelope;
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
