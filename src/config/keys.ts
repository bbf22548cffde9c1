/**
 * Every config key Wardmail knows: its TOML section and name, type, default,
 * limits, one-line meaning, and the check that turns a TOML value into the
 * normalised value (or reports what was expected). The loader, the
 * `CONFIG_KEYS` list and the documentation test all read this one table.
 *
 * Checks are per key; rules that span keys (mailbox domains, alias cycles,
 * listen collisions, group without user) live in semantic.ts.
 */
import { LIMIT_SPECS } from "../limits/index.ts";
import type { PathSegment } from "./locate.ts";
import type { LmtpTarget } from "./types.ts";
import { describe, isTable, parseAccount, parseAddress, parseDomain, type Parsed } from "./syntax.ts";
import {
  MECHANISMS,
  VERDICT_DEFAULTS,
  aliases,
  arrayOf,
  boolean,
  certificates,
  checkActions,
  ciphers,
  groups,
  dmarcOverrides,
  integer,
  listen,
  lmtp,
  maildir,
  mechanisms,
  oneOf,
  parseCidr,
  parseDnsServer,
  parsedString,
  relays,
  stringElement,
  text,
  tlsPolicies,
} from "./checkers.ts";
export { VERDICT_DEFAULTS, parseLmtpTarget } from "./checkers.ts";
import { dnsblZones } from "./dnsbl.ts";
import { rspamdUrl } from "./spam.ts";
import { attachmentOverrides, clamdTarget } from "./antivirus.ts";

/** Collects problems while checking; paths are full key paths. */
export interface CheckContext {
  issue(path: readonly PathSegment[], message: string): void;
  /** Directory relative certificate paths resolve against (the config file's). */
  readonly fileDir: string;
  /** Directory a relative data_dir resolves against. */
  readonly cwd: string;
  /** Joins and normalises like path.resolve. */
  readonly resolve: (base: string, p: string) => string;
}

/** One alias after checking: the key as written, its normalised address and targets (undefined where a target was bad). */
export interface AliasEntry {
  readonly key: string;
  readonly address: string;
  readonly targets: readonly (string | undefined)[];
}

/** One checked [local.lmtp] entry: the key as written, its normalised domain and where to deliver. */
export interface LmtpEntry {
  readonly key: string;
  readonly domain: string;
  readonly target: LmtpTarget;
}

/** The checked [local.lmtp] table (bad entries left out, already reported). */
export interface LmtpTable {
  readonly entries: readonly LmtpEntry[];
}

/** The checked [local.aliases] table; `complete` is false when some entry was dropped as bad. */
export interface AliasTable {
  readonly entries: readonly AliasEntry[];
  readonly complete: boolean;
}

export interface Field {
  readonly section: string;
  readonly name: string;
  /** Type as shown to operators, e.g. "integer", "array of strings". */
  readonly type: string;
  /** Default as a TOML value. */
  readonly default: unknown;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  /**
   * Returns the normalised value, or undefined after reporting through ctx.
   * Arrays come back with `undefined` in place of each bad element, and the
   * alias table without its bad entries, so cross-key rules still run.
   */
  readonly check: (value: unknown, path: readonly PathSegment[], ctx: CheckContext) => unknown;
}

/** Public, data-only description of one key. */
export interface ConfigKey {
  /** Dotted key, e.g. "limits.max_recipients". */
  readonly key: string;
  readonly type: string;
  readonly default: unknown;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
}

// ---------------------------------------------------------------- table

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
const OLD_TLS = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1"];

const DEFAULT_CIPHERS =
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" +
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/** OpenSSL 3.5's own default order, without the finite-field groups, written out (never "DEFAULT"). */
const DEFAULT_GROUPS = "X25519MLKEM768/X25519:P-256/X448:P-384:P-521";

const listenField = (section: string, def: string, role: string): Field => ({
  section,
  name: "listen",
  type: "array of strings",
  default: [def],
  doc: `Addresses the ${role} listener binds, each "IPv4:port" or "[IPv6]:port" (an IP address, not a name). An empty array turns this listener off. No address:port may appear twice across smtp, submission and submissions.`,
  check: listen,
});

