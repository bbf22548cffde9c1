/**
 * `wardmail domain dns D`: every DNS record the operator should publish so
 * that mail for and from D works and is trusted: MX, SPF, the DKIM key
 * records (from the stored keys), DMARC, MTA-STS (with the policy file to
 * serve over HTTPS) and TLS-RPT. Output is zone-file syntax (absolute
 * names, no TTL, long TXT values split into strings of at most 255 bytes),
 * with `;` comments explaining each record; it can be pasted into a zone.
 */
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { dkimRecords, inspectKeys, normalizeDomain, txtLine, zoneLine, type DomainKeySet } from "../dkim/index.ts";
import { mailSettings, stsOptions, stsPolicyLines, type MailSettings, type StsPolicyOptions } from "../https/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";

const EXIT_CODES = `Exit codes: 0 done, 1 answer is no (refused domain, host or address; server.hostname
is not a public name and no --mx), 2 usage error, 3 cannot read the config or the key directory.
`;

export const DOMAIN_HELP = `Usage: wardmail domain dns D [--mx HOST] [--ip ADDR]... [--config FILE]

Prints, in zone-file syntax, every DNS record to publish for domain D:
  MX        mail for D goes to HOST (default: server.hostname of the config)
  SPF       "v=spf1 mx -all", or the --ip addresses instead of mx
  DKIM      the TXT records of D's stored keys (wardmail dkim keygen --domain D)
  DMARC     p=reject with aggregate reports to postmaster@D
  MTA-STS   the _mta-sts record, and the policy file to serve at
            https://mta-sts.D/.well-known/mta-sts.txt
  TLS-RPT   TLS failure reports to tlsrpt@D
With --ip, also the A/AAAA records of HOST when it is D or below D.

Options:
  --mx HOST         the host receiving mail for D (default: server.hostname)
  --ip ADDR         an IPv4 or IPv6 address mail for D is sent from (repeatable)
  --config FILE     config whose host name and data directory to use (default: embedded defaults)
${EXIT_CODES}`;

