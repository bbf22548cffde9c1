/**
 * The types the protocol core shares with its host: options, the questions
 * it asks, the actions it returns. See session.ts.
 */
import type { ParsedPath } from "./address.ts";
import type { Envelope, RecipientDsn } from "./envelope.ts";

/** Bare CR or LF in a command line or content: refuse it, or take it as a line end. */
export type BareLineEndingPolicy = "reject" | "normalize";
/** 8-bit content without BODY=8BITMIME: accept it (as most MTAs) or refuse it. */
export type EightBitPolicy = "accept" | "reject";

/** The limits the protocol core enforces (src/limits registers them with the rest). */
export interface ProtocolLimits {
  readonly max_line_length: number;
  readonly max_message_size: number;
  readonly max_header_size: number;
  readonly max_recipients: number;
  readonly max_errors: number;
  readonly max_commands: number;
}

export type TlsMode = "none" | "available" | "active";

export interface SessionOptions {
  /** Our name in the greeting and EHLO reply. */
  readonly hostname: string;
  readonly limits: ProtocolLimits;
  readonly bareLineEndings: BareLineEndingPolicy;
  readonly eightBitWithout8bitmime: EightBitPolicy;
  /** none: no STARTTLS offered; available: offered; active: implicit TLS. */
  readonly tls: TlsMode;
  /**
   * Refuse commands that came before the reply to EHLO/HELO, and content
   * before the 354 to DATA (554 5.5.0 and close); not after AUTH.
   */
  readonly strictPipelining?: boolean;
  /** SMTP AUTH (RFC 4954) on this connection; undefined: AUTH is not a service here (502). */
  readonly auth?: AuthOptions;
}

export interface AuthOptions {
  /**
   * Mechanisms offered, in order, once TLS is active (never before: AUTH
   * before TLS gets 538 5.7.11). Names ending in "-PLUS" are offered only
   * when the host said channel binding is available (greeting/tlsStarted).
   */
  readonly mechanisms: readonly string[];
  /** MAIL needs a successful AUTH first (submission): 530 5.7.0 otherwise. */
  readonly required: boolean;
}

/** TLS facts the host tells the session when TLS comes up. */
export interface TlsFacts {
  /** The connection can give tls-exporter channel binding (RFC 9266): TLS 1.3. */
  readonly channelBinding: boolean;
}

/** What the session asks its host; answer with session.answer(reply). */
export type Question =
  /** `size`: the SIZE= the client declared (RFC 1870), for a host that compares it with the space it has. */
  | { readonly type: "mail"; readonly path: ParsedPath; readonly envelope: Envelope; readonly size?: number }
  | { readonly type: "rcpt"; readonly path: ParsedPath; readonly dsn: RecipientDsn; readonly envelope: Envelope }
  | { readonly type: "message"; readonly envelope: Envelope; readonly content: Buffer; readonly eightBit: boolean }
  /**
   * One SASL step (RFC 4954). first: the AUTH command itself (response is
   * its initial response: undefined when none, empty for "="); later: each
   * decoded client line. Answer 334 with the base64 challenge as text to go
   * on, 235 (with the account as address) for success, anything else ends it.
   */
  | { readonly type: "auth"; readonly mechanism: string; readonly response: Buffer | undefined; readonly first: boolean };

export type Action =
  | { readonly kind: "send"; readonly data: string }
  | { readonly kind: "starttls" }
  | { readonly kind: "close" }
  | { readonly kind: "ask"; readonly question: Question };

