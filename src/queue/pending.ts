/**
 * A message on its way into a spool shard (spool.ts): checked and turned
 * into the columns it is stored as, before it joins a group commit.
 *
 * With encryption on, the envelope and received info are sealed together as
 * one field and the content as another (keyring.ts), and the recipients rows
 * carry no address; otherwise the plaintext record format with its checksum
 * (record.ts) is written. Nothing here touches the database.
 */
import type { IncomingMessage } from "./types.ts";
import type { QueuedMessage } from "./store.ts";
import type { SpoolKeyring } from "./keyring.ts";
import { packMeta, RECORD_VERSION, recordChecksum, SEALED_RECORD_VERSION } from "./record.ts";

export interface PendingMessage {
  readonly id: string;
  readonly msg: IncomingMessage;
  /** When the first delivery attempt is due in the database (see HANDOFF_LEASE_MS in spool.ts). */
  readonly nextAttemptAt: number;
  /** Handed straight to the delivery agent once durable (no claim transaction). */
  readonly handoff: boolean;
  readonly version: number;
  /** What goes into messages.envelope / messages.received / contents.content. */
  readonly envelopeCol: string | Buffer;
  readonly receivedCol: string;
  readonly contentCol: Buffer;
  /** The plaintext content (handed to delivery). */
  readonly content: Buffer;
  readonly checksum: Buffer;
  readonly createdAt: number;
  readonly recipients: readonly { address: string; dsnJson: string }[];
  readonly resolve: (id: string) => void;
  readonly reject: (err: Error) => void;
}

export type PreparedMessage = Omit<PendingMessage, "resolve" | "reject">;

const EMPTY = Buffer.alloc(0);
/** A sealed record's recipients rows: the address and DSN are only in the sealed envelope. */
const SEALED_RECIPIENT = { address: "", dsnJson: "" };

export interface PrepareOptions {
  readonly id: string;
  readonly createdAt: number;
  readonly nextAttemptAt: number;
  readonly handoff: boolean;
  /** Seal with this keyring; plaintext records when undefined. */
  readonly keyring: SpoolKeyring | undefined;
}

/** The columns of a message as stored, sealed when a keyring is given; `json` is what record.ts checkIncoming returned for it. */
export function prepareRecord(msg: IncomingMessage, json: { envelopeJson: string; receivedJson: string }, o: PrepareOptions): PreparedMessage {
  const { envelopeJson, receivedJson } = json;
  const queueId = o.id;
  const common = { id: queueId, msg, handoff: o.handoff, nextAttemptAt: o.nextAttemptAt, content: msg.content, createdAt: o.createdAt };
  const ring = o.keyring;
  if (ring !== undefined) {
    return {
      ...common,
      version: SEALED_RECORD_VERSION,
      envelopeCol: ring.seal("meta", queueId, packMeta(envelopeJson, receivedJson)),
      receivedCol: "",
      contentCol: ring.seal("content", queueId, msg.content),
      checksum: EMPTY,
      recipients: msg.envelope.recipients.map(() => SEALED_RECIPIENT),
    };
  }
  return {
    ...common,
    version: RECORD_VERSION,
    envelopeCol: envelopeJson,
    receivedCol: receivedJson,
    contentCol: msg.content,
    checksum: recordChecksum(RECORD_VERSION, queueId, envelopeJson, receivedJson, msg.content),
    recipients: msg.envelope.recipients.map((r) => ({ address: r.address, dsnJson: JSON.stringify(r.dsn) })),
  };
}

/** A durable pending message as the delivery agent gets it from the in-memory handoff. */
export function freshEntry(m: PendingMessage, shard: number): QueuedMessage {
  return {
    id: m.id,
    state: "active",
    envelope: m.msg.envelope,
    received: m.msg.received,
    recipients: m.msg.envelope.recipients.map((r, index) => ({ index, address: r.address, dsn: r.dsn, ...(r.route !== undefined ? { route: r.route } : {}), state: "queued" as const, attempts: 0 })),
    size: m.content.byteLength,
    createdAt: m.createdAt,
    nextAttemptAt: m.nextAttemptAt,
    attempts: 0,
    shard,
    content: m.content,
  };
}
