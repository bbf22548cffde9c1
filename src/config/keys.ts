/**
 * Every config key Wardmail knows: its TOML section and name, type, default,
 * limits, one-line meaning, and the check that turns a TOML value into the
 * normalised value (or reports what was expected). The loader, the
 * `CONFIG_KEYS` list and the documentation test all read this one table.
 *
 * Checks are per key; rules that span keys (mailbox domains, alias cycles,
 * listen collisions, group without user) live in semantic.ts.
 */
import { isIP } from "node:net";
import { createSecureContext } from "node:tls";
import { LIMIT_SPECS } from "../limits/index.ts";
import type { PathSegment } from "./locate.ts";
import type { Parsed } from "./syntax.ts";
import type { LmtpTarget } from "./types.ts";
import { describe, isTable, parseAccount, parseAddress, parseDomain, parseListen } from "./syntax.ts";

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

// ---------------------------------------------------------------- checkers

type Check = Field["check"];

function integer(min: number, max: number): Check {
  return (v, path, ctx) => {
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    ctx.issue(path, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
    return undefined;
  };
}

const boolean: Check = (v, path, ctx) => {
  if (typeof v === "boolean") return v;
  ctx.issue(path, `expected true or false, got ${describe(v)}`);
  return undefined;
};

function oneOf(values: readonly string[], explain?: (v: unknown) => string | undefined): Check {
  return (v, path, ctx) => {
    if (typeof v === "string" && values.includes(v)) return v;
    const extra = explain?.(v);
    const list = values.map((x) => JSON.stringify(x)).join(", ");
    ctx.issue(path, `${extra ? `${extra}; ` : ""}expected one of ${list}, got ${describe(v)}`);
    return undefined;
  };
}

/** A string parsed by `parse`; `what` names the expected value when it is not a string at all. */
function parsedString<T>(parse: (s: string) => Parsed<T>, what: string): Check {
  return (v, path, ctx) => {
    if (typeof v !== "string") {
      ctx.issue(path, `expected ${what} (a string), got ${describe(v)}`);
      return undefined;
    }
    const p = parse(v);
    if (p.ok) return p.value;
    ctx.issue(path, `expected ${p.expected}, got ${describe(v)}`);
    return undefined;
  };
}

/** A non-empty string without control characters. */
function text(what: string, v: unknown, path: readonly PathSegment[], ctx: CheckContext): string | undefined {
  if (typeof v === "string" && v.length > 0 && !/[\x00-\x1f\x7f]/.test(v)) return v;
  ctx.issue(path, `expected ${what} (a non-empty string without control characters), got ${describe(v)}`);
  return undefined;
}

/**
 * An array whose elements all pass `element`; reports each bad element and
 * each duplicate, leaving `undefined` at its index so the cross-key rules can
 * still look at the good ones (no Config is built once anything is reported).
 */
function arrayOf<T>(
  what: string,
  element: (v: unknown, path: readonly PathSegment[], ctx: CheckContext) => T | undefined,
  keyOf?: (t: T) => string,
): Check {
  return (v, path, ctx) => {
    if (!Array.isArray(v)) {
      ctx.issue(path, `expected an array of ${what}, got ${describe(v)}`);
      return undefined;
    }
    const out: (T | undefined)[] = [];
    const seen = new Map<string, number>();
    v.forEach((item: unknown, i) => {
      const value = element(item, [...path, i], ctx);
      if (value !== undefined && keyOf) {
        const k = keyOf(value);
        const first = seen.get(k);
        if (first !== undefined) {
          ctx.issue([...path, i], `${JSON.stringify(k)} is listed twice (also at index ${first})`);
          out.push(undefined);
          return;
        }
        seen.set(k, i);
      }
      out.push(value);
    });
    return out;
  };
}

function stringElement<T>(parse: (s: string) => Parsed<T>, what: string) {
  const check = parsedString(parse, what);
  return (v: unknown, path: readonly PathSegment[], ctx: CheckContext) => check(v, path, ctx) as T | undefined;
}

const listen = arrayOf(
  "listen addresses",
  stringElement(parseListen, "a listen address"),
  (a) => `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`,
);

const certificates: Check = arrayOf("{ cert, key } tables", (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table { cert = "path", key = "path" }, got ${describe(v)}`);
    return undefined;
  }
  let ok = true;
  for (const k of Object.keys(v)) {
    if (k !== "cert" && k !== "key") {
      ctx.issue([...path, k], `unknown key; a certificate entry has only "cert" and "key"`);
      ok = false;
    }
  }
  const out: Record<string, string> = {};
  for (const k of ["cert", "key"] as const) {
    if (!Object.hasOwn(v, k)) {
      ctx.issue(path, `missing "${k}" (path of the PEM ${k === "cert" ? "certificate chain" : "private key"})`);
      ok = false;
      continue;
    }
    const p = text("a file path", v[k], [...path, k], ctx);
    if (p === undefined) ok = false;
    else out[k] = ctx.resolve(ctx.fileDir, p);
  }
  return ok ? { cert: out.cert ?? "", key: out.key ?? "" } : undefined;
});

const ciphers: Check = (v, path, ctx) => {
  const s = text("an OpenSSL cipher list", v, path, ctx);
  if (s === undefined) return undefined;
  try {
    createSecureContext({ ciphers: s, minVersion: "TLSv1.2" });
    return s;
  } catch {
    ctx.issue(path, `expected an OpenSSL cipher list that names at least one usable cipher, got ${describe(v)}`);
    return undefined;
  }
};

const maildir: Check = (v, path, ctx) => {
  const s = text("a path template", v, path, ctx);
  if (s === undefined) return undefined;
  const bad = /%[^dn%]|%$/.exec(s.replace(/%%/g, ""));
  if (bad) {
    ctx.issue(path, `unknown placeholder ${JSON.stringify(bad[0])}; expected a path template using %d (domain), %n (local part) or %% (a literal %)`);
    return undefined;
  }
  if (!s.replace(/%%/g, "").includes("%n")) {
    ctx.issue(path, `expected a path template containing %n (the local part), so every mailbox gets its own maildir, got ${describe(v)}`);
    return undefined;
  }
  return s;
};

const aliases: Check = (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table of "alias@domain" = ["target@domain", ...], got ${describe(v)}`);
    return undefined;
  }
  const out: AliasEntry[] = [];
  let complete = true;
  const seen = new Map<string, string>();
  const address = stringElement(parseAddress, "a mail address");
  for (const [key, targets] of Object.entries(v)) {
    const at = [...path, key];
    const a = parseAddress(key);
    if (!a.ok) {
      ctx.issue(at, `alias name: expected ${a.expected}, got ${describe(key)}`);
      complete = false;
      continue;
    }
    const twin = seen.get(a.value);
    if (twin !== undefined) {
      ctx.issue(at, `alias ${a.value} is defined twice (also as ${JSON.stringify(twin)})`);
      continue;
    }
    seen.set(a.value, key);
    if (!Array.isArray(targets) || targets.length === 0) {
      ctx.issue(at, `expected a non-empty array of target addresses, got ${Array.isArray(targets) ? "an empty array" : describe(targets)}`);
      out.push({ key, address: a.value, targets: [] });
      continue;
    }
    const list = targets.map((t: unknown, i) => address(t, [...at, i], ctx));
    out.push({ key, address: a.value, targets: list });
  }
  const table: AliasTable = { entries: out, complete };
  return table;
};

