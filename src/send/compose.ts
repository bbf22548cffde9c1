/**
 * Message composition for `wardmail send` (RFC 5322 + MIME, RFC 2045-2049):
 * the header fields, a text/plain UTF-8 body, attachments in base64, and
 * the MIME helpers the signing and encryption code shares (boundaries,
 * base64 lines, canonical CRLF).
 *
 * Everything produced is 7-bit with CRLF line ends and lines of at most 78
 * octets (bodies: quoted-printable or base64; header fields: RFC 2047
 * encoded-words for non-ASCII), so a signature over a part stays valid
 * through any MTA (RFC 3156 §3, RFC 8551 §3.1.1).
 */
import { randomBytes } from "node:crypto";
import { basename, extname } from "node:path";

export const CRLF = "\r\n";

/** A MIME entity: its header lines (without the final empty line) and its body, all CRLF. */
export interface Entity {
  readonly headers: readonly string[];
  readonly body: string;
}

export interface Attachment {
  readonly filename: string;
  readonly content: Buffer;
  /** Content type; detected from the file name when absent (application/octet-stream when unknown). */
  readonly contentType?: string;
}

export interface Envelope {
  readonly from: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly date: Date;
  readonly messageId: string;
}

/** The entity as bytes: header lines, an empty line, the body. */
export function entityText(e: Entity): string {
  return e.headers.join(CRLF) + CRLF + CRLF + e.body;
}

export function newBoundary(): string {
  return `=_wardmail_${randomBytes(12).toString("hex")}`;
}

export function newMessageId(from: string): string {
  const domain = from.includes("@") ? from.slice(from.lastIndexOf("@") + 1) : "localhost";
  return `<${randomBytes(16).toString("hex")}@${domain}>`;
}

/** Every line break becomes CRLF (RFC 3156 §5, RFC 8551 §3.1.1 canonical form). */
export function canonicalCrlf(s: string): string {
  return s.replace(/\r\n|\r|\n/g, CRLF);
}

/** base64 in lines of 76 characters, each ended by CRLF. */
export function base64Lines(data: Buffer | Uint8Array): string {
  const b64 = Buffer.from(data).toString("base64");
  let out = "";
  for (let i = 0; i < b64.length; i += 76) out += b64.slice(i, i + 76) + CRLF;
  return out;
}

/** Quoted-printable (RFC 2045 §6.7) of UTF-8 text; line breaks become CRLF, lines at most 76 characters. */
export function quotedPrintable(text: string): string {
  const lines = canonicalCrlf(text).split(CRLF);
  // A final line break ends the last line; it does not start an empty one.
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const out: string[] = [];
  for (const line of lines) {
    const bytes = Buffer.from(line, "utf8");
    let cur = "";
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] as number;
      const last = i === bytes.length - 1;
      let tok: string;
      // "=" and 8-bit must be encoded; a trailing space or tab too; "." and "F" at a line start
      // are encoded so no line is a lone "." and "From " is never mangled by mbox tools.
      if (b === 0x3d || b > 0x7e || (b < 0x20 && b !== 0x09) || ((b === 0x20 || b === 0x09) && last) || (cur === "" && (b === 0x2e || b === 0x46))) {
        tok = "=" + b.toString(16).toUpperCase().padStart(2, "0");
      } else tok = String.fromCharCode(b);
      if (cur.length + tok.length > 75) {
        out.push(cur + "=");
        cur = "";
      }
      cur += tok;
    }
    out.push(cur);
  }
  return out.join(CRLF) + CRLF;
}