export async function domainCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      mx: { type: "string" },
      ip: { type: "string", multiple: true },
      config: { type: "string", short: "c" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [action, domainArg, ...extra] = positionals;
  if (values.help) {
    io.out(DOMAIN_HELP);
    return 0;
  }
  if (action !== "dns") {
    io.err(`wardmail domain: ${action === undefined ? "missing action" : `unknown action '${action}'`}\n\n${DOMAIN_HELP}`);
    return 2;
  }
  if (domainArg === undefined || extra.length > 0) {
    io.err(`wardmail domain dns: expected exactly one domain\n\n${DOMAIN_HELP}`);
    return 2;
  }
  const domain = normalizeDomain(domainArg);
  if (domain === undefined) return no(io, `not a domain name: ${JSON.stringify(domainArg.slice(0, 100))}`);
  const ips = values.ip ?? [];
  const badIp = ips.find((a) => isIP(a) === 0);
  if (badIp !== undefined) return no(io, `not an IP address: ${JSON.stringify(badIp.slice(0, 100))}`);

  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  const mxArg = values.mx ?? config.server.hostname;
  const mx = normalizeDomain(mxArg);
  if (mx === undefined) {
    return no(
      io,
      values.mx !== undefined
        ? `not a host name: ${JSON.stringify(mxArg.slice(0, 100))}`
        : `server.hostname is ${JSON.stringify(mxArg)}, not a name other servers can reach: set server.hostname in the config or give --mx HOST`,
    );
  }

  let sets: DomainKeySet[];
  try {
    const inventory = await inspectKeys(config.server.dataDir);
    sets = inventory.sets.filter((s) => s.domain === domain);
    for (const p of inventory.problems) if (p.includes(`/${domain}/`) || p.includes(` of ${domain} `)) io.err(`wardmail domain dns: ${p}\n`);
  } catch (err) {
    io.err(`wardmail domain dns: cannot read the DKIM keys: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  // The policy the HTTPS listener serves (https.mta_sts_*); --mx names the one MX instead.
  const sts = { ...stsOptions(config), ...(values.mx !== undefined || config.https.mtaStsMx.length === 0 ? { mx: [mx] } : {}) };
  io.out(zoneText(domain, mx, ips, sets, new Date(), sts, mailSettings(config)));
  if (sets.length === 0) io.err(`wardmail domain dns: no DKIM keys for ${domain} yet: run wardmail dkim keygen --domain ${domain}\n`);
  return 0;
}

function no(io: Io, message: string): number {
  io.err(`wardmail domain dns: ${message}\n`);
  return 1;
}

/** YYYYMMDDhhmmss in UTC: an MTA-STS policy id that grows with every change. */
function stsId(now: Date): string {
  return now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

/** The whole zone-file text for domain D. */
export function zoneText(
  domain: string,
  mx: string,
  ips: readonly string[],
  sets: readonly DomainKeySet[],
  now: Date,
  sts: StsPolicyOptions = { mode: "enforce", mx: [mx], maxAge: 604800 },
  clients?: MailSettings,
): string {
  const out: string[] = [];
  /** A comment paragraph, wrapped at 78 columns. */
  const comment = (text: string): void => {
    let line = ";";
    for (const w of text.split(" ")) {
      if (line.length + 1 + w.length > 78 && line !== ";") {
        out.push(line);
        line = ";";
      }
      line += ` ${w}`;
    }
    out.push(line);
  };
  /** Comment lines as they are (the policy file). */
  const verbatim = (...lines: string[]): void => {
    out.push(...lines.map((l) => (l === "" ? ";" : `;   ${l}`)));
  };
  comment(`DNS records for ${domain}, in zone-file syntax: names are absolute, the zone's default TTL applies.`);
  out.push("");

  comment(`MX: mail for ${domain} is delivered to ${mx}.`);
  out.push(zoneLine(domain, "MX", `10 ${mx}.`));
  if (ips.length > 0 && (mx === domain || mx.endsWith(`.${domain}`))) {
    comment(`The address records of ${mx}.`);
    for (const ip of ips) out.push(zoneLine(mx, isIP(ip) === 6 ? "AAAA" : "A", ip));
  }
  out.push("");

  const spf = ips.length > 0 ? `v=spf1 ${ips.map((ip) => `${isIP(ip) === 6 ? "ip6" : "ip4"}:${ip}`).join(" ")} -all` : "v=spf1 mx -all";
  comment(
    `SPF: only ${ips.length > 0 ? "these addresses" : `the MX hosts of ${domain}`} may send mail as ${domain}; receivers should refuse mail from anywhere else (-all). Add any other service that sends mail for you.`,
  );
  out.push(txtLine(domain, spf));
  out.push("");

  if (sets.length === 0) {
    comment(`DKIM: no keys for ${domain} yet. Run \`wardmail dkim keygen --domain ${domain}\`, then run this command again to see the two records to add here.`);
  } else {
    comment(`DKIM: the key records of ${sets.length === 1 ? "the key set" : `the ${sets.length} key sets (newest first)`} of ${domain}, an RSA and an Ed25519 key each.`);
    for (const s of sets) {
      comment(`selector ${s.selector}, created ${s.created.toISOString()}`);
      for (const r of dkimRecords(s)) out.push(txtLine(r.name, r.value));
    }
  }
  out.push("");

  comment(
    `DMARC: receivers refuse mail whose From: is ${domain} but that passes neither SPF nor DKIM for it, and send daily reports to postmaster@${domain}. If other services send as ${domain} (newsletters, invoices, ...) or you are unsure, publish p=none first, read the reports, then move to p=quarantine and p=reject.`,
  );
  out.push(txtLine(`_dmarc.${domain}`, `v=DMARC1; p=reject; rua=mailto:postmaster@${domain}`));
  out.push("");

  comment(
    `MTA-STS (RFC 8461): senders that support it deliver to ${domain} only over TLS with a certificate valid for ${mx}. Serve this file, exactly, at https://mta-sts.${domain}/.well-known/mta-sts.txt (mta-sts.${domain} needs an address record and a certificate of its own); use mode: testing first if unsure:`,
  );
  verbatim("", ...stsPolicyLines(sts), "");
  comment("Change the id whenever the policy file changes.");
  out.push(txtLine(`_mta-sts.${domain}`, `v=STSv1; id=${stsId(now)}`));
  out.push("");

  if (clients !== undefined) {
    comment(
      `Wardmail's HTTPS listener (https.listen) serves the policy above and mail-client settings: point mta-sts.${domain}, autoconfig.${domain} (Thunderbird) and autodiscover.${domain} (Outlook) at ${mx}, and include them in its certificate (acme.domains).`,
    );
    for (const h of ["mta-sts", "autoconfig", "autodiscover"]) out.push(zoneLine(`${h}.${domain}`, "CNAME", `${mx}.`));
    comment("Mail clients (RFC 6186, RFC 8314): where to submit mail and read it.");
    for (const s of clients.smtp) out.push(zoneLine(`_${s.socketType === "SSL" ? "submissions" : "submission"}._tcp.${domain}`, "SRV", `0 1 ${s.port} ${s.host}.`));
    out.push(zoneLine(`_${clients.imap.socketType === "SSL" ? "imaps" : "imap"}._tcp.${domain}`, "SRV", `0 1 ${clients.imap.port} ${clients.imap.host}.`));
    out.push("");
  }

  comment(`TLS-RPT (RFC 8460): senders report failed TLS connections to ${domain} to this address.`);
  out.push(txtLine(`_smtp._tls.${domain}`, `v=TLSRPTv1; rua=mailto:tlsrpt@${domain}`));
  return `${out.join("\n")}\n`;
}
