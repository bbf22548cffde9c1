/**
 * The sender-authentication records of a domain: SPF (RFC 7208: one
 * record, its syntax and the 10-lookup and 2-void-lookup limits as
 * mailauth's evaluator counts them in strict mode, `+all`/`?all`, missing
 * `all`, overly broad ranges, includes that have no SPF record), DMARC
 * (RFC 7489 and RFC 9989: one record, p/sp/np, psd, pct, t=y, rua/ruf and the
 * external-destination authorisation of §7.1), and DKIM keys (RFC 6376
 * §3.6.1, RFC 8463: type, size, revoked, t=y) for the selectors given and a
 * short list of common ones.
 *
 * SPF is evaluated by mailauth through the injected resolver, for a
 * documentation address (192.0.2.1, RFC 5737) that no record should name,
 * so that every mechanism is looked at.
 */
import { createPublicKey } from "node:crypto";
import { spf } from "mailauth";
import { mailauthResolver, type DnsResolver } from "../dns/index.ts";
import { registrableDomain } from "../mailauth/index.ts";
import { describeFailure, txt } from "./domain-dns.ts";
import type { Finding } from "./types.ts";

const PROBE_IP = "192.0.2.1";
const MAX_INCLUDES = 10;
const SPF_TIME_MS = 20_000;

const f = (id: string, severity: Finding["severity"], title: string, evidence: string, fix: string): Finding => ({ id, severity, area: "domain", title, evidence, fix });

// --------------------------------------------------------------------- SPF

export async function spfFindings(resolver: DnsResolver, domain: string, opts: { nullMx: boolean }): Promise<Finding[]> {
  const { answer, texts } = await txt(resolver, domain);
  const records = texts.filter((t) => /^v=spf1(?:\s|$)/i.test(t));
  const fixRecord = opts.nullMx ? `${domain}. TXT "v=spf1 -all"` : `${domain}. TXT "v=spf1 mx -all"`;
  if (records.length === 0) {
    return [f("spf.missing", "high", "no SPF record: anyone can send mail as this domain without a failing SPF check", `${domain} TXT: ${answer.ok ? texts.map((t) => JSON.stringify(t)).join(", ") || "no record" : describeFailure(answer)}`, `publish ${fixRecord} (list every host that sends for the domain)`)];
  }
  if (records.length > 1) {
    return [f("spf.multiple", "high", "more than one SPF record: every SPF check of this domain is a permerror (RFC 7208 §4.5)", records.map((r) => JSON.stringify(r)).join(" | "), "merge them into one v=spf1 record")];
  }
  const record = records[0] as string;
  const out: Finding[] = [];
  const terms = record.split(/\s+/).slice(1).filter((t) => t !== "");
  const all = terms.find((t) => /^[+?~-]?all$/i.test(t));
  const redirect = terms.find((t) => /^redirect=/i.test(t));
  if (all !== undefined && /^\+?all$/i.test(all)) {
    out.push(f("spf.all.pass", "critical", "SPF ends in +all: every host on the Internet may send as this domain", record, `end the record with -all (or ~all): ${fixRecord}`));
  } else if (all !== undefined && /^\?all$/i.test(all)) {
    out.push(f("spf.all.neutral", "medium", "SPF ends in ?all: mail from any host is neutral, SPF protects nothing", record, "end the record with -all (or ~all)"));
  } else if (all === undefined && redirect === undefined) {
    out.push(f("spf.all.missing", "medium", "SPF has no `all` term: hosts not listed get neutral, SPF protects nothing", record, "end the record with -all (or ~all)"));
  } else if (all !== undefined && /^~all$/i.test(all)) {
    out.push(f("spf.all.softfail", "info", "SPF ends in ~all (softfail): fine with a DMARC policy that rejects; -all is stricter", record, "nothing to do with DMARC p=reject/quarantine; otherwise consider -all"));
  }
  for (const t of terms) {
    const m = /^[+?~-]?ip([46]):([^/]+)(?:\/(\d+))?$/i.exec(t);
    if (m === null) continue;
    const prefix = m[3] === undefined ? (m[1] === "4" ? 32 : 128) : Number(m[3]);
    if ((m[1] === "4" && prefix < 16) || (m[1] === "6" && prefix < 32)) {
      if (!/^[?~-]/.test(t)) out.push(f("spf.broad", prefix < 8 || (m[1] === "6" && prefix < 16) ? "critical" : "high", `SPF authorises a very broad range (${t})`, record, `list only the addresses that send mail for ${domain} (a /24 or smaller, or single hosts)`));
    }
  }
  // Includes that point nowhere (no macros: those depend on the sender).
  const includes = terms.map((t) => /^[+?~-]?include:([^%\s]+)$/i.exec(t)?.[1]).filter((x): x is string => x !== undefined).slice(0, MAX_INCLUDES);
  for (const inc of includes) {
    const r = await txt(resolver, inc.replace(/\.$/, ""));
    const spfs = r.texts.filter((t) => /^v=spf1(?:\s|$)/i.test(t));
    if (spfs.length !== 1) {
      out.push(f("spf.include.fail", "high", `SPF include:${inc} has ${spfs.length === 0 ? "no" : "more than one"} SPF record: every SPF check of this domain ends in an error`, `${inc} TXT: ${r.answer.ok ? r.texts.map((t) => JSON.stringify(t)).join(", ") : describeFailure(r.answer)}`, `remove include:${inc} or fix that domain's SPF record`));
    }
  }
  // The evaluation as a receiver does it: limits, syntax, void lookups.
  const res = await spf({ sender: `postmaster@${domain}`, ip: PROBE_IP, helo: domain, mta: "wardmail-audit", resolver: mailauthResolver(resolver), strict: true, maxElapsedTime: SPF_TIME_MS });
  const result = res.status.result;
  const comment = typeof res.status.comment === "string" ? res.status.comment : "";
  const lookups = (res as { lookups?: { count?: number; void?: number } }).lookups;
  const count = lookups?.count ?? 0;
  if (result === "permerror" && !out.some((x) => x.id === "spf.include.fail")) {
    const tooMany = /lookup|limit/i.test(comment) && !/void/i.test(comment);
    out.push(
      tooMany
        ? f("spf.lookups", "high", "SPF needs more than 10 DNS lookups: receivers stop with a permerror (RFC 7208 §4.6.4)", `${record} (${comment})`, "flatten includes into ip4:/ip6: ranges, or drop mechanisms (a, mx, ptr, exists, include, redirect each cost a lookup)")
        : /void/i.test(comment)
          ? f("spf.void", "high", "SPF makes more than 2 lookups that find nothing: receivers stop with a permerror (RFC 7208 §4.6.4)", `${record} (${comment})`, "remove the mechanisms naming hosts or domains that do not exist")
          : f("spf.syntax", "high", "the SPF record is invalid: receivers stop with a permerror", `${record} (${comment})`, "fix the record's syntax (RFC 7208 §12)"),
    );
  } else if (result === "temperror") {
    out.push(f("spf.temperror", "medium", "SPF evaluation ended in a temporary error (DNS)", `${record} (${comment})`, "check the DNS of the domains the record includes"));
  } else if (count >= 8 && result !== "permerror") {
    out.push(f("spf.lookups", "low", `SPF needs ${count} of the 10 DNS lookups allowed`, record, "flatten includes before one more lookup breaks every SPF check"));
  }
  if ((lookups?.void ?? 0) > 0 && result !== "permerror") {
    out.push(f("spf.void", "low", `SPF makes ${lookups?.void} lookup(s) that find nothing (more than 2 is a permerror)`, record, "remove the mechanisms naming hosts or domains that do not exist"));
  }
  if (out.length === 0 || out.every((x) => x.severity === "info")) out.push(f("spf.ok", "info", `SPF record found (${count} DNS lookups)`, record, "nothing to do"));
  return out;
}

