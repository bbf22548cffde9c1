/**
 * LMTP delivery (RFC 2033) to a local mail store such as Dovecot's `lmtp`
 * service, for the domains listed in `local.lmtp`: one session carries one
 * message to all of its mailboxes at that server, and LMTP answers once per
 * recipient after the content, so every mailbox gets its own verdict.
 *
 * The protocol is SMTP's with LHLO: the outbound client core speaks it
 * (ClientSession with `lmtp`, src/protocol/client-session.ts) over a TCP
 * connection or a unix socket (src/outbound/connect.ts). No STARTTLS: the
 * server is local. deliverLmtp() never throws: a refused or lost
 * connection, a timeout or a protocol error makes every mailbox not yet
 * answered temporary.
 *
 * Trust: the server is ours but its replies are still parsed as hostile
 * (src/protocol/client-wire.ts limits). The content goes as stored: the LMTP server adds
 * Return-Path and Delivered-To itself.
 */
import type { LmtpTarget } from "../config/index.ts";
import type { Envelope } from "../queue/index.ts";
import { deliverSession, type Timeouts } from "../outbound/index.ts";

/** Generous: a local store may be slow (quota, Sieve, fsync), but never silent for ever. */
export const LMTP_TIMEOUTS: Timeouts = { connectMs: 10_000, greetingMs: 60_000, commandMs: 120_000, dataMs: 600_000 };

export interface LmtpMessage {
  /** The envelope as queued; its recipients are replaced by the mailboxes. */
  readonly envelope: Envelope;
  readonly content: Buffer;
}

/** One mailbox's verdict. code 0: the client's own verdict (no reply from the server). */
export interface LmtpMailboxResult {
  readonly mailbox: string;
  readonly final: "delivered" | "temporary" | "permanent";
  readonly code: number;
  readonly status: string;
  readonly text: string;
}

export interface LmtpResult {
  readonly mailboxes: readonly LmtpMailboxResult[];
  /** Why the session ended before its work was done, when it did. */
  readonly error?: string;
}

/** "127.0.0.1:24", "[::1]:24" or "unix:/run/dovecot/lmtp", for logs and errors. */
export function describeTarget(t: LmtpTarget): string {
  if ("path" in t) return `unix:${t.path}`;
  return t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** Delivers one message to these mailboxes (distinct, lowercase) over one LMTP session. Never rejects. */
export async function deliverLmtp(opts: {
  readonly target: LmtpTarget;
  /** Our name for LHLO. */
  readonly helo: string;
  readonly message: LmtpMessage;
  readonly mailboxes: readonly string[];
  readonly timeouts?: Timeouts;
}): Promise<LmtpResult> {
  const { target } = opts;
  // SMTPUTF8 is about addresses (RFC 6531 §3.4): to a local store with ASCII
  // addresses it is not needed (Dovecot's LMTP does not offer it, and a UTF-8
  // header is 8-bit content, sent with BODY=8BITMIME). A non-ASCII address
  // still needs it; ClientSession refuses (5.6.7) when the server lacks it.
  const envelope: Envelope = {
    ...opts.message.envelope,
    smtputf8: false,
    recipients: opts.mailboxes.map((address) => ({ address, dsn: {} })),
  };
  const where = "path" in target ? { host: "localhost", address: "", port: 0, path: target.path } : { host: target.host, address: target.host, port: target.port };
  const res = await deliverSession({
    ...where,
    helo: opts.helo,
    tls: "none",
    lmtp: true,
    timeouts: opts.timeouts ?? LMTP_TIMEOUTS,
    messages: [{ envelope, content: opts.message.content }],
  });
  const got = res.messages[0]?.recipients ?? [];
  const mailboxes = opts.mailboxes.map((mailbox, i): LmtpMailboxResult => {
    const r = got[i];
    return r === undefined
      ? { mailbox, final: "temporary", code: 0, status: "4.4.2", text: res.connection.error ?? "not attempted" }
      : { mailbox, final: r.final, code: r.code, status: r.status, text: r.text };
  });
  return { mailboxes, ...(res.connection.error !== undefined ? { error: res.connection.error } : {}) };
}
