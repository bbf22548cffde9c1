/**
 * Sender ownership for authenticated submission: the From: header of the
 * message must name only addresses the account may use (its own, its
 * aliases, its listed senders). The header is read from the message's header
 * block only; exactly one From: field (RFC 5322 §3.6) with at least one
 * address, else the message is refused as malformed. A display name that
 * holds an address ("ceo@bank.test" <me@here.test>) must name an address the
 * account owns as well: readers see the name, so it is a forgery otherwise.
 */
import addressparser from "nodemailer/lib/addressparser/index.js";
import { reply, type Reply } from "../protocol/reply.ts";

const NOT_OWNED = reply(550, "5.7.1", "From: header address not owned by authenticated user");
const NO_FROM = reply(550, "5.6.0", "Message must have exactly one From: header with an address");

/** The header block (up to the empty line), unfolded, as latin1 text. */
function headerFields(content: Buffer): string[] {
  let end = content.indexOf("\r\n\r\n");
  if (end < 0) end = content.length;
  const text = content.subarray(0, end).toString("utf8");
  return text.replace(/\r\n(?=[ \t])/g, "").split("\r\n");
}

/** The addresses of the From: field(s): undefined when there is not exactly one field with at least one address. */
/**
 * What /[^\s<>"'(),;:@]+@[^\s<>"'(),;:@]+\.[^\s<>"'(),;:@]+/g finds in
 * `text`, in linear time (that regex backtracks quadratically over a long
 * run without "@": 100 KB of display name cost seconds). Within a run of
 * allowed characters split at "@" into parts, a match is a non-empty part,
 * "@", and the next part when that one has a "." with a character on
 * each side; the search goes on after it.
 */
export function addressesIn(text: string): string[] {
  const out: string[] = [];
  for (const token of text.split(/[\s<>"'(),;:]+/)) {
    if (!token.includes("@")) continue;
    const parts = token.split("@");
    for (let i = 0; i + 1 < parts.length; ) {
      const x = parts[i] as string;
      const y = parts[i + 1] as string;
      const dot = y.lastIndexOf(".", y.length - 2);
      if (x.length > 0 && dot >= 1) {
        out.push(`${x}@${y}`);
        i += 2;
      } else i++;
    }
  }
  return out;
}

export function fromAddresses(content: Buffer): string[] | undefined {
  const froms = headerFields(content).filter((l) => /^from[ \t]*:/i.test(l));
  if (froms.length !== 1) return undefined;
  const value = (froms[0] ?? "").replace(/^from[ \t]*:/i, "");
  const out: string[] = [];
  const add = (a: { address?: string; name?: string }): void => {
    out.push(a.address ?? "");
    // A display name that looks like an address ("boss@bank.test" <me@here>)
    // is what a reader sees: it must be ownable too.
    out.push(...addressesIn(a.name ?? ""));
  };
  for (const item of addressparser(value) as { address?: string; name?: string; group?: { address?: string; name?: string }[] }[]) {
    if (item.group !== undefined) for (const g of item.group) add(g);
    else add(item);
  }
  return out.length > 0 ? out : undefined;
}

/** undefined when every From: address passes `owns`; else the reply refusing the message. */
export function checkFromHeader(content: Buffer, owns: (address: string) => boolean): Reply | undefined {
  const list = fromAddresses(content);
  if (list === undefined) return NO_FROM;
  for (const a of list) {
    // Anything the parser could not make into a plain local@domain is refused, not guessed at.
    if (!/^[^\s@"<>]+@[^\s@"<>]+$/.test(a) || !owns(a)) return NOT_OWNED;
  }
  return undefined;
}
