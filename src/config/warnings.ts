/**
 * Warnings about a valid config that is probably not what a public mail
 * server wants: `wardmail config check` prints them (exit 0, or 1 with
 * --strict) and `wardmail serve` logs them at start. Each names the key and
 * its line in the file (0 when the key is not written: then the message says
 * it is a default value and names the line of what made it matter).
 *
 * "Public" here means a listener on an address other than loopback
 * (127.0.0.0/8, ::1): a wildcard (0.0.0.0, ::) or an interface address.
 * Warnings that only matter to a public server are given only then, so the
 * loopback demo and tests stay quiet. What is clearly unsafe (trusting the
 * whole Internet as relay clients) is an error in semantic.ts, not here.
 *
 * Certificates are read (the first certificate of each chain) to warn about
 * a self-signed, expired, soon expiring or not yet valid one, or one that
 * does not name server.hostname; an unreadable file is left to the loader.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { systemNameservers } from "../dns/index.ts";
import { adTrusted, isLoopback } from "../dns/index.ts";
import type { ConfigIssue } from "./load.ts";
import type { PathSegment } from "./locate.ts";
import { formatListen } from "./syntax.ts";
import type { Config, ListenAddress } from "./types.ts";

/** Where keys are in the file. */
export interface KeyLocator {
  /** 1-based line of the key (or its nearest written parent); 0 when not in the file. */
  line(path: readonly PathSegment[]): number;
  /** Whether the operator wrote this dotted key ("server.hostname"). */
  written(dotted: string): boolean;
}

export interface WarningOptions {
  /** The resolvers used when dns.servers is empty (default: /etc/resolv.conf's). */
  readonly nameservers?: () => readonly { readonly host: string }[];
  /** Milliseconds since the epoch, for certificate dates; default Date.now(). */
  readonly now?: number;
  /** serve runs as root (uid 0): warn when server.user would keep it so. */
  readonly asRoot?: boolean;
}

/** A certificate expiring sooner than this gets a warning. */
const EXPIRY_WARNING_DAYS = 14;

/** Names that never resolve on the Internet (RFC 2606, RFC 6761, RFC 6762). */
const RESERVED_TLDS = new Set(["test", "example", "invalid", "localhost", "local"]);

/** Networks whose addresses are not publicly routed: loopback, private, shared, link-local, documentation, benchmarking, unique local. */
const NOT_PUBLIC: readonly [string, number, "ipv4" | "ipv6"][] = [
  ["127.0.0.0", 8, "ipv4"],
  ["10.0.0.0", 8, "ipv4"],
  ["172.16.0.0", 12, "ipv4"],
  ["192.168.0.0", 16, "ipv4"],
  ["100.64.0.0", 10, "ipv4"],
  ["169.254.0.0", 16, "ipv4"],
  ["192.0.2.0", 24, "ipv4"],
  ["198.51.100.0", 24, "ipv4"],
  ["203.0.113.0", 24, "ipv4"],
  ["198.18.0.0", 15, "ipv4"],
  ["::1", 128, "ipv6"],
  ["fc00::", 7, "ipv6"],
  ["fe80::", 10, "ipv6"],
  ["2001:db8::", 32, "ipv6"],
];

/** The 16 bytes of an IPv6 address (with or without "::" and a trailing dotted quad). */
function ipv6Bytes(address: string): number[] {
  let text = address;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad !== null) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const part = (x: string): number[] => (x === "" ? [] : x.split(":").map((g) => parseInt(g, 16)));
  const h = part(head);
  const t = tail === undefined ? [] : part(tail);
  const groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** "a.b.c.d/p" or "x::/p" (as normalised by the loader) → address, prefix, family; IPv4-mapped IPv6 (::ffff:0:0/96) as IPv4. */
function splitNetwork(network: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } {
  const [address = "", p = "0"] = network.split("/");
  const prefix = Number(p);
  if (net.isIPv4(address)) return { address, prefix, family: "ipv4" };
  const bytes = ipv6Bytes(address);
  if (prefix >= 96 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return { address: bytes.slice(12).join("."), prefix: prefix - 96, family: "ipv4" };
  }
  return { address, prefix, family: "ipv6" };
}

/** "IPv4" or "IPv6" when the network is all of that family's addresses (0.0.0.0/0, ::ffff:0:0/96; ::/0), else undefined. */
export function coversEverything(network: string): "IPv4" | "IPv6" | undefined {
  const { prefix, family } = splitNetwork(network);
  return prefix !== 0 ? undefined : family === "ipv4" ? "IPv4" : "IPv6";
}

