/**
 * Delivery status notifications (bounces, delay notices, success reports):
 * RFC 3464 message/delivery-status inside an RFC 6522 multipart/report,
 * carrying the RFC 3461 DSN parameters (RET, ENVID, ORCPT).
 *
 * The three parts: a text/plain explanation for the person, the
 * machine-readable message/delivery-status, and the returned message:
 * text/rfc822-headers (its header section) unless RET=FULL was asked and the
 * report is about a failure, then message/rfc822 (the whole message) when it
 * is at most MAX_RETURNED_CONTENT bytes and safe to carry (no NUL, no bare
 * CR or LF, no line over 998 bytes); otherwise its headers only.
 *
 * Hostile input: diagnostic texts and host names come from remote servers,
 * addresses from clients. Every value goes through clean(), which turns
 * CR, LF, NUL and other control characters into spaces, so none can start a
 * header line of its own; non-ASCII characters are written as RFC 6533
 * escapes (\x{HEX}; addresses as type "utf-8"). Everything is 7-bit but
 * the To: of a non-ASCII sender (to send with SMTPUTF8) and a returned
 * 8-bit message (declared Content-Transfer-Encoding: 8bit). A header
 * section with 8-bit or NUL bytes is returned quoted-printable.
 *
 * Never to <>: a notice about a notice would loop (RFC 5321 §6.1,
 * RFC 3461 §6.2).
 */
import { randomBytes } from "node:crypto";

export interface DsnRecipient {
  /** The recipient address as delivered to (Final-Recipient). */
  address: string;
  /** ORCPT as given, "rfc822;addr" (xtext decoded), when the client gave one. */
  orcpt?: string;
  action: "failed" | "delayed" | "delivered" | "relayed" | "expanded";
  /** Enhanced status code (RFC 3463), e.g. "5.1.1". */
  status: string;
  /** The remote host that answered, e.g. "mx.example.org". */
  remoteMta?: string;
  /** "smtp; 550 5.1.1 No such user" ("smtp; " is added when no type is given). */
  diagnostic?: string;
  lastAttempt?: Date;
  /** For "delayed": when we give up. */
  willRetryUntil?: Date;
}

export interface DsnOptions {
  /** Our host name (Reporting-MTA). */
  reportingMta: string;
  /** From: address, e.g. "MAILER-DAEMON@mx.example.com". */
  from: string;
  /** The envelope sender of the original message; "" yields no DSN. */
  to: string;
  /** ENVID as given (xtext decoded). */
  envid?: string;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** The message as queued (CRLF line ends). */
  original: Buffer;
  ret: "FULL" | "HDRS" | undefined;
  now?: Date;
  /** MIME boundary (tests); random when absent. */
  boundary?: string;
}

export interface BuiltDsn {
  /** Always the null reverse-path. */
  mailFrom: "";
  rcptTo: string;
  content: Buffer;
  /** "8BITMIME" when the returned message is 8-bit: send with BODY=8BITMIME. */
  body: "7BIT" | "8BITMIME";
  /** The recipient address is not ASCII: send with SMTPUTF8. */
  smtputf8: boolean;
}

/** Largest original returned whole with RET=FULL (1 MiB); larger ones come back as headers only. */
export const MAX_RETURNED_CONTENT = 1024 * 1024;
/** Longest value written into a field, after cleaning: keeps every line under 998 bytes. */
const MAX_VALUE = 900;

const SUBJECTS = {
  failed: "Undelivered Mail Returned to Sender",
  delayed: "Delayed Mail (still being retried)",
  success: "Successful Mail Delivery Report",
} as const;