/** Longest unix socket path (sun_path is 108 bytes with its NUL on Linux). */
const MAX_SOCKET_PATH = 107;

/** "IPv4:port", "[IPv6]:port" or "unix:/absolute/path" of an LMTP server. */
export function parseLmtpTarget(input: string): Parsed<LmtpTarget> {
  const expected = 'an LMTP server "IPv4:port", "[IPv6]:port" or "unix:/absolute/path/of/socket"';
  if (input.startsWith("unix:")) {
    const p = input.slice(5);
    if (!p.startsWith("/") || /[\x00-\x1f\x7f]/.test(p)) return { ok: false, expected: `${expected} (the socket path must be absolute)` };
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH) return { ok: false, expected: `${expected} (a socket path of at most ${MAX_SOCKET_PATH} bytes)` };
    return { ok: true, value: { path: p } };
  }
  const l = parseListen(input);
  return l.ok ? { ok: true, value: { host: l.value.host, port: l.value.port } } : { ok: false, expected };
}

const lmtp: Check = (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table of "domain" = "IP:port" or "unix:/path", got ${describe(v)}`);
    return undefined;
  }
  const entries: LmtpEntry[] = [];
  const seen = new Map<string, string>();
  const target = parsedString(parseLmtpTarget, "an LMTP server");
  for (const [key, value] of Object.entries(v)) {
    const at = [...path, key];
    const d = parseDomain(key);
    if (!d.ok) {
      ctx.issue(at, `expected ${d.expected}, got ${describe(key)}`);
      continue;
    }
    const twin = seen.get(d.value);
    if (twin !== undefined) {
      ctx.issue(at, `domain ${d.value} is listed twice (also as ${JSON.stringify(twin)})`);
      continue;
    }
    seen.set(d.value, key);
    const t = target(value, at, ctx) as LmtpTarget | undefined;
    if (t !== undefined) entries.push({ key, domain: d.value, target: t });
  }
  const table: LmtpTable = { entries };
  return table;
};

const MECHANISMS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"] as const;

const mechanisms: Check = (v, path, ctx) => {
  const list = arrayOf("SASL mechanism names", (x, p, c) => oneOf(MECHANISMS)(typeof x === "string" ? x.toUpperCase() : x, p, c) as string | undefined, (m) => m)(v, path, ctx);
  return list;
};

/** "192.0.2.0/24", "2001:db8::/32" or a single address; normalised to address/prefix. */
function parseCidr(input: string): Parsed<string> {
  const expected = 'a network "address/prefix" (e.g. "127.0.0.1/32", "2001:db8::/64") or a single IP address';
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(input.trim());
  if (!m) return { ok: false, expected };
  const addr = m[1] ?? "";
  const family = isIP(addr);
  if (family === 0) return { ok: false, expected };
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return { ok: false, expected: `${expected}, with a prefix of at most ${max}` };
  return { ok: true, value: `${addr.toLowerCase()}/${prefix}` };
}

/** "IP", "IPv4:port", "[IPv6]" or "[IPv6]:port" of a DNS server (port 53 when left out). */
function parseDnsServer(input: string): Parsed<{ host: string; port: number }> {
  let text = input;
  if (isIP(input) === 4) text = `${input}:53`;
  else if (isIP(input) === 6) text = `[${input}]:53`;
  else if (input.startsWith("[") && input.endsWith("]")) text = `${input}:53`;
  const p = parseListen(text);
  return p.ok ? p : { ok: false, expected: 'a DNS server "IP", "IP:port" or "[IPv6]:port" (an IP address, not a name)' };
}

const CHECK_ACTIONS = ["reject", "tempfail", "quarantine", "tag", "ignore"] as const;
/** Verdicts the operator can map, with their default action. */
export const VERDICT_DEFAULTS: Readonly<Record<string, (typeof CHECK_ACTIONS)[number]>> = {
  "spf.fail": "tag",
  "spf.softfail": "tag",
  "spf.temperror": "tag",
  "spf.permerror": "tag",
  "dkim.fail": "tag",
  "dkim.temperror": "tag",
  "arc.fail": "tag",
  "dmarc.reject": "reject",
  "dmarc.quarantine": "quarantine",
  "dmarc.temperror": "tag",
};

const checkActions: Check = (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table of "check.result" = "action", got ${describe(v)}`);
    return undefined;
  }
  const out: Record<string, string> = { ...VERDICT_DEFAULTS };
  for (const [k, a] of Object.entries(v)) {
    if (!Object.hasOwn(VERDICT_DEFAULTS, k)) {
      ctx.issue([...path, k], `unknown verdict; expected one of ${Object.keys(VERDICT_DEFAULTS).map((x) => JSON.stringify(x)).join(", ")}`);
      continue;
    }
    const action = oneOf(CHECK_ACTIONS)(a, [...path, k], ctx);
    if (typeof action === "string") out[k] = action;
  }
  return out;
};

