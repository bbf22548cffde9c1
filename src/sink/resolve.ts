/**
 * Where a recipient address goes, according to the config's `[local]`
 * section: its mailboxes here, targets elsewhere, or nowhere.
 *
 * Matching is case-insensitive (the config holds lowercase addresses; the
 * address is lowercased before lookup). Aliases expand recursively to
 * mailboxes; a loop or a chain deeper than MAX_ALIAS_DEPTH stops expanding
 * that branch. An alias target in a local domain that is neither a mailbox
 * nor an alias is skipped (a config mistake, reported in `skipped`); a
 * target outside the local domains is "remote". The resulting mailbox list is
 * de-duplicated. An account (src/accounts, via isAccount) is a mailbox too.
 * A bare "postmaster" (RFC 5321 §4.5.1) means postmaster at
 * the first local domain.
 *
 * Used by the sink only (router.ts): aliases are resolved once, when a
 * message is queued, never again at delivery.
 */
import type { Config } from "../config/index.ts";

export type LocalConfig = Config["local"];

export const MAX_ALIAS_DEPTH = 20;

export interface Resolution {
  /** Local mailboxes (lowercase addresses), de-duplicated, in first-seen order. */
  readonly mailboxes: readonly string[];
  /** Targets whose mail is dropped (local.discard). */
  readonly discarded: readonly string[];
  /** Targets outside the local domains. */
  readonly remote: readonly string[];
  /** Targets that led nowhere, each with why (unknown local address, loop, too deep). */
  readonly skipped: readonly { readonly address: string; readonly reason: string }[];
}

function domainOf(address: string): string | undefined {
  const at = address.lastIndexOf("@");
  return at < 0 ? undefined : address.slice(at + 1);
}

/** The config's lists as sets, made once per list (not per recipient: a long mailbox list cost its length each time). */
interface LocalSets {
  readonly of: readonly [readonly string[], readonly string[], readonly string[]];
  readonly domains: ReadonlySet<string>;
  readonly mailboxes: ReadonlySet<string>;
  readonly drops: ReadonlySet<string>;
}
const localSets = new WeakMap<LocalConfig, LocalSets>();

function setsOf(local: LocalConfig): LocalSets {
  const kept = localSets.get(local);
  if (kept !== undefined && kept.of[0] === local.domains && kept.of[1] === local.mailboxes && kept.of[2] === local.discard) return kept;
  const made: LocalSets = { of: [local.domains, local.mailboxes, local.discard], domains: new Set(local.domains), mailboxes: new Set(local.mailboxes), drops: new Set(local.discard) };
  localSets.set(local, made);
  return made;
}

/** Expands one envelope recipient. An empty result (no mailbox, no remote) means undeliverable. */
export function resolveRecipient(local: LocalConfig, address: string, isAccount?: (address: string) => boolean): Resolution {
  const { domains, mailboxes, drops } = setsOf(local);
  const found: string[] = [];
  const discarded: string[] = [];
  const remote: string[] = [];
  const skipped: { address: string; reason: string }[] = [];

  let start = address.toLowerCase();
  if (start === "postmaster" && local.domains[0] !== undefined) start = `postmaster@${local.domains[0]}`;

  const expand = (addr: string, stack: readonly string[]): void => {
    if (stack.includes(addr)) {
      skipped.push({ address: addr, reason: "alias loop" });
      return;
    }
    if (stack.length > MAX_ALIAS_DEPTH) {
      skipped.push({ address: addr, reason: "aliases nested too deep" });
      return;
    }
    if (mailboxes.has(addr) || isAccount?.(addr) === true) {
      if (!found.includes(addr)) found.push(addr);
      return;
    }
    if (drops.has(addr)) {
      if (!discarded.includes(addr)) discarded.push(addr);
      return;
    }
    const targets = Object.hasOwn(local.aliases, addr) ? local.aliases[addr] : undefined;
    if (targets !== undefined) {
      for (const t of targets) expand(t.toLowerCase(), [...stack, addr]);
      return;
    }
    const domain = domainOf(addr);
    if (domain === undefined) skipped.push({ address: addr, reason: "address has no domain" });
    else if (domains.has(domain)) skipped.push({ address: addr, reason: "no such mailbox" });
    else if (!remote.includes(addr)) remote.push(addr);
  };
  expand(start, []);
  return { mailboxes: found, discarded, remote, skipped };
}