// ------------------------------------------------------------------- DMARC

/** Tag=value list (RFC 7489 §6.4); undefined when malformed. Duplicate tags: the first wins. */
export function parseTags(s: string): Map<string, string> | undefined {
  const tags = new Map<string, string>();
  for (const part of s.split(";")) {
    const p = part.trim();
    if (p === "") continue;
    const m = /^([a-z][a-z0-9_]*)\s*=\s*(.*)$/i.exec(p);
    if (m === null) return undefined;
    const k = (m[1] as string).toLowerCase();
    if (!tags.has(k)) tags.set(k, (m[2] as string).trim());
  }
  return tags;
}

const POLICIES = ["none", "quarantine", "reject"];

export async function dmarcFindings(resolver: DnsResolver, domain: string): Promise<Finding[]> {
  const name = `_dmarc.${domain}`;
  const { answer, texts } = await txt(resolver, name);
  const records = texts.filter((t) => /^v\s*=\s*DMARC1\s*(;|$)/i.test(t));
  const fix = `publish _dmarc.${domain}. TXT "v=DMARC1; p=reject; rua=mailto:dmarc-reports@${domain}"`;
  if (records.length === 0) {
    const org = registrableDomain(domain);
    const note = org !== null && org !== domain ? ` (receivers then use the record of ${org}, if any)` : "";
    return [f("dmarc.missing", "high", `no DMARC record: receivers have no policy for mail that fails SPF and DKIM${note}`, `${name} TXT: ${describeFailure(answer)}`, fix)];
  }
  if (records.length > 1) return [f("dmarc.multiple", "high", "more than one DMARC record: receivers ignore them all (RFC 7489 §6.6.3)", records.join(" | "), "keep one record")];
  const record = records[0] as string;
  const tags = parseTags(record);
  if (tags === undefined) return [f("dmarc.syntax", "high", "the DMARC record is not a tag=value list: receivers ignore it", record, fix)];
  const out: Finding[] = [];
  const p = tags.get("p")?.toLowerCase();
  if (p === undefined || !POLICIES.includes(p)) {
    out.push(f("dmarc.syntax", "high", `the DMARC record has ${p === undefined ? "no" : "an invalid"} p= policy`, record, fix));
  } else if (p === "none") {
    out.push(f("dmarc.policy.none", "medium", "DMARC p=none: mail failing SPF and DKIM is delivered anyway (monitoring only)", record, "once the reports show your own mail passes, move to p=quarantine, then p=reject"));
  }
  const sp = tags.get("sp")?.toLowerCase();
  if (sp === "none" && p !== "none") out.push(f("dmarc.sp.none", "low", "DMARC sp=none: subdomains can be forged freely", record, "drop sp= (subdomains inherit p=) or set sp=reject"));
  const np = tags.get("np")?.toLowerCase();
  if (np === "none" && p !== "none") out.push(f("dmarc.np.none", "low", "DMARC np=none: names that do not exist under the domain can be forged freely (RFC 9989)", record, "drop np= or set np=reject"));
  const psd = tags.get("psd");
  if (psd !== undefined) {
    const v = psd.toLowerCase();
    if (v !== "y" && v !== "n" && v !== "u") {
      out.push(f("dmarc.psd.invalid", "low", `DMARC psd=${psd}: not y, n or u (RFC 9989), receivers read it as u`, record, "drop psd= (only public suffix operators set psd=y)"));
    } else if (v === "y" && registrableDomain(domain) !== null) {
      // A public suffix has no registrable domain by the PSL; anything else is a registrable domain or under one.
      out.push(f("dmarc.psd.non-psd", "medium", `psd=y on a non-PSD domain: ${domain} is not a public suffix (Public Suffix List), yet receivers' tree walk now takes each name under it for its own organisation, so relaxed alignment with its subdomains fails (RFC 9989)`, record, "remove psd=y (psd=n says the domain is an organisation's own)"));
    }
  }
  const pct = tags.get("pct");
  if (pct !== undefined && pct !== "100" && p !== "none") {
    out.push(f("dmarc.pct", "medium", `DMARC pct=${pct}: the policy applies to only part of the failing mail`, record, "remove pct= (100 is the default); RFC 9989 drops pct for t=y"));
  }
  if (tags.get("t")?.toLowerCase() === "y" && p !== "none") out.push(f("dmarc.testing", "medium", "DMARC t=y (testing, RFC 9989): receivers apply one step less than the policy", record, "remove t=y once the reports are clean"));
  const rua = tags.get("rua");
  if (rua === undefined || rua === "") {
    out.push(f("dmarc.rua.missing", "low", "DMARC has no rua=: you get no aggregate reports, so you cannot see who sends as your domain", record, `add rua=mailto:dmarc-reports@${domain}`));
  }
  const orgOf = (d: string): string => registrableDomain(d) ?? d;
  for (const [tag, value] of [["rua", rua], ["ruf", tags.get("ruf")]] as const) {
    if (value === undefined || value === "") continue;
    for (const uri of value.split(",").slice(0, 5)) {
      const m = /^\s*mailto:[^@\s]+@([a-z0-9.-]+?)\.?(?:!\d+[kmgt]?)?\s*$/i.exec(uri);
      if (m === null) {
        out.push(f(`dmarc.${tag}.invalid`, "low", `DMARC ${tag}= holds a URI receivers cannot use`, uri.trim(), `use ${tag}=mailto:ADDRESS`));
        continue;
      }
      const dest = (m[1] as string).toLowerCase();
      if (orgOf(dest) === orgOf(domain)) continue;
      // RFC 7489 §7.1: DOMAIN._report._dmarc.DEST must say v=DMARC1.
      const auth = `${domain}._report._dmarc.${dest}`;
      const r = await txt(resolver, auth);
      if (!r.texts.some((t) => /^v\s*=\s*DMARC1\s*(;|$)/i.test(t))) {
        out.push(f(`dmarc.${tag}.unauthorized`, "medium", `DMARC ${tag}= sends reports to ${dest}, which has not authorised it: receivers send none (RFC 7489 §7.1)`, `${uri.trim()}; ${auth} TXT: ${r.answer.ok ? r.texts.join(" | ") : describeFailure(r.answer)}`, `have ${dest} publish ${auth}. TXT "v=DMARC1"`));
      }
    }
  }
  if (tags.has("ruf")) out.push(f("dmarc.ruf", "info", "DMARC ruf= asks for failure reports: few receivers send them, and they hold message content", record, "nothing required"));
  if (out.every((x) => x.severity === "info")) out.push(f("dmarc.ok", "info", `DMARC policy ${p ?? ""}`, record, "nothing to do"));
  return out;
}

