/**
 * The wire side of the SMTP client codec (client-session.ts), with no state
 * beyond one reply:
 * the reply parser (RFC 5321 §4.2, enhanced codes RFC 2034/3463), the EHLO
 * keyword parser (with the AUTH mechanisms, RFC 4954 §3), command building,
 * AUTH PLAIN's initial response (RFC 4616), xtext for DSN values (RFC 3461
 * §4, encodeXtext in address.ts beside the server's decoder) and the DATA
 * encoder (dot-stuffing, RFC 5321 §4.5.2).
 *
 * Trust: replies come from a remote server and are hostile. Lines may end in
 * CRLF or a bare LF (servers are sloppy; we are liberal in what we read), but
 * every other control character except HT is refused, each line is capped
 * (default 2048 bytes with its ending) and a reply may have at most 100 lines.
 * All codes of a multi-line reply must be the same three digits. Anything
 * else is a ProtocolError: the caller ends the connection.
 *
 * What we send is strict: command lines end in CRLF and refuse CR, LF or NUL
 * in every value (they throw); message content is sent so that no bare CR or
 * LF reaches the wire and the only "CRLF . CRLF" is the terminator.
 */
import type { Reply } from "./reply.ts";
import type { Envelope, EnvelopeRecipient } from "./envelope.ts";
import { encodeXtext } from "./address.ts";
import { CR, LF, DOT, CRLF, DOT_BUF, DOT_CRLF } from "./bytes.ts";

/** The server broke the protocol (or tried to hurt us): end the connection. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

export const MAX_REPLY_LINES = 100;
export const DEFAULT_MAX_LINE = 2048;

const LINE_RE = /^([2-5]\d\d)([ -]|$)/;
const STATUS_RE = /^([245])\.(\d{1,3})\.(\d{1,3})(?= |$)/;
const UTF8 = new TextDecoder("utf-8");

/**
 * Incremental reply reader. append() bytes, then take replies with next()
 * until it returns undefined. discard() drops everything buffered (used after
 * the 220 to STARTTLS: plaintext that followed it is never trusted).
 */
export class ReplyParser {
  private buf: Buffer = Buffer.alloc(0);
  private readonly maxLine: number;
  private code = "";
  private lines: string[] = [];

  constructor(maxLine = DEFAULT_MAX_LINE) {
    this.maxLine = maxLine;
  }

  append(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** Nothing buffered: no bytes after the last complete reply, no reply half read. */
  get empty(): boolean {
    return this.buf.length === 0 && this.lines.length === 0;
  }

  discard(): void {
    this.buf = Buffer.alloc(0);
    this.code = "";
    this.lines = [];
  }

  /** The next complete reply, or undefined if more input is needed. Throws ProtocolError. */
  next(): Reply | undefined {
    while (true) {
      const lf = this.buf.indexOf(LF);
      if (lf < 0) {
        if (this.buf.length >= this.maxLine) throw new ProtocolError("reply line too long");
        return undefined;
      }
      if (lf + 1 > this.maxLine) throw new ProtocolError("reply line too long");
      const end = lf > 0 && this.buf[lf - 1] === CR ? lf - 1 : lf;
      const raw = this.buf.subarray(0, end);
      this.buf = this.buf.subarray(lf + 1);
      const done = this.line(raw);
      if (done !== undefined) return done;
    }
  }

  private line(raw: Buffer): Reply | undefined {
    for (const b of raw) {
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) throw new ProtocolError("control character in reply");
    }
    const text = UTF8.decode(raw);
    const m = LINE_RE.exec(text);
    if (!m) throw new ProtocolError("malformed reply line");
    const code = m[1] as string;
    if (this.lines.length > 0 && code !== this.code) throw new ProtocolError("reply codes differ between lines");
    this.code = code;
    this.lines.push(text.slice(4));
    if (m[2] === "-") {
      if (this.lines.length >= MAX_REPLY_LINES) throw new ProtocolError("reply has too many lines");
      return undefined;
    }
    const lines = this.lines;
    this.lines = [];
    this.code = "";
    return parsedReply(Number(code), lines);
  }
}

/** Splits off the enhanced status code (RFC 2034 §4) when the first line carries one of the right class. */
function parsedReply(code: number, lines: string[]): Reply {
  const s = STATUS_RE.exec(lines[0] ?? "");
  if (!s || s[1] !== String(code)[0]) return { code, status: "", lines };
  const status = s[0];
  const stripped = lines.map((l) => (l === status ? "" : l.startsWith(status + " ") ? l.slice(status.length + 1) : l));
  return { code, status, lines: stripped };
}

