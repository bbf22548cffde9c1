/**
 * Reads a delivery status notification back: the top-level header, the
 * parts of the multipart/report, and the fields of its
 * message/delivery-status part (RFC 3464 §2: one block of per-message
 * fields, then one block per recipient, separated by empty lines). Tolerant
 * of LF line ends and folded fields, so that it also reads other MTAs'
 * bounces (a test that finds one in a Maildir). It decodes a
 * quoted-printable or base64 returned part. Not a general MIME parser:
 * nested multiparts are not looked into.
 */

export interface DsnPart {
  /** Lowercase media type without parameters, e.g. "message/delivery-status". */
  readonly type: string;
  /** Header fields of the part, lowercase names (first occurrence). */
  readonly headers: Readonly<Record<string, string>>;
  /** The body with its Content-Transfer-Encoding undone. */
  readonly body: Buffer;
}

export interface ParsedDsn {
  /** Top-level header fields, lowercase names, unfolded (first occurrence of each). */
  readonly headers: Readonly<Record<string, string>>;
  /** The report-type parameter ("delivery-status"). */
  readonly reportType: string;
  readonly parts: readonly DsnPart[];
  /** The first text/plain part. */
  readonly text: string;
  /** Per-message fields, lowercase names: "reporting-mta", "arrival-date", ... */
  readonly message: Readonly<Record<string, string>>;
  /** Per-recipient fields, lowercase names: "final-recipient", "action", "status", ... */
  readonly recipients: readonly Readonly<Record<string, string>>[];
  /** The returned message or its header (text/rfc822-headers or message/rfc822), decoded. */
  readonly returned?: { readonly type: string; readonly content: Buffer };
}

export class DsnParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DsnParseError";
  }
}

/** Header fields of a block: [lowercase name, unfolded value][] and where the body starts. */
export function parseFields(buf: Buffer, start = 0): { fields: [string, string][]; bodyStart: number } {
  const fields: [string, string][] = [];
  let pos = start;
  let cur: string | undefined;
  const flush = (): void => {
    if (cur === undefined) return;
    const colon = cur.indexOf(":");
    if (colon > 0) fields.push([cur.slice(0, colon).trim().toLowerCase(), cur.slice(colon + 1).replace(/\s+/g, " ").trim()]);
    cur = undefined;
  };
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const end = nl < 0 ? buf.length : nl;
    const line = buf.toString("utf8", pos, end).replace(/\r$/, "");
    const next = nl < 0 ? buf.length : nl + 1;
    if (line === "") {
      flush();
      return { fields, bodyStart: next };
    }
    if (/^[ \t]/.test(line) && cur !== undefined) cur += ` ${line.trim()}`;
    else {
      flush();
      cur = line;
    }
    pos = next;
  }
  flush();
  return { fields, bodyStart: buf.length };
}

function firsts(fields: readonly [string, string][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of fields) if (!(k in out)) out[k] = v;
  return out;
}

/** A parameter of a structured header value (`name=token` or `name="quoted"`), case-insensitive name. */
export function headerParam(value: string, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, "i");
  const m = re.exec(value);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2];
}

function mediaType(value: string | undefined): string {
  return (value ?? "text/plain").split(";")[0]?.trim().toLowerCase() ?? "text/plain";
}

function decodeQuotedPrintable(b: Buffer): Buffer {
  const s = b.toString("latin1").replace(/=\r?\n/g, "");
  return Buffer.from(s.replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1");
}

function decode(body: Buffer, cte: string | undefined): Buffer {
  switch ((cte ?? "").trim().toLowerCase()) {
    case "quoted-printable":
      return decodeQuotedPrintable(body);
    case "base64":
      return Buffer.from(body.toString("latin1").replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
    default:
      return body;
  }
}

/** The parts of a multipart body: bytes between delimiter lines, without the line end before each delimiter. */
function splitMultipart(buf: Buffer, start: number, boundary: string): Buffer[] {
  const parts: Buffer[] = [];
  const delim = `--${boundary}`;
  let partStart = -1;
  let pos = start;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const end = nl < 0 ? buf.length : nl;
    const line = buf.toString("latin1", pos, end).replace(/\r$/, "").replace(/[ \t]+$/, "");
    if (line === delim || line === `${delim}--`) {
      if (partStart >= 0) {
        // The line end before the delimiter belongs to it (RFC 2046 §5.1.1).
        let partEnd = pos;
        if (partEnd > partStart && buf[partEnd - 1] === 0x0a) partEnd--;
        if (partEnd > partStart && buf[partEnd - 1] === 0x0d) partEnd--;
        parts.push(buf.subarray(partStart, partEnd));
      }
      if (line !== delim) return parts;
      partStart = nl < 0 ? buf.length : nl + 1;
    }
    pos = nl < 0 ? buf.length : nl + 1;
  }
  throw new DsnParseError("the multipart body has no closing delimiter");
}

/** The per-message and per-recipient field blocks of a message/delivery-status body. */
export function parseDeliveryStatus(body: Buffer): { message: Record<string, string>; recipients: Record<string, string>[] } {
  const blocks: Record<string, string>[] = [];
  let pos = 0;
  while (pos < body.length) {
    // Skip empty lines between blocks.
    while (pos < body.length && (body[pos] === 0x0a || (body[pos] === 0x0d && body[pos + 1] === 0x0a))) pos += body[pos] === 0x0d ? 2 : 1;
    if (pos >= body.length) break;
    const { fields, bodyStart } = parseFields(body, pos);
    if (fields.length > 0) blocks.push(firsts(fields));
    if (bodyStart <= pos) break;
    pos = bodyStart;
  }
  const [message, ...recipients] = blocks;
  if (message === undefined) throw new DsnParseError("the delivery-status part is empty");
  return { message, recipients };
}

/** Parses a DSN; throws DsnParseError when `content` is not a multipart/report with a delivery-status part. */
export function parseDsn(content: Buffer): ParsedDsn {
  const top = parseFields(content);
  const headers = firsts(top.fields);
  const ct = headers["content-type"] ?? "";
  if (mediaType(ct) !== "multipart/report") throw new DsnParseError(`not a multipart/report: ${JSON.stringify(ct.slice(0, 100))}`);
  const boundary = headerParam(ct, "boundary");
  if (boundary === undefined || boundary === "") throw new DsnParseError("multipart/report without a boundary");
  const parts: DsnPart[] = splitMultipart(content, top.bodyStart, boundary).map((raw) => {
    const { fields, bodyStart } = parseFields(raw);
    const h = firsts(fields);
    return { type: mediaType(h["content-type"]), headers: h, body: decode(raw.subarray(bodyStart), h["content-transfer-encoding"]) };
  });
  const status = parts.find((p) => p.type === "message/delivery-status" || p.type === "message/global-delivery-status");
  if (!status) throw new DsnParseError("no message/delivery-status part");
  const { message, recipients } = parseDeliveryStatus(status.body);
  const text = parts.find((p) => p.type === "text/plain")?.body.toString("utf8") ?? "";
  const ret = parts.find((p) => ["text/rfc822-headers", "message/rfc822", "message/global", "message/global-headers"].includes(p.type));
  return {
    headers,
    reportType: headerParam(ct, "report-type")?.toLowerCase() ?? "",
    parts,
    text,
    message,
    recipients,
    ...(ret ? { returned: { type: ret.type, content: ret.body } } : {}),
  };
}