const DMARC_OVERRIDES = ["none", "quarantine", "reject"] as const;
const dmarcOverrides: Check = (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table of "domain" = "none" | "quarantine" | "reject", got ${describe(v)}`);
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, a] of Object.entries(v)) {
    const d = parseDomain(k);
    if (!d.ok) {
      ctx.issue([...path, k], `expected ${d.expected}, got ${describe(k)}`);
      continue;
    }
    const action = oneOf(DMARC_OVERRIDES)(a, [...path, k], ctx);
    if (typeof action === "string") out[d.value] = action;
  }
  return out;
};

const TLS_POLICIES = ["dane-only", "verify", "encrypt", "may"] as const;
const tlsPolicies: Check = (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table of "domain" = "dane-only" | "verify" | "encrypt" | "may", got ${describe(v)}`);
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, a] of Object.entries(v)) {
    const d = parseDomain(k);
    if (!d.ok) {
      ctx.issue([...path, k], `expected ${d.expected}, got ${describe(k)}`);
      continue;
    }
    const policy = oneOf(TLS_POLICIES)(a, [...path, k], ctx);
    if (typeof policy === "string") out[d.value] = policy;
  }
  return out;
};

/** [[outbound.relays]]: smarthosts, globally ("*") or per destination domain. */
const relays: Check = arrayOf("relay tables", (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, 'expected a table { domains = ["*"], host = "IP:port" or "name:port", tls = "required" | "may", user = "", password_file = "" }');
    return undefined;
  }
  let ok = true;
  for (const k of Object.keys(v)) {
    if (!["domains", "host", "tls", "user", "password_file"].includes(k)) {
      ctx.issue([...path, k], 'unknown key; a relay has "domains", "host", "tls", "user" and "password_file"');
      ok = false;
    }
  }
  const domains = Array.isArray(v.domains) ? v.domains : undefined;
  if (!domains || domains.length === 0 || !domains.every((d) => typeof d === "string" && (d === "*" || parseDomain(d).ok))) {
    ctx.issue([...path, "domains"], `expected a non-empty array of destination domains or "*", got ${describe(v.domains)}`);
    ok = false;
  }
  const host = typeof v.host === "string" ? /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v.host) : null;
  if (!host || Number(host[2]) < 1 || Number(host[2]) > 65535) {
    ctx.issue([...path, "host"], `expected "host:port" (a name or an IP address, IPv6 in brackets), got ${describe(v.host)}`);
    ok = false;
  }
  const tlsMode = v.tls ?? "required";
  if (tlsMode !== "required" && tlsMode !== "may") {
    ctx.issue([...path, "tls"], `expected "required" or "may", got ${describe(v.tls)}`);
    ok = false;
  }
  const user = v.user ?? "";
  const pw = v.password_file ?? "";
  if (typeof user !== "string" || typeof pw !== "string" || (user === "") !== (pw === "")) {
    ctx.issue(path, "user and password_file go together (AUTH PLAIN over TLS to the relay)");
    ok = false;
  }
  if (!ok || !host) return undefined;
  return {
    domains: (domains as string[]).map((d) => (d === "*" ? "*" : d.toLowerCase().replace(/\.$/, ""))),
    host: (host[1] ?? "").replace(/^\[|\]$/g, "").toLowerCase(),
    port: Number(host[2]),
    tls: tlsMode,
    user,
    passwordFile: pw === "" ? "" : ctx.resolve(ctx.fileDir, pw as string),
  };
});

