/**
 * Which recipients this server accepts at RCPT time. The MX accepts only
 * addresses in its local domains that are a mailbox, an alias or discarded; an unknown
 * local user gets 550 5.1.1 at RCPT (so there is never a bounce to send
 * later: no backscatter), and any other domain is a relay attempt: 554 5.7.1.
 * Matching is case-insensitive (operators expect it, though RFC 5321 leaves
 * the local part's case to us). <postmaster> without a domain (RFC 5321
 * §4.5.1) maps to the first local domain that has a postmaster.
 */
import type { Config } from "../config/types.ts";
import { reply, type Reply } from "../protocol/reply.ts";

export type RecipientVerdict = { readonly ok: true; readonly address: string } | { readonly ok: false; readonly reply: Reply };

const RELAY_DENIED = reply(554, "5.7.1", "Relay access denied");
const NO_SUCH_USER = reply(550, "5.1.1", "No such user here");

export class LocalRecipients {
  private readonly domains: ReadonlySet<string>;
  private readonly known: ReadonlySet<string>;
  private readonly postmaster: string | undefined;

  constructor(local: Config["local"]) {
    this.domains = new Set(local.domains.map((d) => d.toLowerCase()));
    this.known = new Set([...local.mailboxes, ...local.discard, ...Object.keys(local.aliases)].map((a) => a.toLowerCase()));
    this.postmaster = local.domains.map((d) => `postmaster@${d}`).find((a) => this.known.has(a));
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(domain.toLowerCase());
  }

  /** Verdict for RCPT TO:<address> (address as parsed, without brackets). */
  check(address: string): RecipientVerdict {
    if (address.toLowerCase() === "postmaster") {
      return this.postmaster ? { ok: true, address: this.postmaster } : { ok: false, reply: NO_SUCH_USER };
    }
    const at = address.lastIndexOf("@");
    const domain = address.slice(at + 1).toLowerCase();
    if (at <= 0 || !this.domains.has(domain)) return { ok: false, reply: RELAY_DENIED };
    const normalized = `${address.slice(0, at).toLowerCase()}@${domain}`;
    if (!this.known.has(normalized)) return { ok: false, reply: NO_SUCH_USER };
    return { ok: true, address: normalized };
  }
}
