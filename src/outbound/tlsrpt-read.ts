/**
 * Reading a TLS-RPT report message (RFC 8460 §5.3) back: the header fields,
 * the multipart/report structure and the report part, decoded. Used by the
 * tests to check what reportMessage() writes and to read outside samples;
 * usable later for reports others send us.
 *
 *   const r = readReportMessage(raw);   // undefined: no report part found
 *   r.reportType === "tlsrpt"; JSON.parse(r.json)
 *
 * Accepts CRLF or LF line ends, folded header fields, quoted parameters,
 * nested multiparts, base64 / 7bit / 8bit / quoted-printable bodies. Report
 * parts: application/tlsrpt+gzip (gunzipped, at most 20 MB out),
 * application/tlsrpt+json, and the unregistered application/tlsrpt some
 * senders use. A message that is a report part itself is accepted too.
 *
 * Limits: no RFC 2047/2231 decoding of parameters, no charset conversion
 * (the JSON is read as UTF-8), at most 8 levels of nesting.
 */
import { gunzipSync } from "node:zlib";

export interface ReadReport {
  /** Top-level header fields, lower-case names, unfolded; the first of each name. */
  readonly headers: ReadonlyMap<string, string>;
  /** The report-type parameter of the multipart/report that held the report part (undefined: none). */
  readonly reportType: string | undefined;
  /** Media type of the report part, lower case. */
  readonly contentType: string;
  readonly filename: string | undefined;
  /** The report JSON text. */
  readonly json: string;
}

interface Entity {
  headers: Map<string, string>;
  type: string;
  params: Map<string, string>;
  body: string; // latin1: one char per byte
}

const MAX_JSON = 20 * 1024 * 1024;
const REPORT_TYPES = new Set(["application/tlsrpt+gzip", "application/tlsrpt+json", "application/tlsrpt"]);

/** Splits header section and body; unfolds header fields. */
function entity(text: string): Entity {
  const m = /^\r?\n/.exec(text) ?? /\r?\n\r?\n/.exec(text);
  const head = m ? text.slice(0, m.index) : text;
  const body = m ? text.slice(m.index + m[0].length) : "";
  const headers = new Map<string, string>();
  for (const field of head.split(/\r?\n(?![ \t])/)) {
    const colon = field.indexOf(":");
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, field.slice(colon + 1).replace(/\r?\n/g, "").trim());
  }
  const [type, params] = contentType(headers.get("content-type") ?? "text/plain");
  return { headers, type, params, body };
}

/** "multipart/report; report-type=\"tlsrpt\"; boundary=x" → ["multipart/report", {report-type, boundary}]. */
export function contentType(value: string): [string, Map<string, string>] {
  const params = new Map<string, string>();
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const re = /;\s*([^=\s;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (const m of value.slice(Math.max(semi, 0)).matchAll(re)) {
    const name = (m[1] ?? "").toLowerCase();
    if (!params.has(name)) params.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? ""));
  }
  return [type, params];
}

/** The body parts of a multipart entity (preamble and epilogue dropped). */
function parts(e: Entity): string[] {
  const boundary = e.params.get("boundary");
  if (boundary === undefined || boundary === "") return [];
  const esc = boundary.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const delim = new RegExp(`(?:^|\\r?\\n)--${esc}(--)?[ \\t]*(?:\\r?\\n|$)`, "g");
  const out: string[] = [];
  let start: number | undefined;
  for (const m of e.body.matchAll(delim)) {
    if (start !== undefined) out.push(e.body.slice(start, m.index));
    if (m[1] === "--") return out;
    start = m.index + m[0].length;
  }
  return out; // no close delimiter: what was found
}

function decodeBody(e: Entity): Buffer {
  const cte = (e.headers.get("content-transfer-encoding") ?? "7bit").trim().toLowerCase();
  if (cte === "base64") return Buffer.from(e.body.replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
  if (cte === "quoted-printable") {
    const s = e.body.replace(/=\r?\n/g, "").replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(s, "latin1");
  }
  return Buffer.from(e.body, "latin1");
}

function find(e: Entity, reportType: string | undefined, depth: number): Omit<ReadReport, "headers"> | undefined {
  if (REPORT_TYPES.has(e.type)) {
    let data = decodeBody(e);
    if (e.type === "application/tlsrpt+gzip") data = gunzipSync(data, { maxOutputLength: MAX_JSON });
    const [, disp] = contentType(e.headers.get("content-disposition") ?? "");
    return { reportType, contentType: e.type, filename: disp.get("filename") ?? e.params.get("name"), json: data.toString("utf8") };
  }
  if (!e.type.startsWith("multipart/") || depth >= 8) return undefined;
  const rt = e.type === "multipart/report" ? e.params.get("report-type")?.toLowerCase() : reportType;
  for (const p of parts(e)) {
    const found = find(entity(p), rt, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** Reads the report out of a report message; undefined when there is no report part. Throws on a broken gzip stream. */
export function readReportMessage(raw: Buffer): ReadReport | undefined {
  const top = entity(raw.toString("latin1"));
  const found = find(top, undefined, 0);
  return found && { headers: top.headers, ...found };
}