// ---------------------------------------------------------------- table

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
const OLD_TLS = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1"];

const DEFAULT_CIPHERS =
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" +
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

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
    section: "spool", name: "max_batch", type: "integer", default: 256, min: 1, max: 10000,
    doc: "Most messages one group commit of the spool may hold.",
    check: integer(1, 10000),
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
    doc: "Delay before the reply to a failed AUTH; it doubles with each further failure from the same client address (or IPv6 /64) in the window, up to auth.max_failure_delay.",
    check: integer(0, 60000),
  },
  {
    section: "auth", name: "max_failure_delay", type: "integer (milliseconds)", default: 15000, min: 0, max: 300000,
    doc: "Longest delay before the reply to a failed AUTH.",
    check: integer(0, 300000),
  },
  {
    section: "auth", name: "ip_max_failures", type: "integer", default: 10, min: 1, max: 100000,
    doc: "Failed AUTH attempts from one client address (IPv6: one /64) within auth.ip_window after which that client is blocked from AUTH for auth.ip_block seconds.",
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
    doc: "Failed AUTH attempts naming one user (from any address) within auth.account_window after which that user is locked for auth.account_lock seconds. Counted for unknown names too, so a lockout never tells whether a user exists.",
    check: integer(1, 100000),
  },
  {
    section: "auth", name: "account_window", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "Window in which failures naming one user are counted.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "account_lock", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "How long a user stays locked.",
    check: integer(1, 86400),
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
    section: "checks", name: "enabled", type: "boolean", default: true,
    doc: "Verify inbound mail on the MX listener: SPF (MAIL FROM and HELO), DKIM, ARC and DMARC, and add Authentication-Results. Submission (authenticated) mail is not checked.",
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
    doc: '"domain" = "none" | "quarantine" | "reject": use this policy instead of the one the domain publishes when its DMARC check fails (the organizational domain of the From: domain is matched too).',
    check: dmarcOverrides,
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
    section: "outbound", name: "tls_policy", type: "table of strings", default: {},
    doc: '"domain" = "dane-only" | "verify" | "encrypt" | "may": the TLS policy for that destination instead of the default (DANE when the domain has TLSA records, else MTA-STS when it publishes a policy, else opportunistic STARTTLS).',
    check: tlsPolicies,
  },
  {
    section: "outbound", name: "relays", type: "array of tables", default: [],
    doc: 'Smarthosts: [[outbound.relays]] tables { domains = ["*"] or a list of destination domains, host = "host:port", tls = "required" (default) or "may", user and password_file for AUTH PLAIN }. Mail for a listed domain (or any, with "*") goes to that host instead of the MX.',
    check: relays,
  },
  {
    section: "log", name: "level", type: "string", default: "info", values: LOG_LEVELS,
    doc: "Least severe log level written. Logs never contain secrets.",
    check: oneOf(LOG_LEVELS),
  },
];

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
