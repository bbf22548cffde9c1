/**
 * Outbound delivery to other domains: the remote half of a shard's delivery
 * agent. Requests (a message and its recipients in other domains) that come
 * in the same turn of the event loop are grouped per destination domain, so
 * mail for one domain shares connections (outbound.messages_per_connection
 * per connection, at most outbound.max_connections_per_domain at once). A
 * connection that delivered its batch stays open a short while for the next
 * one to the same destination under the same TLS requirement and relay
 * credentials (outbound.connection_cache_time; agent.ts, pool.ts).
 *
 * For each domain: a relay host (outbound.relays) or the MX hosts
 * (mx.ts); never ourselves (an MX address and port that is one of our own
 * MX listeners is a loop: permanent failure 5.4.6); then the TLS policy:
 * the operator's (outbound.tls_policy), else DANE when the MX host has TLSA
 * records in a signed zone, else MTA-STS when the domain publishes an
 * enforce policy, else opportunistic STARTTLS. A policy that cannot be met
 * defers; nothing ever falls back to plaintext once TLS was required.
 * REQUIRETLS messages (RFC 8689) go only over DANE- or MTA-STS-validated
 * TLS (or "verify"/"dane-only"), else they fail (5.7.10) and bounce.
 * The message is DKIM-signed just before it is sent (src/dkim).
 * A relay's certificate is verified for its host name by default (mode
 * "verify", agent.ts), against its ca_file when it has one; tls = "encrypt"
 * is the operator's explicit opt-out. A relay with user and password_file
 * gets AUTH PLAIN (only ever over verified TLS, client-session.ts); the password comes from `relayAuth` (read once when
 * the transport is made, agent.ts); an unreadable password file defers the
 * relay's mail (4.3.5) and the password never reaches a log or a result.
 */
import type { Config, RelayHost, TlsPolicy } from "../config/index.ts";
import type { DnsResolver } from "../dns/index.ts";
import type { Logger } from "../log/index.ts";
import type { ClaimedMessage, RecipientOutcome } from "../queue/index.ts";
import type { QueuedRecipient } from "../queue/index.ts";
import { resolveMx, type MxHost } from "./mx.ts";

/** One recipient's result as the delivery agent records it. */
export interface RemoteOutcome extends RecipientOutcome {
  /** Enhanced status for a DSN, e.g. "5.1.1". */
  readonly status?: string;
  /** "smtp; 550 5.1.1 ..." for a DSN's Diagnostic-Code. */
  readonly diagnostic?: string;
  /** The MX host that answered. */
  readonly remoteMta?: string;
}

/** How one session attempt ended, per recipient address. */
export interface SessionOutcome {
  readonly address: string;
  readonly final: "delivered" | "temporary" | "permanent";
  readonly code: number;
  readonly status: string;
  readonly text: string;
}

export interface SessionRequest {
  /** The destination (policy) domain. */
  readonly domain: string;
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly tls: TlsRequirement;
  /** AUTH PLAIN credentials for a relay host (never logged). */
  readonly auth?: RelayCredentials;
  readonly messages: readonly { readonly id: string; readonly msg: ClaimedMessage; readonly content: Buffer; readonly recipients: readonly QueuedRecipient[]; readonly requireTls: boolean }[];
}

/** AUTH PLAIN user and password for a relay host. */
export interface RelayCredentials {
  readonly user: string;
  readonly password: string;
}

/** The credentials of a relay with a user, or why they cannot be had (no secret in it). */
export type RelayAuth = (relay: RelayHost) => RelayCredentials | { readonly error: string };

