/**
 * Sender ownership for authenticated submission: every originator the
 * message names must be one the account may use (its own address, its
 * aliases, its listed senders).
 *
 * The author is src/message's, the same reader DMARC uses on the MX: the
 * header section only, every spelling of a field name (a byte-order mark
 * or folding before the colon does not hide a second From:). Exactly one
 * From: field with valid mailboxes (RFC 5322 §3.6), else 550 5.6.0.
 *
 * Originator fields checked (a deliberate choice: each of them is shown to
 * readers as who sent the message, e.g. "X on behalf of Y"): From:,
 * Sender: (at most one field), Resent-From: and Resent-Sender: (RFC 5322
 * §3.6.6, any number of resent blocks). Every mailbox in them must be
 * owned; one that does not parse is refused (5.6.0), and so is an
 * originator field whose name is not written plainly (a byte-order mark,
 * white space or folding before the colon): the shared reader takes it
 * for the field, the DKIM signer, the next hop and a reader may not.
 * Reply-To: is not an originator and is not checked.
 *
 * What a reader sees beside the address counts too: a display name or
 * comment that reads as an address must name an owned one. It is read as
 * a reader would (src/message/shown.ts addressesIn): encoded words
 * decoded (B and Q, in phrases, quoted strings and comments), NFKC, "@"
 * and "." look-alikes mapped, format characters and marks dropped, white
 * space around "@" and "." ignored, quotation marks looked through. So
 * "=?utf-8?B?Y2VvQGJhbmsudGVzdA==?=", "ceo＠bank.test", "ceo @ bank.test"
 * and "'ceo'@bank.test" all read as ceo@bank.test. Each originator field
 * is also read whole that way (not only the parsed names), so an encoded
 * word the address parser splits at a special ("=?utf-8?q?ceo=40bank.test?=")
 * or a name spread over several encoded words is seen decoded as one text.
 */
import { addressesIn, authorOf, fieldValue, headOf, mailboxesOf, MAX_MAILBOXES, MAX_PARSED_FIELDS, type Mailbox, type MessageHead } from "../message/index.ts";
import { reply, type Reply } from "../protocol/index.ts";

const NOT_OWNED = reply(550, "5.7.1", "From: header address not owned by authenticated user");
const NO_FROM = reply(550, "5.6.0", "Message must have exactly one From: header with an address");
const BAD_ORIGINATOR = reply(550, "5.6.0", "Originator headers must hold valid addresses (one Sender: at most, at most 10 of each Resent- field)");

const ODD_NAME = reply(550, "5.6.0", "Originator header field names must be written plainly (no space, folding or invisible character before the colon)");
/** A field name as RFC 5322 §3.6 writes it: letters and hyphens, nothing before the colon. */
const PLAIN_NAME = /^[A-Za-z-]+$/;

/** Originator fields besides From: (canonical names). */
const OTHER_ORIGINATORS = ["sender", "resent-from", "resent-sender"] as const;

/** The addresses of the From: field: undefined when there is not exactly one field with valid mailboxes. */
export function fromAddresses(content: Buffer): string[] | undefined {
  const author = authorOf(content);
  return author.problem === undefined || author.problem === "multiple_domains" ? author.mailboxes.map((m) => m.address) : undefined;
}

/** undefined when every originator address (and every address a name shows) passes `owns`; else the reply refusing the message. */
export function checkFromHeader(content: Buffer, owns: (address: string) => boolean, given?: MessageHead): Reply | undefined {
  // The header section and author as the transaction read them (once per message).
  const head = headOf(content, given);
  const fields = head.fields;
  // An originator field must be spelled plainly ("From:", any case): the
  // DKIM signer, the next hop's DMARC and the recipient's reader may not
  // see a "\uFEFFFrom:", "From :" or a name folded before its colon as From.
  for (const f of fields) {
    if (f.name !== "from" && !(OTHER_ORIGINATORS as readonly string[]).includes(f.name)) continue;
    if (!PLAIN_NAME.test(content.toString("latin1", f.start, f.colon))) return ODD_NAME;
  }
  const author = head.author;
  if (author.problem !== undefined && author.problem !== "multiple_domains") return NO_FROM;
  const mailboxes: Mailbox[] = [...author.mailboxes];
  for (const name of OTHER_ORIGINATORS) {
    const found = mailboxesOf(content, name, fields);
    // More fields than are parsed would leave the rest unchecked: refused (no real message has 11 resent blocks).
    if (found.invalid || (name === "sender" && found.fields > 1) || found.fields > MAX_PARSED_FIELDS) return BAD_ORIGINATOR;
    mailboxes.push(...found.mailboxes);
  }
  // The whole field as a reader may take it: a name split into several
  // encoded words, or one holding specials ("=?utf-8?q?ceo?= =?utf-8?q?=40bank.test?="),
  // reads as an address only once the field is decoded as one text.
  // Bounded: at most 1 + 1 + 2 × MAX_PARSED_FIELDS fields (above), each
  // showing at most MAX_MAILBOXES distinct addresses, each asked about once.
  for (const f of fields) {
    if (f.name !== "from" && !(OTHER_ORIGINATORS as readonly string[]).includes(f.name)) continue;
    const shown = new Set(addressesIn(fieldValue(content, f)).map((a) => a.toLowerCase()));
    if (shown.size > MAX_MAILBOXES) return BAD_ORIGINATOR;
    for (const a of shown) if (!owns(a)) return NOT_OWNED;
  }
  for (const m of mailboxes) {
    if (!owns(m.address)) return NOT_OWNED;
    for (const text of [m.name, ...m.comments]) {
      for (const shown of addressesIn(text)) if (!owns(shown)) return NOT_OWNED;
    }
  }
  return undefined;
}
