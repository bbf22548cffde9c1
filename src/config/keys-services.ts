/**
 * Config keys of delivery and the side services (part of the one table in
 * keys.ts): the [queue], [outbound], [metrics], [acme], [https] and [log]
 * sections, in file order.
 */
import type { Field } from "./keys.ts";
import { parseDomain, type Parsed } from "./syntax.ts";
import {
  arrayOf,
  boolean,
  integer,
  listen,
  oneOf,
  parsedString,
  relays,
  stringElement,
  text,
  tlsPolicies,
} from "./checkers.ts";

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** An MTA-STS mx line: a host name, or "*." and a domain (RFC 8461 §3.2). */
function parseMxPattern(s: string): Parsed<string> {
  if (!s.startsWith("*.")) return parseDomain(s);
  const d = parseDomain(s.slice(2));
  return d.ok ? { ok: true, value: `*.${d.value}` } : d;
}

export const SERVICE_FIELDS: readonly Field[] = [
  {
    section: "queue", name: "retry_min", type: "integer (seconds)", default: 300, min: 1, max: 86400,
    doc: "Delay before the first retry of a deferred delivery; it doubles with each attempt (with up to 20 % random jitter) up to queue.retry_max.",
    check: integer(1, 86400),
  },
  {
    section: "queue", name: "concurrency", type: "integer", default: 16, min: 1, max: 1024,
    doc: "Messages each worker's queue manager delivers at once (local and remote), and concurrent Maildir writes and LMTP sessions.",
    check: integer(1, 1024),
  },
  {
    section: "queue", name: "retry_max", type: "integer (seconds)", default: 14400, min: 1, max: 86400,
    doc: "Longest delay between two attempts.",
    check: integer(1, 86400),
  },
  {
    section: "queue", name: "lifetime", type: "integer (seconds)", default: 432000, min: 60, max: 2592000,
    doc: "How long a message may stay in the queue; after that its undelivered recipients fail and the sender gets a bounce (DSN).",
    check: integer(60, 2592000),
  },
  {
    section: "queue", name: "delay_notice", type: "integer (seconds)", default: 14400, min: 0, max: 2592000,
    doc: "After this long undelivered, the sender gets one delay notice (a DSN with Action: delayed) for recipients that asked for it (NOTIFY=DELAY, or no NOTIFY). 0: never.",
    check: integer(0, 2592000),
  },
  {
    section: "outbound", name: "port", type: "integer", default: 25, min: 1, max: 65535,
    doc: "TCP port of the MX hosts Wardmail delivers to. 25 on the Internet; another port only for tests and special setups.",
    check: integer(1, 65535),
  },
  {
    section: "outbound", name: "max_connections_per_domain", type: "integer", default: 4, min: 1, max: 100,
    doc: "Concurrent connections to one destination domain (per worker).",
    check: integer(1, 100),
  },
  {
    section: "outbound", name: "messages_per_connection", type: "integer", default: 50, min: 1, max: 10000,
    doc: "Messages sent over one connection before it is closed (connection reuse).",
    check: integer(1, 10000),
  },
  {
    section: "outbound", name: "connection_cache_time", type: "integer (seconds)", default: 2, min: 0, max: 300,
    doc: "How long a connection that delivered its mail stays open, idle, for the next message to the same destination under the same TLS policy and relay credentials. 0: no connection reuse across batches.",
    check: integer(0, 300),
  },
  {
    section: "outbound", name: "connection_max_age", type: "integer (seconds)", default: 300, min: 1, max: 86400,
    doc: "Oldest a connection may be and still be given more mail; an older one is closed when its batch is done.",
    check: integer(1, 86400),
  },
  {
    section: "outbound", name: "tlsrpt_interval", type: "integer (seconds)", default: 3600, min: 1, max: 86400,
    doc: "How often the TLS-RPT job (RFC 8460) looks for finished UTC days to report; a day's reports go out at its first run after midnight UTC. The first run is a minute after start (or this interval, when shorter).",
    check: integer(1, 86400),
  },
  {
    section: "outbound", name: "tls_policy", type: "table of strings", default: {},
    doc: '"domain" = "dane-only" | "verify" | "encrypt" | "may": the TLS policy for that destination instead of the default (DANE when the domain has TLSA records, else MTA-STS when it publishes a policy, else opportunistic STARTTLS).',
    check: tlsPolicies,
  },
  {
    section: "outbound", name: "relays", type: "array of tables", default: [],
    doc: 'Smarthosts: [[outbound.relays]] tables { domains = ["*"] or a list of destination domains, host = "host:port", tls, ca_file, user and password_file for AUTH PLAIN }. Mail for a listed domain (or any, with "*") goes to that host instead of the MX. tls = "required" (default): TLS with the relay\'s certificate verified against its host name (or IP address) by the system CAs, or by the CAs in ca_file (a PEM file, relative to the config file); "encrypt": TLS without checking the certificate (an explicit opt-out, open to an active man in the middle); "may": opportunistic. user/password_file need tls = "required": AUTH is never sent over TLS that was not verified.',
    check: relays,
  },
  {
    section: "metrics", name: "listen", type: "array of strings", default: [],
    doc: 'Addresses of the Prometheus metrics endpoint (plain HTTP, GET /metrics), each "IPv4:port" or "[IPv6]:port", e.g. ["127.0.0.1:9587"]. Empty (the default): no metrics listener. It has no authentication: keep it on loopback (config check warns otherwise).',
    check: listen,
  },
  {
    section: "acme", name: "directory", type: "string (URL)", default: "",
    doc: 'ACME (RFC 8555) directory URL to get and renew the certificate from, e.g. "https://acme-v02.api.letsencrypt.org/directory". Empty (the default): no ACME, tls.certificates as configured.',
    check: (v, path, ctx) => {
      if (v === "") return "";
      const u = text("an https URL", v, path, ctx);
      if (u === undefined) return undefined;
      if (!/^https:\/\/[^\s/]+/.test(u)) {
        ctx.issue(path, `expected an https:// URL, got ${JSON.stringify(u)}`);
        return undefined;
      }
      return u;
    },
  },
  {
    section: "acme", name: "email", type: "string", default: "",
    doc: "Contact address given to the ACME server (expiry warnings). Empty: none.",
    check: (v, path, ctx) => (v === "" ? "" : text("an email address", v, path, ctx)),
  },
  {
    section: "acme", name: "domains", type: "array of strings", default: [],
    doc: "Names the ACME certificate covers. Empty: server.hostname. Add the MTA-STS host (mta-sts.DOMAIN) when this server serves the policy.",
    check: arrayOf("domain names", stringElement(parseDomain, "a domain name"), (d) => d),
  },
  {
    section: "acme", name: "http_listen", type: "array of strings", default: ["0.0.0.0:80"],
    doc: 'Where Wardmail answers the ACME server\'s HTTP-01 challenges (/.well-known/acme-challenge/ only; port 80 in production), each "IPv4:port" or "[IPv6]:port". Used only when acme.directory is set.',
    check: listen,
  },
  {
    section: "acme", name: "ca_file", type: "string (path)", default: "",
    doc: "PEM file of the CA that signs the ACME server's own HTTPS certificate, when it is not a public one (a private ACME server, or pebble in tests). Relative to the config file's directory.",
    check: (v, path, ctx) => {
      if (v === "") return "";
      const p = text("a file path", v, path, ctx);
      return p === undefined ? undefined : ctx.resolve(ctx.fileDir, p);
    },
  },
  {
    section: "acme", name: "renew_before", type: "integer (days)", default: 30, min: 1, max: 60,
    doc: "Renew the certificate this many days before it expires (checked at start and every 12 hours).",
    check: integer(1, 60),
  },
  {
    section: "acme", name: "keep_key", type: "boolean", default: true,
    doc: "Renew with the same private key, so TLSA (DANE 3 1 1) records stay valid. false: a new key at each renewal (the next key is made and logged with its TLSA record renew_before days ahead; publish it before the switch).",
    check: boolean,
  },
  {
    section: "https", name: "listen", type: "array of strings", default: [],
    doc: 'Addresses of the HTTPS listener (TLS 1.2 or later, the server\'s certificates: the ACME one when acme.directory is set, else tls.certificates or the self-signed default), each "IPv4:port" or "[IPv6]:port", e.g. ["0.0.0.0:443", "[::]:443"]. It serves the MTA-STS policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt, Thunderbird autoconfig on autoconfig.DOMAIN and Outlook Autodiscover on autodiscover.DOMAIN for every local domain; 404 for anything else. Empty (the default): no HTTPS listener; but when acme.directory is set and this key is not written, port 443 of each host of acme.http_listen (e.g. "0.0.0.0:80" gives "0.0.0.0:443"); write [] to keep it off.',
    check: listen,
  },
  {
    section: "https", name: "mta_sts_mode", type: "string", default: "enforce", values: ["enforce", "testing", "none"],
    doc: 'The served MTA-STS policy\'s mode (RFC 8461): "enforce" (senders deliver only over verified TLS), "testing" (they deliver anyway and report failures), "none" (withdraws a policy).',
    check: oneOf(["enforce", "testing", "none"]),
  },
  {
    section: "https", name: "mta_sts_mx", type: "array of strings", default: [],
    doc: 'The MX host names the MTA-STS policy allows (a "*.domain" pattern matches one label). Empty: server.hostname.',
    check: arrayOf("MX host names", stringElement(parseMxPattern, "a host name or *.domain"), (d) => d),
  },
  {
    section: "https", name: "mta_sts_max_age", type: "integer (seconds)", default: 604800, min: 86400, max: 31557600,
    doc: "How long senders may cache the MTA-STS policy (max_age). RFC 8461 recommends weeks; the maximum is a year.",
    check: integer(86400, 31557600),
  },
  {
    section: "https", name: "imap_host", type: "string", default: "",
    doc: "The IMAP server (Dovecot) that autoconfig and Autodiscover announce to mail clients. Empty: server.hostname.",
    check: (v, path, ctx) => (v === "" ? "" : parsedString(parseDomain, "a host name")(v, path, ctx)),
  },
  {
    section: "https", name: "imap_port", type: "integer", default: 993, min: 1, max: 65535,
    doc: "The IMAP port announced to mail clients (993: implicit TLS).",
    check: integer(1, 65535),
  },
  {
    section: "https", name: "imap_tls", type: "string", default: "implicit", values: ["implicit", "starttls"],
    doc: 'How clients reach IMAP: "implicit" (TLS from the first byte, port 993) or "starttls" (port 143).',
    check: oneOf(["implicit", "starttls"]),
  },
  {
    section: "log", name: "level", type: "string", default: "info", values: LOG_LEVELS,
    doc: "Least severe log level written. Logs never contain secrets.",
    check: oneOf(LOG_LEVELS),
  },
];