/** What TLS a session needs and how the peer is authenticated after the handshake. */
export interface TlsRequirement {
  readonly mode: "may" | "encrypt" | "verify" | "dane";
  /** Why (for logs and Received/TLS-RPT): "policy", "mta-sts", "mta-sts-testing", "dane", "opportunistic", "relay". */
  readonly source: string;
  /** DANE TLSA records to check the peer against (mode "dane"). */
  readonly tlsa?: readonly unknown[];
  /** MTA-STS policy id (mode "verify" from MTA-STS). */
  readonly policyId?: string;
  /** The policy as TLS-RPT shows it (RFC 8460 §4.4 policy-string): the MTA-STS policy lines or the TLSA records. */
  readonly policyStrings?: readonly string[];
  /** MTA-STS testing: the MX is not one the policy names (reported to TLS-RPT, delivery goes on). */
  readonly stsMxMismatch?: string;
  /** A relay's own CA file (outbound.relays ca_file) to verify it with instead of the system CAs. */
  readonly caFile?: string;
}

/** Runs one SMTP session; implemented over src/outbound/connect.ts. */
export type SessionRunner = (req: SessionRequest) => Promise<{ results: Map<string, SessionOutcome[]>; fatal?: string; tls?: { version: string; cipher: string; verified: boolean } }>;

/** Picks the TLS requirement for a destination (operator policy, DANE, MTA-STS); undefined = defer with the reason. */
export type TlsPlanner = (domain: string, host: MxHost, mxSecure: boolean) => Promise<TlsRequirement | { defer: string }>;

export interface TransportOptions {
  readonly config: Pick<Config, "outbound" | "smtp" | "server">;
  readonly resolver: DnsResolver;
  readonly logger: Logger;
  readonly session: SessionRunner;
  readonly plan: TlsPlanner;
  /** Signs a message's content before it is sent (DKIM); returns it unchanged when there is no key. */
  readonly sign: (content: Buffer) => Promise<Buffer>;
  /** Credentials of relays that have a user; without it such a relay's mail is deferred. */
  readonly relayAuth?: RelayAuth;
  /** QUITs the idle cached connections (agent.ts, pool.ts); called by close(). */
  readonly closeIdle?: () => void;
}

interface Pending {
  readonly msg: ClaimedMessage;
  readonly recipients: QueuedRecipient[];
  readonly resolve: (o: RemoteOutcome[]) => void;
}

/** What happened with a recipient at a host: the server's reply, or our own verdict (code 0). */
function describe(host: string, address: string, s: SessionOutcome): string {
  return s.code === 0 ? `${host} [${address}]: ${s.status} ${s.text}`.trim() : `${host} [${address}] said: ${s.code} ${s.status} ${s.text}`.trim();
}

const domainOf = (address: string): string => address.slice(address.lastIndexOf("@") + 1).toLowerCase();

/** A small counting semaphore. */
class Gate {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free === 0) await new Promise<void>((r) => this.waiting.push(r));
    else this.free--;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

export class RemoteTransport {
  private readonly opts: TransportOptions;
  private readonly log: Logger;
  private pending = new Map<string, Pending[]>();
  private flushScheduled = false;
  private readonly gates = new Map<string, Gate>();

  constructor(opts: TransportOptions) {
    this.opts = opts;
    this.log = opts.logger;
  }

  /** Ends the idle cached connections (shutdown); deliveries in progress go on. */
  close(): void {
    this.opts.closeIdle?.();
  }

  /** Delivers the message to these recipients (all in other domains); resolves with one outcome per recipient. */
  deliver(msg: ClaimedMessage, recipients: readonly QueuedRecipient[]): Promise<RemoteOutcome[]> {
    const byDomain = new Map<string, QueuedRecipient[]>();
    for (const r of recipients) byDomain.set(domainOf(r.address), [...(byDomain.get(domainOf(r.address)) ?? []), r]);
    const parts = [...byDomain].map(
      ([domain, rcpts]) =>
        new Promise<RemoteOutcome[]>((resolve) => {
          this.pending.set(domain, [...(this.pending.get(domain) ?? []), { msg, recipients: rcpts, resolve }]);
        }),
    );
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return Promise.all(parts).then((lists) => lists.flat());
  }

