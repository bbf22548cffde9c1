/**
 * Where the server's DNS answers come from: the configured servers, or the
 * "nameserver" lines of /etc/resolv.conf (resolv.conf(5)), or 127.0.0.1:53 if
 * neither names any. Only IP literals are taken (a scope such as "%eth0" is
 * dropped), at most 3 as glibc does (MAXNS); other resolv.conf options
 * (search, ndots, timeout, rotate) are ignored on purpose: names are queried
 * exactly as given and the timeout comes from the configuration.
 * Also the adapter that hands a resolver to mailauth with the type it declares.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import type { Server } from "./transport.ts";
import type { DnsResolver } from "./types.ts";
import { WireResolver, type AdTrust } from "./wire-resolver.ts";

const MAXNS = 3;
const FALLBACK: Server = { host: "127.0.0.1", port: 53 };

/** Servers named in resolv.conf text (default: /etc/resolv.conf read now); [127.0.0.1:53] if none. */
export function systemNameservers(resolvConf?: string): { host: string; port: number }[] {
  let text = resolvConf;
  if (text === undefined) {
    try {
      text = readFileSync("/etc/resolv.conf", "latin1");
    } catch {
      text = "";
    }
  }
  const servers: { host: string; port: number }[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/[#;].*$/, "").trim();
    const [keyword, address] = line.split(/\s+/);
    if (keyword !== "nameserver" || address === undefined) continue;
    const host = address.replace(/%.*$/, "");
    if (net.isIP(host) === 0) continue;
    if (servers.some((s) => s.host === host)) continue;
    servers.push({ host, port: 53 });
    if (servers.length === MAXNS) break;
  }
  return servers.length > 0 ? servers : [{ ...FALLBACK }];
}

/** The resolver the server uses, from the [dns] configuration section. */
export function createResolver(config: {
  readonly servers: readonly { readonly host: string; readonly port: number }[];
  readonly timeout: number;
  readonly attempts: number;
  readonly cacheSize: number;
  /** dns.trust_ad; "loopback" when absent. */
  readonly trustAd?: AdTrust;
}): WireResolver {
  return new WireResolver({
    servers: resolverServers(config),
    timeoutMs: config.timeout,
    attempts: config.attempts,
    cacheSize: config.cacheSize,
    ...(config.trustAd !== undefined ? { trustAd: config.trustAd } : {}),
  });
}

/** The servers the resolver asks: dns.servers, else those of /etc/resolv.conf. */
export function resolverServers(config: { readonly servers: readonly { readonly host: string; readonly port: number }[] }): { host: string; port: number }[] {
  return config.servers.length > 0 ? config.servers.map((s) => ({ host: s.host, port: s.port })) : systemNameservers();
}

/**
 * `resolver` option for mailauth (spf, dkimVerify, dmarc, authenticate, ...).
 * Same function as resolver.resolve, typed as mailauth's DNSResolver declares
 * it (its .d.ts says string[] | string[][] even for MX, which it reads as
 * node's { exchange, priority } objects — which is what it gets).
 */
export function mailauthResolver(resolver: DnsResolver): (domain: string, rrtype: string) => Promise<string[][] | string[]> {
  return (domain, rrtype) => resolver.resolve(domain, rrtype) as Promise<string[][] | string[]>;
}
