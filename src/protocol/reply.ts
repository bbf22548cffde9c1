/**
 * SMTP replies and the one error type that carries them.
 *
 * Every reply Wardmail sends has a basic code (RFC 5321 §4.2) and an enhanced
 * status code (RFC 3463 / RFC 2034). Public text never carries internals:
 * whoever builds a reply from an internal failure must pick a generic text.
 * Text is checked here: CR, LF and NUL inside a reply line are refused, so a
 * value that came from the network can never split a reply (design §2.9).
 */

export interface Reply {
  /** Three-digit basic status code, e.g. 250. */
  readonly code: number;
  /**
   * Enhanced status code "class.subject.detail", e.g. "2.1.0"; "" only for the
   * replies RFC 2034 §3 exempts (the greeting and the replies to EHLO/HELO).
   */
  readonly status: string;
  /** One or more text lines, without CRLF. */
  readonly lines: readonly string[];
}

const STATUS_RE = /^[245]\.\d{1,3}\.\d{1,3}$/;

function checkLine(line: string): void {
  if (/[\r\n\0]/.test(line)) throw new Error("reply text must not contain CR, LF or NUL");
}

/** Builds a reply after checking code, status and text. */
export function reply(code: number, status: string, ...lines: string[]): Reply {
  if (!Number.isInteger(code) || code < 200 || code > 599) throw new Error(`bad reply code ${code}`);
  if (status !== "" && (!STATUS_RE.test(status) || status[0] !== String(code)[0])) throw new Error(`bad enhanced status ${status} for ${code}`);
  if (lines.length === 0) lines = [""];
  for (const l of lines) checkLine(l);
  return { code, status, lines };
}

/**
 * Serialises a reply to wire form: "250-2.0.0 a\r\n250 2.0.0 b\r\n".
 * The enhanced code is on every line (RFC 2034 §3).
 */
export function formatReply(r: Reply): string {
  let out = "";
  const last = r.lines.length - 1;
  for (let i = 0; i <= last; i++) {
    const text = r.lines[i] ?? "";
    const body = r.status && text ? `${r.status} ${text}` : r.status || text;
    out += `${r.code}${i === last ? " " : "-"}${body}\r\n`;
  }
  return out;
}

/** An error that knows what to tell the SMTP client. */
export class SmtpError extends Error {
  readonly reply: Reply;
  constructor(reply: Reply, internal?: string, options?: ErrorOptions) {
    super(internal ?? `${reply.code} ${reply.status} ${reply.lines.join(" ")}`, options);
    this.name = "SmtpError";
    this.reply = reply;
  }
  /** Builds an SmtpError from code, status and public text. */
  static of(code: number, status: string, text: string, internal?: string): SmtpError {
    return new SmtpError(reply(code, status, text), internal);
  }
}

/** The reply used when an internal failure must be hidden from the client. */
export const TEMPORARY_FAILURE = reply(451, "4.3.0", "Temporary local problem, try again later");
