/**
 * The state the checks share, typed: one TransactionState per SMTP
 * transaction (made at MAIL by the transaction of src/server/pipeline,
 * dropped with it at RSET, at the end of the message or when the
 * connection closes) and one ConnectionState per connection (kept across
 * its transactions, for results that depend only on what the connection
 * fixes: the client address and the HELO name).
 *
 * A check that needs to hand something from one phase to a later one (or
 * to another check) adds a typed field here; there is no string-keyed
 * scratch. Every field is bounded: a transaction holds one value per field
 * and its verdicts (a few per check and phase), a connection at most
 * SPF_PER_CONNECTION SPF results.
 */
import type { SPFResult } from "mailauth";

/** SPF results a connection keeps (per HELO identity and sender). */
export const SPF_PER_CONNECTION = 32;

/** One SPF evaluation kept for the connection: when it started, and its result (pending or done). */
export interface KeptSpf {
  readonly at: number;
  readonly result: Promise<SPFResult>;
}

export class TransactionState {
  /** The verdicts of every phase of this transaction so far (not those of a refused recipient). */
  readonly verdicts: string[] = [];
  /** SPF of the MAIL FROM identity (postmaster@HELO for <>), evaluated at MAIL (src/mailauth); read at the end of content for DMARC. */
  spf: SPFResult | undefined;
  /** SPF of the HELO identity, evaluated at MAIL; false when there is none to check (an address literal). */
  heloSpf: SPFResult | false | undefined;
  /**
   * The message goes on to another domain (an alias expanded to a remote
   * address): set by the host at the end of content, before the data
   * hooks; the sender-authentication check then ARC-seals it.
   */
  forwarding = false;
}

export class ConnectionState {
  /** SPF results by HELO identity and sender, at most SPF_PER_CONNECTION (src/mailauth decides what is kept and for how long). */
  readonly spf = new Map<string, KeptSpf>();
}
