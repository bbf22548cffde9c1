// Types for the parts of mailauth 7.1.0 (pinned exactly in package.json)
// that src/mailauth/verify.ts builds on. They are mailauth's own modules,
// not its typed public API: src/mailauth/verify.test.ts fails if an upgrade
// changes any of them.

declare module "mailauth/lib/dkim/dkim-verifier.js" {
  import type { Writable } from "node:stream";

  /** mailauth's per-message key lookup (tools.createKeyCache): one getPublicKey() per key record. */
  export interface KeyLookup {
    readonly resolver: unknown;
    get(type: string, name: string, minBitLength: number | undefined, options?: { strict?: boolean; hashAlgo?: string }): Promise<unknown>;
  }

  /** The parts of a prepared signature header (prepareSignature()) that verify.ts reads. */
  export interface SignatureHeader {
    type: string;
    signingDomain?: string;
    parsed?: { bh?: { value?: unknown } };
    bodyHashKey?: string;
    fallbackBodyHashKey?: string;
  }

  /** The parts of verifySignature()'s result that verify.ts reads or sets. */
  export interface SignatureResult {
    status: { result: string; comment?: string | boolean; aligned?: string | false };
    bodyHashExpecting?: unknown;
  }

  export class DkimVerifier extends Writable {
    constructor(options: object);
    /** Body hashes by key; `hash` is the base64 digest once the body has ended. */
    bodyHashes: Map<string, { hash?: unknown }>;
    verifySignature(signatureHeader: SignatureHeader, fallback?: boolean): Promise<SignatureResult>;
    resolver: unknown;
    keyCache: KeyLookup;
    arc: object;
    headers: unknown;
    headerFrom: string[];
    fromFields: number;
    envelopeFrom: string | false;
    results: unknown[];
    seal: unknown;
    /** MessageParser state: "header" until the empty line, then "body". */
    state: string;
    headerBytes: number;
    lastByte: number | undefined;
    emitHeaders(chunk?: Buffer): Promise<void>;
    nextChunk(chunk: Buffer): Promise<void>;
    processChunk(chunk: Buffer): Promise<void>;
    ensureLinebreaks(input: Buffer): Generator<Buffer, void, unknown>;
  }
}

declare module "mailauth/lib/tools.js" {
  import type { Writable } from "node:stream";

  export interface PublicKeyRecord {
    publicKey: string;
    rr: string;
    modulusLength?: number;
    keyType: string;
    flags: string[];
    testing: boolean;
    warnings: string[];
  }

  export function getPublicKey(
    type: string,
    name: string,
    minBitLength: number | undefined,
    resolver: (name: string, rrtype: string) => Promise<unknown>,
    options?: { strict?: boolean; hashAlgo?: string },
  ): Promise<PublicKeyRecord>;
  export function toALabel(name: string): string;
  /** Lower case, A-labels, no trailing dots (the form getAlignment compares). */
  export function formatDomain(domain: string): string;
  /** The first entry of domainList aligned with fromDomain (PSL-relaxed unless strict), else false. */
  export function getAlignment(fromDomain: string, domainList: string[], strict?: boolean): { domain: string } | false;
  /** The tldts options of getAlignment(): ICANN and private rules. */
  export const TLDTS_OPTS: { allowIcannDomains: boolean; allowPrivateDomains: boolean };
  export function parseHeaders(buf: Buffer): { parsed: { key: string | null; casedKey: string | undefined; line: Buffer }[]; original: Buffer };
  export function writeToStream(stream: Writable, input: Buffer): Promise<void>;
}
