/**
 * The message header section: fields with one canonical name for every
 * spelling, their removal, address lists, encoded words, and the author
 * (From:) that DMARC and submission's sender ownership both use.
 */
export { canonicalName, fieldValue, fieldValues, headerEnd, headerFields, removeFields, type HeaderField } from "./header.ts";
export { canonicalDomain, MAX_MAILBOXES, parseAddressList, type AddressList, type Mailbox } from "./address.ts";
export { authorOf, headOf, mailboxesOf, MAX_PARSED_FIELDS, MessageHead, type Author, type AuthorProblem } from "./author.ts";
export { decodeEncodedWords, readerForm } from "./rfc2047.ts";
export { addressesIn } from "./shown.ts";
export { authservIdOf, stripOwnHeaders } from "./authres.ts";
export { registrableDomain, TLDTS_OPTIONS } from "./domain.ts";
