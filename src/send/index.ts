/**
 * `wardmail send`: a mail client that composes, signs, encrypts and submits
 * (see command.ts and docs/cli.md). The signing and encryption primitives
 * are exported for other areas to share: PGP/MIME (RFC 3156) and S/MIME
 * (RFC 8551) over MIME entities built by compose.ts.
 */
export { SEND_EXIT, SEND_HELP, sendCommand } from "./command.ts";
export type { SendIo } from "./command.ts";
export { contentEntity, entityText, messageText, withHeaderProtection } from "./compose.ts";
export type { Attachment, Entity, Envelope } from "./compose.ts";
export { encryptPgpMime, signPgpMime, signedBytes } from "./pgp.ts";
export { cmsEncrypt, cmsSignDetached, encryptSmime, signSmime } from "./smime.ts";
export type { SmimeSigner } from "./smime.ts";
export { certFor, loadKeyring, pemCertificates, pgpKeyFor, readPgpSecretKey, readSmimeIdentity } from "./keyring.ts";
export { wkdLookup, wkdUrls, zbase32 } from "./wkd.ts";
export { ScramClient } from "./scram.ts";
export { submit, SubmitError } from "./smtp.ts";
