/**
 * `wardmail audit server HOST[:PORT]`: grades any SMTP server, and
 * `wardmail audit domain DOMAIN`: a mail domain's DNS and each of its MX
 * (see docs/audit.md). Exit codes: 0 no high or critical finding, 1 at least one,
 * 2 usage error, 3 the target is unreachable (no connection or no 220).
 */
import { lookup } from "node:dns/promises";
import { readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { auditDomain, auditServer, isSerious, toHtml, toJson, toText, UnreachableError, type Report } from "../audit/index.ts";
import { DnsError, systemNameservers, WireResolver } from "../dns/index.ts";
import type { Io } from "./main.ts";

export const AUDIT_HELP = `Usage: wardmail audit server HOST[:PORT] [options]
       wardmail audit domain DOMAIN [options]

Grades an SMTP server (any software, not only Wardmail) against the holes of
plain SMTP: STARTTLS and TLS (versions, suites, certificate, session tickets
on port 25, post-quantum key exchange), STARTTLS plaintext injection, a
transaction before EHLO, open relay (with the %, !, quoted, source-route and
IP-literal tricks), AUTH before TLS, VRFY/EXPN, the banner, SIZE,
REQUIRETLS, SMTPUTF8, and with --send-to SMTP smuggling. Polite: one
connection at a time, every probe ends with RSET/QUIT, DATA is never sent
except with --send-to, to that address only. HOST is a name or an IP
address ([IPv6]:PORT); PORT defaults to 25 (587 with --submission; 465 means
implicit TLS).

The domain audit checks MX (and null MX), each MX host's addresses, PTR and
forward-confirmed reverse DNS, DNSSEC, SPF, DMARC, DKIM, CAA, MTA-STS (the policy
fetched over HTTPS), TLS-RPT and DANE (TLSA against the certificate each MX
presents), then runs the server audit on each MX host (port 25).

Options:
  --submission      audit a submission port (465/587): AUTH and TLS are graded as for mail clients
  --implicit-tls    TLS from the first byte (the default on port 465)
  --send-to ADDR    run the smuggling check, delivering its test messages to ADDR (an address you control)
  --from ADDR       envelope sender of the probes (default <> for relay probes, ADDR of --send-to for smuggling)
  --helo NAME       our EHLO name (default wardmail-audit.invalid)
  --timeout S       seconds to wait for each reply, connect and handshake (default 10, 1-120)
  --dns HOST:PORT   ask this DNS resolver (both commands; its AD bit is believed, so use a validating one)
  --dkim-selector S domain: a DKIM selector to check (repeatable; default: a list of common ones)
  --ca-file FILE    extra trusted CAs (PEM) for the certificate checks (server, MX, MTA-STS policy host)
  --no-server       domain: skip the server audit of the MX hosts
  --dnsbl ZONE      domain: a DNS blocklist to ask about each MX address (repeatable; default:
                    zen.spamhaus.org, bl.spamcop.net, b.barracudacentral.org, psbl.surriel.com)
  --no-dnsbl        domain: ask no DNS blocklist
  --smtp-port P     domain: connect to the MX hosts on P instead of 25 (tests; TLSA is then _P._tcp)
  --mta-sts-port P  domain: fetch the MTA-STS policy from port P instead of 443 (tests)
  --json            print the report as JSON (schema in docs/audit.md)
  --html FILE       also write the report as a self-contained HTML page to FILE
Exit codes: 0 no high or critical finding, 1 at least one, 2 usage error, 3 target unreachable.
`;

/** HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; undefined when malformed. */
export function parseTarget(s: string, defaultPort: number): { host: string; port: number } | undefined {
  let host = s;
  let port = defaultPort;
  const bracket = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracket !== null) {
    host = bracket[1] as string;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
    if (isIP(host) !== 6) return undefined;
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
    if (m === null) return undefined;
    host = m[1] as string;
    if (m[2] !== undefined) port = Number(m[2]);
    if (isIP(host) === 0 && !/^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*\.?$/i.test(host)) return undefined;
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

const ADDRESS_RE = /^[^\s<>@"]{1,64}@[a-z0-9.-]{1,253}$/i;

export async function auditCommand(args: string[], io: Io, env: { isTty: boolean; stderrTty: boolean; noColor: boolean } = ttyEnv()): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      submission: { type: "boolean" },
      "implicit-tls": { type: "boolean" },
      "send-to": { type: "string" },
      from: { type: "string" },
      helo: { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean" },
      html: { type: "string" },
      dns: { type: "string" },
      "dkim-selector": { type: "string", multiple: true },
      "ca-file": { type: "string" },
      "no-server": { type: "boolean" },
      dnsbl: { type: "string", multiple: true },
      "no-dnsbl": { type: "boolean" },
      "smtp-port": { type: "string" },
      "mta-sts-port": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.out(AUDIT_HELP);
    return 0;
  }
  const [kind, targetArg, ...extra] = positionals;
  if ((kind !== "server" && kind !== "domain") || targetArg === undefined || extra.length > 0) {
    io.err(`wardmail audit: expected \`server HOST[:PORT]\` or \`domain DOMAIN\`\n\n${AUDIT_HELP}`);
    return 2;
  }
  let dns: { host: string; port: number } | undefined;
  if (values.dns !== undefined) {
    dns = parseTarget(values.dns, 53);
    if (dns === undefined || isIP(dns.host) === 0) {
      io.err(`wardmail audit: --dns takes an IP address and a port (127.0.0.1:53, [::1]:53): ${JSON.stringify(values.dns.slice(0, 100))}\n`);
      return 2;
    }
  }
  if (kind === "domain") return domainCommand(targetArg, values, dns, io, env);
  for (const name of ["dkim-selector", "no-server", "smtp-port", "mta-sts-port", "dnsbl", "no-dnsbl"] as const) {
    if (values[name] !== undefined) {
      io.err(`wardmail audit server: --${name} is an option of \`audit domain\`\n`);
      return 2;
    }
  }
  const submission = values.submission === true;
  const t = parseTarget(targetArg, submission ? 587 : 25);
  if (t === undefined) {
    io.err(`wardmail audit: not a HOST[:PORT]: ${JSON.stringify(targetArg.slice(0, 100))}\n`);
    return 2;
  }
  const timeout = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout < 1 || timeout > 120) {
    io.err("wardmail audit: --timeout takes seconds from 1 to 120\n");
    return 2;
  }
  for (const [name, v] of [["--send-to", values["send-to"]], ["--from", values.from]] as const) {
    if (v !== undefined && !ADDRESS_RE.test(v)) {
      io.err(`wardmail audit: ${name} takes an address local@domain: ${JSON.stringify(v.slice(0, 100))}\n`);
      return 2;
    }
  }
  if (values.helo !== undefined && !/^[a-z0-9.-]{1,253}$/i.test(values.helo)) {
    io.err("wardmail audit: --helo takes a host name\n");
    return 2;
  }
  const ca = await readCa(values["ca-file"], io);
  if (ca === false) return 2;
  let address = t.host;
  if (isIP(t.host) === 0) {
    try {
      address = dns !== undefined ? await resolveWith(dns, t.host, timeout * 1000) : (await lookup(t.host)).address;
    } catch (e) {
      io.err(`wardmail audit: cannot resolve ${t.host}: ${e instanceof Error ? e.message : String(e)}\n`);
      return 3;
    }
  }
  const progress = env.stderrTty ? (what: string): void => io.err(`\r\x1b[2K... ${what}`) : (): void => undefined;
  let report;
  try {
    report = await auditServer({
      host: t.host,
      address,
      port: t.port,
      submission,
      ...(values["implicit-tls"] === true ? { implicitTls: true } : {}),
      timeoutMs: timeout * 1000,
      ...(values.helo !== undefined ? { helo: values.helo } : {}),
      ...(values.from !== undefined ? { from: values.from } : {}),
      ...(values["send-to"] !== undefined ? { sendTo: values["send-to"] } : {}),
      ...(ca !== undefined ? { ca } : {}),
      progress,
    });
  } catch (e) {
    if (env.stderrTty) io.err("\r\x1b[2K");
    if (e instanceof UnreachableError) {
      io.err(`wardmail audit: unreachable: ${e.message}\n`);
      return 3;
    }
    throw e;
  }
  if (env.stderrTty) io.err("\r\x1b[2K");
  return output(report, values, io, env);
}

/** Prints the report (text or JSON), writes --html; the exit code. */
async function output(report: Report, values: { json?: boolean | undefined; html?: string | undefined }, io: Io, env: { isTty: boolean; noColor: boolean }): Promise<number> {
  io.out(values.json === true ? toJson(report) : toText(report, { colour: env.isTty && !env.noColor }));
  if (values.html !== undefined) {
    try {
      await writeFile(values.html, toHtml(report));
    } catch (e) {
      io.err(`wardmail audit: cannot write ${values.html}: ${e instanceof Error ? e.message : String(e)}\n`);
      return 3;
    }
  }
  return report.findings.some(isSerious) ? 1 : 0;
}

/** The PEM of --ca-file (undefined without it), or false after printing why it is unusable. */
async function readCa(file: string | undefined, io: Io): Promise<string | undefined | false> {
  if (file === undefined) return undefined;
  let ca: string;
  try {
    ca = await readFile(file, "utf8");
  } catch (e) {
    io.err(`wardmail audit: cannot read --ca-file: ${e instanceof Error ? e.message : String(e)}\n`);
    return false;
  }
  if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
    io.err("wardmail audit: --ca-file holds no PEM certificate\n");
    return false;
  }
  return ca;
}

