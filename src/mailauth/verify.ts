/**
 * DKIM verification, and the ARC data that goes with it, by mailauth's own
 * DkimVerifier: the same steps and results as mailauth's dkimVerify(), with
 * three changes to how the work is done (1-3), one to the order of the
 * steps (4) and one to the alignment guess (5).
 *
 * 1. Parsed key records are kept between messages. mailauth parses the key
 *    record of every signature of every message again (base64, DER, a PEM
 *    export, the key size, then the PEM again inside crypto.verify): the
 *    largest part of its cost per message. The key is kept as a KeyObject. Here
 *    the TXT record is still asked for every message through the resolver
 *    (so its TTL, a new key or a revoked one count at once) and the parse
 *    is reused when the record text, the minimum key size, the hash
 *    algorithm and the strict flag are all the same: the inputs of
 *    mailauth's getPublicKey(), whose result then is the same. Within one
 *    message each key record is asked for once, as mailauth does. Failed
 *    parses and records over 8 KB are not kept; at most 512 records are
 *    (least recently used out).
 * 2. Bare LFs (which mailauth turns into CRLF before canonicalization) are
 *    found with Buffer.indexOf instead of a loop over every byte in JS.
 * 3. The end of the header section is found with Buffer.indexOf in the
 *    first chunk instead of a byte loop that copies an array per byte;
 *    when it is not in the first chunk, mailauth's own loop runs.
 * 4. The key comes before the body hash, as in RFC 6376 §6.1: the key is
 *    fetched and checked (6.1.2) before the body hash is compared (6.1.3).
 *    mailauth compares the body hash first and, when it differs, reports
 *    `fail (body hash did not verify)` without asking for the key. Here a
 *    DKIM-Signature whose body hash differs is looked at again with its key:
 *    when the key step fails (no record, a record that does not parse, a
 *    key of the wrong type or size, a DNS error), that result is reported,
 *    as the RFC's order gives it; when the key is usable, mailauth's body
 *    hash failure stands. Either way the signature does not pass.
 * 5. The per-signature alignment guess (`status.aligned`, made before
 *    DMARC runs; the DMARC verdict does not read it) uses registrableDomain()
 *    (psl.ts): mailauth's PSL lookup, except that a name with an empty
 *    first label (`.example.com`) has no Organizational Domain and aligns
 *    with nothing but itself.
 *
 * The conformance suites (test/conformance/dkim, arc) verify through this
 * function, and verify.test.ts compares it with mailauth's dkimVerify() on
 * generated messages (line ends, header shapes, keys) result for result.
 */
import { createPublicKey } from "node:crypto";
// Linear header parsing and the signature caps, for every DkimVerifier (bounds.ts).
import "./bounds.ts";
import { DkimVerifier, type KeyLookup, type SignatureHeader, type SignatureResult } from "mailauth/lib/dkim/dkim-verifier.js";
import { getPublicKey, toALabel, writeToStream, type PublicKeyRecord } from "mailauth/lib/tools.js";
import { relaxedAlignment } from "./psl.ts";
import type { DKIMVerifyOptions, DKIMVerifyResult } from "mailauth";

export type TxtResolver = (name: string, rrtype: string) => Promise<unknown>;

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from("\r\n");
/** mailauth's comment for a body hash that differs from bh=. */
const BODY_HASH_FAILED = "body hash did not verify";
/**
 * Outcomes of mailauth's verifySignature() that come after a usable key:
 * the signature checked (pass, fail), its times, or the rsa-sha1 refusal
 * (which mailauth decides before the key). Every other outcome is the key step's.
 */
const KEY_USABLE = new Set(["bad signature", "expired", "invalid expiration", "weak algorithm"]);
/** Longest key record text (with the lookup options) kept between messages. */
const MAX_KEPT_RECORD = 8192;

/** Parsed DKIM key records shared by the messages one check verifies. */
export class DkimKeyCache {
  readonly #capacity: number;
  readonly #parsed = new Map<string, Promise<PublicKeyRecord>>();

  constructor(capacity = 512) {
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#parsed.size;
  }