/** True when the network holds an address outside the ranges that are not publicly routed. */
export function includesPublic(network: string): boolean {
  const { address, prefix, family } = splitNetwork(network);
  return !NOT_PUBLIC.some(([base, length, fam]) => {
    if (fam !== family || prefix < length) return false;
    const list = new net.BlockList();
    list.addSubnet(base, length, fam);
    return list.check(address, fam);
  });
}

const LISTENERS = ["smtp", "submission", "submissions"] as const;

export async function configWarnings(config: Config, where: KeyLocator, opts: WarningOptions = {}): Promise<ConfigIssue[]> {
  const out: ConfigIssue[] = [];
  const warn = (path: readonly PathSegment[], message: string): void => {
    const dotted = path.slice(0, 2).join(".");
    const line = where.line(path);
    out.push({ key: keyText(path), line, message: line === 0 || !where.written(dotted) ? `${message} (a default value)` : message });
  };
  const at = (section: string, index: number): string => {
    const line = where.line([section, "listen", index]);
    return `${section}.listen[${index}]${line > 0 ? ` (line ${line})` : ""}`;
  };

  const publicListeners: { section: string; index: number; addr: ListenAddress }[] = [];
  for (const section of LISTENERS) {
    config[section].listen.forEach((addr, index) => {
      if (!isLoopback(addr.host)) publicListeners.push({ section, index, addr });
    });
  }
  const first = publicListeners[0];
  if (first !== undefined) {
    const which = `${at(first.section, first.index)} listens on ${formatListen(first.addr)}`;
    const host = config.server.hostname;
    const tld = host.split(".").at(-1) ?? "";
    if (host === "localhost" || !host.includes(".") || RESERVED_TLDS.has(tld)) {
      warn(["server", "hostname"], `"${host}" is not this host's public name, but ${which}; expected the fully qualified name that the host's address resolves to and back (its A/AAAA and PTR records), which other servers see in the greeting and check`);
    }
    if (!where.written("server.data_dir")) {
      warn(["server", "data_dir"], `not set: $WARDMAIL_HOME or ./var in the directory serve starts in (${config.server.dataDir} here), but ${which}; expected an absolute path such as /var/lib/wardmail`);
    }
    if (config.tls.certificates.length === 0 && config.acme.directory === "") {
      warn(["tls", "certificates"], `no certificate: the self-signed one in ${config.server.dataDir}/tls is used, but ${which}; mail clients refuse it on submission, and senders that enforce MTA-STS or DANE do not deliver to it; expected a certificate for ${host} from a CA (e.g. Let's Encrypt)`);
    }
    if (!where.written("local.domains")) {
      warn(["local", "domains"], `${config.local.domains.join(", ")} are the demo domains, but ${which}; expected the domains this server receives mail for`);
    }
    const servers = config.dns.servers.length > 0 ? config.dns.servers : (opts.nameservers ?? systemNameservers)();
    if (!adTrusted(servers, config.dns.trustAd)) {
      const list = servers.map((s) => s.host).join(", ") || "none";
      if (config.dns.trustAd === "never") {
        warn(["dns", "trust_ad"], `"never": DANE is off for outbound mail; expected "loopback" with a validating resolver (Unbound, Knot Resolver) on this host`);
      } else {
        warn(["dns", "servers"], `not every DNS server is on loopback (${list}${config.dns.servers.length > 0 ? "" : ", from /etc/resolv.conf"}), so their AD bit is not believed and DANE is off for outbound mail; expected a validating resolver on this host (e.g. Unbound on 127.0.0.1), with dns.servers = ["127.0.0.1"]`);
      }
    }
  }
  config.smtp.listen.forEach((addr, index) => {
    if (!isLoopback(addr.host) && addr.port !== 25) {
      warn(["smtp", "listen", index], `${formatListen(addr)} is public but not on port 25; other mail servers deliver to port 25 only (unless a firewall forwards it)`);
    }
  });
  if (opts.asRoot === true && config.server.user === "") {
    warn(["server", "user"], 'empty while serve runs as root, so it keeps root after binding; expected an unprivileged user (e.g. "wardmail"), or start it as that user with CAP_NET_BIND_SERVICE (deploy/wardmail.service)');
  }
  const publicMx = config.smtp.listen.some((a) => !isLoopback(a.host));
  if (config.auth.onMx && config.smtp.listen.length > 0) {
    warn(["auth", "on_mx"], "AUTH is offered on the MX listener, where the whole Internet connects and guesses passwords; expected false: clients log in on submission (465/587)");
  }
  if (!config.checks.enabled && publicMx) {
    warn(["checks", "enabled"], "false on a public MX: inbound mail gets no SPF, DKIM or DMARC check, so mail forging your own domains is let in; expected true");
  }
  config.relay.trustedNetworks.forEach((network, index) => {
    if (includesPublic(network)) {
      warn(["relay", "trusted_networks", index], `${network} includes public addresses: every host in it may relay through this server without AUTH and skips the sender checks; expected only networks you control (loopback, your LAN, one address of your own server)`);
    }
  });
  // rspamd gets every message in plain HTTP (its workers have no TLS).
  const rspamdHost = config.spam.rspamd === "" ? "" : new URL(config.spam.rspamd).hostname.replace(/^\[|\]$/g, "");
  if (net.isIP(rspamdHost) !== 0 && includesPublic(`${rspamdHost}/${net.isIPv4(rspamdHost) ? 32 : 128}`)) {
    warn(["spam", "rspamd"], `${rspamdHost} is a public address: every message goes there in plain HTTP (rspamd's workers have no TLS); expected rspamd on loopback or a private network`);
  }
  if (!config.spool.encrypt) {
    warn(["spool", "encrypt"], "false: queued mail (content, senders, recipients) is written to the spool files in plaintext, readable by anyone who gets a copy of them; expected true");
  }
  if (config.acme.directory !== "" && config.tls.certificates.length > 0) {
    warn(["tls", "certificates"], `ignored while acme.directory is set: the ACME certificate in ${config.server.dataDir}/tls/acme is used instead; expected one of the two`);
  }
  config.metrics.listen.forEach((addr, index) => {
    if (!isLoopback(addr.host)) warn(["metrics", "listen", index], `${formatListen(addr)} is not loopback: the metrics endpoint has no authentication and shows how busy the server is and why it refuses mail; expected 127.0.0.1 or ::1 (scrape through an SSH tunnel or a reverse proxy with TLS and authentication)`);
  });
  if (config.https.listen.length > 0 && config.acme.directory !== "") {
    // The HTTPS listener answers as mta-sts.D, autoconfig.D and autodiscover.D: the ACME certificate must name them.
    const names = new Set(config.acme.domains.length > 0 ? config.acme.domains : [config.server.hostname]);
    const missing = config.local.domains
      .filter((d) => d !== "localhost")
      .flatMap((d) => ["mta-sts", "autoconfig", "autodiscover"].map((h) => `${h}.${d}`))
      .filter((n) => !names.has(n) && !names.has(`*.${n.slice(n.indexOf(".") + 1)}`));
    if (missing.length > 0) {
      warn(["https", "listen"], `the ACME certificate (acme.domains) does not name ${missing.slice(0, 6).join(", ")}${missing.length > 6 ? ", ..." : ""}: MTA-STS senders and mail clients refuse the HTTPS listener there; expected them in acme.domains (with DNS records pointing here)`);
    }
  }
  await certificateWarnings(config, opts.now ?? Date.now(), first !== undefined, warn);
  return out.sort((a, b) => a.line - b.line);
}

