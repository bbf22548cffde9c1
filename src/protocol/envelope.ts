/**
 * The envelope of one SMTP transaction as the protocol core builds it: the
 * reverse path, the recipients with their DSN parameters, and the MAIL
 * parameters. The queue stores it as given (src/queue re-exports it).
 */

/** DSN parameters of one recipient (RFC 3461 §4). */
export interface RecipientDsn {
  /** NOTIFY values, e.g. ["SUCCESS","FAILURE"] or ["NEVER"]; absent when not given. */
  readonly notify?: readonly string[];
  /** ORCPT as given: "rfc822;user@example.org" (xtext decoded). */
  readonly orcpt?: string;
}

export interface EnvelopeRecipient {
  /** The address as the client gave it in RCPT TO (without angle brackets). */
  readonly address: string;
  readonly dsn: RecipientDsn;
}

export interface Envelope {
  /** Reverse path without angle brackets; "" is the null sender <>. */
  readonly mailFrom: string;
  readonly recipients: readonly EnvelopeRecipient[];
  /** BODY= value given on MAIL FROM, when given. */
  readonly body?: "7BIT" | "8BITMIME" | "BINARYMIME";
  readonly smtputf8: boolean;
  /** DSN RET= (FULL or HDRS) and ENVID= (xtext decoded). */
  readonly ret?: "FULL" | "HDRS";
  readonly envid?: string;
  /** REQUIRETLS (RFC 8689) was given on MAIL FROM: deliver only over authenticated TLS. */
  readonly requireTls?: boolean;
}
