/**
 * End-to-end encryption: public face of src/e2e/.
 *
 * Encrypt-on-store (issue 14): mail to a mailbox whose account has an
 * OpenPGP key or an S/MIME certificate (`wardmail user key import`) is
 * encrypted before it is stored: PGP/MIME (RFC 3156) or S/MIME (RFC 8551),
 * the original message byte for byte inside, the Subject hidden outside
 * (RFC 9788).
 * - keys.ts: reading and validating a key file (OpenPGP.js, pkijs).
 * - keystore.ts: the keys in the accounts database (table user_keys).
 * - mime.ts: isEncrypted, the outer header section.
 * - encrypt.ts: encryptForStore.
 * - store.ts: StoreEncryption, what the delivery agent writes per mailbox.
 * - offload.ts, thread.ts: large messages encrypted in a thread of their own.
 */
export { KeyError, loadStoredKey, parseRecipientKey, unusableAt, MAX_KEY_BYTES, MIN_RSA_BITS } from "./keys.ts";
export type { KeyInfo, KeyKind, UsableKey } from "./keys.ts";
export { KeyStore, MAX_KEYS_PER_ACCOUNT, normalizeFingerprint } from "./keystore.ts";
export type { StoredKey } from "./keystore.ts";
export { isEncrypted, outerHeader, parseContentType, OBSCURED_SUBJECT } from "./mime.ts";
export { encryptForStore, envelopedData } from "./encrypt.ts";
export { pkiLibraries } from "./pki.ts";
export { StoreEncryption } from "./store.ts";
export type { Encrypter, KeySource, StoreContent } from "./store.ts";
export { EncryptionThread, INLINE_MAX } from "./offload.ts";
