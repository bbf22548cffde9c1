/**
 * The header section of a message (RFC 5322 §2.2, §3.6): its fields, each
 * with one canonical name, and their removal. Every part of Wardmail that
 * looks for a header field by name (the author for DMARC, sender ownership
 * on submission, removal of headers we write ourselves) uses this one
 * reader, so a field cannot be visible to one of them and invisible to
 * another.
 *
 * Trusts nothing: the content is hostile. One pass over the header section
 * (up to the first empty line), no backtracking: linear in its size. The
 * content is CRLF-ended (the protocol core guarantees it).
 *
 * Canonical name: the text before the first colon of the field (which may
 * be on a continuation line: RFC 5322 §4.5 obs-optional allows white space,
 * even folding, before the colon), read as UTF-8, in NFKC form, without
 * format characters (a byte-order mark, zero-width characters: Unicode
 * category Cf) anywhere, without leading and trailing white space, in lower
 * case. "\uFEFFFrom", "From \r\n " and "FROM" are all "from". A field
 * without a colon has the name "".
 */

export interface HeaderField {
  /** Canonical name (above). */
  readonly name: string;
  /** Byte offset of the field's first byte in the content. */
  readonly start: number;
  /** Byte offset just after the field's last CRLF. */
  readonly end: number;
  /** Byte offset of the colon; -1 when there is none. */
  readonly colon: number;
}

/** Offset just after the CRLF of the last header field (where the empty line starts); content.length without an empty line. */
export function headerEnd(content: Buffer): number {
  if (content.length >= 2 && content[0] === 0x0d && content[1] === 0x0a) return 0;
  const i = content.indexOf("\r\n\r\n");
  return i < 0 ? content.length : i + 2;
}

const PLAIN_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const FORMAT_CHARS = /\p{Cf}/gu;

/** The canonical form of a raw field name (latin1 text of its bytes). */
export function canonicalName(raw: string): string {
  if (PLAIN_NAME.test(raw)) return raw.toLowerCase();
  const text = /[\x80-\xff]/.test(raw) ? Buffer.from(raw, "latin1").toString("utf8") : raw;
  return text.normalize("NFKC").replace(FORMAT_CHARS, "").trim().toLowerCase();
}

/** The fields of the header section, in order. */
export function headerFields(content: Buffer): HeaderField[] {
  const end = headerEnd(content);
  const head = content.toString("latin1", 0, end);
  const fields: HeaderField[] = [];
  let start = -1;
  let pos = 0;
  const close = (to: number): void => {
    if (start < 0) return;
    const c = head.indexOf(":", start);
    const colon = c >= 0 && c < to ? c : -1;
    fields.push({ name: colon < 0 ? "" : canonicalName(head.slice(start, colon)), start, end: to, colon });
  };
  while (pos < end) {
    let next = head.indexOf("\r\n", pos);
    next = next < 0 ? end : next + 2;
    const c = head.charCodeAt(pos);
    // A line that starts with white space continues the field before it.
    if (!((c === 0x20 || c === 0x09) && start >= 0)) {
      close(pos);
      start = pos;
    }
    pos = next;
  }
  close(end);
  return fields;
}

/** A field's value: the text after the colon, unfolded (CRLF removed), read as UTF-8 (RFC 6532). "" without a colon. */
export function fieldValue(content: Buffer, field: HeaderField): string {
  if (field.colon < 0) return "";
  const text = content.toString("utf8", field.colon + 1, field.end);
  // Most fields are one line: no CRLF, or only the one that ends them.
  const crlf = text.indexOf("\r\n");
  if (crlf < 0) return text;
  if (crlf === text.length - 2) return text.slice(0, crlf);
  return text.replace(/\r\n/g, "");
}

/** The values of every field with this canonical name. */
export function fieldValues(content: Buffer, name: string, fields: readonly HeaderField[] = headerFields(content)): string[] {
  return fields.filter((f) => f.name === name).map((f) => fieldValue(content, f));
}

/** The content without the header fields `drop` selects; the same Buffer when none is dropped. `fields`: headerFields(content), when the caller has it already. */
export function removeFields(content: Buffer, drop: (field: HeaderField, value: () => string) => boolean, fields: readonly HeaderField[] = headerFields(content)): Buffer {
  const parts: Buffer[] = [];
  let kept = 0;
  let removed = false;
  for (const f of fields) {
    if (!drop(f, () => fieldValue(content, f))) continue;
    removed = true;
    if (f.start > kept) parts.push(content.subarray(kept, f.start));
    kept = f.end;
  }
  if (!removed) return content;
  parts.push(content.subarray(kept));
  return Buffer.concat(parts);
}