  /** The key lookup for one message (mailauth's KeyLookup shape), over `resolver`. */
  forMessage(resolver: TxtResolver): KeyLookup {
    const asked = new Map<string, Promise<PublicKeyRecord>>();
    return {
      resolver,
      get: (_type, name, minBitLength, options = {}) => {
        // mailauth's own per-message key (getPublicKey() does not read `type`).
        const question = `${options.strict === true}:${minBitLength ?? ""}:${options.hashAlgo ?? ""}:${name}`;
        let lookup = asked.get(question);
        if (lookup === undefined) {
          // Shared by the callers of this message, as mailauth's: its own copy of the shared record.
          lookup = this.#lookup(resolver, name, minBitLength, options).then(copy);
          // As mailauth's cache: a prefetch nobody awaits must not be an unhandled rejection.
          lookup.catch(() => false);
          asked.set(question, lookup);
        }
        return lookup;
      },
    };
  }

  #keep(key: string, record: PublicKeyRecord): void {
    this.#parsed.delete(key);
    this.#parsed.set(key, Promise.resolve(record));
    if (this.#parsed.size > this.#capacity) {
      const oldest = this.#parsed.keys().next();
      if (oldest.done !== true) this.#parsed.delete(oldest.value);
    }
  }

  async #lookup(resolver: TxtResolver, name: string, minBitLength: number | undefined, options: { strict?: boolean; hashAlgo?: string }): Promise<PublicKeyRecord> {
    // mailauth's getPublicKey() starts with this same question; its answer is the only input that can change.
    const answer = await resolver(toALabel(name), "TXT");
    const key = JSON.stringify([options.strict === true, minBitLength ?? null, options.hashAlgo ?? null, answer]);
    const known = this.#parsed.get(key);
    if (known !== undefined) {
      this.#parsed.delete(key);
      this.#parsed.set(key, known);
      return known;
    }
    const parsed = getPublicKey("DKIM", name, minBitLength, () => Promise.resolve(answer), options).then(withKeyObject);
    // Kept once parsed: a record that does not parse is never shared, so
    // every message gets its own error object (mailauth's ARC code writes
    // to it). A key record is under 1 KB (RSA-4096: ~800 characters); a
    // sender's oversized TXT answers are parsed, not kept.
    if (key.length <= MAX_KEPT_RECORD) {
      parsed.then(
        (record) => this.#keep(key, record),
        () => undefined,
      );
    }
    return parsed;
  }
}

/**
 * mailauth hands the key to crypto.verify() as PEM text, which parses it
 * again for every signature; a KeyObject is parsed once. mailauth also
 * reports the key in its result as `publicKey.toString()`: the KeyObject's
 * toString gives that same PEM text.
 */
function withKeyObject(r: PublicKeyRecord): PublicKeyRecord {
  const pem = r.publicKey;
  let key;
  try {
    key = createPublicKey(pem);
  } catch {
    return r; // mailauth's own PEM, as mailauth would use it
  }
  Object.defineProperty(key, "toString", { value: () => pem, enumerable: false });
  return { ...r, publicKey: key as unknown as string };
}

/** The record kept between messages is never handed out: each message gets its own arrays. */
function copy(r: PublicKeyRecord): PublicKeyRecord {
  return { ...r, flags: [...r.flags], warnings: [...r.warnings] };
}

class Verifier extends DkimVerifier {
  constructor(options: DKIMVerifyOptions, keys: KeyLookup) {
    super(options);
    this.keyCache = keys;
    // mailauth hands its key lookup to the ARC validation the same way (a hidden property).
    Object.defineProperty(this.arc, "keyCache", { value: keys, enumerable: false, configurable: true, writable: true });
  }

  /** Changes 4 and 5 (see the top of the file). */
  override async verifySignature(sig: SignatureHeader, fallback?: boolean): Promise<SignatureResult> {
    const result = await this.#keyFirst(sig, fallback);
    // mailauth's condition and form: getAlignment(from, [d])?.domain || false.
    if (sig.type === "DKIM" && this.headerFrom?.length) {
      result.status.aligned = relaxedAlignment(this.headerFrom[0]?.split("@").pop() ?? "", sig.signingDomain ?? "") || false;
    }
    return result;
  }

