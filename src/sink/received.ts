/**
 * The Received: trace header Wardmail puts on top of every message it accepts
 * (RFC 5321 §4.4, RFC 5322 §3.6.7), with the RFC 3848 protocol keyword and,
 * when TLS was used, the TLS version and cipher in a comment (as Postfix does).
 *
 * Client-supplied text (the EHLO name) is hostile: anything but printable
 * ASCII is replaced, so the header can never be split or smuggle a line.
 */
import type { ReceivedInfo } from "../queue/index.ts";

function printable(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, "?").replace(/[()\\]/g, "?").slice(0, 255);
}

/** RFC 5322 date-time in UTC: "Fri, 27 Nov 2026 19:04:34 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace("GMT", "+0000");
}

function ipLiteral(ip: string): string {
  const v4 = ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
  return v4.includes(":") ? `[IPv6:${v4}]` : `[${v4}]`;
}

/**
 * Builds the header (folded, CRLF-terminated).
 * @param byHost our host name
 * @param id the queue id of the message
 * @param forRcpt the recipient, named only when the message has exactly one
 */
export function receivedHeader(info: ReceivedInfo, byHost: string, id: string, forRcpt?: string): string {
  let h = `Received: from ${printable(info.helo) || "unknown"} (${ipLiteral(info.clientIp)})\r\n`;
  h += `\tby ${byHost} (Wardmail) with ${info.protocol} id ${id}`;
  if (info.tls) h += `\r\n\t(using ${printable(info.tls.version)} with cipher ${printable(info.tls.cipher)})`;
  if (forRcpt !== undefined && /^[\x21-\x7e]+$/.test(forRcpt) && !/[<>]/.test(forRcpt)) h += `\r\n\tfor <${forRcpt}>`;
  h += `;\r\n\t${rfc5322Date(info.receivedAt)}\r\n`;
  return h;
}
