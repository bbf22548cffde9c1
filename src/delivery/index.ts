/**
 * Delivery: public face of src/delivery/.
 *
 * - Transport (transport.ts): the one interface of every transport,
 *   `deliver(message, recipients) → outcomes`; the queue manager (src/qmgr)
 *   routes and calls them. MaildirTransport (maildir-transport.ts) and
 *   LmtpTransport (lmtp-transport.ts, for the domains in local.lmtp) store
 *   local mail, encrypting on store through StoreContentSource
 *   (store-content.ts, src/e2e).
 * - mailboxPath (mailbox-path.ts): a mailbox's Maildir path from the
 *   local.maildir template (the sink stores it with the route; transports
 *   never route: aliases are resolved in src/sink).
 * - deliverToMaildir / ensureMaildir: Dovecot-compatible Maildir storage
 *   (maildir.ts).
 */
export { combineMailboxes, errorText, Semaphore } from "./transport.ts";
export type { DeliveryOutcome, LocalRecipient, MailboxResult, RoutedRecipient, Transport } from "./transport.ts";
export { MaildirTransport } from "./maildir-transport.ts";
export type { MaildirTransportOptions } from "./maildir-transport.ts";
export { LmtpTransport } from "./lmtp-transport.ts";
export type { LmtpTransportOptions } from "./lmtp-transport.ts";
export { StoreContentSource } from "./store-content.ts";
export { deliverToMaildir, ensureMaildir, escapeHostname, folderDirName, uniqueName } from "./maildir.ts";
export type { MaildirMessage, MaildirOptions, MaildirResult } from "./maildir.ts";
export { mailboxPath, mailboxPathKey, maildirOf } from "./mailbox-path.ts";
export { deliverLmtp, describeTarget, LMTP_TIMEOUTS } from "./lmtp.ts";
export type { LmtpMailboxResult, LmtpMessage, LmtpResult } from "./lmtp.ts";