/** The reply as one line of text for results and logs (capped). */
export function replyText(r: Reply): string {
  const t = r.lines.filter((l) => l !== "").join(" ");
  return t.length > 2048 ? t.slice(0, 2048) + "..." : t;
}

/** The enhanced status of a reply, or the class default "4.0.0" / "5.0.0". */
export function replyStatus(r: Reply): string {
  return r.status !== "" ? r.status : `${Math.floor(r.code / 100)}.0.0`;
}

/** What the server said it supports in its EHLO reply. */
export interface Extensions {
  readonly pipelining: boolean;
  /** RFC 1870: undefined when SIZE is not offered; 0 when offered without a limit. */
  readonly size?: number;
  readonly eightBitMime: boolean;
  readonly smtputf8: boolean;
  readonly dsn: boolean;
  readonly starttls: boolean;
  readonly chunking: boolean;
  readonly enhancedStatusCodes: boolean;
  readonly requireTls: boolean;
  /** RFC 4954: the SASL mechanisms after AUTH (or the old "AUTH=" form), upper case; empty when AUTH is not offered. */
  readonly auth: readonly string[];
  /** Every keyword offered, upper case, in order. */
  readonly keywords: readonly string[];
}

export const NO_EXTENSIONS: Extensions = {
  pipelining: false,
  eightBitMime: false,
  smtputf8: false,
  dsn: false,
  starttls: false,
  chunking: false,
  enhancedStatusCodes: false,
  requireTls: false,
  auth: [],
  keywords: [],
};

/** Parses the lines after the first of a 250 EHLO reply (RFC 5321 §4.1.1.1). */
export function parseExtensions(r: Reply): Extensions {
  const keywords: string[] = [];
  const auth: string[] = [];
  let size: number | undefined;
  const mechanisms = (params: readonly string[]): void => {
    for (const p of params) {
      const m = p.toUpperCase();
      // RFC 4422 §3.1 mechanism names; a bounded list.
      if (/^[A-Z0-9_-]{1,20}$/.test(m) && !auth.includes(m) && auth.length < 32) auth.push(m);
    }
  };
  for (const line of r.lines.slice(1)) {
    const [kw = "", ...params] = line.trim().split(/\s+/);
    const k = kw.toUpperCase();
    // "AUTH=PLAIN LOGIN": the pre-RFC 4954 form some servers still send next to "AUTH".
    if (k.startsWith("AUTH=")) {
      mechanisms([k.slice(5), ...params]);
      continue;
    }
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(k)) continue;
    keywords.push(k);
    if (k === "SIZE") {
      const n = params[0];
      size = n !== undefined && /^\d{1,15}$/.test(n) ? Number(n) : 0;
    } else if (k === "AUTH") mechanisms(params);
  }
  const has = (k: string): boolean => keywords.includes(k);
  return {
    pipelining: has("PIPELINING"),
    ...(size !== undefined ? { size } : {}),
    eightBitMime: has("8BITMIME"),
    smtputf8: has("SMTPUTF8"),
    dsn: has("DSN"),
    starttls: has("STARTTLS"),
    chunking: has("CHUNKING"),
    enhancedStatusCodes: has("ENHANCEDSTATUSCODES"),
    requireTls: has("REQUIRETLS"),
    auth,
    keywords,
  };
}

/** Throws unless the value is safe inside a command line. */
export function checkValue(v: string, what = "value"): string {
  if (/[\r\n\0]/.test(v)) throw new Error(`${what} must not contain CR, LF or NUL`);
  return v;
}

/** Throws unless `addr` can go inside <...>: no controls, spaces or angle brackets. */
export function checkPath(addr: string): string {
  checkValue(addr, "address");
  if (/[\x00-\x20\x7f<>]/.test(addr)) throw new Error("address has a character not allowed in a path");
  return addr;
}

/** One command line: parts joined by a space, CRLF appended. Throws on CR, LF or NUL. */
export function command(...parts: string[]): Buffer {
  for (const p of parts) checkValue(p, "command part");
  return Buffer.from(parts.join(" ") + "\r\n", "utf8");
}

/** SMTPUTF8 is needed: the envelope says so, or an address is not ASCII (RFC 6531 §3.4). */
export function needsSmtputf8(env: Envelope): boolean {
  const nonAscii = (s: string): boolean => /[^\x00-\x7f]/.test(s);
  return env.smtputf8 || nonAscii(env.mailFrom) || env.recipients.some((r) => nonAscii(r.address));
}

