/**
 * The contract between the socket adapter (connection.ts) and the host that
 * answers the protocol core's questions (the receiver, behind the storage
 * guard): the facts about a connection, the state the host keeps per
 * connection (typed, owned by the connection, dropped with it), and the
 * answer to a question.
 */
import type { SaslMechanism } from "../auth/index.ts";
import type { Logger } from "../log/index.ts";
import type { ConnectionState } from "../policy/index.ts";
import type { Question, Reply } from "../protocol/index.ts";
import type { Transaction } from "./pipeline/index.ts";

/** State the host keeps per connection: the SASL exchange, the open transaction, the checks' state of the connection. */
export interface ConnectionScratch {
  sasl?: SaslMechanism;
  /**
   * The policy object of the open transaction (src/server/pipeline), made
   * at MAIL. The connection closes and drops it as soon as the protocol
   * core has no transaction any more (RSET, the message's answer, a
   * refused MAIL, EHLO, STARTTLS) and when the connection ends.
   */
  transaction?: Transaction;
  /** The checks' state for the whole connection (CheckInput.connection), made on first use. */
  checks?: ConnectionState;
}

/** Facts about the connection the host may need. */
export interface ConnectionInfo {
  readonly sessionId: string;
  readonly listener: string;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly helo: string;
  readonly protocol: string;
  readonly tls?: { readonly version: string; readonly cipher: string };
  /** The account of a successful AUTH on this connection. */
  readonly authUser?: string;
  /** RFC 9266 tls-exporter channel binding data (TLS 1.3 only). */
  readonly channelBinding: Buffer | undefined;
  /** Per-connection state the host may keep (the SASL exchange in progress, the open transaction). */
  readonly scratch: ConnectionScratch;
  readonly logger: Logger;
}

export interface HostAnswer {
  readonly reply: Reply;
  /** For RCPT: the normalised recipient to record. */
  readonly address?: string;
}

/** What the connection asks about; implemented by the receiver (the pipelines + the sink). */
export interface SessionHost {
  answer(q: Question, info: ConnectionInfo): HostAnswer | Promise<HostAnswer>;
  /** The connection is accepted (before the greeting): the host may start work early (DNSBL lookups). */
  connected?(info: ConnectionInfo): void;
}

/** Closes and drops the open transaction, if any (the core's transaction is over). */
export function endTransaction(scratch: ConnectionScratch): void {
  const t = scratch.transaction;
  if (t === undefined) return;
  scratch.transaction = undefined;
  t.close();
}
