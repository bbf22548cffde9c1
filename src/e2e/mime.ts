/**
 * MIME for encrypt-on-store: is a message already encrypted, and the outer
 * header section of the encrypted copy.
 *
 * isEncrypted (hostile content, linear, bounded): the top-level
 * Content-Type is multipart/encrypted (RFC 1847; PGP/MIME is its
 * application/pgp-encrypted protocol, RFC 3156) with an armored OpenPGP
 * message in the first 64 KiB of its body, or application/pkcs7-mime (or
 * the legacy x-pkcs7-mime) with smime-type enveloped-data or
 * authEnveloped-data (RFC 8551 §3.2; without smime-type: a name ending in
 * .p7m) whose body starts with a CMS ContentInfo of that type (its OID in
 * the first bytes), or the message is not multipart and
 * its body starts with an inline OpenPGP message ("-----BEGIN PGP
 * MESSAGE-----", RFC 4880 §6.2; only the first 4 KiB of the body are
 * looked at). A signed-only message (multipart/signed, smime-type
 * signed-data) is not encrypted.
 *
 * outerHeader (RFC 9788 §4.1, the hcp_baseline confidentiality policy
 * narrowed to an allowlist): the encrypted copy's header keeps, as they
 * were (byte for byte, folded lines included, in their order), the fields a
 * mail store and a mail reader need before decryption: trace fields
 * (Return-Path, Delivered-To, Received, Authentication-Results), Date, From,
 * Sender, Reply-To, To, Cc, Message-ID, In-Reply-To, References, and our
 * own verdict fields (X-Wardmail-*, X-Spam*) that Sieve rules may sort by.
 * Subject becomes "[...]" (RFC 9788's obscured value); every other field
 * (Bcc, Keywords, Comments, List-*, X-Mailer, User-Agent, Content-*,
 * MIME-Version...) is only inside. The original message, all of its header
 * fields included, is the encrypted payload, byte for byte.
 */
import { fieldValue, headerEnd, headerFields, type HeaderField } from "../message/index.ts";

/** The value RFC 9788 §4.1 gives an obscured Subject. */
export const OBSCURED_SUBJECT = "[...]";

const KEPT = new Set([
  "return-path",
  "delivered-to",
  "received",
  "authentication-results",
  "date",
  "from",
  "sender",
  "reply-to",
  "to",
  "cc",
  "message-id",
  "in-reply-to",
  "references",
]);

/** A Content-Type value is read up to this many characters (more is not a real one). */
const MAX_CONTENT_TYPE = 4096;
/** How much of a single-part body is searched for an inline PGP message. */
const INLINE_WINDOW = 4096;

export interface ContentType {
  /** "type/subtype", lowercase; "text/plain" when absent (RFC 2045 §5.2). */
  readonly type: string;
  /** Parameters by lowercase name (values unquoted). */
  readonly params: ReadonlyMap<string, string>;
}

