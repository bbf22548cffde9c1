/**
 * Where mail for a domain goes (RFC 5321 §5.1, RFC 7505): the MX hosts in
 * preference order, equal preferences in random order, each with its
 * addresses (IPv4 first, then IPv6); the domain itself when it has no MX
 * (the implicit MX); nothing at all for a null MX ("MX 0 .") or a domain
 * that does not exist, which are permanent failures. DNS errors are
 * temporary. Whether the MX answer was DNSSEC-authenticated (the AD bit)
 * is kept: DANE needs it.
 */
import { randomInt } from "node:crypto";
import type { DnsResolver, MxRecord } from "../dns/index.ts";
import { DnsError } from "../dns/index.ts";

export interface MxHost {
  readonly name: string;
  readonly preference: number;
  readonly addresses: readonly string[];
  /** The address answers for this host came with AD (DNSSEC-validated). */
  readonly secure: boolean;
}

export type MxResult =
  | { readonly kind: "hosts"; readonly hosts: readonly MxHost[]; /** The MX answer itself was authenticated. */ readonly secure: boolean; readonly implicit: boolean }
  | { readonly kind: "permanent"; readonly status: string; readonly reason: string }
  | { readonly kind: "temporary"; readonly status: string; readonly reason: string };

/** At most this many MX hosts are tried per attempt (RFC 5321 §5.1 allows a limit). */
export const MAX_MX_HOSTS = 10;

function shuffle<T>(list: T[]): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [list[i], list[j]] = [list[j] as T, list[i] as T];
  }
  return list;
}

async function addresses(resolver: DnsResolver, name: string): Promise<{ addresses: string[]; secure: boolean; temporary?: string }> {
  const out: string[] = [];
  let secure = true;
  let temporary: string | undefined;
  for (const type of ["A", "AAAA"] as const) {
    try {
      const a = await resolver.query(name, type);
      out.push(...(a.records as string[]));
      secure &&= a.authenticated;
    } catch (err) {
      if (err instanceof DnsError && (err.code === "ENOTFOUND" || err.code === "ENODATA")) {
        secure &&= err.authenticated;
        continue;
      }
      temporary = err instanceof DnsError ? err.code : String(err);
      secure = false;
    }
  }
  return { addresses: out, secure, ...(temporary !== undefined ? { temporary } : {}) };
}

/** MX hosts of a domain with their addresses. */
export async function resolveMx(resolver: DnsResolver, domain: string): Promise<MxResult> {
  let records: MxRecord[];
  let secure = false;
  let implicit = false;
  try {
    const a = await resolver.query(domain, "MX");
    records = a.records as MxRecord[];
    secure = a.authenticated;
  } catch (err) {
    if (err instanceof DnsError && err.code === "ENOTFOUND") return { kind: "permanent", status: "5.1.2", reason: `domain ${domain} does not exist (NXDOMAIN)` };
    if (err instanceof DnsError && err.code === "ENODATA") {
      records = [{ exchange: domain, priority: 0 }];
      implicit = true;
      secure = err.authenticated;
    } else {
      return { kind: "temporary", status: "4.4.3", reason: `MX lookup for ${domain} failed: ${err instanceof DnsError ? err.code : String(err)}` };
    }
  }
  // RFC 7505: a single MX with an empty exchange ("."): the domain takes no mail.
  if (records.some((r) => r.exchange === "" || r.exchange === ".")) {
    return { kind: "permanent", status: "5.1.10", reason: `domain ${domain} does not accept mail (null MX)` };
  }
  const byPref = new Map<number, MxRecord[]>();
  for (const r of records) byPref.set(r.priority, [...(byPref.get(r.priority) ?? []), r]);
  const ordered = [...byPref.keys()].sort((a, b) => a - b).flatMap((p) => shuffle(byPref.get(p) ?? []));
  const hosts: MxHost[] = [];
  let temporary: string | undefined;
  for (const r of ordered.slice(0, MAX_MX_HOSTS)) {
    const name = r.exchange.replace(/\.$/, "").toLowerCase();
    const a = await addresses(resolver, name);
    if (a.temporary !== undefined) temporary ??= `${name}: ${a.temporary}`;
    if (a.addresses.length > 0) hosts.push({ name, preference: r.priority, addresses: a.addresses, secure: a.secure });
  }
  if (hosts.length === 0) {
    if (temporary !== undefined) return { kind: "temporary", status: "4.4.3", reason: `no address for the MX hosts of ${domain} (${temporary})` };
    return implicit
      ? { kind: "permanent", status: "5.1.2", reason: `domain ${domain} has no MX and no address` }
      : { kind: "temporary", status: "4.4.3", reason: `the MX hosts of ${domain} have no address` };
  }
  return { kind: "hosts", hosts, secure, implicit };
}
