/**
 * CAA records of a mail domain (RFC 8659): which certificate authorities
 * may issue certificates for it, hence for `mta-sts.DOMAIN` and MX hosts
 * under it unless those publish their own CAA.
 *
 * The relevant RRset is found as a CA does (RFC 8659 §3): the domain's own
 * CAA records, else its parent's, climbing towards the root (the root
 * itself is not asked), at most MAX_CLIMB names. CNAMEs are followed by the
 * resolver. What is reported: no CAA anywhere (info, with the record to
 * publish), the `issue`/`issuewild` values, records that a CA cannot read
 * (a tag that is not 1-15 letters and digits, an issuer value that is not
 * `domain[; key=value]*`, an `iodef` that is neither mailto: nor http(s):),
 * an unknown tag with the Issuer Critical flag (no CA may then issue), and
 * an `issue` set that forbids every CA. Whether the CA that signed the MX
 * or MTA-STS certificate is among those allowed is not judged: a CA's
 * issuer domain name is not written in its certificates, so only what is
 * published is shown.
 *
 * Everything is hostile: at most MAX_RECORDS records are looked at, values
 * come cut by the resolver (MAX_CAA_VALUE) and reach the report through
 * sanitize(); the parsers are splits and anchored linear expressions.
 */
import type { CaaRecord, DnsResolver } from "../dns/index.ts";
import { ask, describeFailure } from "./domain-dns.ts";
import type { Finding } from "./types.ts";

export const MAX_CLIMB = 10;
const MAX_RECORDS = 32;
const KNOWN_TAGS = ["issue", "issuewild", "iodef", "contactemail", "contactphone", "issuemail", "issuevmc"];

const f = (id: string, severity: Finding["severity"], title: string, evidence: string, fix: string): Finding => ({ id, severity, area: "domain", title, evidence, fix });

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** The issuer domain name of an issue/issuewild value (RFC 8659 §4.2): "" for none (";" or empty), undefined when malformed. */
export function caaIssuer(value: string): string | undefined {
  const semi = value.indexOf(";");
  const name = (semi < 0 ? value : value.slice(0, semi)).trim();
  if (semi >= 0) {
    for (const p of value.slice(semi + 1).split(";")) {
      const t = p.trim();
      if (t !== "" && !/^[a-z0-9]+\s*=\s*[\x21-\x3a\x3c-\x7e]*$/i.test(t)) return undefined;
    }
  }
  if (name === "") return "";
  if (name.length > 253 || !name.split(".").every((l) => LABEL.test(l))) return undefined;
  return name.toLowerCase();
}

function show(r: CaaRecord): string {
  return `${r.flags} ${r.tag} ${JSON.stringify(r.value)}`;
}

/** The names a CA asks, from DOMAIN up to its top-level label. */
function climb(domain: string): string[] {
  const labels = domain.split(".");
  const names: string[] = [];
  for (let i = 0; i < labels.length && names.length < MAX_CLIMB; i++) names.push(labels.slice(i).join("."));
  return names;
}

export async function caaFindings(resolver: DnsResolver, domain: string): Promise<Finding[]> {
  const fix = `publish ${domain}. CAA 0 issue "letsencrypt.org" (the CA, or CAs, your MX and mta-sts certificates come from) and ${domain}. CAA 0 iodef "mailto:security@${domain}"`;
  let owner: string | undefined;
  let records: CaaRecord[] = [];
  for (const name of climb(domain)) {
    const answer = await ask(resolver, name, "CAA");
    if (answer.ok) {
      owner = name;
      records = (answer.records as CaaRecord[]).slice(0, MAX_RECORDS);
      break;
    }
    if (!answer.none) {
      return [f("caa.error", "low", `the CAA lookup of ${name} fails: CAs may refuse to issue or renew certificates for ${domain}`, `${name} CAA: ${describeFailure(answer)}`, `make ${name}'s name servers answer CAA queries (an empty answer is fine)`)];
    }
  }
  if (owner === undefined) {
    return [f("caa.missing", "info", `no CAA record for ${domain} or its parents: any CA may issue certificates for it (and for mta-sts.${domain})`, `CAA: no record at ${climb(domain).join(", ")}`, fix)];
  }
  const out: Finding[] = [];
  const where = owner === domain ? domain : `${owner} (inherited by ${domain})`;
  const issue: string[] = [];
  const issuewild: string[] = [];
  let issueRecords = 0;
  for (const r of records) {
    const tag = r.tag.toLowerCase();
    if (!/^[a-z0-9]{1,15}$/.test(tag)) {
      out.push(f("caa.malformed", "low", "a CAA record has an invalid tag (RFC 8659 §4.1: 1 to 15 letters and digits)", `${owner}: ${show(r)}`, "fix or remove the record"));
      continue;
    }
    if (!KNOWN_TAGS.includes(tag)) {
      if (r.critical) out.push(f("caa.critical-unknown", "medium", `a CAA record with the Issuer Critical flag has the unknown tag ${tag}: no CA may issue certificates for ${domain} (RFC 8659 §4.1)`, `${owner}: ${show(r)}`, "remove the record, or clear its flag (0)"));
      continue;
    }
    if (tag === "issue" || tag === "issuewild") {
      const issuer = caaIssuer(r.value);
      if (issuer === undefined) {
        out.push(f("caa.malformed", "low", `a CAA ${tag} value is not an issuer domain name with optional parameters: CAs read it as forbidding issuance`, `${owner}: ${show(r)}`, `write it as ${tag} "ca.example" or ${tag} "ca.example; accounturi=..."`));
        if (tag === "issue") issueRecords++;
        continue;
      }
      if (tag === "issue") issueRecords++;
      (tag === "issue" ? issue : issuewild).push(issuer === "" ? '";" (no CA)' : issuer);
    } else if (tag === "iodef" && !/^(?:mailto:|https?:\/\/)\S+$/i.test(r.value)) {
      out.push(f("caa.malformed", "low", "a CAA iodef value is neither a mailto: nor an http(s): URL (RFC 8659 §4.4)", `${owner}: ${show(r)}`, `write it as iodef "mailto:security@${domain}"`));
    }
  }
  const allowed = issue.filter((x) => !x.startsWith('";"'));
  if (issueRecords > 0 && allowed.length === 0) {
    out.push(f("caa.issue.none", "low", `CAA at ${where} lets no CA issue certificates: the MX and mta-sts certificates cannot come from a public CA`, records.map(show).join(" | "), `${fix}, unless every certificate is your own (DANE-EE)`));
  }
  const list = (xs: string[]): string => (xs.length === 0 ? "none" : [...new Set(xs)].join(", "));
  out.push(
    f(
      "caa.present",
      "info",
      `CAA at ${where}: issue ${issueRecords === 0 ? "any CA (no issue record)" : list(issue)}; issuewild ${issuewild.length === 0 ? "as issue" : list(issuewild)}`,
      records.map(show).join(" | "),
      "make sure the CAs that issue your MX and mta-sts certificates are listed (not checked: certificates do not name the CA's CAA domain)",
    ),
  );
  return out;
}
