/**
 * The DNS side of the domain audit: one answer type over the injected
 * resolver (records, the AD bit, or what went wrong), and the checks of the
 * MX set (MX present, null MX, each MX host's A/AAAA, PTR and
 * forward-confirmed reverse DNS of each address), of DNSSEC, and the DNSBL
 * listing of each MX address (RFC 5782; error answers such as Spamhaus's
 * "open resolver" 127.255.255.254 are reported as errors, not listings,
 * with src/policy's errorCode).
 *
 * Everything in an answer is hostile: TXT strings are joined and shown
 * through sanitize() (in finding()), lists are capped (MAX_MX hosts,
 * MAX_ADDRESSES per host, MAX_PTR names), and every query goes through the
 * resolver's own timeout and attempts.
 */
import { isIP } from "node:net";
import { DnsError, type DnsResolver, type MxRecord, type RRType } from "../dns/index.ts";
import { errorCode, reversedName } from "../policy/index.ts";
import type { Finding } from "./types.ts";

export const MAX_MX = 8;
export const MAX_ADDRESSES = 4;
const MAX_PTR = 4;

export type Answer =
  | { readonly ok: true; readonly records: unknown[]; readonly ad: boolean }
  /** none: NXDOMAIN or NODATA (ad: the denial was validated); error: no usable answer (code). */
  | { readonly ok: false; readonly none: boolean; readonly code: string; readonly ad: boolean };

export async function ask(resolver: DnsResolver, name: string, type: RRType): Promise<Answer> {
  try {
    const a = await resolver.query(name, type);
    if (a.records.length === 0) return { ok: false, none: true, code: "ENODATA", ad: a.authenticated };
    return { ok: true, records: a.records, ad: a.authenticated };
  } catch (e) {
    if (!(e instanceof DnsError)) throw e;
    const none = e.code === "ENOTFOUND" || e.code === "ENODATA";
    return { ok: false, none, code: e.code, ad: e.authenticated };
  }
}

/** TXT records as strings (each record's character-strings joined, RFC 7208 §3.3), at most 20. */
export async function txt(resolver: DnsResolver, name: string): Promise<{ answer: Answer; texts: string[] }> {
  const answer = await ask(resolver, name, "TXT");
  if (!answer.ok) return { answer, texts: [] };
  const texts = answer.records.slice(0, 20).map((r) => (Array.isArray(r) ? r.map(String).join("") : String(r)));
  return { answer, texts };
}

export function describeFailure(a: Answer): string {
  if (a.ok) return "answered";
  if (a.code === "ENOTFOUND") return "NXDOMAIN";
  if (a.code === "ENODATA") return "no record";
  return `DNS error ${a.code}`;
}

export interface MxHost {
  readonly name: string;
  readonly priority: number;
  readonly addresses: readonly string[];
  /** The MX RRset and this host's address RRsets were all validated (DNSSEC). */
  readonly secure: boolean;
}

export interface MxSurvey {
  /** "mx": MX records; "implicit": no MX, the domain's own address (RFC 5321 §5.1); "null": null MX (RFC 7505); "none". */
  readonly kind: "mx" | "implicit" | "null" | "none";
  readonly hosts: readonly MxHost[];
  readonly findings: Finding[];
  readonly mxAd: boolean;
}

function isMx(r: unknown): r is MxRecord {
  return r !== null && typeof r === "object" && typeof (r as MxRecord).exchange === "string" && typeof (r as MxRecord).priority === "number";
}

async function addressesOf(resolver: DnsResolver, host: string): Promise<{ v4: Answer; v6: Answer; addresses: string[]; secure: boolean }> {
  const [v4, v6] = await Promise.all([ask(resolver, host, "A"), ask(resolver, host, "AAAA")]);
  const addresses = [...(v4.ok ? v4.records : []), ...(v6.ok ? v6.records : [])].filter((a): a is string => typeof a === "string" && isIP(a) !== 0);
  // Secure when every answer that exists was validated (a validated denial counts as well).
  const secure = (v4.ok || v6.ok) && [v4, v6].every((a) => a.ad);
  return { v4, v6, addresses: addresses.slice(0, MAX_ADDRESSES), secure };
}

const dn = (s: string): string => s.replace(/\.$/, "").toLowerCase();

