/**
 * Routing, decided once per recipient when a message is queued (the sink
 * calls it as each recipient is added) and stored with the recipient
 * (src/queue RecipientRoute): the queue manager and the transports use the
 * stored route and never look at aliases or `[local]` again. A config change
 * after a message was queued (an alias removed, a domain moved to LMTP, a new
 * Maildir template) does not change where it goes: the stored decision wins.
 *
 * From resolve.ts (aliases, mailboxes, accounts, discard, domains):
 * - a recipient whose aliases reach another domain becomes one recipient per
 *   target (the sink adds them), each routed on its own: local mailbox,
 *   discard or remote (expand);
 * - otherwise the recipient stays as given, routed in place
 *   (routeInPlace): its local mailboxes (each with its Maildir path key:
 *   local.maildir filled, relative to the data directory unless absolute;
 *   or its LMTP server from local.lmtp),
 *   discard, remote (its domain), or failed (no such mailbox, alias loop,
 *   nested too deep).
 * routeInPlace alone also routes the records of an older Wardmail
 * (src/queue route-old.ts), which cannot grow recipients: an alias of theirs
 * reaching other domains is `deferred` (REMOTE_NOT_IMPLEMENTED), as before.
 * A mailbox whose Maildir path would leave its directory is `deferred` too.
 */
import { isAbsolute, relative, resolve } from "node:path";
import { mailboxPathKey } from "../delivery/index.ts";
import type { EnvelopeRecipient, MailboxRoute, RecipientRoute, StoredRecipient } from "../queue/index.ts";
import { resolveRecipient, type LocalConfig, type Resolution } from "./resolve.ts";

export const REMOTE_NOT_IMPLEMENTED = "remote delivery not implemented";

export interface RouterOptions {
  readonly local: LocalConfig;
  /**
   * server.dataDir: a Maildir path under it is stored relative to it (the
   * loaded config has local.maildir made absolute), so a data directory
   * moved with its queue takes its Maildirs along.
   */
  readonly dataDir?: string;
  /** True for an address that is an account (not an alias). */
  readonly isAccount?: (address: string) => boolean;
}

export interface Expansion {
  /** What the recipient becomes in the envelope, each with its route. */
  readonly recipients: readonly StoredRecipient[];
  /** An alias sent it on to another domain. */
  readonly forwards: boolean;
  /** Alias targets that led nowhere (a config mistake, logged by the sink). */
  readonly skipped: Resolution["skipped"];
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

export class Router {
  private readonly opts: RouterOptions;

  constructor(opts: RouterOptions) {
    this.opts = opts;
  }

  /** A recipient as the client (the DSN, the report) named it, expanded and routed. */
  expand(r: EnvelopeRecipient): Expansion {
    const res = resolveRecipient(this.opts.local, r.address, this.opts.isAccount);
    const self = r.address.toLowerCase();
    const skipped = res.skipped.filter((s) => s.address !== self);
    if (!this.splits(res, self)) return { recipients: [{ ...r, route: this.routeOf(res, self) }], forwards: false, skipped };
    const dsn = { ...r.dsn, orcpt: r.dsn.orcpt ?? `rfc822;${r.address}` };
    const recipients: StoredRecipient[] = [
      ...res.mailboxes.map((a) => ({ address: a, dsn, route: this.local([a]) })),
      ...res.discarded.map((a) => ({ address: a, dsn, route: { kind: "discard" } as const })),
      ...res.remote.map((a) => ({ address: a, dsn, route: { kind: "remote", domain: domainOf(a) } as const })),
    ];
    return { recipients, forwards: true, skipped };
  }

  /** One address routed as it stands, without new recipients (records queued before routes were stored). */
  routeInPlace(address: string): RecipientRoute {
    return this.routeOf(resolveRecipient(this.opts.local, address, this.opts.isAccount), address.toLowerCase());
  }

  /** True when an alias reaches another domain: the recipient becomes its targets. */
  private splits(res: Resolution, self: string): boolean {
    const direct = res.remote.length === 1 && res.remote[0] === self && res.mailboxes.length === 0;
    return res.remote.length > 0 && !direct;
  }

  private routeOf(res: Resolution, self: string): RecipientRoute {
    if (res.remote.length > 0) {
      // Only the address itself, in another domain; an alias reaching other domains was split by expand (or is a record queued before).
      const direct = res.remote.length === 1 && res.remote[0] === self && res.mailboxes.length === 0;
      return direct ? { kind: "remote", domain: domainOf(res.remote[0]!) } : { kind: "deferred", reason: REMOTE_NOT_IMPLEMENTED };
    }
    if (res.mailboxes.length > 0) return this.local(res.mailboxes);
    // Only discarded targets: done, nothing to write (as Postfix's discard:).
    if (res.discarded.length > 0) return { kind: "discard" };
    return { kind: "failed", reason: res.skipped.map((s) => s.reason).find((x) => x !== "no such mailbox") ?? "no such mailbox" };
  }

  /** A Maildir path as stored: relative to dataDir when under it. */
  private pathKey(path: string): string {
    const base = this.opts.dataDir;
    if (base === undefined || !isAbsolute(path)) return path;
    const rel = relative(resolve(base), path);
    return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
  }

  /** Local mailboxes, each to its LMTP server (local.lmtp) or its Maildir. */
  private local(mailboxes: readonly string[]): RecipientRoute {
    const { local } = this.opts;
    const routes: MailboxRoute[] = [];
    for (const mailbox of mailboxes) {
      const domain = domainOf(mailbox);
      const lmtp = Object.hasOwn(local.lmtp, domain) ? local.lmtp[domain] : undefined;
      if (lmtp !== undefined) {
        routes.push({ mailbox, lmtp: "path" in lmtp ? { path: lmtp.path } : { host: lmtp.host, port: lmtp.port } });
        continue;
      }
      try {
        routes.push({ mailbox, maildir: this.pathKey(mailboxPathKey(local.maildir, mailbox)) });
      } catch (err) {
        return { kind: "deferred", reason: (err as Error).message };
      }
    }
    return { kind: "local", mailboxes: routes };
  }
}
