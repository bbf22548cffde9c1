/**
 * Config keys of the server itself (part of the one table in keys.ts): the
 * [server], [tls], [limits] (drawn from src/limits), [protocol], [spool] and
 * [local] sections, in file order.
 */
import { LIMIT_SPECS } from "../limits/index.ts";
import type { Field } from "./keys.ts";
import { parseAccount, parseAddress, parseDomain } from "./syntax.ts";
import {
  aliases,
  arrayOf,
  boolean,
  certificates,
  ciphers,
  groups,
  integer,
  listen,
  lmtp,
  maildir,
  oneOf,
  parsedString,
  stringElement,
  text,
} from "./checkers.ts";

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

export const SERVER_FIELDS: readonly Field[] = [
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
];