  private flush(): void {
    this.flushScheduled = false;
    const work = this.pending;
    this.pending = new Map();
    for (const [domain, list] of work) {
      const per = this.opts.config.outbound.messagesPerConnection;
      for (let i = 0; i < list.length; i += per) {
        const chunk = list.slice(i, i + per);
        void this.gate(domain)
          .run(() => this.deliverDomain(domain, chunk))
          .catch((err: unknown) => {
            this.log.error({ domain, err: err instanceof Error ? err.message : String(err) }, "outbound delivery failed unexpectedly");
            return chunk.map((p) => p.recipients.map((r): RemoteOutcome => ({ index: r.index, result: "deferred", error: "internal error", status: "4.3.0" })));
          })
          .then((outcomes) => {
            for (const [j, p] of chunk.entries()) p.resolve(outcomes[j] ?? []);
          });
      }
    }
  }

  private gate(domain: string): Gate {
    let g = this.gates.get(domain);
    if (!g) {
      g = new Gate(this.opts.config.outbound.maxConnectionsPerDomain);
      this.gates.set(domain, g);
    }
    return g;
  }

  /** All messages of the chunk to one domain; returns outcomes per pending entry, in order. */
  private async deliverDomain(domain: string, chunk: readonly Pending[]): Promise<RemoteOutcome[][]> {
    const all = (o: Omit<RemoteOutcome, "index">): RemoteOutcome[][] => chunk.map((p) => p.recipients.map((r) => ({ index: r.index, ...o })));
    const route = await this.route(domain);
    if ("kind" in route) {
      const result = route.kind === "permanent" ? "failed" : "deferred";
      this.log.warn({ domain, reason: route.reason }, result === "failed" ? "destination refused" : "destination unavailable");
      return all({ result, error: route.reason, status: route.status });
    }
    // Sign once per message, just before it goes out.
    const signed = await Promise.all(chunk.map(async (p) => this.opts.sign(p.msg.content)));
    let lastReason = "no MX host could be reached";
    let outcomes: (RemoteOutcome | undefined)[][] = chunk.map((p) => p.recipients.map(() => undefined));
    for (const host of route.hosts) {
      const open = chunk.flatMap((p, i) => ((outcomes[i] ?? []).some((o) => o === undefined) ? [i] : []));
      if (open.length === 0) break;
      const tls = route.relay ? route.relay : await this.opts.plan(domain, host, route.secure);
      if ("defer" in tls) {
        lastReason = tls.defer;
        this.log.warn({ domain, mx: host.name, reason: tls.defer }, "TLS policy cannot be met; not sending");
        continue;
      }
      for (const address of host.addresses) {
        if (this.isSelf(host.name, address)) {
          return all({ result: "failed", error: `mail for ${domain} loops back to myself (${host.name} [${address}])`, status: "5.4.6" });
        }
        const messages = open.flatMap((i) => {
          const p = chunk[i] as Pending;
          const rcpts = p.recipients.filter((_, k) => outcomes[i]?.[k] === undefined);
          const requireTls = p.msg.envelope.requireTls === true;
          return rcpts.length === 0 ? [] : [{ id: p.msg.id, msg: p.msg, content: signed[i] as Buffer, recipients: rcpts, requireTls }];
        });
        if (messages.length === 0) break;
        // REQUIRETLS (RFC 8689 §4): only over authenticated TLS.
        const authenticated = tls.mode === "verify" || tls.mode === "dane";
        const sendable = messages.filter((m) => !m.requireTls || authenticated);
        for (const m of messages.filter((x) => x.requireTls && !authenticated)) {
          const i = chunk.findIndex((p) => p.msg.id === m.id);
          outcomes[i] = (chunk[i] as Pending).recipients.map((r, k) => outcomes[i]?.[k] ?? { index: r.index, result: "failed", error: `REQUIRETLS: no MTA-STS or DANE authenticated TLS to ${domain}`, status: "5.7.10" });
        }
        if (sendable.length === 0) break;
        const res = await this.opts.session({ domain, host: host.name, address, port: route.port, tls, ...(route.auth !== undefined ? { auth: route.auth } : {}), messages: sendable });
        if (res.fatal !== undefined) lastReason = `${host.name} [${address}]: ${res.fatal}`;
        outcomes = outcomes.map((list, i) => {
          const p = chunk[i] as Pending;
          const got = res.results.get(p.msg.id);
          return list.map((o, k) => {
            if (o !== undefined) return o;
            const r = p.recipients[k] as QueuedRecipient;
            const s = got?.find((x) => x.address === r.address);
            if (s === undefined || s.final === "temporary") {
              if (s) lastReason = describe(host.name, address, s);
              return undefined;
            }
            // code 0: the verdict is this client's own (no reply from the server).
            const diagnostic = s.code === 0 ? `x-wardmail; ${s.status} ${s.text}`.trim() : `smtp; ${s.code} ${s.status} ${s.text}`.trim();
            return s.final === "delivered"
              ? { index: r.index, result: "delivered", remoteMta: host.name, ...(res.tls ? {} : {}) }
              : { index: r.index, result: "failed", error: describe(host.name, address, s), status: s.status || "5.0.0", diagnostic, remoteMta: host.name };
          });
        });
        if (outcomes.every((list) => list.every((o) => o !== undefined))) break;
      }
    }
    return outcomes.map((list, i) =>
      list.map((o, k) => o ?? { index: (chunk[i] as Pending).recipients[k]?.index ?? 0, result: "deferred", error: lastReason, status: "4.4.1" }),
    );
  }

