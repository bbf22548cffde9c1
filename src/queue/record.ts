/**
 * The spool's record format: canonical JSON of envelope and received info,
 * the checksum that seals a record, and the checks run when one is read back.
 *
 * Format version 1. The checksum is SHA-256 over a length-prefixed
 * serialisation of: a domain tag, the version, the queue id, the envelope
 * JSON text, the received JSON text and the content bytes, exactly as stored.
 * The JSON is written with sorted keys, so the same envelope always gives the
 * same text. Nothing read from disk is trusted: a record whose version is
 * unknown, whose checksum does not match, or whose JSON does not have the
 * shape of the contract types (types.ts) is reported as damaged, with the
 * reason, and never handed on.
 *
 * Each envelope recipient carries its route (types.ts RecipientRoute), as
 * the sink decided it; records written before routes were stored have none,
 * and get theirs once when the shard is opened (route-old.ts). The route is
 * inside the envelope JSON, so it is covered by the checksum (format 1) and
 * sealed with the envelope (format 2).
 */
import { createHash } from "node:crypto";
import type { MailboxRoute, ReceivedInfo, RecipientDsn, RecipientRoute, StoredEnvelope, StoredLmtpTarget, StoredRecipient } from "./types.ts";

export const RECORD_VERSION = 1;
/**
 * Format version 2: the same record sealed (keyring.ts). `messages.envelope`
 * holds the sealed meta (packMeta of the envelope and received JSON texts),
 * `messages.received` is empty, `contents.content` the sealed content, the
 * recipients rows' address and dsn are empty (the sealed envelope has them),
 * and `checksum` is empty: each GCM tag seals its field, bound to the queue id.
 */
export const SEALED_RECORD_VERSION = 2;
/** SQLite's largest blob (SQLITE_MAX_LENGTH); a bigger message is refused alone, not with its batch. */
export const MAX_CONTENT_BYTES = 1_000_000_000;
const TAG = Buffer.from("wardmail-spool-record\0", "latin1");

/** JSON with object keys sorted at every level; undefined members are left out. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

function lengthPrefix(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/** SHA-256 seal of one record, over the stored texts and bytes. */
export function recordChecksum(version: number, id: string, envelopeJson: string, receivedJson: string, content: Uint8Array): Buffer {
  const h = createHash("sha256");
  h.update(TAG);
  h.update(lengthPrefix(version));
  for (const text of [id, envelopeJson, receivedJson]) {
    const bytes = Buffer.from(text, "utf8");
    h.update(lengthPrefix(bytes.length));
    h.update(bytes);
  }
  h.update(lengthPrefix(content.byteLength));
  h.update(content);
  return h.digest();
}

/** Thrown by the parsers below; the message is the reason stored with the damaged record. */
export class DamagedRecordError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "DamagedRecordError";
  }
}

function fail(reason: string): never {
  throw new DamagedRecordError(reason);
}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (v === null || typeof v !== "object" || Array.isArray(v)) fail(`${what} is not an object`);
  return v as Obj;
}
function str(o: Obj, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== "string") fail(`${what}.${key} is not a string`);
  return v;
}
function optStr(o: Obj, key: string, what: string): string | undefined {
  return o[key] === undefined ? undefined : str(o, key, what);
}
function int(o: Obj, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v)) fail(`${what}.${key} is not an integer`);
  return v;
}
function oneOf<T extends string>(o: Obj, key: string, allowed: readonly T[], what: string): T | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) fail(`${what}.${key} has a bad value`);
  return v as T;
}

/** Checks a parsed DSN object (RFC 3461 parameters). */
export function parseDsn(v: unknown, what = "dsn"): RecipientDsn {
  const o = obj(v, what);
  const dsn: { notify?: string[]; orcpt?: string } = {};
  if (o.notify !== undefined) {
    if (!Array.isArray(o.notify) || !o.notify.every((n): n is string => typeof n === "string")) fail(`${what}.notify is not a list of strings`);
    dsn.notify = o.notify;
  }
  const orcpt = optStr(o, "orcpt", what);
  if (orcpt !== undefined) dsn.orcpt = orcpt;
  return dsn;
}

function parseMailboxRoute(v: unknown, what: string): MailboxRoute {
  const o = obj(v, what);
  const mailbox = str(o, "mailbox", what);
  if (o.maildir !== undefined) {
    const maildir = str(o, "maildir", what);
    if (maildir === "" || maildir.includes("\0")) fail(`${what}.maildir is not a path`);
    return { mailbox, maildir };
  }
  const t = obj(o.lmtp, `${what}.lmtp`);
  let lmtp: StoredLmtpTarget;
  if (t.path !== undefined) lmtp = { path: str(t, "path", `${what}.lmtp`) };
  else {
    const port = int(t, "port", `${what}.lmtp`);
    if (port < 1 || port > 65535) fail(`${what}.lmtp.port is out of range`);
    lmtp = { host: str(t, "host", `${what}.lmtp`), port };
  }
  return { mailbox, lmtp };
}

