/**
 * Delivery: public face of src/delivery/.
 *
 * - LocalDelivery: the agent that moves one spool shard's mail into local
 *   Maildirs (local.ts), using the `[local]` config (resolve.ts), or over
 *   LMTP to a local store for the domains in local.lmtp (lmtp.ts).
 * - deliverToMaildir / ensureMaildir: Dovecot-compatible Maildir storage
 *   (maildir.ts).
 */
export { LocalDelivery, REMOTE_NOT_IMPLEMENTED } from "./local.ts";
export type { LocalDeliveryOptions, LocalDeliveryStats } from "./local.ts";
export { deliverToMaildir, ensureMaildir, escapeHostname, folderDirName, uniqueName } from "./maildir.ts";
export type { MaildirMessage, MaildirOptions, MaildirResult } from "./maildir.ts";
export { resolveRecipient, mailboxPath, MAX_ALIAS_DEPTH } from "./resolve.ts";
export type { Resolution, LocalConfig } from "./resolve.ts";
export { deliverLmtp, describeTarget, LMTP_TIMEOUTS } from "./lmtp.ts";
export type { LmtpMailboxResult, LmtpMessage, LmtpResult } from "./lmtp.ts";
