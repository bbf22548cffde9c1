/**
 * The transport-security records of a domain: MTA-STS (RFC 8461: the
 * `_mta-sts` TXT record, the policy fetched over HTTPS from
 * mta-sts.DOMAIN with the certificate verified, size and time bounded by
 * src/outbound's fetchStsPolicy; its mode, max_age and the mx patterns
 * against every MX), TLS-RPT (RFC 8460: `_smtp._tls` with rua), and DANE
 * (RFC 7672: TLSA `_PORT._tcp.MX` under DNSSEC, matched against the
 * certificate chain the MX presents after STARTTLS, with src/outbound's
 * verifyDane; a single record gets the advice to publish a rollover
 * record). The STARTTLS connection for DANE also checks the certificate as
 * an MTA-STS sender would (PKIX chain and name, checkCertificate).
 */
import { rootCertificates, type TLSSocket } from "node:tls";
import type { DnsResolver } from "../dns/index.ts";
import { checkCertificate, fetchStsPolicy, mxMatches, parseStsPolicy, parseStsRecord, parseTlsRptRecord, tlsaFor, verifyDane, type MtaStsPolicy } from "../outbound/index.ts";
import { ask, describeFailure, txt, type MxHost } from "./domain-dns.ts";
import { openGreeted, ProbeError, type ProbeTarget } from "./probe.ts";
import type { Finding } from "./types.ts";
import { replyText } from "../protocol/index.ts";

const f = (id: string, severity: Finding["severity"], title: string, evidence: string, fix: string): Finding => ({ id, severity, area: "domain", title, evidence, fix });

export interface TransportOptions {
  /** Extra trust anchors (PEM) on top of Node's CA set, for the policy host and the MX certificates. */
  readonly ca?: string;
  /** Port of the policy host (default 443; tests). */
  readonly mtaStsPort?: number;
  /** Port of the MX hosts (default 25); also the TLSA name `_PORT._tcp`. */
  readonly smtpPort: number;
  readonly timeoutMs: number;
  readonly helo: string;
}

function trust(ca: string | undefined): string[] | undefined {
  return ca === undefined ? undefined : [...rootCertificates, ca];
}

/** The MTA-STS policy, when one is published and fetched (for the MX checks that follow). */
export async function mtaStsFindings(resolver: DnsResolver, domain: string, hosts: readonly MxHost[], o: TransportOptions): Promise<{ findings: Finding[]; policy?: MtaStsPolicy }> {
  const name = `_mta-sts.${domain}`;
  const { answer, texts } = await txt(resolver, name);
  const records = texts.filter((t) => t.startsWith("v=STSv1"));
  const publish = `publish ${name}. TXT "v=STSv1; id=${new Date().toISOString().slice(0, 10).replace(/-/g, "")}01" and serve https://mta-sts.${domain}/.well-known/mta-sts.txt (version: STSv1, mode: enforce, ${hosts.map((h) => `mx: ${h.name}`).join(", ") || "mx: MX-HOST"}, max_age: 1209600)`;
  if (records.length === 0) {
    return { findings: [f("mta-sts.missing", "medium", "no MTA-STS policy: senders cannot insist on TLS with a verified certificate to your MX, a man in the middle can strip STARTTLS", `${name} TXT: ${answer.ok ? "no v=STSv1 record" : describeFailure(answer)}`, publish)] };
  }
  if (records.length > 1) return { findings: [f("mta-sts.record", "high", "more than one v=STSv1 record: senders treat the domain as having no policy (RFC 8461 §3.1)", records.join(" | "), "keep one record")] };
  const id = parseStsRecord(records[0] as string);
  if (id === undefined) return { findings: [f("mta-sts.record", "high", "the _mta-sts TXT record is invalid: senders ignore the policy", records[0] as string, `fix the record: "v=STSv1; id=ID" (id: 1 to 32 letters and digits)`)] };
  const host = `mta-sts.${domain}`;
  const addr = await ask(resolver, host, "A");
  const addr6 = addr.ok ? addr : await ask(resolver, host, "AAAA");
  const address = addr6.ok ? addr6.records.find((a): a is string => typeof a === "string") : undefined;
  if (address === undefined) {
    return { findings: [f("mta-sts.fetch", "high", `the MTA-STS record is published but ${host} does not resolve: senders cannot fetch the policy`, `${host} A/AAAA: ${describeFailure(addr6)}`, `publish an address for ${host} and serve the policy over HTTPS there`)] };
  }
  const ca = trust(o.ca);
  const res = await fetchStsPolicy(domain, { connect: { host: address, port: o.mtaStsPort ?? 443 }, timeoutMs: o.timeoutMs, ...(ca !== undefined ? { ca } : {}) });
  if (!res.ok) {
    const title =
      res.reason === "sts-webpki-invalid"
        ? `the certificate of ${host} is not valid: senders refuse the policy`
        : res.reason === "sts-policy-invalid"
          ? "the MTA-STS policy response is invalid (media type, size or encoding)"
          : `the MTA-STS policy could not be fetched from https://${host}/.well-known/mta-sts.txt`;
    return { findings: [f(res.reason === "sts-webpki-invalid" ? "mta-sts.certificate" : "mta-sts.fetch", "high", title, `${address}: ${res.detail}`, `serve the policy as text/plain over HTTPS with a certificate for ${host} from a public CA`)] };
  }
  const parsed = parseStsPolicy(res.body);
  if (!parsed.ok) return { findings: [f("mta-sts.policy", "high", "the MTA-STS policy is invalid: senders ignore it", `${parsed.detail}: ${res.body.slice(0, 300)}`, "fix the policy (RFC 8461 §3.2): version, mode, mx and max_age lines")] };
  const policy: MtaStsPolicy = { ...parsed.policy, id };
  const out: Finding[] = [];
  const summary = `mode ${policy.mode}, mx ${policy.mx.join(" ")}, max_age ${policy.maxAge}, id ${id}`;
  if (policy.mode === "none") out.push(f("mta-sts.mode", "medium", "MTA-STS mode none: the policy is withdrawn, senders do not apply it", summary, "set mode: enforce (after a period in testing)"));
  else if (policy.mode === "testing") out.push(f("mta-sts.mode", "low", "MTA-STS mode testing: failures are only reported, mail still goes without verified TLS", summary, "set mode: enforce once TLS-RPT reports are clean"));
  if (policy.mode !== "none") {
    for (const h of hosts) {
      if (!mxMatches(policy, h.name)) {
        out.push(f("mta-sts.mx-mismatch", "high", `MX ${h.name} is not covered by the MTA-STS policy's mx patterns: ${policy.mode === "enforce" ? "senders refuse to deliver to it" : "senders report every delivery to it as failed"}`, summary, `add \`mx: ${h.name}\` to the policy (and change the id of the TXT record)`));
      }
    }
  }
  if (policy.maxAge < 86400) out.push(f("mta-sts.max-age", "low", `MTA-STS max_age ${policy.maxAge} s is short: the policy protects little between fetches (RFC 8461 §3.2 suggests weeks)`, summary, "set max_age: 1209600 (two weeks) or more"));
  if (out.length === 0) out.push(f("mta-sts.ok", "info", `MTA-STS policy: ${policy.mode}, every MX covered`, summary, "nothing to do"));
  return { findings: out, policy };
}

