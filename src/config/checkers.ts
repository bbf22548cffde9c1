/**
 * The per-key checks of the config table (keys.ts): each turns a TOML value
 * into the normalised value or reports, through the CheckContext, what was
 * expected. Pure functions, no I/O (certificate files are looked at by the
 * loader).
 */
import { isIP } from "node:net";
import { createSecureContext } from "node:tls";
import type { PathSegment } from "./locate.ts";
import type { Parsed } from "./syntax.ts";
import type { LmtpTarget } from "./types.ts";
import type { AliasEntry, AliasTable, CheckContext, Field, LmtpEntry, LmtpTable } from "./keys.ts";
import { describe, isTable, parseAddress, parseDomain, parseListen } from "./syntax.ts";

// ---------------------------------------------------------------- checkers

export type Check = Field["check"];

export function integer(min: number, max: number): Check {
  return (v, path, ctx) => {
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    ctx.issue(path, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
    return undefined;
  };
}

export const boolean: Check = (v, path, ctx) => {
  if (typeof v === "boolean") return v;
  ctx.issue(path, `expected true or false, got ${describe(v)}`);
  return undefined;
};

export function oneOf(values: readonly string[], explain?: (v: unknown) => string | undefined): Check {
  return (v, path, ctx) => {
    if (typeof v === "string" && values.includes(v)) return v;
    const extra = explain?.(v);
    const list = values.map((x) => JSON.stringify(x)).join(", ");
    ctx.issue(path, `${extra ? `${extra}; ` : ""}expected one of ${list}, got ${describe(v)}`);
    return undefined;
  };
}

/** A string parsed by `parse`; `what` names the expected value when it is not a string at all. */
export function parsedString<T>(parse: (s: string) => Parsed<T>, what: string): Check {
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
export function text(what: string, v: unknown, path: readonly PathSegment[], ctx: CheckContext): string | undefined {
  if (typeof v === "string" && v.length > 0 && !/[\x00-\x1f\x7f]/.test(v)) return v;
  ctx.issue(path, `expected ${what} (a non-empty string without control characters), got ${describe(v)}`);
  return undefined;
}

/**
 * An array whose elements all pass `element`; reports each bad element and
 * each duplicate, leaving `undefined` at its index so the cross-key rules can
 * still look at the good ones (no Config is built once anything is reported).
 */
export function arrayOf<T>(
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

export function stringElement<T>(parse: (s: string) => Parsed<T>, what: string) {
  const check = parsedString(parse, what);
  return (v: unknown, path: readonly PathSegment[], ctx: CheckContext) => check(v, path, ctx) as T | undefined;
}

export const listen = arrayOf(
  "listen addresses",
  stringElement(parseListen, "a listen address"),
  (a) => `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`,
);

export const certificates: Check = arrayOf("{ cert, key } tables", (v, path, ctx) => {
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

export const ciphers: Check = (v, path, ctx) => {
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

/**
 * An OpenSSL group list ("X25519MLKEM768/X25519:P-256"). The keyword DEFAULT
 * is refused (CVE-2026-2673): the list must name its groups. Each name must
 * be one OpenSSL knows, unless marked optional with "?".
 */
export const groups: Check = (v, path, ctx) => {
  const s = text("an OpenSSL group list", v, path, ctx);
  if (s === undefined) return undefined;
  const names = s.split(/[:/]/).map((g) => g.trim().replace(/^[?*-]+/, ""));
  if (names.some((g) => g.toUpperCase() === "DEFAULT")) {
    ctx.issue(path, 'must not contain "DEFAULT" (CVE-2026-2673): name the groups, e.g. "X25519MLKEM768/X25519:P-256/X448:P-384:P-521"');
    return undefined;
  }
  if (names.some((g) => g === "")) {
    ctx.issue(path, `expected group names separated by ":" or "/", got ${describe(v)}`);
    return undefined;
  }
  try {
    createSecureContext({ ecdhCurve: s, minVersion: "TLSv1.2" });
    return s;
  } catch {
    ctx.issue(path, `expected an OpenSSL group list of groups OpenSSL knows (e.g. X25519MLKEM768, X25519, P-256), got ${describe(v)}`);
    return undefined;
  }
};

export const maildir: Check = (v, path, ctx) => {
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

export const aliases: Check = (v, path, ctx) => {
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
export const MAX_SOCKET_PATH = 107;

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

export const lmtp: Check = (v, path, ctx) => {
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

export const MECHANISMS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"] as const;

export const mechanisms: Check = (v, path, ctx) => {
  const list = arrayOf("SASL mechanism names", (x, p, c) => oneOf(MECHANISMS)(typeof x === "string" ? x.toUpperCase() : x, p, c) as string | undefined, (m) => m)(v, path, ctx);
  return list;
};

/** "192.0.2.0/24", "2001:db8::/32" or a single address; normalised to address/prefix. */
export function parseCidr(input: string): Parsed<string> {
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
export function parseDnsServer(input: string): Parsed<{ host: string; port: number }> {
  let text = input;
  if (isIP(input) === 4) text = `${input}:53`;
  else if (isIP(input) === 6) text = `[${input}]:53`;
  else if (input.startsWith("[") && input.endsWith("]")) text = `${input}:53`;
  const p = parseListen(text);
  return p.ok ? p : { ok: false, expected: 'a DNS server "IP", "IP:port" or "[IPv6]:port" (an IP address, not a name)' };
}

export const CHECK_ACTIONS = ["reject", "tempfail", "quarantine", "tag", "ignore"] as const;
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
  "dnsbl.listed": "reject",
  "from.missing": "reject",
  "from.duplicate": "reject",
  "from.invalid": "reject",
  "from.multiple_domains": "reject",
  "local.mail_from": "reject",
  "local.from": "reject",
  "local.from_name": "quarantine",
  "local.temperror": "tempfail",
  "spam.reject": "reject",
  "spam.soft_reject": "tempfail",
  "spam.greylist": "tempfail",
  "spam.add_header": "tag",
  "spam.rewrite_subject": "tag",
  "spam.error": "tag",
  "impersonation.domain": "tag",
  "impersonation.name": "tag",
  "virus.found": "reject",
  "virus.error": "tempfail",
  "virus.too_large": "tag",
  "attachment.executable": "reject",
  "attachment.disk_image": "reject",
  "attachment.macro": "reject",
  "attachment.encrypted_archive": "quarantine",
  "attachment.unscannable": "quarantine",
};

export const checkActions: Check = (v, path, ctx) => {
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

/** A table of "domain" = one of `values` (domains checked and normalised). */
function domainTable(values: readonly string[]): Check {
  return (v, path, ctx) => {
    if (!isTable(v)) {
      ctx.issue(path, `expected a table of "domain" = ${values.map((x) => JSON.stringify(x)).join(" | ")}, got ${describe(v)}`);
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const [k, a] of Object.entries(v)) {
      const d = parseDomain(k);
      if (!d.ok) {
        ctx.issue([...path, k], `expected ${d.expected}, got ${describe(k)}`);
        continue;
      }
      const value = oneOf(values)(a, [...path, k], ctx);
      if (typeof value === "string") out[d.value] = value;
    }
    return out;
  };
}

export const DMARC_OVERRIDES = ["none", "quarantine", "reject"] as const;
export const dmarcOverrides: Check = domainTable(DMARC_OVERRIDES);

export const TLS_POLICIES = ["dane-only", "verify", "encrypt", "may"] as const;
export const tlsPolicies: Check = domainTable(TLS_POLICIES);

/** [[outbound.relays]]: smarthosts, globally ("*") or per destination domain. */
export const relays: Check = arrayOf("relay tables", (v, path, ctx) => {
  if (!isTable(v)) {
    ctx.issue(path, 'expected a table { domains = ["*"], host = "IP:port" or "name:port", tls = "required" | "encrypt" | "may", ca_file = "", user = "", password_file = "" }');
    return undefined;
  }
  let ok = true;
  for (const k of Object.keys(v)) {
    if (!["domains", "host", "tls", "ca_file", "user", "password_file"].includes(k)) {
      ctx.issue([...path, k], 'unknown key; a relay has "domains", "host", "tls", "ca_file", "user" and "password_file"');
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
  if (tlsMode !== "required" && tlsMode !== "encrypt" && tlsMode !== "may") {
    ctx.issue([...path, "tls"], `expected "required" (verified certificate), "encrypt" (TLS, certificate not checked) or "may", got ${describe(v.tls)}`);
    ok = false;
  }
  const ca = v.ca_file ?? "";
  if (typeof ca !== "string") {
    ctx.issue([...path, "ca_file"], `expected the path of a PEM file of CA certificates, got ${describe(v.ca_file)}`);
    ok = false;
  }
  const user = v.user ?? "";
  const pw = v.password_file ?? "";
  if (typeof user !== "string" || typeof pw !== "string" || (user === "") !== (pw === "")) {
    ctx.issue(path, "user and password_file go together (AUTH PLAIN over TLS to the relay)");
    ok = false;
  } else if (user !== "" && tlsMode !== "required") {
    ctx.issue([...path, "tls"], `AUTH (user = ${JSON.stringify(user)}) needs tls = "required": the password is only ever sent over TLS with the relay's certificate verified`);
    ok = false;
  }
  if (!ok || !host) return undefined;
  return {
    domains: (domains as string[]).map((d) => (d === "*" ? "*" : d.toLowerCase().replace(/\.$/, ""))),
    host: (host[1] ?? "").replace(/^\[|\]$/g, "").toLowerCase(),
    port: Number(host[2]),
    tls: tlsMode,
    caFile: ca === "" ? "" : ctx.resolve(ctx.fileDir, ca as string),
    user,
    passwordFile: pw === "" ? "" : ctx.resolve(ctx.fileDir, pw as string),
  };
});