/** An unstructured header value: as is when printable ASCII, else RFC 2047 B encoded-words. */
export function encodeWords(value: string): string {
  if (/^[\x20-\x7e]*$/.test(value)) return value;
  const words: string[] = [];
  let chunk = "";
  for (const ch of value) {
    // 45 bytes of UTF-8 give 60 base64 characters: each encoded-word stays under 75 (RFC 2047 §2).
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = "";
    }
    chunk += ch;
  }
  if (chunk !== "") words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, "utf8").toString("base64")}?=`).join(CRLF + " ");
}

/** Folds a comma-separated list of addresses over several lines. */
function addressList(name: string, addrs: readonly string[]): string {
  return `${name}: ${addrs.join("," + CRLF + " ")}`;
}

/** RFC 5322 §3.3 date-time in UTC. */
export function rfc5322Date(d: Date): string {
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${days[d.getUTCDay()]}, ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** The header fields RFC 9788 protects, in order: Date, From, To, Subject, Message-ID. */
export function messageHeaders(env: Envelope, subject = env.subject): string[] {
  return [
    `Date: ${rfc5322Date(env.date)}`,
    `From: ${env.from}`,
    addressList("To", env.to),
    `Subject: ${encodeWords(subject)}`,
    `Message-ID: ${env.messageId}`,
  ];
}

/** A file name for Content-Disposition: RFC 2231 extended form when not plain ASCII. */
function filenameParam(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name) && !/["\\]/.test(name)) return `filename="${name}"`;
  return `filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())}`;
}

/** Common types by file extension; anything else is application/octet-stream. */
const TYPES: Readonly<Record<string, string>> = {
  ".txt": "text/plain", ".csv": "text/csv", ".html": "text/html", ".htm": "text/html", ".md": "text/markdown",
  ".pdf": "application/pdf", ".zip": "application/zip", ".gz": "application/gzip", ".json": "application/json",
  ".xml": "application/xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
  ".webp": "image/webp", ".svg": "image/svg+xml", ".ics": "text/calendar", ".odt": "application/vnd.oasis.opendocument.text",
  ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  ".asc": "application/pgp-keys", ".pem": "application/x-pem-file",
};

export function contentTypeFor(filename: string): string {
  return TYPES[extname(filename).toLowerCase()] ?? "application/octet-stream";
}

/** The text body and attachments as one entity: text/plain alone, or multipart/mixed. */
export function contentEntity(text: string, attachments: readonly Attachment[]): Entity {
  const textPart: Entity = {
    headers: ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"],
    body: quotedPrintable(text),
  };
  if (attachments.length === 0) return textPart;
  const parts = [textPart, ...attachments.map(attachmentEntity)];
  return multipart("multipart/mixed", parts);
}

function attachmentEntity(a: Attachment): Entity {
  const name = basename(a.filename);
  const type = a.contentType ?? contentTypeFor(name);
  return {
    headers: [`Content-Type: ${type}`, "Content-Transfer-Encoding: base64", `Content-Disposition: attachment; ${filenameParam(name)}`],
    body: base64Lines(a.content),
  };
}

/** multipart/SUBTYPE of parts; params are extra Content-Type parameters (already formatted). */
export function multipart(type: string, parts: readonly Entity[], params: readonly string[] = [], extraHeaders: readonly string[] = []): Entity {
  const boundary = newBoundary();
  const ct = [`Content-Type: ${type}; boundary="${boundary}"`, ...params].join(";" + CRLF + " ");
  let body = "";
  for (const p of parts) body += `--${boundary}${CRLF}${entityText(p)}${p.body.endsWith(CRLF) || p.body === "" ? "" : CRLF}`;
  body += `--${boundary}--${CRLF}`;
  return { headers: [ct, ...extraHeaders], body };
}

/** Adds Content-Type parameters (e.g. RFC 9788 hp="cipher") and header lines to an entity. */
export function withHeaderProtection(e: Entity, hp: "cipher" | "clear", env: Envelope, outerSubject?: string): Entity {
  const [ct = "", ...rest] = e.headers;
  const inner = messageHeaders(env);
  // RFC 9788 §2.2: HP-Outer names what the outer header section shows, so a reader can tell what was hidden.
  const outer = hp === "cipher" ? messageHeaders(env, outerSubject ?? env.subject).map((h) => `HP-Outer: ${h}`) : [];
  return { headers: [`${ct};${CRLF} hp="${hp}"`, ...rest, ...inner, ...outer], body: e.body };
}

/** The whole message: outer header fields, MIME-Version, then the entity's headers and body. */
export function messageText(env: Envelope, top: Entity, outerSubject?: string): string {
  const headers = [...messageHeaders(env, outerSubject ?? env.subject), "MIME-Version: 1.0", ...top.headers];
  return entityText({ headers, body: top.body });
}