function resolverFor(dns: { host: string; port: number } | undefined, timeoutMs: number): WireResolver {
  // A resolver the operator names is believed (AD bit) wherever it is; the system's only on loopback.
  return new WireResolver({
    servers: dns !== undefined ? [dns] : systemNameservers(),
    timeoutMs: Math.min(timeoutMs, 5000),
    attempts: 2,
    cacheSize: 1000,
    ...(dns !== undefined ? { trustAd: "always" as const } : {}),
  });
}

async function resolveWith(dns: { host: string; port: number }, host: string, timeoutMs: number): Promise<string> {
  const r = resolverFor(dns, timeoutMs);
  try {
    for (const type of ["A", "AAAA"] as const) {
      try {
        const a = (await r.resolve(host, type)).find((x): x is string => typeof x === "string");
        if (a !== undefined) return a;
      } catch (e) {
        if (!(e instanceof DnsError) || (e.code !== "ENODATA" && e.code !== "ENOTFOUND")) throw e;
      }
    }
    throw new Error(`no A or AAAA record for ${host}`);
  } finally {
    r.close();
  }
}

const DOMAIN_RE = /^(?=.{1,253}\.?$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?$/i;
const SELECTOR_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

type Values = {
  timeout?: string | undefined;
  helo?: string | undefined;
  json?: boolean | undefined;
  html?: string | undefined;
  "dkim-selector"?: string[] | undefined;
  "ca-file"?: string | undefined;
  "no-server"?: boolean | undefined;
  dnsbl?: string[] | undefined;
  "no-dnsbl"?: boolean | undefined;
  "smtp-port"?: string | undefined;
  "mta-sts-port"?: string | undefined;
  submission?: boolean | undefined;
  "implicit-tls"?: boolean | undefined;
  "send-to"?: string | undefined;
  from?: string | undefined;
};

async function domainCommand(domainArg: string, values: Values, dns: { host: string; port: number } | undefined, io: Io, env: { isTty: boolean; stderrTty: boolean; noColor: boolean }): Promise<number> {
  for (const name of ["submission", "implicit-tls", "send-to", "from"] as const) {
    if (values[name] !== undefined) {
      io.err(`wardmail audit domain: --${name} is an option of \`audit server\`\n`);
      return 2;
    }
  }
  if (!DOMAIN_RE.test(domainArg)) {
    io.err(`wardmail audit domain: not a domain name: ${JSON.stringify(domainArg.slice(0, 100))}\n`);
    return 2;
  }
  const timeout = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout < 1 || timeout > 120) {
    io.err("wardmail audit: --timeout takes seconds from 1 to 120\n");
    return 2;
  }
  if (values.helo !== undefined && !/^[a-z0-9.-]{1,253}$/i.test(values.helo)) {
    io.err("wardmail audit: --helo takes a host name\n");
    return 2;
  }
  const selectors = values["dkim-selector"] ?? [];
  const bad = selectors.find((s) => !SELECTOR_RE.test(s));
  if (bad !== undefined || selectors.length > 20) {
    io.err(`wardmail audit domain: --dkim-selector takes a selector (labels of letters, digits, hyphens), at most 20: ${JSON.stringify((bad ?? "").slice(0, 100))}\n`);
    return 2;
  }
  const dnsbls = values.dnsbl ?? [];
  const badZone = dnsbls.find((z) => !DOMAIN_RE.test(z));
  if (badZone !== undefined || dnsbls.length > 10 || (values["no-dnsbl"] === true && dnsbls.length > 0)) {
    io.err(`wardmail audit domain: --dnsbl takes a zone name, at most 10, and not with --no-dnsbl: ${JSON.stringify((badZone ?? "").slice(0, 100))}\n`);
    return 2;
  }
  const ports: Record<string, number | undefined> = {};
  for (const name of ["smtp-port", "mta-sts-port"] as const) {
    const v = values[name];
    if (v === undefined) continue;
    const n = Number(v);
    if (!/^\d{1,5}$/.test(v) || n < 1 || n > 65535) {
      io.err(`wardmail audit domain: --${name} takes a port 1-65535\n`);
      return 2;
    }
    ports[name] = n;
  }
  const ca = await readCa(values["ca-file"], io);
  if (ca === false) return 2;
  const resolver = resolverFor(dns, timeout * 1000);
  const progress = env.stderrTty ? (what: string): void => io.err(`\r\x1b[2K... ${what}`) : (): void => undefined;
  let report: Report;
  try {
    report = await auditDomain({
      domain: domainArg,
      resolver,
      adTrusted: resolver.adTrusted,
      dkimSelectors: selectors,
      timeoutMs: timeout * 1000,
      servers: values["no-server"] !== true,
      ...(values["no-dnsbl"] === true ? { dnsbls: [] } : dnsbls.length > 0 ? { dnsbls } : {}),
      progress,
      ...(ports["smtp-port"] !== undefined ? { smtpPort: ports["smtp-port"] } : {}),
      ...(ports["mta-sts-port"] !== undefined ? { mtaStsPort: ports["mta-sts-port"] } : {}),
      ...(ca !== undefined ? { ca } : {}),
      ...(values.helo !== undefined ? { helo: values.helo } : {}),
    });
  } catch (e) {
    if (env.stderrTty) io.err("\r\x1b[2K");
    if (e instanceof UnreachableError) {
      io.err(`wardmail audit: unreachable: ${e.message}\n`);
      return 3;
    }
    throw e;
  } finally {
    resolver.close();
  }
  if (env.stderrTty) io.err("\r\x1b[2K");
  return output(report, values, io, env);
}

function ttyEnv(): { isTty: boolean; stderrTty: boolean; noColor: boolean } {
  return { isTty: process.stdout.isTTY === true, stderrTty: process.stderr.isTTY === true, noColor: (process.env.NO_COLOR ?? "") !== "" };
}