/** One line of text: controls (CR, LF, NUL, TAB, DEL ...) become one space, ends trimmed, length capped. */
export function clean(value: string, max = MAX_VALUE): string {
  const s = value.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** clean(), then every non-ASCII character as \\x{HEX} (the RFC 6533 escape): for texts that must stay 7-bit. */
export function ascii(value: string, max = MAX_VALUE): string {
  return clean(value, max).replace(/[^\x00-\x7f]/gu, (c) => `\\x{${(c.codePointAt(0) ?? 0).toString(16).toUpperCase()}}`);
}

/** RFC 5322 date-time in UTC: "Fri, 27 Nov 2026 19:04:34 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace("GMT", "+0000");
}

/** RFC 6533 §3 utf-8-addr-xtext: QCHARs as they are, anything else (non-ASCII, "+", "=", "\") as \x{HEX}. */
function utf8AddrXtext(addr: string): string {
  let out = "";
  for (const ch of addr) {
    const cp = ch.codePointAt(0) ?? 0;
    out += cp >= 0x21 && cp <= 0x7e && ch !== "+" && ch !== "=" && ch !== "\\" ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

const isAscii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);

/** "rfc822; addr", or "utf-8; <xtext form>" for a non-ASCII address. */
function typedAddress(address: string): string {
  const a = clean(address);
  return isAscii(a) ? `rfc822; ${a}` : `utf-8; ${utf8AddrXtext(a)}`;
}

/** ORCPT as given ("type;addr"); non-ASCII addresses in the utf-8 form. */
function originalRecipient(orcpt: string): string | undefined {
  const o = clean(orcpt);
  const semi = o.indexOf(";");
  if (semi <= 0) return undefined;
  const type = o.slice(0, semi).trim();
  const addr = o.slice(semi + 1).trim();
  if (!/^[A-Za-z0-9-]+$/.test(type) || addr === "") return undefined;
  return isAscii(addr) ? `${type};${addr}` : `utf-8;${utf8AddrXtext(addr)}`;
}

/**
 * ENVID as decoded (what Postfix and sendmail print; RFC 3461 §4.4 allows
 * only printable ASCII, and the receiver checks that). Should anything else
 * reach here, those bytes are xtext-encoded (+HH) so the field stays one
 * 7-bit line.
 */
function envelopeId(envid: string): string {
  let out = "";
  for (const b of Buffer.from(envid, "utf8")) {
    out += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out.trim().slice(0, MAX_VALUE);
}

/** local@domain: a quoted or unquoted local part, no controls, no spaces outside quotes, no angle brackets. */
const ADDRESS = /^(?:"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"|[^\s"@<>\x00-\x1f\x7f]+)@[^\s@<>"\x00-\x1f\x7f]+$/;

const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** The status code, or the generic one for the action when it is not a valid one. */
function statusFor(r: DsnRecipient): string {
  const s = ascii(r.status);
  if (STATUS.test(s)) return s;
  return r.action === "failed" ? "5.0.0" : r.action === "delayed" ? "4.0.0" : "2.0.0";
}

function diagnosticCode(d: string): string {
  const c = ascii(d);
  return /^[A-Za-z0-9-]+\s*;/.test(c) ? c : `smtp; ${c}`;
}

/** A field "Name: value" folded at spaces to lines of about 78 characters, CRLF-terminated. */
function field(name: string, value: string): string {
  const words = value.split(" ");
  let line = `${name}:`;
  const lines: string[] = [];
  for (const w of words) {
    if (line.length + 1 + w.length > 78 && line.length > name.length + 1) {
      lines.push(line);
      line = ` ${w}`;
    } else line += ` ${w}`;
  }
  lines.push(line);
  return `${lines.join("\r\n")}\r\n`;
}

/** Wraps a paragraph at 72 characters. */
function wrap(text: string, indent = ""): string {
  const out: string[] = [];
  let line = indent;
  for (const w of text.split(" ")) {
    if (line.length + w.length + 1 > 72 && line.trim() !== "") {
      out.push(line);
      line = indent + w;
    } else line += (line.trim() === "" ? "" : " ") + w;
  }
  out.push(line);
  return out.join("\r\n");
}

const INTRO: Record<DsnRecipient["action"], string> = {
  failed: "Your message could not be delivered to the recipients below. This is a permanent error: the mail system has given up on them.",
  delayed: "Your message has not been delivered yet to the recipients below. The mail system keeps trying; you do not need to send it again. You will get another notice if it finally fails.",
  delivered: "Your message was delivered to the recipients below.",
  relayed: "Your message was passed on to the mail systems of the recipients below. They do not send delivery reports, so you will not hear more about it.",
  expanded: "Your message was delivered to the recipients below. They are lists or aliases that passed it on to further addresses.",
};

function humanText(opts: DsnOptions, returned: "headers" | "full", reason: string | undefined): string {
  const parts: string[] = [`This is the mail system at ${ascii(opts.reportingMta, 255)}.`];
  for (const action of ["failed", "delayed", "delivered", "relayed", "expanded"] as const) {
    const rs = opts.recipients.filter((r) => r.action === action);
    if (rs.length === 0) continue;
    const lines = [wrap(INTRO[action])];
    for (const r of rs) {
      const addr = clean(r.address);
      lines.push(`  <${isAscii(addr) ? addr : utf8AddrXtext(addr)}>`);
      const diag = r.diagnostic === undefined ? "" : diagnosticCode(r.diagnostic).replace(/^[A-Za-z0-9-]+\s*;\s*/, "");
      const who = r.remoteMta === undefined ? "" : `${ascii(r.remoteMta, 255)} said: `;
      lines.push(wrap(diag !== "" ? `${who}${diag}` : `status ${statusFor(r)}`, "    "));
      if (action === "delayed" && r.willRetryUntil) lines.push(wrap(`(trying until ${rfc5322Date(r.willRetryUntil)})`, "    "));
    }
    parts.push(lines.join("\r\n"));
  }
  parts.push(
    wrap(
      returned === "full"
        ? "The message is attached after the delivery report."
        : `The header of the message is attached after the delivery report${reason ? ` (${reason})` : ""}.`,
    ),
  );
  return `${parts.join("\r\n\r\n")}\r\n`;
}

function deliveryStatus(opts: DsnOptions): string {
  let s = field("Reporting-MTA", `dns; ${ascii(opts.reportingMta, 255)}`);
  if (opts.envid !== undefined && opts.envid !== "") s += field("Original-Envelope-Id", envelopeId(opts.envid));
  s += field("Arrival-Date", rfc5322Date(opts.arrivalDate));
  for (const r of opts.recipients) {
    s += "\r\n";
    const orcpt = r.orcpt === undefined ? undefined : originalRecipient(r.orcpt);
    if (orcpt !== undefined) s += field("Original-Recipient", orcpt);
    s += field("Final-Recipient", typedAddress(r.address));
    s += field("Action", r.action);
    s += field("Status", statusFor(r));
    if (r.remoteMta !== undefined && clean(r.remoteMta) !== "") s += field("Remote-MTA", `dns; ${ascii(r.remoteMta, 255)}`);
    if (r.diagnostic !== undefined && clean(r.diagnostic) !== "") s += field("Diagnostic-Code", diagnosticCode(r.diagnostic));
    if (r.lastAttempt) s += field("Last-Attempt-Date", rfc5322Date(r.lastAttempt));
    if (r.action === "delayed" && r.willRetryUntil) s += field("Will-Retry-Until", rfc5322Date(r.willRetryUntil));
  }
  return s;
}

/** The header section of a message, line ends made CRLF, ending with the CRLF of its last line. */
export function headerSection(original: Buffer): Buffer {
  let end = original.length;
  if (original[0] === 0x0a || (original[0] === 0x0d && original[1] === 0x0a)) end = 0;
  else {
    // The first line end followed by an empty line ([CR]LF [CR]LF).
    for (let i = original.indexOf(0x0a); i >= 0; i = original.indexOf(0x0a, i + 1)) {
      const j = original[i + 1] === 0x0d ? i + 2 : i + 1;
      if (original[j] === 0x0a) {
        end = i + 1;
        break;
      }
    }
  }
  const text = original.toString("latin1", 0, end).replace(/\r\n|\r|\n/g, "\r\n");
  return Buffer.from(text === "" || text.endsWith("\r\n") ? text : `${text}\r\n`, "latin1");
}

/** Can the original travel as message/rfc822 (7bit or 8bit)? No NUL, CR and LF only as CRLF, lines at most 998 bytes. */
function safeToReturn(original: Buffer): boolean {
  let lineStart = 0;
  for (let i = 0; i < original.length; i++) {
    const b = original[i];
    if (b === 0) return false;
    if (b === 0x0d) {
      if (original[i + 1] !== 0x0a) return false;
    } else if (b === 0x0a) {
      if (original[i - 1] !== 0x0d) return false;
      if (i - 1 - lineStart > 998) return false;
      lineStart = i + 1;
    }
  }
  return original.length - lineStart <= 998;
}

const has8bit = (b: Buffer): boolean => b.some((x) => x > 0x7f);

/** Quoted-printable (RFC 2045 §6.7) of CRLF text: line ends kept as hard breaks, lines at most 76. */
export function quotedPrintable(data: Buffer): string {
  const out: string[] = [];
  for (const raw of data.toString("latin1").split("\r\n")) {
    let line = "";
    let cur = "";
    const bytes = Buffer.from(raw, "latin1");
    bytes.forEach((b, i) => {
      const last = i === bytes.length - 1;
      const plain = (b >= 0x21 && b <= 0x7e && b !== 0x3d) || ((b === 0x20 || b === 0x09) && !last);
      const enc = plain ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
      if (cur.length + enc.length > 75) {
        line += `${cur}=\r\n`;
        cur = "";
      }
      cur += enc;
    });
    out.push(line + cur);
  }
  return out.join("\r\n");
}

/**
 * Builds the DSN to send to `opts.to` from <>, or undefined when `to` is
 * "" (the original was itself a notice). Throws when `to` is not an
 * address, there is no recipient to report on, or a given boundary occurs
 * in the content.
 */
export function buildDsn(opts: DsnOptions): BuiltDsn | undefined {
  if (opts.to === "") return undefined;
  // The address goes into RCPT TO as well as To:, so it is checked, not just cleaned:
  // a space outside quotes could add an ESMTP parameter there.
  if (!ADDRESS.test(opts.to)) throw new Error(`buildDsn: the envelope sender is not an address: ${JSON.stringify(opts.to.slice(0, 100))}`);
  const to = opts.to;
  if (opts.recipients.length === 0) throw new Error("buildDsn: no recipients to report on");
  const now = opts.now ?? new Date();
  const failed = opts.recipients.some((r) => r.action === "failed");
  const subject = failed ? SUBJECTS.failed : opts.recipients.some((r) => r.action === "delayed") ? SUBJECTS.delayed : SUBJECTS.success;

  // Part 3: the whole message only for RET=FULL on a failure, when small and clean enough.
  let reason: string | undefined;
  let full = opts.ret === "FULL" && failed;
  if (full && opts.original.length > MAX_RETURNED_CONTENT) {
    full = false;
    reason = `the whole message is larger than ${MAX_RETURNED_CONTENT} bytes`;
  } else if (full && !safeToReturn(opts.original)) {
    full = false;
    reason = "the message has bytes that cannot be returned as they are";
  }
  let third: Buffer;
  let thirdHead: string;
  let eightBit = false;
  if (full) {
    eightBit = has8bit(opts.original);
    third = opts.original;
    thirdHead = `Content-Type: message/rfc822\r\nContent-Description: ${failed ? "Undelivered Message" : "Message"}\r\n${eightBit ? "Content-Transfer-Encoding: 8bit\r\n" : ""}`;
  } else {
    const headers = headerSection(opts.original);
    const plain = !has8bit(headers) && !headers.includes(0) && headers.toString("latin1").split("\r\n").every((l) => l.length <= 998);
    third = plain ? headers : Buffer.from(quotedPrintable(headers), "latin1");
    thirdHead = `Content-Type: text/rfc822-headers\r\nContent-Description: ${failed ? "Undelivered Message Headers" : "Message Headers"}\r\n${plain ? "" : "Content-Transfer-Encoding: quoted-printable\r\n"}`;
  }

  const first = humanText(opts, full ? "full" : "headers", reason);
  const second = deliveryStatus(opts);
  let boundary = opts.boundary ?? randomBoundary();
  const clash = (b: string): boolean => [first, second].some((p) => p.includes(`--${b}`)) || third.includes(`--${b}`);
  while (clash(boundary)) {
    if (opts.boundary !== undefined) throw new Error("buildDsn: the boundary occurs in the content");
    boundary = randomBoundary();
  }

  const smtputf8 = !isAscii(to);
  const mta = ascii(opts.reportingMta, 255);
  const head =
    `From: Mail Delivery System <${ascii(opts.from)}>\r\n` +
    `To: <${to}>\r\n` +
    `Subject: ${subject}\r\n` +
    `Date: ${rfc5322Date(now)}\r\n` +
    `Message-ID: <${now.getTime().toString(36)}.${randomBytes(8).toString("hex")}@${mta}>\r\n` +
    `Auto-Submitted: auto-replied\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="${boundary}"\r\n` +
    (eightBit ? "Content-Transfer-Encoding: 8bit\r\n" : "") +
    `\r\n` +
    `This is a MIME-encapsulated message: a delivery status notification.\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: text/plain; charset=us-ascii\r\nContent-Description: Notification\r\n\r\n` +
    first +
    `\r\n--${boundary}\r\n` +
    `Content-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\n` +
    second +
    `\r\n--${boundary}\r\n` +
    thirdHead +
    `\r\n`;
  const content = Buffer.concat([Buffer.from(head, smtputf8 ? "utf8" : "latin1"), third, Buffer.from(`\r\n--${boundary}--\r\n`, "latin1")]);
  return { mailFrom: "", rcptTo: to, content, body: eightBit ? "8BITMIME" : "7BIT", smtputf8 };
}

function randomBoundary(): string {
  return `=_wardmail-dsn-${randomBytes(12).toString("hex")}`;
}