/** MAIL FROM with the parameters the server offered (RFC 1870, 6152, 6531, 3461, 8689). Throws on a bad value. */
export function mailCommand(env: Envelope, content: Buffer, requireTls: boolean, ext: Extensions): Buffer {
  const parts = ["MAIL", `FROM:<${env.mailFrom === "" ? "" : checkPath(env.mailFrom)}>`];
  if (ext.size !== undefined) parts.push(`SIZE=${content.length}`);
  if (ext.eightBitMime && (env.body === "8BITMIME" || scanContent(content).eightBit)) parts.push("BODY=8BITMIME");
  if (ext.smtputf8 && needsSmtputf8(env)) parts.push("SMTPUTF8");
  if (ext.dsn) {
    if (env.ret !== undefined) parts.push(`RET=${env.ret === "HDRS" ? "HDRS" : "FULL"}`);
    if (env.envid !== undefined) parts.push(`ENVID=${encodeXtext(checkValue(env.envid, "ENVID"))}`);
  }
  if (requireTls && ext.requireTls) parts.push("REQUIRETLS");
  return command(...parts);
}

const NOTIFY_RE = /^(SUCCESS|FAILURE|DELAY|NEVER)$/;

/** RCPT TO, with NOTIFY and ORCPT (RFC 3461 §4.1, §4.2) when the server offered DSN. Throws on a bad value. */
export function rcptCommand(r: EnvelopeRecipient, ext: Extensions): Buffer {
  const parts = ["RCPT", `TO:<${checkPath(r.address)}>`];
  if (ext.dsn) {
    const notify = r.dsn.notify;
    if (notify !== undefined && notify.length > 0) {
      const values = notify.map((v) => v.toUpperCase());
      if (!values.every((v) => NOTIFY_RE.test(v))) throw new Error("bad NOTIFY value");
      parts.push(`NOTIFY=${values.join(",")}`);
    }
    const orcpt = r.dsn.orcpt;
    const semi = orcpt?.indexOf(";") ?? -1;
    if (orcpt !== undefined && semi > 0) {
      const type = checkValue(orcpt.slice(0, semi), "ORCPT");
      if (/^[A-Za-z0-9-]+$/.test(type)) parts.push(`ORCPT=${type};${encodeXtext(checkValue(orcpt.slice(semi + 1), "ORCPT"))}`);
    }
  }
  return command(...parts);
}

/**
 * "AUTH PLAIN <initial response>" (RFC 4954 §4, RFC 4616 §2): base64 of
 * NUL user NUL password, no authorization identity. Throws (without the
 * secret in the message) on a NUL in either, an empty user or password.
 */
export function authPlainCommand(user: string, password: string): Buffer {
  if (user === "" || password === "") throw new Error("AUTH PLAIN needs a user and a password");
  if (user.includes("\0") || password.includes("\0")) throw new Error("AUTH PLAIN user and password must not contain NUL");
  return command("AUTH", "PLAIN", Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64"));
}

/** What the content needs from the server. */
export function scanContent(content: Buffer): { eightBit: boolean; nul: boolean } {
  let eightBit = false;
  let nul = false;
  for (const b of content) {
    if (b >= 0x80) eightBit = true;
    else if (b === 0) nul = true;
    if (eightBit && nul) break;
  }
  return { eightBit, nul };
}

/**
 * Content as it goes on the wire after "354": every bare CR and bare LF
 * becomes CRLF, a line starting with "." gets another "." (RFC 5321
 * §4.5.2), a CRLF is added when the content does not end with one (also
 * when it is empty), then the terminator ".\r\n". So the only line that is a
 * lone "." is the terminator, and no bare CR or LF is ever sent. Lines
 * longer than 998 octets are sent as they are (no folding here).
 */
export function encodeData(content: Buffer): Buffer {
  const parts: Buffer[] = [];
  const n = content.length;
  let span = 0;
  let lineStart = true;
  for (let i = 0; i < n; i++) {
    const b = content[i];
    if (lineStart && b === DOT) {
      parts.push(content.subarray(span, i), DOT_BUF);
      span = i;
    }
    lineStart = false;
    if (b === CR) {
      if (i + 1 < n && content[i + 1] === LF) {
        i++;
      } else {
        parts.push(content.subarray(span, i), CRLF);
        span = i + 1;
      }
      lineStart = true;
    } else if (b === LF) {
      parts.push(content.subarray(span, i), CRLF);
      span = i + 1;
      lineStart = true;
    }
  }
  parts.push(content.subarray(span));
  if (!lineStart || n === 0) parts.push(CRLF);
  parts.push(DOT_CRLF);
  return Buffer.concat(parts);
}
