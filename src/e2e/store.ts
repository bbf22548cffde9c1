/**
 * Encrypt-on-store for the delivery agent: what to write for one mailbox.
 *
 * A mailbox whose account has keys (keystore.ts) gets every message that is
 * not already encrypted (mime.ts isEncrypted) encrypted to them
 * (encrypt.ts) before it touches the Maildir or goes over LMTP; an already
 * encrypted message, and mail to a mailbox without keys, is stored as it
 * is. A mailbox with keys none of which can be used now (all expired or
 * revoked since import) is a temporary failure: the message stays queued
 * (and is retried, then bounced at queue.lifetime) rather than being stored
 * in the clear against the user's wish; the log says why. One encryption
 * per mailbox and message; the copies for mailboxes without keys share the
 * original.
 */
import type { UsableKey } from "./keys.ts";
import { unusableAt } from "./keys.ts";
import { encryptForStore } from "./encrypt.ts";
import { isEncrypted } from "./mime.ts";

export interface KeySource {
  keysFor(mailbox: string): Promise<UsableKey[]>;
}

export type StoreContent =
  | { readonly kind: "plain"; readonly content: Buffer; readonly why: "no key" | "already encrypted" }
  | { readonly kind: "encrypted"; readonly content: Buffer; readonly format: "pgp" | "smime"; readonly fingerprints: readonly string[] }
  | { readonly kind: "unusable"; readonly error: string };

/** Encrypts one message to keys (encryptForStore, or EncryptionThread's encrypt off the event loop). */
export type Encrypter = (raw: Buffer, keys: readonly UsableKey[]) => Promise<Buffer>;

export class StoreEncryption {
  readonly #keys: KeySource;
  readonly #encrypt: Encrypter;
  constructor(keys: KeySource, encrypt: Encrypter = encryptForStore) {
    this.#keys = keys;
    this.#encrypt = encrypt;
  }

  /** What to store for this mailbox. `encrypted`: isEncrypted(content), when the caller knows it (or a function that tells, asked only when the mailbox has keys). Throws on a database error. */
  async contentFor(mailbox: string, content: Buffer, encrypted?: boolean | (() => boolean), now: Date = new Date()): Promise<StoreContent> {
    const keys = await this.#keys.keysFor(mailbox);
    if (keys.length === 0) return { kind: "plain", content, why: "no key" };
    if (typeof encrypted === "function" ? encrypted() : (encrypted ?? isEncrypted(content))) return { kind: "plain", content, why: "already encrypted" };
    const usable: UsableKey[] = [];
    const problems: string[] = [];
    for (const k of keys) {
      const problem = await unusableAt(k, now);
      if (problem === undefined) usable.push(k);
      else problems.push(problem);
    }
    if (usable.length === 0) return { kind: "unusable", error: `no usable encryption key for ${mailbox}: ${problems.join("; ")}` };
    const format = usable.some((k) => k.kind === "pgp") ? "pgp" : "smime";
    const chosen = usable.filter((k) => k.kind === format);
    return { kind: "encrypted", content: await this.#encrypt(content, chosen), format, fingerprints: chosen.map((k) => k.info.fingerprint) };
  }
}