export async function tlsRptFindings(resolver: DnsResolver, domain: string): Promise<Finding[]> {
  const name = `_smtp._tls.${domain}`;
  const { answer, texts } = await txt(resolver, name);
  const records = texts.filter((t) => /^v=TLSRPTv1/.test(t));
  const fix = `publish ${name}. TXT "v=TLSRPTv1; rua=mailto:tls-reports@${domain}"`;
  if (records.length === 0) return [f("tlsrpt.missing", "low", "no TLS-RPT record: you get no reports when senders fail to reach you over TLS (RFC 8460)", `${name} TXT: ${answer.ok ? "no v=TLSRPTv1 record" : describeFailure(answer)}`, fix)];
  if (records.length > 1) return [f("tlsrpt.invalid", "medium", "more than one TLS-RPT record: senders use none (RFC 8460 §3)", records.join(" | "), "keep one record")];
  const r = parseTlsRptRecord(records[0] as string);
  if (r === undefined) return [f("tlsrpt.invalid", "medium", "the TLS-RPT record is invalid or has no usable rua=", records[0] as string, fix)];
  return [f("tlsrpt.ok", "info", "TLS-RPT reports requested", records[0] as string, "nothing to do")];
}

/** STARTTLS to one MX address; the socket is handed to `inspect` and then the probe ends politely. */
async function withStartTls<T>(target: ProbeTarget, ca: string[] | undefined, inspect: (s: TLSSocket) => T): Promise<T | string> {
  const { probe } = await openGreeted(target);
  try {
    const { ext } = await probe.ehlo();
    if (ext === undefined || !ext.starttls) return "no STARTTLS";
    const r = await probe.cmd("STARTTLS");
    if (r.code !== 220) return `STARTTLS refused: ${r.code} ${replyText(r)}`;
    await probe.handshake({ servername: target.host, rejectUnauthorized: false, ...(ca !== undefined ? { ca } : {}) });
    return inspect(probe.tls as TLSSocket);
  } catch (e) {
    if (e instanceof ProbeError) return e.message;
    throw e;
  } finally {
    await probe.finish(false);
  }
}

