/**
 * The author of a message: the mailboxes of its From: field (RFC 5322
 * §3.6.2) and their domains, the one answer both DMARC on the MX (RFC 7489
 * §3.1, RFC 9989 §5.3.1: the Author Domain) and sender ownership on
 * submission work from.
 *
 * RFC 5322 §3.6 allows exactly one From: field, with at least one mailbox.
 * Anything else is a problem, never "no author" quietly:
 * - "missing": no From: field;
 * - "duplicate": more than one From: field (also when one is empty, or
 *   hidden behind a byte-order mark: header.ts reads every spelling);
 * - "invalid": a From: field without a mailbox, or one that does not parse
 *   (a bare name, "<>", an encoded word standing for an address, a domain
 *   literal, a name that is not a domain), or whose field name is not
 *   written plainly (a byte-order mark or another invisible character in
 *   it: other readers may not take it for From:);
 * - "multiple_domains": one valid field whose mailboxes (groups included)
 *   are in more than one domain (RFC 9989 §5.3.1: no single Author Domain).
 * `domains` always lists the distinct domains of every valid mailbox of
 * every From: field, so a caller may still apply the strictest policy of
 * all of them.
 */
import { parseAddressList, type Mailbox } from "./address.ts";
import { fieldValue, headerFields, type HeaderField } from "./header.ts";

export type AuthorProblem = "missing" | "duplicate" | "invalid" | "multiple_domains";

export interface Author {
  /** The mailboxes of the From: field; with a problem, those of every From: field that parsed. */
  readonly mailboxes: readonly Mailbox[];
  /** Distinct domains of `mailboxes`, in order of appearance. */
  readonly domains: readonly string[];
  /** How many From: fields the header section has. */
  readonly fields: number;
  readonly problem?: AuthorProblem;
}

/** Fields of one name parsed; the rest are only counted (callers refuse more: a From: "duplicate", submission more Resent- fields). */
export const MAX_PARSED_FIELDS = 10;

/**
 * The field's name is letters and hyphens, then at most white space or
 * folding before the colon (RFC 5322 §3.6, §4.5): not "\uFEFFFrom" or
 * "Fr\u00ADom", which this reader takes for From: but a DKIM verifier, the
 * next hop or the recipient's reader may not (and may then show another
 * field, such as Sender:, as the author).
 */
function plainlyNamed(content: Buffer, f: HeaderField): boolean {
  // /^[A-Za-z-]+[ \t\r\n]*$/ on the bytes before the colon, read in place (no string made).
  let i = f.start;
  while (i < f.colon) {
    const b = content[i] ?? 0;
    if (!((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d)) break;
    i++;
  }
  if (i === f.start) return false;
  for (; i < f.colon; i++) {
    const b = content[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0a) return false;
  }
  return true;
}

/** The mailboxes of every field named `name` (canonical), and whether one of them was invalid or empty. */
export function mailboxesOf(content: Buffer, name: string, fields: readonly HeaderField[] = headerFields(content)): { mailboxes: Mailbox[]; fields: number; invalid: boolean } {
  const mailboxes: Mailbox[] = [];
  let count = 0;
  let invalid = false;
  for (const f of fields) {
    if (f.name !== name) continue;
    if (++count > MAX_PARSED_FIELDS) continue;
    const list = parseAddressList(fieldValue(content, f));
    if (!list.ok || list.mailboxes.length === 0 || !plainlyNamed(content, f)) invalid = true;
    if (list.ok) mailboxes.push(...list.mailboxes);
  }
  return { mailboxes, fields: count, invalid };
}

export function authorOf(content: Buffer, fields: readonly HeaderField[] = headerFields(content)): Author {
  const from = mailboxesOf(content, "from", fields);
  const domains = [...new Set(from.mailboxes.map((m) => m.domain))];
  const problem: AuthorProblem | undefined =
    from.fields === 0 ? "missing" : from.fields > 1 ? "duplicate" : from.invalid ? "invalid" : domains.length > 1 ? "multiple_domains" : undefined;
  return { mailboxes: from.mailboxes, domains, fields: from.fields, ...(problem !== undefined ? { problem } : {}) };
}

/**
 * The header section of one message and its author, read once per message
 * and shared by everything that looks at them (the transaction's hop count and
 * sender ownership, DMARC and the From: rules, impersonation): the fields
 * are read when the head is made, the author parsed on first use, then
 * kept. Immutable; tied to the content it was made from.
 */
export class MessageHead {
  readonly content: Buffer;
  readonly fields: readonly HeaderField[];
  #author: Author | undefined;

  constructor(content: Buffer, fields: readonly HeaderField[] = headerFields(content)) {
    this.content = content;
    this.fields = fields;
  }

  /** authorOf(content, fields), parsed once. */
  get author(): Author {
    return (this.#author ??= authorOf(this.content, this.fields));
  }
}

/** The head of `content`: `head` when it was made from this very content, else a new one. */
export function headOf(content: Buffer, head?: MessageHead): MessageHead {
  return head !== undefined && head.content === content ? head : new MessageHead(content);
}