  /** Change 4: the key step is judged before the body hash. */
  async #keyFirst(sig: SignatureHeader, fallback?: boolean): Promise<SignatureResult> {
    const result = await super.verifySignature(sig, fallback);
    if (sig.type !== "DKIM" || result.status.comment !== BODY_HASH_FAILED) return result;
    const bh = sig.parsed?.bh;
    const computed = this.bodyHashes.get((fallback === true ? sig.fallbackBodyHashKey : sig.bodyHashKey) ?? "")?.hash;
    if (bh === undefined || typeof computed !== "string") return result;
    // mailauth's own steps once more, past its body hash comparison, to the key.
    const claimed = bh.value;
    bh.value = computed;
    let keyed: SignatureResult;
    try {
      keyed = await super.verifySignature(sig, fallback);
    } finally {
      bh.value = claimed;
    }
    const { result: outcome, comment } = keyed.status;
    if (outcome === "pass" || (typeof comment === "string" && KEY_USABLE.has(comment))) return result;
    keyed.bodyHashExpecting = claimed;
    return keyed;
  }

  /** mailauth's MessageParser.ensureLinebreaks, the same chunks, found with indexOf. */
  override *ensureLinebreaks(input: Buffer): Generator<Buffer, void, unknown> {
    let pos = 0;
    for (let i = input.indexOf(LF); i >= 0; i = input.indexOf(LF, i + 1)) {
      const before = i === 0 ? this.lastByte : input[i - 1];
      if (before === CR) continue;
      yield i === 0 || pos === i ? Buffer.from(CRLF) : Buffer.concat([input.subarray(pos, i), CRLF]);
      pos = i + 1;
    }
    if (input.length > 0) this.lastByte = input[input.length - 1];
    if (pos === 0) yield input;
    else if (pos < input.length) yield input.subarray(pos);
  }

  /**
   * mailauth's MessageParser.processChunk for the first chunk when the empty
   * line is in it: the header section ends after the first LF that follows
   * an LF, or CR LF after an LF, or an LF (CR LF) at the very start.
   */
  override async processChunk(chunk: Buffer): Promise<void> {
    if (chunk.length === 0 || this.state !== "header" || this.headerBytes !== 0) return super.processChunk(chunk);
    const end = headerEnd(chunk);
    if (end < 0) return super.processChunk(chunk);
    this.headerBytes = end;
    if (end === chunk.length) return this.emitHeaders(chunk);
    await this.emitHeaders(chunk.subarray(0, end));
    await this.nextChunk(chunk.subarray(end));
  }
}

/**
 * Offset just past the empty line that ends the header section, or -1 when
 * the chunk has none: mailauth's conditions, all of them. (Through
 * verifyDkim, ensureLinebreaks has already made every LF a CRLF, so only the
 * CRLF forms occur there; the LF forms keep the function exact on its own.)
 */
export function headerEnd(chunk: Buffer): number {
  if (chunk[0] === LF) return 1;
  if (chunk[0] === CR && chunk[1] === LF) return 2;
  // The usual form first; the other is then looked for only before it (not through the whole body).
  const lfcrlf = chunk.indexOf("\n\r\n");
  const lflf = (lfcrlf < 0 ? chunk : chunk.subarray(0, lfcrlf + 2)).indexOf("\n\n");
  if (lflf < 0) return lfcrlf < 0 ? -1 : lfcrlf + 3;
  if (lfcrlf < 0) return lflf + 2;
  return Math.min(lflf + 2, lfcrlf + 3);
}

/**
 * mailauth's dkimVerify() (lib/dkim/verify.js) with the shared key records
 * of `keys`: the same result object, with the same hidden `headers`, `arc`
 * and `seal` properties that arc() and the DMARC step read.
 */
export async function verifyDkim(input: Buffer, options: DKIMVerifyOptions & { resolver: TxtResolver }, keys: DkimKeyCache): Promise<DKIMVerifyResult> {
  const verifier = new Verifier(options, keys.forMessage(options.resolver));
  await writeToStream(verifier, input);
  const result = { headerFrom: verifier.headerFrom, fromFields: verifier.fromFields, envelopeFrom: verifier.envelopeFrom, results: verifier.results };
  for (const name of ["headers", "arc", "seal"] as const) {
    const value = verifier[name];
    if (value) Object.defineProperty(result, name, { enumerable: false, configurable: false, writable: false, value });
  }
  return result as unknown as DKIMVerifyResult;
}
