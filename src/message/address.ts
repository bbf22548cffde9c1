/**
 * Address lists of header fields (RFC 5322 §3.4, groups as RFC 6854 allows
 * them in From:, UTF-8 as RFC 6532, obs-route and CFWS between the parts of
 * an addr-spec as §4.4 allows), parsed strictly: a list with anything that
 * is not a mailbox or a group of mailboxes is invalid, never guessed at.
 *
 * Each mailbox carries what a reader is shown beside the address: the
 * display name and the comments, with encoded words decoded (RFC 2047, in
 * phrases, quoted strings and comments alike, as readers do).
 *
 * Linear: a tokenizer with one pass (nested comments by a depth counter),
 * then a parser that moves forward only. Bounded: at most MAX_MAILBOXES
 * mailboxes per field, more makes the list invalid.
 */
import { domainToASCII } from "node:url";
import { decodeEncodedWords } from "./rfc2047.ts";

export const MAX_MAILBOXES = 100;

export interface Mailbox {
  /** local@domain: the local part as written (quotes kept), the domain in canonical form. */
  readonly address: string;
  /** The domain: lower case A-labels, no trailing dot. */
  readonly domain: string;
  /** The display name (of the mailbox, or of its group), decoded; "" without one. */
  readonly name: string;
  /** Comments in the mailbox, decoded. */
  readonly comments: readonly string[];
}

export type AddressList = { readonly ok: true; readonly mailboxes: readonly Mailbox[] } | { readonly ok: false; readonly reason: string };

type Token =
  | { readonly t: "atom" | "quoted" | "literal"; readonly v: string }
  | { readonly t: "special"; readonly v: "<" | ">" | "@" | "," | ":" | ";" | "." };

class Invalid extends Error {}

const SPECIALS = "<>@,:;.";

/**
 * A lazy tokenizer: next() adds the next token to `out` (false at the end),
 * so a list that goes wrong early costs little. Comments go to `comments`
 * with the index of the token they come before.
 */
function tokenizer(value: string, out: Token[], comments: { at: number; text: string }[]): () => boolean {
  let i = 0;
  const n = value.length;
  return () => {
  const before = out.length;
  while (i < n && out.length === before) {
    const c = value[i] as string;
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      i++;
    } else if (c === "(") {
      let depth = 1;
      let text = "";
      i++;
      while (i < n && depth > 0) {
        const d = value[i] as string;
        if (d === "\\") {
          text += value[i + 1] ?? "";
          i += 2;
          continue;
        }
        if (d === "(") depth++;
        else if (d === ")") depth--;
        if (depth > 0) text += d;
        i++;
      }
      if (depth > 0) throw new Invalid("unterminated comment");
      comments.push({ at: out.length, text: decodeEncodedWords(text) });
    } else if (c === '"') {
      let text = "";
      i++;
      for (;;) {
        if (i >= n) throw new Invalid("unterminated quoted string");
        const d = value[i] as string;
        if (d === "\\") {
          text += value[i + 1] ?? "";
          i += 2;
        } else if (d === '"') {
          i++;
          break;
        } else {
          text += d;
          i++;
        }
      }
      out.push({ t: "quoted", v: text });
    } else if (c === "[") {
      const close = value.indexOf("]", i);
      if (close < 0) throw new Invalid("unterminated domain literal");
      out.push({ t: "literal", v: value.slice(i, close + 1) });
      i = close + 1;
    } else if (SPECIALS.includes(c)) {
      out.push({ t: "special", v: c as "<" });
      i++;
    } else if (c === ")" || c === "]" || c === "\\" || value.charCodeAt(i) < 0x20 || value.charCodeAt(i) === 0x7f) {
      throw new Invalid(`unexpected ${JSON.stringify(c)}`);
    } else {
      const s = i;
      while (i < n && !' \t\r\n()"[]\\<>@,:;.'.includes(value[i] as string) && value.charCodeAt(i) >= 0x20 && value.charCodeAt(i) !== 0x7f) i++;
      out.push({ t: "atom", v: value.slice(s, i) });
    }
  }
  return out.length > before;
  };
}

/** Longest address field value parsed; a longer one is invalid (no real list comes near). */
export const MAX_FIELD_CHARS = 65536;

const LABEL = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/;

/**
 * A name the URL parser's domainToASCII gives back unchanged: letters,
 * digits, hyphens and dots only, without an A-label (an "xn--" label is left
 * to it: a URL parser may check it) and not ending in a number (read as an IPv4
 * address there: "a.0x7f", "1.2.3.4"). Most mail's domains are such names;
 * they skip the call (a C++ round trip and a URL parse, about a quarter of
 * the From: parse in the server: docs/benchmarks.md, issue 12).
 */