/** MX, null MX, implicit MX, and the addresses of each MX host. */
export async function surveyMx(resolver: DnsResolver, domain: string): Promise<MxSurvey> {
  const findings: Finding[] = [];
  const mx = await ask(resolver, domain, "MX");
  // No answer at all, or a domain that does not exist: nothing to audit (the caller reports it unreachable).
  if (!mx.ok && (!mx.none || mx.code === "ENOTFOUND")) throw new DnsError(mx.code, domain, "MX");
  const records = mx.ok ? mx.records.filter(isMx) : [];
  if (records.length === 1 && records[0]?.exchange.replace(/\.$/, "") === "") {
    findings.push({
      id: "mx.null",
      severity: "info",
      area: "domain",
      title: "null MX: the domain announces that it receives no mail (RFC 7505)",
      evidence: `${domain} MX 0 .`,
      fix: "nothing to do if the domain sends or receives no mail; publish v=spf1 -all and a DMARC p=reject record for it too",
    });
    return { kind: "null", hosts: [], findings, mxAd: mx.ad };
  }
  if (records.some((r) => r.exchange.replace(/\.$/, "") === "")) {
    findings.push({
      id: "mx.null-mixed",
      severity: "medium",
      area: "domain",
      title: "a null MX record next to other MX records (RFC 7505 §3 forbids it)",
      evidence: records.map((r) => `MX ${r.priority} ${r.exchange || "."}`).join(", "),
      fix: "remove the `MX 0 .` record, or every other MX record if the domain takes no mail",
    });
  }
  const sorted = records
    .filter((r) => r.exchange.replace(/\.$/, "") !== "")
    .sort((a, b) => a.priority - b.priority || a.exchange.localeCompare(b.exchange))
    .slice(0, MAX_MX);
  let kind: MxSurvey["kind"] = "mx";
  let names = sorted.map((r) => ({ name: dn(r.exchange), priority: r.priority }));
  if (names.length === 0) {
    kind = "implicit";
    names = [{ name: dn(domain), priority: 0 }];
  }
  const hosts: MxHost[] = [];
  for (const { name, priority } of names) {
    const a = await addressesOf(resolver, name);
    if (a.addresses.length === 0) {
      if (kind === "implicit") {
        findings.push({
          id: "mx.missing",
          severity: "high",
          area: "domain",
          title: "no MX record and no address: the domain cannot receive mail",
          evidence: `${domain} MX: ${describeFailure(mx)}; A: ${describeFailure(a.v4)}; AAAA: ${describeFailure(a.v6)}`,
          fix: `publish \`${domain}. MX 10 mx.${domain}.\` (or \`${domain}. MX 0 .\` if it takes no mail)`,
        });
        return { kind: "none", hosts: [], findings, mxAd: mx.ad };
      }
      findings.push({
        id: "mx.unresolvable",
        severity: "high",
        area: "domain",
        title: `MX host ${name} has no address: mail for this MX cannot be delivered`,
        evidence: `${name} A: ${describeFailure(a.v4)}; AAAA: ${describeFailure(a.v6)}`,
        fix: `publish an A (and AAAA) record for ${name}, or remove that MX record`,
      });
      continue;
    }
    hosts.push({ name, priority, addresses: a.addresses, secure: mx.ad && a.secure });
    if (!a.v6.ok) {
      findings.push({
        id: "mx.ipv6",
        severity: "info",
        area: "domain",
        title: `MX host ${name} has no IPv6 address`,
        evidence: `${name} AAAA: ${describeFailure(a.v6)}`,
        fix: `publish an AAAA record for ${name} if the host has IPv6`,
      });
    }
  }
  if (kind === "implicit") {
    findings.push({
      id: "mx.missing",
      severity: "medium",
      area: "domain",
      title: "no MX record: senders fall back to the domain's own address (implicit MX)",
      evidence: `${domain} MX: ${describeFailure(mx)}; A/AAAA: ${hosts[0]?.addresses.join(", ") ?? ""}`,
      fix: `publish \`${domain}. MX 10 ${domain}.\` explicitly (or \`MX 0 .\` if it takes no mail)`,
    });
  } else if (hosts.length === 0) {
    findings.push({
      id: "mx.none-usable",
      severity: "critical",
      area: "domain",
      title: "no MX host resolves: the domain cannot receive mail",
      evidence: sorted.map((r) => r.exchange).join(", "),
      fix: "publish addresses for the MX hosts",
    });
  }
  return { kind, hosts, findings, mxAd: mx.ad };
}

/** The PTR name of an address (in-addr.arpa / ip6.arpa). */
export function reverseName(address: string): string {
  return reversedName(address, isIP(address) === 4 ? "in-addr.arpa" : "ip6.arpa") ?? address;
}