  /** A relay host, or the MX hosts, of a domain. */
  private async route(domain: string): Promise<
    | { hosts: readonly MxHost[]; secure: boolean; port: number; relay?: TlsRequirement; auth?: RelayCredentials }
    | { kind: "permanent" | "temporary"; status: string; reason: string }
  > {
    const relay = this.opts.config.outbound.relays.find((r) => r.domains.includes("*") || r.domains.includes(domain));
    if (relay) {
      let auth: RelayCredentials | undefined;
      if (relay.user !== "") {
        const creds = this.opts.relayAuth?.(relay) ?? { error: "no credentials loaded" };
        if ("error" in creds) return { kind: "temporary", status: "4.3.5", reason: `relay host ${relay.host}: AUTH credentials unavailable (${creds.error})` };
        auth = creds;
      }
      const isIp = /^[0-9.]+$|:/.test(relay.host);
      const hosts: MxHost[] = isIp
        ? [{ name: relay.host, preference: 0, addresses: [relay.host], secure: false }]
        : await resolveMx(this.opts.resolver, relay.host).then((r) => (r.kind === "hosts" ? r.hosts.map((h) => ({ ...h, name: relay.host })) : []));
      if (hosts.length === 0) return { kind: "temporary", status: "4.4.3", reason: `relay host ${relay.host} has no address` };
      // "required": the certificate must verify for relay.host (agent.ts); "encrypt" is the operator's explicit opt-out.
      const mode = relay.tls === "required" ? "verify" : relay.tls === "encrypt" ? "encrypt" : "may";
      const requirement: TlsRequirement = { mode, source: "relay", ...(relay.caFile !== "" ? { caFile: relay.caFile } : {}) };
      return { hosts, secure: false, port: relay.port, relay: requirement, ...(auth !== undefined ? { auth } : {}) };
    }
    const mx = await resolveMx(this.opts.resolver, domain);
    if (mx.kind !== "hosts") return mx;
    return { hosts: mx.hosts, secure: mx.secure, port: this.opts.config.outbound.port };
  }

  /** True when host/address:port is one of our own MX listeners (or our own name on our port). */
  private isSelf(host: string, address: string): boolean {
    const port = this.opts.config.outbound.port;
    if (host.toLowerCase() === this.opts.config.server.hostname.toLowerCase() && this.opts.config.smtp.listen.some((l) => l.port === port)) return true;
    return this.opts.config.smtp.listen.some((l) => l.port === port && (l.host === address || l.host === "0.0.0.0" || l.host === "::"));
  }
}

export type { TlsPolicy };