const PLAIN_NAME = /^[a-z0-9.-]+$/;
const A_LABEL = /(?:^|\.)xn--/;
const ENDS_IN_NUMBER = /(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$/;

/** domainToASCII(lower), without the call when it would return `lower` itself. */
function toAscii(lower: string): string {
  return PLAIN_NAME.test(lower) && !A_LABEL.test(lower) && !ENDS_IN_NUMBER.test(lower) ? lower : domainToASCII(lower);
}

/** The canonical domain, or undefined when it is not a domain name. */
export function canonicalDomain(text: string): string | undefined {
  if (text === "" || text.length > 1000) return undefined;
  const ascii = toAscii(text.toLowerCase());
  if (ascii === "" || ascii.length > 253) return undefined;
  const labels = ascii.split(".");
  return labels.every((l) => LABEL.test(l)) ? ascii : undefined;
}

/** Parses an address-list (From:, Sender:, Resent-From:, ...). */
export function parseAddressList(value: string): AddressList {
  if (value.length > MAX_FIELD_CHARS) return { ok: false, reason: "too long" };
  const comments: { at: number; text: string }[] = [];
  const tokens: Token[] = [];
  const more = tokenizer(value, tokens, comments);
  const mailboxes: Mailbox[] = [];
  let i = 0;
  let c = 0; // next comment not yet given to a mailbox
  const peek = (): Token | undefined => {
    while (i >= tokens.length && more());
    return tokens[i];
  };
  const isSpecial = (v: string): boolean => {
    const t = peek();
    return t !== undefined && t.t === "special" && t.v === v;
  };
  const expect = (v: string): void => {
    if (!isSpecial(v)) throw new Invalid(`expected ${JSON.stringify(v)}`);
    i++;
  };
  /**
   * Words and dots, as written. Dots are not checked (RFC 5322 §3.4.1 wants
   * word *("." word), but "a..b" and "a.@" are real mailboxes at some
   * providers); the domain is what the author checks depend on.
   */
  const localPart = (words: Token[]): string => {
    if (!words.some((w) => w.t !== "special")) throw new Invalid("empty local part");
    let out = "";
    let word = false;
    for (const w of words) {
      const isWord = w.t !== "special";
      if (isWord && word) throw new Invalid("bad local part"); // two words without a dot between them
      out += w.t === "quoted" ? `"${w.v.replace(/(["\\])/g, "\\$1")}"` : w.v;
      word = isWord;
    }
    return out;
  };
  const domain = (): string => {
    const t = peek();
    if (t?.t === "literal") throw new Invalid("domain literal");
    let text = "";
    for (;;) {
      const a = peek();
      if (a?.t !== "atom") throw new Invalid("bad domain");
      text += a.v;
      i++;
      if (!isSpecial(".")) break;
      text += ".";
      i++;
    }
    const d = canonicalDomain(text);
    if (d === undefined) throw new Invalid("not a domain name");
    return d;
  };
  const phrase = (): Token[] => {
    const words: Token[] = [];
    for (let t = peek(); t !== undefined && (t.t === "atom" || t.t === "quoted" || (t.t === "special" && t.v === ".")); t = peek()) {
      words.push(t);
      i++;
    }
    return words;
  };
  const nameOf = (words: Token[]): string => decodeEncodedWords(words.map((w) => w.v).join(" "));
  /**
   * True when the tokens from i up to the next "<" hold only words, dots
   * and "@": an unquoted name with "@" in it before an angle address
   * ("a@b.test <a@b.test>", common from scripts) is a display name, as
   * readers show it. Looks no further than the next delimiter, which this
   * mailbox consumes anyway (so linear).
   */
  const nameBeforeAngle = (): boolean => {
    for (let j = i; ; j++) {
      while (j >= tokens.length && more());
      const t = tokens[j];
      if (t === undefined) return false;
      if (t.t === "special" && t.v === "<") return true;
      if (t.t === "special" && t.v !== "." && t.v !== "@") return false;
    }
  };
  const displayName = (): Token[] => {
    const words: Token[] = [];
    while (!isSpecial("<")) words.push(tokens[i++] as Token);
    return words;
  };
  const takeComments = (): string[] => {
    const out: string[] = [];
    while (c < comments.length && (comments[c]?.at ?? 0) <= i) out.push(comments[c++]?.text ?? "");
    return out;
  };
  const add = (m: Mailbox): void => {
    if (mailboxes.length >= MAX_MAILBOXES) throw new Invalid("too many mailboxes");
    mailboxes.push(m);
  };
  /** A mailbox (or, when allowed, a group) starting at i. */
  const address = (groupName: string | undefined): void => {
    const words = nameBeforeAngle() ? displayName() : phrase();
    if (isSpecial("<")) {
      i++;
      // obs-route: "@" domain *("," ["@" domain]) ":"
      if (isSpecial("@")) {
        while (isSpecial("@") || isSpecial(",")) {
          if (isSpecial(",")) i++;
          else {
            i++;
            domain();
          }
        }
        expect(":");
      }
      const local = localPart(phrase());
      expect("@");
      const d = domain();
      expect(">");
      add({ address: `${local}@${d}`, domain: d, name: words.length > 0 ? nameOf(words) : (groupName ?? ""), comments: takeComments() });
    } else if (isSpecial("@")) {
      const local = localPart(words);
      i++;
      const d = domain();
      add({ address: `${local}@${d}`, domain: d, name: groupName ?? "", comments: takeComments() });
    } else if (isSpecial(":") && groupName === undefined && words.length > 0) {
      i++;
      const name = nameOf(words);
      let first = true;
      while (!isSpecial(";")) {
        if (!first) expect(",");
        first = false;
        if (isSpecial(",") || isSpecial(";")) continue; // obs-mbox-list: empty elements
        address(name);
      }
      i++;
    } else {
      throw new Invalid(words.length > 0 ? "a name without an address" : "no address");
    }
  };
  try {
    let first = true;
    while (peek() !== undefined) {
      if (!first) expect(",");
      first = false;
      if (peek() === undefined) break;
      if (isSpecial(",")) continue; // obs-addr-list: empty elements
      address(undefined);
    }
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: e.message };
    throw e;
  }
  // Comments after the last mailbox belong to it.
  while (more());
  const rest = takeComments();
  const last = mailboxes.at(-1);
  if (last !== undefined && rest.length > 0) mailboxes[mailboxes.length - 1] = { ...last, comments: [...last.comments, ...rest] };
  return { ok: true, mailboxes };
}