const PARAM_RE = /;\s*([A-Za-z0-9!#$&^_.+*'-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/g;

/** Parses a Content-Type value (comments are not supported; they are rare in this field). */
export function parseContentType(value: string | undefined): ContentType {
  if (value === undefined) return { type: "text/plain", params: new Map() };
  const v = value.slice(0, MAX_CONTENT_TYPE).trim();
  const semi = v.indexOf(";");
  const type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase();
  const params = new Map<string, string>();
  if (semi >= 0) {
    for (const m of v.slice(semi).matchAll(PARAM_RE)) {
      const name = (m[1] ?? "").toLowerCase();
      let val = m[2] ?? "";
      if (val.startsWith('"')) val = val.slice(1, -1).replace(/\\(.)/g, "$1");
      if (!params.has(name)) params.set(name, val);
    }
  }
  return { type: /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : "text/plain", params };
}

function contentTypeOf(raw: Buffer, fields: readonly HeaderField[]): ContentType {
  const f = fields.find((x) => x.name === "content-type");
  return parseContentType(f === undefined ? undefined : fieldValue(raw, f));
}

/** How much of the body is searched for evidence of ciphertext. */
const EVIDENCE_WINDOW = 64 * 1024;
const PGP_ARMOR = /(?:^|\n)[ \t]*-----BEGIN PGP MESSAGE-----\r?\n/;
/** DER of the OIDs id-envelopedData (1.2.840.113549.1.7.3) and id-ct-authEnvelopedData (1.2.840.113549.1.9.16.1.23). */
const OID_ENVELOPED = Buffer.from("06092a864886f70d010703", "hex");
const OID_AUTH_ENVELOPED = Buffer.from("060b2a864886f70d0109100117", "hex");

/** The CMS content type of an application/pkcs7-mime body is (authenticated) enveloped data: its OID in the first bytes. */
function cmsEnveloped(raw: Buffer, bodyStart: number, base64: boolean): boolean {
  let head: Buffer;
  if (base64) {
    const text = raw.toString("latin1", bodyStart, Math.min(raw.length, bodyStart + 512)).replace(/[^A-Za-z0-9+/]/g, "");
    head = Buffer.from(text.slice(0, text.length - (text.length % 4)), "base64");
  } else {
    head = raw.subarray(bodyStart, Math.min(raw.length, bodyStart + 64));
  }
  const start = head.subarray(0, 64);
  return start.includes(OID_ENVELOPED) || start.includes(OID_AUTH_ENVELOPED);
}

/**
 * True when the message is already encrypted (see the module comment for
 * what counts). The label alone is not enough: the body must hold the
 * ciphertext (an armored OpenPGP message in the first 64 KiB of a
 * multipart/encrypted one; the enveloped-data OID at the start of a
 * pkcs7-mime one), so plaintext labelled as encrypted is encrypted anyway.
 */
export function isEncrypted(raw: Buffer): boolean {
  const fields = headerFields(raw);
  const ct = contentTypeOf(raw, fields);
  const end = headerEnd(raw);
  const bodyStart = end + 2 <= raw.length ? end + 2 : raw.length;
  if (ct.type === "multipart/encrypted") {
    return PGP_ARMOR.test(raw.toString("latin1", bodyStart, Math.min(raw.length, bodyStart + EVIDENCE_WINDOW)));
  }
  if (ct.type === "application/pkcs7-mime" || ct.type === "application/x-pkcs7-mime") {
    const smime = ct.params.get("smime-type")?.toLowerCase();
    const labelled = smime !== undefined ? smime === "enveloped-data" || smime === "authenveloped-data" : /\.p7m$/i.test(ct.params.get("name") ?? "");
    if (!labelled) return false;
    const cte = fields.find((f) => f.name === "content-transfer-encoding");
    const base64 = cte !== undefined && fieldValue(raw, cte).trim().toLowerCase() === "base64";
    return cmsEnveloped(raw, bodyStart, base64);
  }
  if (ct.type.startsWith("multipart/") || ct.type.startsWith("message/")) return false;
  const head = raw.toString("latin1", bodyStart, Math.min(raw.length, bodyStart + INLINE_WINDOW));
  return /^\s*-----BEGIN PGP MESSAGE-----\r?\n/.test(head);
}

/**
 * The outer header section of the encrypted copy (CRLF lines, without the
 * empty line): the kept fields as they were, byte for byte, Subject obscured.
 */
export function outerHeader(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const f of headerFields(raw)) {
    if (f.name === "subject") parts.push(Buffer.from(`Subject: ${OBSCURED_SUBJECT}\r\n`));
    else if (KEPT.has(f.name) || f.name.startsWith("x-wardmail-") || f.name.startsWith("x-spam")) {
      parts.push(raw.subarray(f.start, f.end));
      // The last field of a message without a body may lack its CRLF.
      if (raw[f.end - 1] !== 0x0a) parts.push(Buffer.from("\r\n"));
    }
  }
  return Buffer.concat(parts);
}

/** Splits base64 into 76-character CRLF lines (RFC 2045 §6.8). */
export function base64Lines(data: Uint8Array): string {
  const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join("\r\n") + "\r\n";
}
