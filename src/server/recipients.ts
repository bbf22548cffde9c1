/**
 * Which recipients this server accepts at RCPT time.
 *
 * Local domains: an address must be a mailbox, an alias or discarded in the
 * config, or an account or account alias (src/accounts); an unknown local
 * user gets 550 5.1.1 at RCPT (so there is never a bounce to send later: no
 * backscatter). Account aliases are recorded as their account. Other
 * domains: only for a client allowed to relay (authenticated, or in
 * relay.trusted_networks); anyone else gets 554 5.7.1 relay denied.
 *
 * Relay tricks are refused, not interpreted, whoever the client is:
 * "%" hacks (user%other@us), "!" bang paths, quoted local parts (which can
 * hide an "@"), and address literals (user@[192.0.2.1]) all get 550 5.7.1.
 * Source routes, several "@", trailing dots and control characters never get
 * this far (the parser answers 501). Domains compare case-insensitively, and
 * the local part too (operators expect it, though RFC 5321 leaves its case
 * to us). <postmaster> without a domain (RFC 5321 §4.5.1) maps to the first
 * local domain that has a postmaster.
 */
import type { Config } from "../config/index.ts";
import { reply, type Reply } from "../protocol/index.ts";

export type RecipientVerdict = { readonly ok: true; readonly address: string } | { readonly ok: false; readonly reply: Reply };

/** Account lookup (implemented by AccountStore). */
export interface AccountLookup {
  /** The canonical account address for an account or account alias, else undefined. */
  resolve(addressOrAlias: string): string | undefined;
}

const RELAY_DENIED = reply(554, "5.7.1", "Relay access denied");
const NO_SUCH_USER = reply(550, "5.1.1", "No such user here");
const ROUTING = reply(550, "5.7.1", "Address form not accepted: no %, ! or quoted local parts, no address literals");

export class LocalRecipients {
  private readonly domains: ReadonlySet<string>;
  private readonly known: ReadonlySet<string>;
  private readonly postmaster: string | undefined;
  private readonly accounts: AccountLookup | undefined;

  constructor(local: Config["local"], accounts?: AccountLookup) {
    this.domains = new Set(local.domains.map((d) => d.toLowerCase()));
    this.known = new Set([...local.mailboxes, ...local.discard, ...Object.keys(local.aliases)].map((a) => a.toLowerCase()));
    this.accounts = accounts;
    this.postmaster = local.domains.map((d) => `postmaster@${d}`).find((a) => this.known.has(a) || this.accounts?.resolve(a) !== undefined);
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(domain.toLowerCase());
  }

  /**
   * Verdict for RCPT TO:<address> (address as parsed, without brackets).
   * @param relay the client may send to other domains (authenticated or trusted).
   */
  check(address: string, relay = false): RecipientVerdict {
    if (address.toLowerCase() === "postmaster") {
      return this.postmaster ? { ok: true, address: this.postmaster } : { ok: false, reply: NO_SUCH_USER };
    }
    const at = address.lastIndexOf("@");
    if (at <= 0) return { ok: false, reply: NO_SUCH_USER };
    const localPart = address.slice(0, at);
    const domain = address.slice(at + 1).toLowerCase();
    if (/[%!]/.test(localPart) || localPart.startsWith('"') || domain.startsWith("[")) return { ok: false, reply: ROUTING };
    if (!this.domains.has(domain)) {
      return relay ? { ok: true, address: `${localPart}@${domain}` } : { ok: false, reply: RELAY_DENIED };
    }
    const normalized = `${localPart.toLowerCase()}@${domain}`;
    if (this.known.has(normalized)) return { ok: true, address: normalized };
    const account = this.accounts?.resolve(normalized);
    if (account !== undefined) return { ok: true, address: account };
    return { ok: false, reply: NO_SUCH_USER };
  }
}
