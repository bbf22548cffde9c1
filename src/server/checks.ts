/**
 * The policy checks of each road, assembled in one place (src/policy has the
 * interface and the runner).
 *
 * - inbound: mail from the MX listener that is neither authenticated nor
 *   from a trusted network. DNSBL (connect), sender authentication (SPF at
 *   MAIL; DKIM, ARC, DMARC and the From: rules at the end of content).
 *   Impersonation (lookalike From: domains, local display names, the
 *   external-sender tag; end of content: src/impersonation).
 * - content: every message, whatever the listener and the client (MX,
 *   submission, trusted networks): the checks that look at what a message
 *   carries, not at who sent it. They run at the end of content only, after
 *   the inbound checks; the most severe action of both wins.
 *   Spam scoring by rspamd (src/spam).
 *
 * A new check is one module in its own folder and one line in the list of
 * its road here. The pipeline of each listener role (src/server/pipeline)
 * runs the roads: the inbound checks in an mx transaction on the MX
 * listener, the content checks in every transaction. Checks share state
 * only through the typed TransactionState and ConnectionState of
 * src/policy.
 */
import { readFile } from "node:fs/promises";
import { createPrivateKey } from "node:crypto";
import type { Config } from "../config/index.ts";
import type { DnsResolver, RRType } from "../dns/index.ts";
import type { Logger } from "../log/index.ts";
import { antivirusFromConfig } from "../antivirus/index.ts";
import { attachmentsFromConfig } from "../attachments/index.ts";
import { CheckRunner, DnsblCheck, type Check } from "../policy/index.ts";
import { SpamCheck } from "../spam/index.ts";
import { ImpersonationCheck } from "../impersonation/index.ts";
import type { PoolLink } from "../threads/index.ts";

export interface CheckDeps {
  readonly config: Config;
  readonly resolver: DnsResolver;
  readonly logger: Logger;
  /** The accounts (for the local names the impersonation check compares display names with). */
  readonly accounts?: { list(): readonly { readonly address: string; readonly aliases: readonly string[] }[] };
  /** The process's shared task pools (the primary's, src/threads PoolHost): the verifier threads are then shared by every worker. */
  readonly pools?: PoolLink;
}

/** Reads the ARC sealing key and refuses one that cannot seal (not RSA, or under 1024 bits). */
async function sealingKey(path: string): Promise<string> {
  const pem = await readFile(path, "utf8");
  const key = createPrivateKey(pem);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== "rsa" || bits < 1024) throw new Error(`checks.arc_seal_key ${path}: expected an RSA private key of at least 1024 bits`);
  return pem;
}

/** The checks of unauthenticated, untrusted MX mail; undefined when there are none. */
export async function inboundChecks({ config, resolver, accounts, pools }: CheckDeps): Promise<CheckRunner | undefined> {
  const checks: Check[] = [];
  // DNSBL: a connect hook, run at MAIL before the mail phase (SPF), which a listing then skips.
  if (config.dnsbl.zones.length > 0) {
    checks.push(new DnsblCheck({ zones: config.dnsbl.zones, threshold: config.dnsbl.threshold, timeoutMs: config.dnsbl.timeout * 1000, resolver }));
  }
  if (config.checks.enabled) {
    // Imported only when the checks are on: mailauth and its tools are the largest modules a worker loads.
    const { SenderAuthCheck } = await import("../mailauth/index.ts");
    checks.push(new SenderAuthCheck({
      resolver: (name, type) => resolver.resolve(name, type),
      query: async (name, type) => {
        const a = await resolver.query(name, type as RRType);
        return { records: a.records, ttl: a.ttl };
      },
      authservId: config.checks.authservId || config.server.hostname,
      checks: config.checks,
      localDomains: config.local.domains,
      ...(pools ? { pools } : {}),
      ...(config.checks.arcSeal
        ? { seal: { domain: config.checks.arcSeal.domain, selector: config.checks.arcSeal.selector, privateKey: await sealingKey(config.checks.arcSeal.key) } }
        : {}),
    }));
  }
  // After sender authentication, so its header fields come below Authentication-Results.
  if (config.impersonation.enabled || config.impersonation.externalTag) checks.push(impersonationCheck(config, accounts));
  return checks.length > 0 ? new CheckRunner(checks, config.checks.actions, config.checks.timeout * 1000) : undefined;
}

/** Lookalike domains and local display names (src/impersonation); local names from the config and the accounts. */
function impersonationCheck(config: Config, accounts: CheckDeps["accounts"]): ImpersonationCheck {
  const local = config.local;
  return new ImpersonationCheck({
    localDomains: local.domains,
    enabled: config.impersonation.enabled,
    externalTag: config.impersonation.externalTag,
    localAddresses: () => [...local.mailboxes, ...Object.keys(local.aliases), ...(accounts?.list() ?? []).flatMap((a) => [a.address, ...a.aliases])],
  });
}

/** The checks of every message's content, whatever its source; undefined when there are none. */
export async function contentChecks({ config, logger }: CheckDeps): Promise<CheckRunner | undefined> {
  const checks: Check[] = [];
  checks.push(...[await antivirusFromConfig(config, logger)].filter((c) => c !== undefined));
  checks.push(...[attachmentsFromConfig(config)].filter((c) => c !== undefined));
  if (config.spam.rspamd !== "") checks.push(new SpamCheck({ url: config.spam.rspamd, timeoutMs: config.spam.timeout * 1000, maxSize: config.spam.maxSize, authservId: config.checks.authservId || config.server.hostname }));
  return Promise.resolve(checks.length > 0 ? new CheckRunner(checks, config.checks.actions, config.checks.timeout * 1000) : undefined);
}