/** Checks a stored route (types.ts RecipientRoute). */
export function parseRoute(v: unknown, what = "route"): RecipientRoute {
  const o = obj(v, what);
  switch (o.kind) {
    case "local": {
      if (!Array.isArray(o.mailboxes) || o.mailboxes.length === 0) fail(`${what}.mailboxes is not a non-empty list`);
      return { kind: "local", mailboxes: o.mailboxes.map((m: unknown, i: number) => parseMailboxRoute(m, `${what}.mailboxes[${i}]`)) };
    }
    case "discard":
      return { kind: "discard" };
    case "remote":
      return { kind: "remote", domain: str(o, "domain", what) };
    case "failed":
    case "deferred":
      return { kind: o.kind, reason: str(o, "reason", what) };
    default:
      fail(`${what}.kind has a bad value`);
  }
}

/** Parses and checks envelope JSON text (recipients with their stored routes, when the record has them). */
export function parseEnvelope(text: string): StoredEnvelope {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    fail("envelope is not valid JSON");
  }
  const o = obj(raw, "envelope");
  const mailFrom = str(o, "mailFrom", "envelope");
  if (!Array.isArray(o.recipients) || o.recipients.length === 0) fail("envelope.recipients is not a non-empty list");
  const recipients: StoredRecipient[] = o.recipients.map((r: unknown, i: number) => {
    const ro = obj(r, `envelope.recipients[${i}]`);
    const rcpt = { address: str(ro, "address", `envelope.recipients[${i}]`), dsn: parseDsn(ro.dsn, `envelope.recipients[${i}].dsn`) };
    return ro.route === undefined ? rcpt : { ...rcpt, route: parseRoute(ro.route, `envelope.recipients[${i}].route`) };
  });
  if (typeof o.smtputf8 !== "boolean") fail("envelope.smtputf8 is not a boolean");
  const env: { -readonly [K in keyof StoredEnvelope]: StoredEnvelope[K] } = { mailFrom, recipients, smtputf8: o.smtputf8 };
  const body = oneOf(o, "body", ["7BIT", "8BITMIME", "BINARYMIME"] as const, "envelope");
  if (body !== undefined) env.body = body;
  const ret = oneOf(o, "ret", ["FULL", "HDRS"] as const, "envelope");
  if (ret !== undefined) env.ret = ret;
  const envid = optStr(o, "envid", "envelope");
  if (envid !== undefined) env.envid = envid;
  if (o.requireTls !== undefined) {
    if (o.requireTls !== true) fail("envelope.requireTls is not true");
    env.requireTls = true;
  }
  return env;
}

/** Parses and checks received-info JSON text. */
export function parseReceived(text: string): ReceivedInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    fail("received is not valid JSON");
  }
  const o = obj(raw, "received");
  const info: { -readonly [K in keyof ReceivedInfo]: ReceivedInfo[K] } = {
    sessionId: str(o, "sessionId", "received"),
    clientIp: str(o, "clientIp", "received"),
    clientPort: int(o, "clientPort", "received"),
    helo: str(o, "helo", "received"),
    protocol: str(o, "protocol", "received"),
    listener: str(o, "listener", "received"),
    receivedAt: int(o, "receivedAt", "received"),
  };
  if (o.tls !== undefined) {
    const t = obj(o.tls, "received.tls");
    info.tls = { version: str(t, "version", "received.tls"), cipher: str(t, "cipher", "received.tls") };
  }
  if (o.auth !== undefined) info.auth = str(o, "auth", "received");
  if (o.quarantine !== undefined) info.quarantine = str(o, "quarantine", "received");
  return info;
}

/** Checks what the server hands to enqueue, before anything is written. */
export function checkIncoming(envelope: StoredEnvelope, received: ReceivedInfo, content: unknown): { envelopeJson: string; receivedJson: string } {
  if (!(content instanceof Uint8Array)) throw new TypeError("message content must be a Buffer");
  if (content.byteLength > MAX_CONTENT_BYTES) throw new RangeError(`message content larger than the spool's ${MAX_CONTENT_BYTES} bytes`);
  const envelopeJson = canonicalJson(envelope);
  const receivedJson = canonicalJson(received);
  // Round-trip through the same checks as a read, so a record that would be
  // judged damaged later is refused now instead (the client then gets a 451).
  try {
    parseEnvelope(envelopeJson);
    parseReceived(receivedJson);
  } catch (err) {
    throw new TypeError(`message refused by the spool: ${(err as Error).message}`);
  }
  return { envelopeJson, receivedJson };
}

/** The envelope and received JSON texts as one plaintext to seal: length of the first (uint32 BE), then both. */
export function packMeta(envelopeJson: string, receivedJson: string): Buffer {
  const e = Buffer.byteLength(envelopeJson, "utf8");
  const r = Buffer.byteLength(receivedJson, "utf8");
  const out = Buffer.allocUnsafe(4 + e + r);
  out.writeUInt32BE(e, 0);
  out.write(envelopeJson, 4, "utf8");
  out.write(receivedJson, 4 + e, "utf8");
  return out;
}

/** Inverse of packMeta; throws DamagedRecordError on a malformed plaintext. */
export function unpackMeta(meta: Buffer): { envelopeJson: string; receivedJson: string } {
  if (meta.length < 4) fail("sealed meta is too short");
  const e = meta.readUInt32BE(0);
  if (4 + e > meta.length) fail("sealed meta has a bad length");
  return { envelopeJson: meta.toString("utf8", 4, 4 + e), receivedJson: meta.toString("utf8", 4 + e) };
}
