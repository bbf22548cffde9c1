/**
 * CPU bounds on mailauth's DKIM/ARC verifier (mailauth 7.1.0, pinned), for
 * every message it reads: our verifyDkim() and mailauth's own authenticate()
 * (the ARC-sealing path) both use its DkimVerifier, so the two changes are
 * made once, on that class's prototype, when this module loads.
 *
 * 1. The header section is parsed in linear time. mailauth's parseHeaders
 *    joins continuation lines by copying the growing array once per line
 *    (quadratic: a 100 KB field folded over 25,000 lines took 4.5 s on the
 *    event loop) and trims field names with a regex that is quadratic on a
 *    long run of blanks. parseHeaders() below gives the same result
 *    (verify.test.ts compares the two on generated inputs) in one pass.
 * 2. At most MAX_SIGNATURES DKIM-Signature fields of a message are verified
 *    (RFC 6376 §6.1 lets a verifier limit them; OpenDKIM's default is 3),
 *    and a signature whose h= names more than MAX_SIGNED_FIELDS fields is
 *    not verified: each signature costs a DNS question, a pass over the body
 *    (a body hash per distinct l=) and a pass over the header fields per
 *    name in h=. The others are reported neutral ("too many signatures",
 *    "too many signed header fields"), as for any signature not processed.
 *
 * The header section itself is at most limits.max_header_size (the DATA and
 * BDAT receivers refuse a larger one before anything parses it).
 */
import { DkimVerifier } from "mailauth/lib/dkim/dkim-verifier.js";

/** DKIM signatures verified per message. */
export const MAX_SIGNATURES = 10;
/** Field names in one signature's h= tag beyond which it is not verified. */
export const MAX_SIGNED_FIELDS = 128;

export interface ParsedHeader {
  key: string | null;
  casedKey: string | undefined;
  line: Buffer;
}

// mailauth's tools.js: RFC 5322 §3.6.8 field name, then optional blanks (a fold may come before the colon), then ":".
const FIELD_START = /^[\x21-\x39\x3b-\x7e]+[ \t\r\n]*:/;
const NON_ASCII = /[^\x00-\x7f]/;
const lowerCaseASCII = (s: string): string => (NON_ASCII.test(s) ? s.replace(/[A-Z]/g, (c) => c.toLowerCase()) : s.toLowerCase());

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** s without leading and trailing spaces and tabs (mailauth's /^[ \t]+|[ \t]+$/g, in linear time). */
function trimBlanks(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isBlank(s.charCodeAt(a))) a++;
  while (b > a && isBlank(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** s without trailing CR and LF (mailauth's /[\r\n]+$/). */
function trimLineEnds(s: string): string {
  let b = s.length;
  while (b > 0 && (s.charCodeAt(b - 1) === 0x0d || s.charCodeAt(b - 1) === 0x0a)) b--;
  return s.slice(0, b);
}

/**
 * mailauth's tools.parseHeaders, in linear time: the same rows, keys and
 * lines. mailauth decides from the last line up whether a line starts a
 * field, looking at the line together with the next one when that one was
 * joined to it; the same decisions are made here in the same order, then
 * the lines are grouped once.
 */
export function parseHeaders(buf: Buffer): { parsed: ParsedHeader[]; original: Buffer } {
  const lines = trimLineEnds(buf.toString("binary")).split(/\r?\n/);
  if (lines.length === 1 && !lines[0]) return { parsed: [], original: buf };
  const n = lines.length;
  const starts = new Array<boolean>(n).fill(false);
  starts[0] = true;
  for (let j = n - 1; j > 0; j--) {
    const joined = j + 1 < n && !starts[j + 1];
    starts[j] = FIELD_START.test(joined ? `${lines[j]}\r\n${lines[j + 1]}` : (lines[j] as string));
  }
  const parsed: ParsedHeader[] = [];
  for (let j = 0; j < n; ) {
    let k = j + 1;
    while (k < n && !starts[k]) k++;
    const row = lines.slice(j, k).join("\r\n");
    const colon = row.indexOf(":");
    // /^[^:]+/: the text before the first colon, when there is any.
    if (colon === 0 || row.length === 0) {
      parsed.push({ key: null, casedKey: undefined, line: Buffer.from(row, "binary") });
    } else {
      let casedKey = colon < 0 ? row : row.slice(0, colon);
      if (casedKey.includes("\n")) casedKey = casedKey.replace(/\r?\n/g, "");
      casedKey = trimBlanks(casedKey);
      parsed.push({ key: lowerCaseASCII(casedKey), casedKey, line: Buffer.from(row, "binary") });
    }
    j = k;
  }
  return { parsed, original: buf };
}

/** The parts of mailauth's DkimVerifier (and its MessageParser) that the bounds touch. */
interface VerifierState {
  state: string;
  headerChunks: Buffer[];
  headers: unknown;
  signatureHeaders: SignatureHeader[];
  bodyHashes: Map<string, unknown>;
  sealBodyHashKey?: string;
  messageHeaders(headers: unknown): Promise<void>;
}

interface SignatureHeader {
  type: string;
  skip?: string;
  invalid?: string;
  bodyHashKey?: string;
  fallbackBodyHashKey?: string;
  parsed?: { h?: { value?: unknown } };
}

/** Marks the signatures that are not to be verified and drops the body hashes only they needed. */
function boundSignatures(v: VerifierState): void {
  let dkim = 0;
  let dropped = false;
  for (const sig of v.signatureHeaders) {
    // An invalid signature is still canonicalized (reported neutral after): skip it too.
    if (sig.skip !== undefined) continue;
    const h = sig.parsed?.h?.value;
    const names = typeof h === "string" ? h.split(":").length : 0;
    if (sig.type === "DKIM" && ++dkim > MAX_SIGNATURES) sig.skip = "too many signatures";
    else if (names > MAX_SIGNED_FIELDS) sig.skip = "too many signed header fields";
    else continue;
    dropped = true;
  }
  if (!dropped) return;
  const used = new Set<string>();
  if (v.sealBodyHashKey !== undefined) used.add(v.sealBodyHashKey);
  for (const sig of v.signatureHeaders) {
    if (sig.skip !== undefined) continue;
    if (sig.bodyHashKey !== undefined) used.add(sig.bodyHashKey);
    if (sig.fallbackBodyHashKey !== undefined) used.add(sig.fallbackBodyHashKey);
  }
  for (const key of [...v.bodyHashes.keys()]) if (!used.has(key)) v.bodyHashes.delete(key);
}

interface Patched {
  emitHeaders: (this: VerifierState, chunk?: Buffer) => Promise<void>;
  messageHeaders: (this: VerifierState, headers: unknown) => Promise<void>;
}
const proto = DkimVerifier.prototype as unknown as Patched;
const mailauthMessageHeaders = proto.messageHeaders;

/** mailauth's MessageParser.emitHeaders with the linear parser. */
proto.emitHeaders = async function (this: VerifierState, chunk?: Buffer): Promise<void> {
  this.state = "body";
  if (chunk) this.headerChunks.push(chunk);
  this.headers = parseHeaders(Buffer.concat(this.headerChunks));
  await this.messageHeaders(this.headers);
};

proto.messageHeaders = async function (this: VerifierState, headers: unknown): Promise<void> {
  await mailauthMessageHeaders.call(this, headers);
  boundSignatures(this);
};

/** True once the bounds are in place (for the tests). */
export const BOUNDS_INSTALLED = proto.messageHeaders !== mailauthMessageHeaders;
