/**
 * DKIM signing of outgoing mail (RFC 6376) with both key types of each key
 * set: rsa-sha256 and ed25519-sha256 (RFC 8463), c=relaxed/relaxed.
 *
 * Why not mailauth's dkimSign: it puts into h= only the header fields the
 * message has, once per instance, so it cannot over-sign. We list From one
 * more time than it occurs (RFC 6376 §5.4.2, §8.15): a verifier then hashes
 * "no header" for the extra entry, and a From added later (a second From
 * that a mail client may display) breaks the signature. mailauth's verifier
 * and dkimpy verify what this module makes (the tests check both, and the
 * RFC 8463 example message), so the canonicalization is checked by two
 * independent implementations.
 *
 * Header fields signed (all their instances, when present): SIGNED_FIELDS
 * and every List-* field; From once more. Canonicalization follows RFC 6376
 * §3.4.2 and §3.4.4; a bare LF counts as a line end, as verifiers that
 * convert line ends see it. A message without exactly one From field is
 * refused (RFC 5322 §3.6 requires one; signing two would let either show).
 */
import { createHash, sign } from "node:crypto";
import type { DomainKeySet, SigningKeys } from "./keys.ts";
import { authorOf } from "../message/index.ts";

/** Header fields signed when present (lowercase), besides List-*. */
export const SIGNED_FIELDS: readonly string[] = [
  "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
  "mime-version", "content-type", "content-transfer-encoding",
];
/** Fields listed once more than they occur, so that one cannot be added. */
export const OVERSIGNED_FIELDS: readonly string[] = ["from"];

export class DkimSignError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DkimSignError";
  }
}

interface Field {
  /** Lowercase name. */
  readonly name: string;
  /** The whole field as latin1 text (one char per byte), folded lines included, no final line end. */
  readonly raw: string;
}

/** Splits content into its header fields and the offset where the body starts. */
function parseHeader(content: Buffer): { fields: Field[]; bodyStart: number } {
  const fields: Field[] = [];
  let pos = 0;
  let current: string | undefined;
  const flush = (): void => {
    if (current === undefined) return;
    const colon = current.indexOf(":");
    const name = (colon < 0 ? current : current.slice(0, colon)).replace(/[ \t]+$/, "");
    fields.push({ name: asciiLower(name), raw: current });
    current = undefined;
  };
  while (pos < content.length) {
    const nl = content.indexOf(0x0a, pos);
    const end = nl < 0 ? content.length : nl;
    const next = nl < 0 ? content.length : nl + 1;
    const line = content.toString("latin1", pos, end > pos && content[end - 1] === 0x0d ? end - 1 : end);
    if (line === "") {
      flush();
      return { fields, bodyStart: next };
    }
    if ((line.startsWith(" ") || line.startsWith("\t")) && current !== undefined) current += `\r\n${line}`;
    else {
      flush();
      current = line;
    }
    pos = next;
  }
  flush();
  return { fields, bodyStart: content.length };
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** RFC 6376 §3.4.2 relaxed header canonicalization of one field, with CRLF. */
function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(":");
  const name = asciiLower((colon < 0 ? raw : raw.slice(0, colon)).replace(/[ \t]+$/, ""));
  const value = (colon < 0 ? "" : raw.slice(colon + 1))
    .replace(/\r?\n/g, "")
    .replace(/[ \t]+/g, " ")
    .replace(/^ | $/g, "");
  return `${name}:${value}`;
}

/** RFC 6376 §3.4.4 relaxed body canonicalization, hashed line by line (SHA-256, base64). */
export function relaxedBodyHash(content: Buffer, bodyStart: number): string {
  const hash = createHash("sha256");
  let emptyLines = 0;
  let pos = bodyStart;
  while (pos < content.length) {
    const nl = content.indexOf(0x0a, pos);
    const end = nl < 0 ? content.length : nl;
    const line = content
      .toString("latin1", pos, end > pos && content[end - 1] === 0x0d ? end - 1 : end)
      .replace(/[ \t]+/g, " ")
      .replace(/ $/, "");
    pos = nl < 0 ? content.length : nl + 1;
    if (line === "") {
      emptyLines++;
      continue;
    }
    if (emptyLines > 0) hash.update("\r\n".repeat(emptyLines));
    emptyLines = 0;
    hash.update(`${line}\r\n`, "latin1");
  }
  return hash.digest("base64");
}

/** The h= list: each signed field once per instance, in header order, then the over-signed ones. */
function headerList(fields: readonly Field[]): string[] {
  const names = fields.map((f) => f.name).filter((n) => SIGNED_FIELDS.includes(n) || n.startsWith("list-"));
  return [...names, ...OVERSIGNED_FIELDS];
}

/** The fields a verifier hashes for h= (RFC 6376 §5.4.2: bottom-up per name; none left: nothing). */
function selectFields(fields: readonly Field[], h: readonly string[]): Field[] {
  const used = new Set<number>();
  const out: Field[] = [];
  for (const name of h) {
    for (let i = fields.length - 1; i >= 0; i--) {
      if (used.has(i) || fields[i]?.name !== name) continue;
      used.add(i);
      out.push(fields[i] as Field);
      break;
    }
  }
  return out;
}

