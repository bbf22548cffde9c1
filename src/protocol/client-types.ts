/**
 * The types of the outbound client core (client-session.ts): the messages
 * it sends, its options, its per-recipient results and connection facts,
 * and the actions it asks its host (src/outbound/connect.ts) to carry out.
 */
import type { Envelope } from "./envelope.ts";
import type { Reply } from "./reply.ts";
import type { Extensions } from "./client-wire.ts";

export interface OutboundMessage {
  readonly envelope: Envelope;
  /** Content as stored: CRLF line endings expected (bare CR/LF are normalised anyway), not dot-stuffed. */
  readonly content: Buffer;
  /** RFC 8689: send only over TLS to a server offering REQUIRETLS, with the REQUIRETLS parameter. */
  readonly requireTls?: boolean;
}

export type TlsPolicy = "none" | "opportunistic" | "required";

export interface ClientOptions {
  /** Our name for EHLO/HELO. */
  readonly helo: string;
  readonly tls: TlsPolicy;
  readonly messages: readonly OutboundMessage[];
  /** Longest reply line accepted, with its line ending (default 2048). */
  readonly maxLineLength?: number;
  /** AUTH PLAIN with these credentials, only ever over TLS (a relay host). */
  readonly auth?: { readonly user: string; readonly password: string };
  /** Speak LMTP (RFC 2033): LHLO, a reply per recipient after the content; needs tls "none". */
  readonly lmtp?: boolean;
  /**
   * Connection reuse: when the messages are done, report "done" without
   * QUIT and wait idle; the host then calls reuse() with more messages (RSET
   * first) or quit().
   */
  readonly keepOpen?: boolean;
}

export type Final = "delivered" | "temporary" | "permanent";

export interface RecipientResult {
  readonly address: string;
  /** The server's reply code; 0 when the verdict is this client's own. */
  readonly code: number;
  /** Enhanced status code, e.g. "2.0.0", "4.4.2", "5.1.1". */
  readonly status: string;
  readonly text: string;
  readonly final: Final;
}

export interface MessageResult {
  readonly recipients: readonly RecipientResult[];
}

export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
  /** The certificate chain and name verified (set by the host). */
  readonly verified?: boolean;
  readonly error?: string;
}

export interface ConnectionFacts {
  readonly greeting?: Reply;
  /** False after a fall-back to HELO. */
  readonly esmtp: boolean;
  readonly extensions: Extensions;
  readonly tls?: TlsInfo;
  /** Why the connection ended before its work was done, if it did. */
  readonly error?: string;
  /** Our address on this connection (set by the socket adapter), for TLS-RPT's sending-mta-ip. */
  readonly localAddress?: string;
  /**
   * A reused connection failed before any message of the new batch was
   * accepted (RSET or the first MAIL refused, closed, timed out): nothing
   * was sent, and the batch may go again on a fresh connection.
   */
  readonly stale?: boolean;
}

export interface SessionResult {
  readonly messages: readonly MessageResult[];
  readonly connection: ConnectionFacts;
}

export type ClientAction =
  | { readonly kind: "send"; readonly data: Buffer }
  | { readonly kind: "starttls" }
  | { readonly kind: "close" }
  | { readonly kind: "done"; readonly result: SessionResult };

/** What the session waits for; the host picks its timeout from this. */
export type Waiting = "greeting" | "reply" | "data" | "tls" | "none";