// -------------------------------------------------------------------- DKIM

/** Selectors looked up when none is given: common ones, and Wardmail's (`wardmail dkim keygen`) of this month and the last. */
export function commonSelectors(now: Date): string[] {
  const ym = (d: Date): string => `wm${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
  const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  const wm = [ym(now), ym(last)].flatMap((s) => [`${s}-rsa`, `${s}-ed25519`]);
  return ["default", "dkim", "mail", "s1", "s2", "selector1", "selector2", "google", "k1", "k2", ...wm];
}

function keyFindings(selector: string, domain: string, record: string): Finding[] {
  const name = `${selector}._domainkey.${domain}`;
  const tags = parseTags(record);
  if (tags === undefined || (tags.has("v") && tags.get("v") !== "DKIM1")) return [f("dkim.syntax", "high", `DKIM key ${name} is malformed: signatures with it fail`, record, "publish the record your signer prints (v=DKIM1; k=...; p=...)")];
  const k = (tags.get("k") ?? "rsa").toLowerCase();
  const p = (tags.get("p") ?? "").replace(/\s+/g, "");
  if (!tags.has("p")) return [f("dkim.syntax", "high", `DKIM key ${name} has no p= tag`, record, "publish the record your signer prints")];
  if (p === "") return [f("dkim.revoked", "info", `DKIM selector ${selector} is revoked (empty p=)`, record, "nothing to do if the selector is retired")];
  const out: Finding[] = [];
  let size = 0;
  try {
    const key = createPublicKey({ key: Buffer.from(p, "base64"), format: "der", type: "spki" });
    if (k === "ed25519" || key.asymmetricKeyType === "ed25519") size = 256;
    else size = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (k === "rsa" && key.asymmetricKeyType !== "rsa") throw new Error("k=rsa but not an RSA key");
  } catch (e) {
    if (k === "ed25519" && Buffer.from(p, "base64").length === 32) size = 256;
    else return [f("dkim.syntax", "high", `DKIM key ${name} does not decode (${e instanceof Error ? e.message : String(e)})`, record.slice(0, 200), "publish the record your signer prints")];
  }
  if (k === "rsa" && size < 1024) out.push(f("dkim.key-size", "high", `DKIM key ${selector} is RSA ${size} bits: receivers ignore it (RFC 8301 needs 1024, 2048 recommended)`, `${name}: k=rsa, ${size} bits`, "generate a 2048-bit RSA key (`wardmail dkim keygen`)"));
  else if (k === "rsa" && size < 2048) out.push(f("dkim.key-size", "medium", `DKIM key ${selector} is RSA ${size} bits: weak, 2048 recommended (RFC 8301)`, `${name}: k=rsa, ${size} bits`, "generate a 2048-bit RSA key (`wardmail dkim keygen`)"));
  if (/(^|:)y(:|$)/i.test(tags.get("t") ?? "")) out.push(f("dkim.testing", "low", `DKIM key ${selector} has t=y: receivers may treat its signatures as unsigned`, record.slice(0, 200), "remove t=y from the record"));
  if (out.length === 0) out.push(f("dkim.key", "info", `DKIM key ${selector}: ${k}${k === "rsa" ? ` ${size} bits` : ""}`, `${name}`, "nothing to do"));
  return out;
}

export async function dkimFindings(resolver: DnsResolver, domain: string, given: readonly string[], now: Date): Promise<Finding[]> {
  const out: Finding[] = [];
  const tried = given.length > 0 ? given : commonSelectors(now);
  let found = 0;
  for (const selector of tried) {
    const name = `${selector}._domainkey.${domain}`;
    const { answer, texts } = await txt(resolver, name);
    const records = texts.filter((t) => /(^|;)\s*p\s*=/i.test(t) || /^v=DKIM1/i.test(t));
    if (records.length === 0) {
      if (given.length > 0) out.push(f("dkim.selector.missing", "high", `no DKIM key for selector ${selector}: mail signed with it fails DKIM`, `${name} TXT: ${describeFailure(answer)}`, "publish the key record your signer prints (`wardmail dkim keygen` prints it)"));
      continue;
    }
    found++;
    out.push(...keyFindings(selector, domain, records[0] as string));
  }
  if (found === 0 && given.length === 0) {
    out.push(f("dkim.none-found", "medium", "no DKIM key under the common selectors (give yours with --dkim-selector)", `tried ${tried.join(", ")}`, "sign outgoing mail with DKIM and publish the key (`wardmail dkim keygen`); or rerun with --dkim-selector S"));
  }
  return out;
}