/** DANE (TLSA under DNSSEC, matched against the live chain) and, under an MTA-STS policy, the MX certificate as a sender checks it. */
export async function mxTlsFindings(resolver: DnsResolver, hosts: readonly MxHost[], policy: MtaStsPolicy | undefined, o: TransportOptions & { readonly dane: boolean }): Promise<Finding[]> {
  const out: Finding[] = [];
  const ca = trust(o.ca);
  for (const h of hosts) {
    const tlsaName = `_${o.smtpPort}._tcp.${h.name}`;
    // Without a believed AD bit nothing is known about DNSSEC: no DANE findings at all.
    const tlsa = o.dane ? await tlsaFor(resolver, h.name, h.secure, o.smtpPort) : ({ state: "insecure", detail: "AD bit not trusted" } as const);
    const wantsSts = policy !== undefined && policy.mode !== "none";
    if (tlsa.state === "insecure") {
      if (!o.dane) {
        /* DNSSEC unknown: nothing to say about TLSA */
      } else if (h.secure) {
        out.push(f("dane.missing", "low", `MX ${h.name} is DNSSEC-signed but has no TLSA record: senders cannot authenticate it with DANE`, `${tlsaName} TLSA: ${tlsa.detail}`, `publish ${tlsaName}. TLSA 3 1 1 <SHA-256 of the certificate's public key> (and a second record for the next key)`));
      } else {
        const plain = await ask(resolver, tlsaName, "TLSA");
        if (plain.ok) out.push(f("dane.insecure", "low", `MX ${h.name} publishes TLSA records in an unsigned zone: senders ignore them`, `${tlsaName}: ${plain.records.length} TLSA record(s) without DNSSEC`, `sign the zone of ${h.name} with DNSSEC`));
      }
    } else if (tlsa.state !== "secure") {
      out.push(f("dane.bogus", "high", `the TLSA lookup for MX ${h.name} fails (${tlsa.state}): DANE senders defer all mail to it`, tlsa.detail, "fix the DNSSEC signatures of the TLSA records (re-sign the zone)"));
    } else if (!tlsa.usable) {
      out.push(f("dane.unusable", "high", `MX ${h.name} has TLSA records but none usable for SMTP (only DANE-TA 2 and DANE-EE 3 count, RFC 7672 §3.1.3): DANE senders require TLS without authentication`, `${tlsaName}: ${tlsa.ignored} record(s) ignored`, `publish ${tlsaName}. TLSA 3 1 1 <SHA-256 of the certificate's public key>`));
    }
    const needConnect = (tlsa.state === "secure" && tlsa.usable) || wantsSts;
    if (!needConnect) continue;
    const address = h.addresses[0] as string;
    const target: ProbeTarget = { host: h.name, address, port: o.smtpPort, implicitTls: false, helo: o.helo, timeoutMs: o.timeoutMs };
    const seen = await withStartTls(target, ca, (s) => ({
      dane: tlsa.state === "secure" && tlsa.usable ? verifyDane(s, tlsa.records, h.name) : undefined,
      sts: wantsSts ? checkCertificate(s, h.name) : undefined,
    }));
    if (typeof seen === "string") {
      out.push(f("mx.starttls", "high", `MX ${h.name} (${address}): no TLS session to check its certificate against ${tlsa.state === "secure" ? "TLSA" : "MTA-STS"}`, seen, "offer STARTTLS with the certificate the records describe"));
      continue;
    }
    if (seen.dane !== undefined) {
      if (!seen.dane.ok) {
        out.push(f("dane.mismatch", "high", `MX ${h.name}: the certificate it presents matches no TLSA record: DANE senders defer all mail to it`, `${tlsaName} (${tlsa.state === "secure" ? tlsa.records.length : 0} usable record(s)): ${seen.dane.reason}: ${seen.dane.detail}`, `publish ${tlsaName}. TLSA 3 1 1 <SHA-256 of the SPKI of the certificate the server presents> before switching certificates`));
      } else {
        const one = tlsa.state === "secure" && tlsa.records.length === 1;
        out.push(
          one
            ? f("dane.rollover", "low", `MX ${h.name}: one TLSA record, which matches: publish a second for the next key before you change certificates`, `${tlsaName}: ${seen.dane.record.usage} ${seen.dane.record.selector} ${seen.dane.record.matchingType} matches`, `add ${tlsaName}. TLSA 3 1 1 <SHA-256 of the next key's SPKI> (or 2 1 1 of the issuing CA) so a renewal does not break delivery`)
            : f("dane.ok", "info", `MX ${h.name}: DANE TLSA matches the certificate it presents`, `${tlsaName}: ${seen.dane.record.usage} ${seen.dane.record.selector} ${seen.dane.record.matchingType} matches`, "nothing to do"),
        );
      }
    }
    if (seen.sts !== undefined && !seen.sts.ok && policy !== undefined) {
      out.push(f("mta-sts.mx-certificate", policy.mode === "enforce" ? "high" : "medium", `MX ${h.name}: its certificate fails the MTA-STS check (${seen.sts.reason}): ${policy.mode === "enforce" ? "senders refuse to deliver to it" : "senders report failures"}`, seen.sts.detail, `give ${h.name} a certificate from a public CA valid for the name ${h.name}`));
    }
  }
  return out;
}