export const FIELDS: readonly Field[] = [
  {
    section: "server", name: "hostname", type: "string", default: "localhost",
    doc: "Name used in the SMTP greeting, the EHLO reply and Received headers. A domain name; lowercased, a trailing dot is dropped.",
    check: parsedString(parseDomain, "a domain name"),
  },
  {
    section: "server", name: "data_dir", type: "string (path)", default: "./var",
    doc: "Root of all state (spool, mail, tls). Default: $WARDMAIL_HOME when set, else ./var. A relative path resolves against the current working directory.",
    check: (v, path, ctx) => {
      const s = text("a directory path", v, path, ctx);
      return s === undefined ? undefined : ctx.resolve(ctx.cwd, s);
    },
  },
  {
    section: "server", name: "workers", type: "integer", default: 0, min: 0, max: 64,
    doc: "Worker threads; 0 means one per CPU core.",
    check: integer(0, 64),
  },
  {
    section: "server", name: "user", type: "string", default: "",
    doc: 'When started as root: the user to run as once the listeners are bound (name or numeric id). "" stays as started.',
    check: parsedString(parseAccount, "a user or group name"),
  },
  {
    section: "server", name: "group", type: "string", default: "",
    doc: 'Group to run as with server.user (name or numeric id). "" uses the user\'s own group. Setting group without user is an error.',
    check: parsedString(parseAccount, "a user or group name"),
  },
  listenField("smtp", "127.0.0.1:2525", "SMTP (MX, port 25 role; plain with STARTTLS offered)"),
  listenField("submission", "127.0.0.1:2587", "submission (port 587 role; STARTTLS)"),
  listenField("submissions", "127.0.0.1:2465", "submissions (port 465 role; implicit TLS, RFC 8314)"),
  {
    section: "tls", name: "certificates", type: "array of { cert, key } tables", default: [],
    doc: "Operator certificates: each { cert = \"chain.pem\", key = \"key.pem\" }, paths relative to the config file's directory. Empty: a self-signed certificate is generated once in data_dir/tls and reused.",
    check: certificates,
  },
  {
    section: "tls", name: "min_version", type: "string", default: "TLSv1.2", values: ["TLSv1.2", "TLSv1.3"],
    doc: "Lowest TLS version accepted. Anything below TLSv1.2 is refused.",
    check: oneOf(["TLSv1.2", "TLSv1.3"], (v) =>
      typeof v === "string" && OLD_TLS.includes(v) ? "TLS versions below TLSv1.2 are not allowed" : undefined),
  },
  {
    section: "tls", name: "ciphers", type: "string", default: DEFAULT_CIPHERS,
    doc: "OpenSSL cipher list for TLS 1.2 (TLS 1.3 uses OpenSSL's default suites). Must name at least one cipher OpenSSL knows.",
    check: ciphers,
  },
  {
    section: "tls", name: "groups", type: "string", default: DEFAULT_GROUPS,
    doc: 'Key exchange groups the server accepts, in OpenSSL\'s list syntax: ":" separates groups, "/" separates preference tuples (OpenSSL 3.5). The default prefers the post-quantum hybrid X25519MLKEM768 (asking the client for it with a HelloRetryRequest when the client supports it but sent no key share for it), then X25519 or P-256, then X448, P-384 or P-521. "DEFAULT" is refused (CVE-2026-2673); name the groups.',
    check: groups,
  },
  {
    section: "tls", name: "mx_session_tickets", type: "boolean", default: false,
    doc: "Issue TLS session tickets on the smtp (MX) listener. Off by default: Microsoft's SMTP client aborts STARTTLS when a TLS 1.3 server sends a NewSessionTicket, and MTAs seldom resume. When off, TLS 1.3 sends no ticket and TLS 1.2 answers with an empty one (RFC 5077 §3.3). The submission listeners always issue tickets (clients that reconnect resume; the key is shared by all worker threads and made anew at each start).",
    check: boolean,
  },
  {
    section: "tls", name: "watch", type: "boolean", default: true,
    doc: "Watch the certificate files and reload them when they change (SIGHUP always reloads).",
    check: boolean,
  },
  ...Object.values(LIMIT_SPECS).map((spec): Field => ({
    section: "limits", name: spec.key, type: `integer (${spec.unit})`, default: spec.default,
    min: spec.min, max: spec.max, doc: spec.doc,
    check: integer(spec.min, spec.max),
  })),
  {
    section: "protocol", name: "bare_line_endings", type: "string", default: "reject", values: ["reject", "normalize"],
    doc: 'A bare CR or LF in a command or in message content: "reject" refuses it, "normalize" turns it into CRLF.',
    check: oneOf(["reject", "normalize"]),
  },
  {
    section: "protocol", name: "eight_bit_without_8bitmime", type: "string", default: "accept", values: ["accept", "reject"],
    doc: '8-bit bytes in DATA when MAIL FROM did not say BODY=8BITMIME: "accept" takes the message as it is, "reject" refuses it.',
    check: oneOf(["accept", "reject"]),
  },
  {
    section: "protocol", name: "strict_pipelining", type: "boolean", default: true,
    doc: "Refuse a client that sends commands before the reply to EHLO or HELO, or message content before the 354 to DATA (RFC 2920 §3.1 makes them the last command of a group; spam software does not wait): 554 5.5.0 and close, as Postfix's smtpd_forbid_unauth_pipelining. Authenticated clients are not checked.",
    check: boolean,
  },
  {
    section: "spool", name: "max_batch", type: "integer", default: 256, min: 1, max: 10000,
    doc: "Most messages one group commit of the spool may hold.",
    check: integer(1, 10000),
  },
  {
    section: "spool", name: "encrypt", type: "boolean", default: true,
    doc: "Encrypt queued mail at rest (content, envelope, session facts, delivery errors) with AES-256-GCM under the key in <data_dir>/spool.keys. false stores new records in plaintext (for comparison only; warned about).",
    check: boolean,
  },
  {
    section: "local", name: "domains", type: "array of strings", default: ["localhost", "example.test"],
    doc: "Domains this server is the final destination for. Lowercased, trailing dot dropped, each listed once.",
    check: arrayOf("domain names", stringElement(parseDomain, "a domain name"), (d) => d),
  },
  {
    section: "local", name: "mailboxes", type: "array of strings", default: ["postmaster@localhost", "postmaster@example.test"],
    doc: 'Addresses that have a mailbox here, "local@domain" with the domain in local.domains. Lowercased, each listed once.',
    check: arrayOf("mail addresses", stringElement(parseAddress, "a mail address"), (a) => a),
  },
  {
    section: "local", name: "discard", type: "array of strings", default: [],
    doc: 'Addresses whose mail is accepted and then dropped at delivery (as Postfix\'s discard: transport): no-reply addresses, sinks. "local@domain" with the domain in local.domains; not also a mailbox or an alias.',
    check: arrayOf("mail addresses", stringElement(parseAddress, "a mail address"), (a) => a),
  },
  {
    section: "local", name: "maildir", type: "string (path template)", default: "mail/%d/%n",
    doc: "Where each mailbox's Maildir is: %d is the domain, %n the local part, %% a literal %. Must contain %n. Relative to data_dir unless absolute.",
    check: maildir,
  },
  {
    section: "local", name: "aliases", type: "table of arrays of strings", default: {},
    doc: '"alias@domain" = ["target@domain", ...]. The alias domain must be in local.domains and the alias must not also be a mailbox; targets may be mailboxes, other aliases or addresses in other domains. A target in a local domain must be a mailbox or an alias. Cycles are an error.',
    check: aliases,
  },
  {
    section: "local", name: "lmtp", type: "table of strings", default: {},
    doc: '"domain" = "IP:port" or "unix:/path/to/socket": deliver the mailboxes of that local domain over LMTP (RFC 2033) to a local server such as Dovecot instead of writing their Maildirs. The domain must be in local.domains.',
    check: lmtp,
  },
  {
    section: "auth", name: "mechanisms", type: "array of strings", default: [...MECHANISMS], values: MECHANISMS,
    doc: "SASL mechanisms offered, in this order, once TLS is active. -PLUS is offered only on TLS 1.3 connections (tls-exporter channel binding).",
    check: mechanisms,
  },
  {
    section: "auth", name: "on_mx", type: "boolean", default: false,
    doc: "Also offer AUTH on the smtp (MX) listener, after STARTTLS. Submission listeners always offer it.",
    check: boolean,
  },
  {
    section: "auth", name: "failure_delay", type: "integer (milliseconds)", default: 1000, min: 0, max: 60000,
    doc: "Delay before the reply to a failed AUTH; it doubles with each further attempt from the same client address (or IPv6 /64), or naming the same user, in their windows, up to auth.max_failure_delay.",
    check: integer(0, 60000),
  },
  {
    section: "auth", name: "max_failure_delay", type: "integer (milliseconds)", default: 15000, min: 0, max: 300000,
    doc: "Longest delay before the reply to a failed AUTH.",
    check: integer(0, 300000),
  },
  {
    section: "auth", name: "ip_max_failures", type: "integer", default: 10, min: 1, max: 100000,
    doc: "Failed AUTH attempts from one client address (IPv6: one /64) within auth.ip_window after which that client is blocked from AUTH for auth.ip_block seconds. An attempt counts before its password is checked (a success is given back), so parallel connections get no more passwords checked.",
    check: integer(1, 100000),
  },
  {
    section: "auth", name: "ip_window", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "Window in which failures from one client address are counted.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "ip_block", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "How long a client address stays blocked from AUTH.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "account_max_failures", type: "integer", default: 30, min: 1, max: 100000,
    doc: "Failed AUTH attempts naming one user (from any address) within auth.account_window after which that user is locked for auth.account_lock seconds, except from clients in auth.known_network_window. Counted for unknown names too, so a lockout never tells whether a user exists.",
    check: integer(1, 100000),
  },
  {
    section: "auth", name: "account_window", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "Window in which failures naming one user are counted.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "account_lock", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "How long a user stays locked. Attempts refused during the lock are not counted, so they cannot extend it.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "known_network_window", type: "integer (seconds)", default: 604800, min: 0, max: 7776000,
    doc: "A client address (IPv6: its /64) where an account logged in successfully within this many seconds is not subject to that account's lock (it still has its own ip_max_failures). 0: the lock holds for every client.",
    check: integer(0, 7776000),
  },
  {
    section: "relay", name: "trusted_networks", type: "array of strings", default: [],
    doc: 'Client networks that may relay without AUTH (e.g. ["127.0.0.1/32"] for a web application on this host), on every listener. Empty: only authenticated clients relay.',
    check: arrayOf("networks", stringElement(parseCidr, "a network"), (n) => n),
  },
  {
    section: "accounts", name: "max_messages_per_hour", type: "integer", default: 200, min: 1, max: 1000000,
    doc: "Messages one account may submit per hour (sliding window); beyond it MAIL gets 451 4.7.1.",
    check: integer(1, 1000000),
  },
  {
    section: "accounts", name: "max_recipients_per_hour", type: "integer", default: 1000, min: 1, max: 10000000,
    doc: "Recipients one account may submit to per hour (sliding window); beyond it RCPT gets 452 4.7.1.",
    check: integer(1, 10000000),
  },
  {
    section: "accounts", name: "hold_factor", type: "integer", default: 10, min: 0, max: 10000,
    doc: "An account whose messages or recipients in the last hour exceed this many times its usual hourly level (and the hold_min_* floors) is held. 0: no volume hold.",
    check: integer(0, 10000),
  },
  {
    section: "accounts", name: "hold_min_messages", type: "integer", default: 50, min: 1, max: 1000000,
    doc: "Messages in the last hour below which an account is never held for volume.",
    check: integer(1, 1000000),
  },
  {
    section: "accounts", name: "hold_min_recipients", type: "integer", default: 200, min: 1, max: 10000000,
    doc: "Recipients in the last hour below which an account is never held for volume.",
    check: integer(1, 10000000),
  },
  {
    section: "accounts", name: "hold_history", type: "integer (days)", default: 14, min: 1, max: 90,
    doc: "Days of past sending (hourly counts) that make an account's usual level: the mean per hour over this many days.",
    check: integer(1, 90),
  },
  {
    section: "accounts", name: "hold_refused_percent", type: "integer", default: 50, min: 0, max: 100,
    doc: "An account whose recipients in the last hour were refused (at our RCPT, or permanently by the remote server) at least this often, in percent, is held. 0: no hold for refusals.",
    check: integer(0, 100),
  },
  {
    section: "accounts", name: "hold_refused_min", type: "integer", default: 20, min: 1, max: 1000000,
    doc: "Refused recipients in the last hour below which an account is never held for refusals.",
    check: integer(1, 1000000),
  },
  {
    section: "dns", name: "servers", type: "array of strings", default: [],
    doc: 'DNS servers (recursive resolvers) to ask, each "IP", "IP:port" or "[IPv6]:port", tried in order. Empty: the nameservers of /etc/resolv.conf.',
    check: arrayOf("DNS servers", stringElement(parseDnsServer, "a DNS server"), (a) => `${a.host}:${a.port}`),
  },
  {
    section: "dns", name: "timeout", type: "integer (milliseconds)", default: 2000, min: 100, max: 30000,
    doc: "How long to wait for one answer from one server before trying again (the next server, or the same one).",
    check: integer(100, 30000),
  },
  {
    section: "dns", name: "attempts", type: "integer", default: 3, min: 1, max: 10,
    doc: "Tries per question, across the servers, before it is a temporary DNS error.",
    check: integer(1, 10),
  },
  {
    section: "dns", name: "cache_size", type: "integer", default: 10000, min: 0, max: 1000000,
    doc: "Answers kept in the cache (per worker thread), each for its TTL (at most a day); negative answers for at most 5 minutes. 0 turns the cache off.",
    check: integer(0, 1000000),
  },
  {
    section: "dns", name: "trust_ad", type: "string", default: "loopback", values: ["loopback", "always", "never"],
    doc: 'Whose AD bit (answer validated with DNSSEC) to believe; DANE and the MX "secure" flag rest on it. "loopback": only when every DNS server is on loopback (a validating resolver on this host); "always": the servers even when not on loopback (the path to them must be trusted, RFC 4035 §4.9.3); "never": DANE off. When the AD bit is not believed, DANE is off and a warning is logged at start-up.',
    check: oneOf(["loopback", "always", "never"]),
  },
  {
    section: "checks", name: "enabled", type: "boolean", default: true,
    doc: "Verify inbound mail on the MX listener: SPF (MAIL FROM and HELO), DKIM, ARC and DMARC, the From: field (from.*) and the use of our own domains (local.*), and add Authentication-Results. Submission (authenticated) mail is not checked. false turns all of them off; relax single verdicts in checks.actions instead.",
    check: boolean,
  },
  {
    section: "checks", name: "authserv_id", type: "string", default: "",
    doc: "The authserv-id in our Authentication-Results headers. Empty: server.hostname. Incoming Authentication-Results headers that claim it are removed.",
    check: (v, path, ctx) => (v === "" ? "" : parsedString(parseDomain, "a domain name")(v, path, ctx)),
  },
  {
    section: "checks", name: "timeout", type: "integer (seconds)", default: 20, min: 1, max: 300,
    doc: "Deadline for each check. A check that fails or does not finish in time answers 451 4.7.0 (fail closed), never 'continue'.",
    check: integer(1, 300),
  },
  {
    section: "checks", name: "trusted_arc_sealers", type: "array of strings", default: [],
    doc: "Domains whose ARC seal (a passing chain, sealed last by this domain, whose ARC-Authentication-Results say dmarc=pass) overrides a DMARC failure: mailing lists and forwarders you trust.",
    check: arrayOf("domain names", stringElement(parseDomain, "a domain name"), (d) => d),
  },
  {
    section: "checks", name: "arc_seal_domain", type: "string", default: "",
    doc: "ARC-seal (RFC 8617) mail that an alias forwards to another domain, with this signing domain (d=). Empty: no sealing. Needs arc_seal_selector and arc_seal_key too.",
    check: (v, path, ctx) => (v === "" ? "" : parsedString(parseDomain, "a domain name")(v, path, ctx)),
  },
  {
    section: "checks", name: "arc_seal_selector", type: "string", default: "",
    doc: "Selector (s=) of the ARC sealing key: its public key is published at SELECTOR._domainkey.DOMAIN.",
    check: (v, path, ctx) => {
      if (v === "") return "";
      if (typeof v === "string" && /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(v)) return v.toLowerCase();
      ctx.issue(path, `expected a DKIM selector (labels of letters, digits and hyphens), got ${describe(v)}`);
      return undefined;
    },
  },
  {
    section: "checks", name: "arc_seal_key", type: "string (path)", default: "",
    doc: "PEM private key (RSA, at least 1024 bits; 2048 recommended) for ARC sealing, relative to the config file's directory.",
    check: (v, path, ctx) => {
      if (v === "") return "";
      const p = text("a file path", v, path, ctx);
      return p === undefined ? undefined : ctx.resolve(ctx.fileDir, p);
    },
  },
  {
    section: "checks", name: "actions", type: "table of strings", default: { ...VERDICT_DEFAULTS },
    doc: 'What to do with each verdict, "check.result" = action: "reject" (550 5.7.1 at the end of DATA), "tempfail" (451 4.7.1), "quarantine" (delivered to the Junk folder), "tag" (delivered with an X-Wardmail-Verdict header), "ignore" (only Authentication-Results). Keys you leave out keep their defaults.',
    check: checkActions,
  },
  {
    section: "checks", name: "dmarc_overrides", type: "table of strings", default: {},
    doc: '"domain" = "none" | "quarantine" | "reject": use this policy instead of the one the domain publishes when its DMARC check fails (matched on the From: domain, else the domain whose DMARC record applies, else the organizational domain).',
    check: dmarcOverrides,
  },
  {
    section: "dnsbl", name: "zones", type: "array of tables", default: [],
    doc: 'DNS lists asked about each client of the MX listener (not authenticated, not in relay.trusted_networks), each { zone = "bl.example.org", weight = 1, answers = [] }: weight is added to the client\'s score when the zone lists its address (negative for an allowlist, DNSWL), answers the 127.0.0.0/8 addresses or networks that count (empty: any). Error codes (127.0.0.1, 127.0.0.255, 127.255.255.0/24, anything outside 127.0.0.0/8) never count and are logged as errors. Empty: no lookups.',
    check: dnsblZones,
  },
  {
    section: "dnsbl", name: "threshold", type: "integer", default: 1, min: 1, max: 1000,
    doc: 'A client whose score (the summed weights of the zones listing it) reaches this gets the verdict "dnsbl.listed" (checks.actions; default reject: 550 5.7.1 at MAIL).',
    check: integer(1, 1000),
  },
  {
    section: "dnsbl", name: "timeout", type: "integer (seconds)", default: 5, min: 1, max: 60,
    doc: "Time for all lookups of one client. A lookup that fails or times out counts as not listed (fail open, logged). Must be below checks.timeout.",
    check: integer(1, 60),
  },
  {
    section: "spam", name: "rspamd", type: "string", default: "",
    doc: 'The rspamd normal worker that scores every message (MX and submission) over its HTTP protocol (/checkv2), e.g. "http://127.0.0.1:11333". Empty: no spam scanning. Its actions are the verdicts spam.reject, spam.soft_reject, spam.greylist, spam.add_header, spam.rewrite_subject; rspamd unreachable or failing is spam.error (default: accept and tag).',
    check: rspamdUrl,
  },
  {
    section: "spam", name: "timeout", type: "integer (seconds)", default: 10, min: 1, max: 120,
    doc: "Time rspamd has for one message; then the message gets the verdict spam.error. Must be below checks.timeout.",
    check: integer(1, 120),
  },
  {
    section: "spam", name: "max_size", type: "integer (bytes)", default: 20971520, min: 1024, max: 1073741824,
    doc: "Messages larger than this are not sent to rspamd (the score header says skipped); spam seldom comes that big.",
    check: integer(1024, 1073741824),
  },
  {
    section: "impersonation", name: "enabled", type: "boolean", default: true,
    doc: "Look at the From: of mail from outside (MX, not authenticated, not trusted): a domain that looks like one of local.domains (verdict impersonation.domain) or a display name that is a local account's (impersonation.name).",
    check: boolean,
  },
  {
    section: "impersonation", name: "external_tag", type: "boolean", default: false,
    doc: "Add an X-Wardmail-External header to every message that did not come from us (MX, not authenticated, not trusted), so mail clients and filters can mark it.",
    check: boolean,
  },
  {
    section: "antivirus", name: "enabled", type: "boolean", default: true,
    doc: 'Scan every message (MX, submission, trusted networks) with clamd before its 250. false: no scanning, even when a clamd is found. Verdicts (checks.actions): "virus.found" (default reject: 554 5.7.1 naming the signature), "virus.error" (clamd unreachable, timing out or failing; default tempfail: 451 4.7.1), "virus.too_large" (default tag).',
    check: boolean,
  },
  {
    section: "antivirus", name: "clamd", type: "string", default: "",
    doc: 'Where clamd listens: "IP:port" (its TCPSocket/TCPAddr) or the absolute path of its unix socket (LocalSocket). "": Wardmail looks for Debian\'s socket /run/clamav/clamd.ctl at startup and scans when it exists; the startup log says whether antivirus is on and where, or why it is off.',
    check: clamdTarget,
  },
  {
    section: "antivirus", name: "timeout", type: "integer (seconds)", default: 15, min: 1, max: 300,
    doc: 'Time to connect to clamd and scan one message; past it the message gets "virus.error" (default 451 4.7.1). Should be below checks.timeout, whose deadline otherwise answers 451 4.7.0 first.',
    check: integer(1, 300),
  },
  {
    section: "antivirus", name: "max_size", type: "integer (bytes)", default: 26214400, min: 1024, max: 536870912,
    doc: 'Largest message sent to clamd; set it to clamd\'s StreamMaxLength (Debian: 25M). A bigger message is not scanned and gets "virus.too_large" (default tag: delivered with X-Wardmail-Verdict: virus.too_large); clamd answering "INSTREAM size limit exceeded" gives the same verdict and a warning in the log.',
    check: integer(1024, 536870912),
  },
  {
    section: "attachments", name: "enabled", type: "boolean", default: true,
    doc: 'Look into every message\'s MIME parts and zip archives for executables (by content: PE, ELF, Mach-O, scripts; by name, double extensions, right-to-left-override names), disk images, macro-enabled Office files and encrypted archives. Verdicts (checks.actions, overridable per domain or mailbox in attachments.overrides): "attachment.executable", "attachment.disk_image", "attachment.macro" (default reject: 550 5.7.1 naming the part), "attachment.encrypted_archive", "attachment.unscannable" (default quarantine).',
    check: boolean,
  },
  {
    section: "attachments", name: "max_depth", type: "integer", default: 5, min: 1, max: 20,
    doc: 'Deepest nesting of archives (a zip in a zip) and attached messages looked into; anything deeper gets "attachment.unscannable".',
    check: integer(1, 20),
  },
  {
    section: "attachments", name: "max_archive_entries", type: "integer", default: 1000, min: 1, max: 100000,
    doc: 'Most archive entries looked at in one message; a message with more gets "attachment.unscannable".',
    check: integer(1, 100000),
  },
  {
    section: "attachments", name: "max_unpacked", type: "integer (bytes)", default: 67108864, min: 1024, max: 1073741824,
    doc: 'Most bytes decompressed from archives for one message (nested archives and the first bytes of each entry); a message needing more (a zip bomb) gets "attachment.unscannable".',
    check: integer(1024, 1073741824),
  },
  {
    section: "attachments", name: "overrides", type: "table of tables", default: {},
    doc: '[attachments.overrides."example.org"] or ."user@example.org": executable, disk_image, macro, encrypted_archive, unscannable = "reject" | "tempfail" | "quarantine" | "tag" | "ignore", instead of checks.actions for mail to that domain or mailbox (a mailbox entry wins over its domain\'s). With several recipients, the strictest action of theirs applies to the message.',
    check: attachmentOverrides,
  },
  {
    section: "queue", name: "retry_min", type: "integer (seconds)", default: 300, min: 1, max: 86400,
    doc: "Delay before the first retry of a deferred delivery; it doubles with each attempt (with up to 20 % random jitter) up to queue.retry_max.",
    check: integer(1, 86400),
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

/** An MTA-STS mx line: a host name, or "*." and a domain (RFC 8461 §3.2). */
function parseMxPattern(s: string): Parsed<string> {
  if (!s.startsWith("*.")) return parseDomain(s);
  const d = parseDomain(s.slice(2));
  return d.ok ? { ok: true, value: `*.${d.value}` } : d;
}

/** Sections in file order, each with its fields. */
export const SECTIONS: ReadonlyMap<string, readonly Field[]> = (() => {
  const m = new Map<string, Field[]>();
  for (const f of FIELDS) {
    const list = m.get(f.section) ?? [];
    list.push(f);
    m.set(f.section, list);
  }
  return m;
})();

/** Every key with its type, default and limits, for tooling and the docs test. */
export const CONFIG_KEYS: readonly ConfigKey[] = Object.freeze(
  FIELDS.map((f) => {
    const k: ConfigKey = {
      key: `${f.section}.${f.name}`, type: f.type, default: f.default, doc: f.doc,
      ...(f.min !== undefined ? { min: f.min } : {}),
      ...(f.max !== undefined ? { max: f.max } : {}),
      ...(f.values !== undefined ? { values: f.values } : {}),
    };
    return Object.freeze(k);
  }),
);

/** A TOML literal for a default value, as written in docs: "a", 1, true, ["x", "y"], {}. */
export function tomlLiteral(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(tomlLiteral).join(", ")}]`;
  if (isTable(value)) {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)} = ${tomlLiteral(v)}`);
    return parts.length === 0 ? "{}" : `{ ${parts.join(", ")} }`;
  }
  return String(value);
}