/** PTR and forward-confirmed reverse DNS (RFC 8601 §3 "iprev") of each MX address. */
export async function ptrFindings(resolver: DnsResolver, hosts: readonly MxHost[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const h of hosts) {
    for (const address of h.addresses) {
      if (address.includes(".") && address.includes(":")) continue;
      const ptr = await ask(resolver, reverseName(address), "PTR");
      if (!ptr.ok) {
        findings.push({
          id: "mx.ptr.missing",
          severity: "medium",
          area: "domain",
          title: `MX address ${address} (${h.name}) has no PTR record: many receivers distrust mail from it`,
          evidence: `${reverseName(address)} PTR: ${describeFailure(ptr)}`,
          fix: `ask the owner of ${address} (your hosting provider) for the PTR record ${reverseName(address)}. PTR ${h.name}.`,
        });
        continue;
      }
      const names = ptr.records.filter((r): r is string => typeof r === "string").slice(0, MAX_PTR).map(dn);
      let confirmed: string | undefined;
      for (const n of names) {
        const back = await addressesOf(resolver, n);
        if (back.addresses.some((a) => a.toLowerCase() === address.toLowerCase())) {
          confirmed = n;
          break;
        }
      }
      if (confirmed === undefined) {
        findings.push({
          id: "mx.fcrdns",
          severity: "medium",
          area: "domain",
          title: `MX address ${address} (${h.name}): the PTR name does not resolve back to it (no forward-confirmed reverse DNS)`,
          evidence: `${reverseName(address)} PTR ${names.join(", ")}; none of them has ${address}`,
          fix: `set the PTR of ${address} to ${h.name}. (which has A/AAAA ${address}), or add ${address} to the name it points at`,
        });
      } else if (confirmed !== h.name) {
        findings.push({
          id: "mx.ptr.name",
          severity: "info",
          area: "domain",
          title: `MX address ${address}: reverse DNS is ${confirmed}, not the MX name ${h.name}`,
          evidence: `${reverseName(address)} PTR ${names.join(", ")}`,
          fix: `nothing required; the host should greet with ${confirmed} (its EHLO name should match the PTR)`,
        });
      }
    }
  }
  return findings;
}

/** DNSSEC of the domain and of its MX hosts (needs a resolver whose AD bit is believed). */
export async function dnssecFindings(resolver: DnsResolver, domain: string, mx: MxSurvey): Promise<Finding[]> {
  const soa = await ask(resolver, domain, "SOA");
  const signed = mx.mxAd || soa.ad;
  const findings: Finding[] = [];
  if (!signed) {
    findings.push({
      id: "dnssec.unsigned",
      severity: "medium",
      area: "domain",
      title: "the domain is not signed with DNSSEC (or its signatures do not validate): its MX, TLSA and policy records can be forged",
      evidence: `${domain} MX and SOA answered without the AD bit by the validating resolver`,
      fix: "sign the zone (most DNS hosts offer it) and publish its DS record at the registrar",
    });
    return findings;
  }
  for (const h of mx.hosts) {
    if (!h.secure) {
      findings.push({
        id: "dnssec.mx-unsigned",
        severity: "low",
        area: "domain",
        title: `MX host ${h.name} is in an unsigned zone: DANE cannot apply to it`,
        evidence: `${h.name} A/AAAA answered without the AD bit`,
        fix: `sign the zone of ${h.name} (DNSSEC) to enable DANE for it`,
      });
    }
  }
  return findings;
}

/** Lists asked by default (--dnsbl replaces them): widely used, free for low-volume queries. */
export const DEFAULT_DNSBLS: readonly string[] = ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "psbl.surriel.com"];

/** Each MX address under each DNSBL zone: listed (high), error answers and failed lookups (info). */
export async function dnsblFindings(resolver: DnsResolver, hosts: readonly MxHost[], zones: readonly string[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const h of hosts) {
    for (const address of h.addresses) {
      for (const zone of zones) {
        const name = reversedName(address, zone);
        if (name === undefined) continue;
        const a = await ask(resolver, name, "A");
        if (!a.ok) {
          if (!a.none) findings.push({ id: "dnsbl.error", severity: "info", area: "domain", title: `DNSBL ${zone} could not be asked about ${address}`, evidence: `${name} A: ${describeFailure(a)}`, fix: "nothing to do; rerun with a resolver the list answers (--dns)" });
          continue;
        }
        const answers = a.records.filter((x): x is string => typeof x === "string").slice(0, 8);
        const errors = answers.map((x) => errorCode(x)).filter((x): x is string => x !== undefined);
        if (errors.length > 0) {
          findings.push({ id: "dnsbl.error", severity: "info", area: "domain", title: `DNSBL ${zone} answered with an error code for ${address}, not a listing`, evidence: `${name} A ${answers.join(", ")}: ${errors[0] ?? ""}`, fix: "nothing to do; ask the list through your own resolver (--dns), not a public one" });
          continue;
        }
        findings.push({
          id: "dnsbl.listed",
          severity: "high",
          area: "domain",
          title: `MX address ${address} (${h.name}) is listed by ${zone}: mail it sends is refused by many receivers`,
          evidence: `${name} A ${answers.join(", ")}`,
          fix: `find out why (an open relay, a compromised account, a shared address) and request removal from ${zone}`,
        });
      }
    }
  }
  return findings;
}
