/**
 * The impersonation check: an inbound check (src/server/checks.ts: MX mail,
 * not authenticated, not from a trusted network) at the end of DATA that
 * looks at the From: field (src/message authorOf: the mailboxes a reader
 * sees as the author):
 *
 * - impersonation.domain: an author domain that imitates one of our
 *   domains (lookalike.ts: confusable skeleton, one edit, other TLD);
 * - impersonation.name: an author outside our domains whose display name,
 *   as a reader sees it (encoded words decoded, NFKC, confusables of "@"
 *   and "." mapped: src/message readerForm; case, quotes, dots, hyphens,
 *   underscores and spaces folded), is the local part of one of our
 *   mailboxes, accounts or aliases ("Alice", "alice.martin" → "Alice
 *   Martin").
 *
 * Both name the header X-Wardmail-Impersonation with what was seen; the
 * action is the operator's (checks.actions, default tag). With
 * external_tag, every message through this check gets X-Wardmail-External:
 * yes. A message without a valid author is the sender-auth check's
 * (from.*), not this one's.
 *
 * Bounds: at most MAX_PARSED_FIELDS From: fields are parsed (src/message);
 * the local names are a Map read from the accounts at most every
 * NAMES_TTL_MS, so each message costs a lookup per author mailbox.
 */
import type { Check, CheckInput, CheckOutcome } from "../policy/index.ts";
import { headOf, readerForm } from "../message/index.ts";
import { lookalikeOf, isOurs } from "./lookalike.ts";

/** Most From: domains whose lookalike answer is kept (the oldest goes first). */
const LOOKALIKE_CACHE = 4096;

export const IMPERSONATION_HEADER = "X-Wardmail-Impersonation";
export const EXTERNAL_HEADER = "X-Wardmail-External";
/** How long the set of local names is reused before it is read again. */
export const NAMES_TTL_MS = 60_000;
/** Shortest name compared (a two-letter local part such as "jo" is too common a word). */
const MIN_NAME = 3;

export interface ImpersonationOptions {
  readonly localDomains: readonly string[];
  /** Look for lookalikes and local names (impersonation.enabled). */
  readonly enabled: boolean;
  /** Add X-Wardmail-External (impersonation.external_tag). */
  readonly externalTag: boolean;
  /** Every local address (mailboxes, accounts, aliases); read again after NAMES_TTL_MS. */
  readonly localAddresses: () => Iterable<string>;
  readonly now?: () => number;
}

/** A name as compared: the reader's form, lower case, quotes dropped, runs of space . _ - as one space. */
export function nameKey(name: string): string {
  return readerForm(name)
    .toLowerCase()
    .replace(/["'`\u2018-\u201f]/g, "")
    .replace(/[\s._-]+/g, " ")
    .trim();
}

/** A quoted header value: printable ASCII kept, anything else as \u escapes; at most 200 characters. */
function shown(s: string): string {
  return JSON.stringify(s.slice(0, 200)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export class ImpersonationCheck implements Check {
  readonly name = "impersonation";
  private readonly opts: ImpersonationOptions;
  private names: { at: number; byKey: Map<string, string> } | undefined;

  constructor(opts: ImpersonationOptions) {
    this.opts = opts;
  }

  /** Lookalike answers per From: domain: most mail comes from a few domains, and the comparison is the check's costliest step. */
  private readonly lookalikes = new Map<string, ReturnType<typeof lookalikeOf> | null>();

  private lookalike(domain: string): ReturnType<typeof lookalikeOf> {
    const hit = this.lookalikes.get(domain);
    if (hit !== undefined) return hit ?? undefined;
    const l = lookalikeOf(domain, this.opts.localDomains);
    if (this.lookalikes.size >= LOOKALIKE_CACHE) this.lookalikes.delete(this.lookalikes.keys().next().value as string);
    this.lookalikes.set(domain, l ?? null);
    return l;
  }

  /** Local part key → one address with it. */
  private localNames(): Map<string, string> {
    const now = (this.opts.now ?? Date.now)();
    if (this.names && now - this.names.at < NAMES_TTL_MS) return this.names.byKey;
    const byKey = new Map<string, string>();
    for (const a of this.opts.localAddresses()) {
      const at = a.lastIndexOf("@");
      if (at <= 0) continue;
      const key = nameKey(a.slice(0, at));
      if (key.length >= MIN_NAME && !byKey.has(key)) byKey.set(key, a.toLowerCase());
    }
    this.names = { at: now, byKey };
    return byKey;
  }

  /** Decides at once (no I/O): the outcome itself, not a promise (the runner then needs no deadline). */
  readonly data = (input: CheckInput): CheckOutcome => {
    const headers: string[] = [];
    const verdicts: string[] = [];
    if (this.opts.externalTag) headers.push(`${EXTERNAL_HEADER}: yes`);
    if (this.opts.enabled && input.content !== undefined) {
      const author = headOf(input.content, input.head).author;
      const local = this.opts.localDomains;
      const seen: string[] = [];
      for (const d of author.domains) {
        const l = this.lookalike(d);
        if (l !== undefined) {
          verdicts.push("impersonation.domain");
          seen.push(`domain ${d} looks like ${l.of} (${l.kind})`);
          break;
        }
      }
      const names = this.localNames();
      for (const m of author.mailboxes) {
        if (m.name === "" || isOurs(m.domain, local)) continue;
        const hit = names.get(nameKey(m.name));
        if (hit !== undefined) {
          verdicts.push("impersonation.name");
          seen.push(`name ${shown(m.name)} is local ${hit}`);
          break;
        }
      }
      if (seen.length > 0) headers.push(`${IMPERSONATION_HEADER}: ${seen.join(";\r\n\t")}`);
    }
    return { verdicts, headers, ...(verdicts.length > 0 ? { notes: { impersonation: verdicts } } : {}) };
  };
}