function keyText(path: readonly PathSegment[]): string {
  return path.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
}

async function certificateWarnings(
  config: Config,
  now: number,
  isPublic: boolean,
  warn: (path: readonly PathSegment[], message: string) => void,
): Promise<void> {
  const day = 86_400_000;
  let named = false;
  let read = 0;
  for (const [index, pair] of config.tls.certificates.entries()) {
    const path = ["tls", "certificates", index, "cert"];
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(await readFile(pair.cert));
    } catch {
      continue; // missing or not PEM: the loader or the server's start says so
    }
    read++;
    if (cert.checkHost(config.server.hostname) !== undefined) named = true;
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (to < now) warn(path, `${pair.cert} expired on ${new Date(to).toISOString()}; clients refuse it`);
    else if (to < now + EXPIRY_WARNING_DAYS * day) warn(path, `${pair.cert} expires on ${new Date(to).toISOString()}, in less than ${EXPIRY_WARNING_DAYS} days; renew it`);
    if (from > now) warn(path, `${pair.cert} is not valid before ${new Date(from).toISOString()}`);
    if (cert.subject === cert.issuer && cert.verify(cert.publicKey)) {
      warn(path, `${pair.cert} is self-signed; mail clients refuse it, and senders that enforce MTA-STS or DANE (unless its TLSA record names it) do not deliver; expected a certificate from a CA`);
    }
  }
  if (isPublic && read > 0 && !named) {
    warn(["tls", "certificates"], `no certificate names server.hostname (${config.server.hostname}); clients and MTA-STS senders check that the MX host name is in the certificate`);
  }
}