/** Folds "tag=value" items into header lines of at most 78 characters. */
function fold(first: string, items: readonly string[]): string {
  const lines: string[] = [];
  let line = first;
  for (const item of items) {
    if (line.length + 1 + item.length > 78 && line.trim() !== "") {
      lines.push(line);
      line = ` ${item}`;
    } else line += ` ${item}`;
  }
  lines.push(line);
  return lines.join("\r\n");
}

/** Splits a long value into pieces for folding (base64 or the h= list at its colons). */
function pieces(value: string, width: number, sep?: string): string[] {
  if (sep === undefined) {
    const out: string[] = [];
    for (let i = 0; i < value.length; i += width) out.push(value.slice(i, i + width));
    return out;
  }
  const out: string[] = [];
  let cur = "";
  for (const part of value.split(sep)) {
    const add = cur === "" ? part : `${cur}${sep}${part}`;
    if (add.length > width && cur !== "") {
      out.push(`${cur}${sep}`);
      cur = part;
    } else cur = add;
  }
  out.push(cur);
  return out;
}

interface SignatureInput {
  readonly algorithm: "rsa-sha256" | "ed25519-sha256";
  readonly domain: string;
  readonly selector: string;
  readonly time: number;
  readonly h: readonly string[];
  readonly bh: string;
}

/** The DKIM-Signature header with an empty b= (to hash), and a function that fills in b=. */
function signatureHeader(s: SignatureInput): { unsigned: string; withB: (b: string) => string } {
  const hParts = pieces(s.h.join(":"), 70, ":");
  const items = [`v=1;`, `a=${s.algorithm};`, `c=relaxed/relaxed;`, `d=${s.domain};`, `s=${s.selector};`, `t=${s.time};`];
  const head = fold("DKIM-Signature:", items);
  const hText = hParts.map((p, i) => (i === 0 ? `h=${p}` : p)).join("\r\n ") + ";";
  const unsigned = `${head}\r\n ${hText}\r\n bh=${s.bh};\r\n b=`;
  return { unsigned, withB: (b) => `${unsigned}${pieces(b, 72).join("\r\n ")}` };
}

/**
 * The domain of the single From address (lowercase A-label), or undefined
 * when there is no From field, several, one that does not parse, or
 * addresses in several domains: src/message's author, the same the MX's
 * DMARC and submission's sender ownership use.
 */
export function fromDomain(content: Buffer): string | undefined {
  const author = authorOf(content);
  return author.problem === undefined ? author.domains[0] : undefined;
}

/** Which domain signs: the From address's domain when we have keys for exactly that domain (no parent-domain match). */
export function signingDomain(content: Buffer, keys: SigningKeys): string | undefined {
  const d = fromDomain(content);
  return d !== undefined && (keys.get(d)?.length ?? 0) > 0 ? d : undefined;
}

/**
 * Signs `content` as d=`opts.domain` with every key set we have for it and
 * returns the message with the signatures on top: for each set (newest
 * first) an rsa-sha256 and an ed25519-sha256 DKIM-Signature, RSA on top
 * (verifiers that only look at the first signature mostly lack Ed25519).
 * Throws DkimSignError when there are no keys for the domain or the message
 * does not have exactly one From field.
 */
export function signMessage(content: Buffer, keys: SigningKeys, opts: { domain: string; signTime?: Date }): Promise<Buffer> {
  return Promise.resolve().then(() => {
    const domain = opts.domain.toLowerCase();
    const sets = keys.get(domain) ?? [];
    if (sets.length === 0) throw new DkimSignError(`no DKIM keys for ${domain}`);
    return signWith(content, sets, opts.signTime);
  });
}

/** As signMessage, synchronously, with the key sets given. */
export function signWith(content: Buffer, sets: readonly DomainKeySet[], signTime = new Date()): Buffer {
  const { fields, bodyStart } = parseHeader(content);
  const froms = fields.filter((f) => f.name === "from").length;
  if (froms !== 1) {
    throw new DkimSignError(`cannot sign a message with ${froms === 0 ? "no" : froms} From header field${froms === 1 ? "" : "s"}: it needs exactly one (RFC 5322 §3.6)`);
  }
  const bh = relaxedBodyHash(content, bodyStart);
  const h = headerList(fields);
  const signedText = selectFields(fields, h)
    .map((f) => `${relaxedHeader(f.raw)}\r\n`)
    .join("");
  const time = Math.floor(signTime.getTime() / 1000);
  const headers: string[] = [];
  for (const set of sets) {
    for (const [algorithm, selector, key] of [
      ["rsa-sha256", set.selectorRsa, set.rsaKey],
      ["ed25519-sha256", set.selectorEd, set.edKey],
    ] as const) {
      const sig = signatureHeader({ algorithm, domain: set.domain, selector, time, h, bh });
      const data = Buffer.from(signedText + relaxedHeader(sig.unsigned), "latin1");
      // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data (PureEdDSA over the digest).
      const b = algorithm === "rsa-sha256" ? sign("sha256", data, key) : sign(null, createHash("sha256").update(data).digest(), key);
      headers.push(`${sig.withB(b.toString("base64"))}\r\n`);
    }
  }
  return Buffer.concat([Buffer.from(headers.join(""), "latin1"), content]);
}
