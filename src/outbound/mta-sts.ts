/**
 * MTA-STS (RFC 8461) for outbound delivery: policy discovery (TXT
 * `_mta-sts.<domain>`), the HTTPS policy fetch, the policy cache, MX pattern
 * matching, and the certificate check run on an MX connection after the TLS
 * handshake.
 *
 *   const sts = new MtaStsClient({ resolver });
 *   const policy = await sts.policyFor("example.com");   // undefined: no policy
 *   if (policy && policy.mode !== "none" && !mxMatches(policy, mx)) skip this MX;
 *   … after STARTTLS: checkCertificate(socket, mx) → { ok } or { ok: false, reason, detail }
 *
 * Trust: the policy is trusted only when fetched over HTTPS from
 * mta-sts.<domain> with full PKIX validation (Node's CA set, or `ca` in
 * tests), a DNS-ID subjectAltName matching that name (no CN fallback,
 * wildcard only as the whole leftmost label, RFC 8461 §3.3 / RFC 6125), HTTP
 * 200, no redirects, media type text/plain, body ≤ 64 KiB, within a time
 * limit. The TXT record is only a change signal (its AD bit does not matter;
 * RFC 8461 §10 on what an attacker on DNS can do). A valid cached policy
 * wins over any failure to discover or fetch a live one (§3.3, §5.1):
 * blocking DNS or HTTPS must not downgrade a domain.
 *
 * Limits: the cache expires at fetch time + max_age; a policy whose id is
 * unchanged is not refetched until then (no proactive refresh, which the RFC
 * allows but does not require). Concurrent lookups of one domain share one
 * discovery. Failed fetches without a cached policy are not rate-limited
 * here. Store errors propagate (the caller defers the delivery). The policy
 * host is resolved by the OS (node's dns.lookup) unless `lookup`/`connect`
 * say otherwise. TLS-RPT failure names: RFC 8460 §4.3.
 */
import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import * as https from "node:https";
import type { LookupFunction } from "node:net";
import type * as tls from "node:tls";
import type { DnsResolver } from "../dns/index.ts";
import { DnsError } from "../dns/index.ts";

/** Result types of RFC 8460 §4.3 (TLS-RPT). */
export type TlsRptResultType =
  | "starttls-not-supported"
  | "certificate-host-mismatch"
  | "certificate-expired"
  | "certificate-not-trusted"
  | "validation-failure"
  | "tlsa-invalid"
  | "dnssec-invalid"
  | "dane-required"
  | "sts-policy-fetch-error"
  | "sts-policy-invalid"
  | "sts-webpki-invalid";

/** Outcome of a check on a connection or a fetch: the failure in TLS-RPT terms plus a human detail. */
export type TlsCheck = { readonly ok: true } | { readonly ok: false; readonly reason: TlsRptResultType; readonly detail: string };

export type MtaStsMode = "enforce" | "testing" | "none";

export interface MtaStsPolicy {
  readonly mode: MtaStsMode;
  /** Lower case, no trailing dot; "*.example.com" patterns kept as written. */
  readonly mx: readonly string[];
  /** Seconds (0..31557600). */
  readonly maxAge: number;
  /** The id of the TXT record the policy was fetched under. */
  readonly id: string;
}

export const MAX_POLICY_BYTES = 64 * 1024;
export const MAX_AGE_LIMIT = 31_557_600;
const DEFAULT_TIMEOUT_MS = 60_000;

const TXT_ID = /^[A-Za-z0-9]{1,32}$/;
const EXT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const TXT_EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;
const LDH_DOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** key ":" *WSP value, value without leading/trailing WSP and without control characters. */
const POLICY_LINE = /^([^:]*):[ \t]*(.*?)[ \t]*$/;
const POLICY_VALUE = /^[^\x00-\x20\x7f](?:[^\x00-\x08\x0a-\x1f\x7f]*[^\x00-\x20\x7f])?$/;

const lowerAscii = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

/** Lower-case A-label domain without its trailing dot, or undefined if it is not an LDH domain name. */
export function normalizeDomain(domain: string): string | undefined {
  const d = lowerAscii(domain.endsWith(".") ? domain.slice(0, -1) : domain);
  return d.length <= 253 && LDH_DOMAIN.test(d) ? d : undefined;
}

// ---------------------------------------------------------------------------
// Parsers (RFC 8461 §3.1 TXT record, §3.2 policy file)

/**
 * The policy id of one `_mta-sts` TXT record (character-strings already
 * joined), or undefined if it is not a valid STSv1 record. Strict ABNF
 * (v=STSv1 first, case-sensitive; id 1–32 alphanumerics; extension fields
 * syntactically valid); trailing whitespace tolerated. Duplicate fields: the
 * first wins.
 */
export function parseStsRecord(txt: string): string | undefined {
  const parts = txt.replace(/[ \t]+$/, "").split(";");
  if (parts.length < 2 || parts[0]?.replace(/[ \t]+$/, "") !== "v=STSv1") return undefined;
  let id: string | undefined;
  for (let i = 1; i < parts.length; i++) {
    const field = (parts[i] ?? "").replace(/^[ \t]+|[ \t]+$/g, "");
    if (field === "") {
      if (i === parts.length - 1) continue; // optional trailing ";"
      return undefined;
    }
    const eq = field.indexOf("=");
    if (eq < 1) return undefined;
    const name = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (name === "id" && id === undefined) {
      if (!TXT_ID.test(value)) return undefined;
      id = value;
    } else if (!EXT_NAME.test(name) || !TXT_EXT_VALUE.test(value)) {
      return undefined;
    }
  }
  return id;
}

export type PolicyParse = { readonly ok: true; readonly policy: Omit<MtaStsPolicy, "id"> } | { readonly ok: false; readonly detail: string };

/**
 * Parses a policy body (RFC 8461 §3.2): LF or CRLF lines, `key: value`,
 * keys case-sensitive; version STSv1, mode, max_age (≤ 31557600) required;
 * mx required unless mode is none; mx is `["*."] Domain` (one trailing dot
 * tolerated). Unknown keys are ignored; for repeated non-mx keys the first
 * wins. Blank lines are tolerated; any other line that is not `key: value`
 * makes the policy invalid.
 */
export function parseStsPolicy(body: string): PolicyParse {
  const text = body.startsWith("\ufeff") ? body.slice(1) : body;
  const seen = new Map<string, string>();
  const mx: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (/^[ \t]*$/.test(line)) continue;
    const m = POLICY_LINE.exec(line);
    const key = m?.[1];
    const value = m?.[2];
    if (key === undefined || value === undefined || !EXT_NAME.test(key)) return { ok: false, detail: `malformed line ${JSON.stringify(line.slice(0, 80))}` };
    if (key === "mx") {
      const pattern = normalizeMxPattern(value);
      if (pattern === undefined) return { ok: false, detail: `invalid mx pattern ${JSON.stringify(value.slice(0, 80))}` };
      if (!mx.includes(pattern)) mx.push(pattern);
    } else if (!seen.has(key)) {
      if (value !== "" && !POLICY_VALUE.test(value)) return { ok: false, detail: `invalid value for ${key}` };
      seen.set(key, value);
    }
  }
  const version = seen.get("version");
  if (version !== "STSv1") return { ok: false, detail: version === undefined ? "version missing" : "version is not STSv1" };
  const mode = seen.get("mode");
  if (mode !== "enforce" && mode !== "testing" && mode !== "none") return { ok: false, detail: mode === undefined ? "mode missing" : `unknown mode ${JSON.stringify(mode)}` };
  const age = seen.get("max_age");
  if (age === undefined || !/^[0-9]{1,10}$/.test(age) || Number(age) > MAX_AGE_LIMIT) return { ok: false, detail: age === undefined ? "max_age missing" : "invalid max_age" };
  if (mode !== "none" && mx.length === 0) return { ok: false, detail: `mode ${mode} without mx` };
  return { ok: true, policy: { mode, mx, maxAge: Number(age) } };
}

function normalizeMxPattern(value: string): string | undefined {
  const v = lowerAscii(value.endsWith(".") ? value.slice(0, -1) : value);
  const name = v.startsWith("*.") ? v.slice(2) : v;
  return name.length <= 253 && LDH_DOMAIN.test(name) ? v : undefined;
}

/**
 * Whether an MX host name matches one of the policy's mx patterns (RFC 8461
 * §4.1): exact, or "*.suffix" matching exactly one extra leftmost label.
 * ASCII case-insensitive; one trailing dot ignored on either side. The mode
 * is not consulted: callers apply it (none → no check).
 */
export function mxMatches(policy: { readonly mx: readonly string[] }, mxHost: string): boolean {
  const host = lowerAscii(mxHost.endsWith(".") ? mxHost.slice(0, -1) : mxHost);
  if (host === "" || host.includes("*")) return false;
  for (const raw of policy.mx) {
    const pattern = lowerAscii(raw.endsWith(".") ? raw.slice(0, -1) : raw);
    if (pattern.startsWith("*.")) {
      const suffix = pattern.slice(1); // ".example.com"
      const label = host.slice(0, host.length - suffix.length);
      if (host.length > suffix.length && host.endsWith(suffix) && !label.includes(".")) return true;
    } else if (pattern === host) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// HTTPS policy fetch (RFC 8461 §3.3)

export interface StsFetchOptions {
  /** Trust anchors replacing Node's default CA set (tests). */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Connect here instead of mta-sts.<domain>:443; SNI, Host and the name check stay mta-sts.<domain>. */
  readonly connect?: { readonly host: string; readonly port: number };
  /** Address lookup for the policy host (default: the OS resolver). */
  readonly lookup?: LookupFunction;
  /** Overall limit for connect + TLS + response (default 60 s). */
  readonly timeoutMs?: number;
  /** Largest accepted body (default and maximum 64 KiB). */
  readonly maxBytes?: number;
}

export type StsFetchResult =
  | { readonly ok: true; readonly body: string }
  | { readonly ok: false; readonly reason: "sts-policy-fetch-error" | "sts-policy-invalid" | "sts-webpki-invalid"; readonly detail: string };

/** OpenSSL X.509 verification codes as node reports them, plus node's own name-check code. */
const WEBPKI_CODE = /^(?:CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH_|HOSTNAME_MISMATCH|ERROR_IN_CERT|ERR_TLS_CERT_ALTNAME|STS_CERT_NAME)/;

/** RFC 6125 DNS-ID check without CN fallback; wildcards only as the complete leftmost label. */
function certMatchesName(raw: Buffer, host: string): boolean {
  try {
    return new X509Certificate(raw).checkHost(host, { subject: "never", wildcards: true, partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined;
  } catch {
    return false;
  }
}

/**
 * GET https://mta-sts.<domain>/.well-known/mta-sts.txt with certificate
 * validation on. Never throws; never follows redirects.
 */
export function fetchStsPolicy(domain: string, opts: StsFetchOptions = {}): Promise<StsFetchResult> {
  const d = normalizeDomain(domain);
  if (d === undefined) return Promise.resolve({ ok: false, reason: "sts-policy-fetch-error", detail: "not a domain name" });
  const host = `mta-sts.${d}`;
  const maxBytes = Math.min(opts.maxBytes ?? MAX_POLICY_BYTES, MAX_POLICY_BYTES);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve) => {
    let done = false;
    let req: ReturnType<typeof https.request> | undefined;
    const finish = (r: StsFetchResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req?.destroy();
      resolve(r);
    };
    const fail = (reason: "sts-policy-fetch-error" | "sts-policy-invalid" | "sts-webpki-invalid", detail: string): void => finish({ ok: false, reason, detail });
    const timer = setTimeout(() => fail("sts-policy-fetch-error", `timeout after ${timeoutMs} ms`), timeoutMs);

    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      if (status !== 200) return fail("sts-policy-fetch-error", status >= 300 && status < 400 ? `HTTP ${status} redirect (not followed)` : `HTTP ${status}`);
      const media = lowerAscii((res.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "");
      if (media !== "text/plain") return fail("sts-policy-invalid", `Content-Type ${JSON.stringify(res.headers["content-type"] ?? "")}`);
      const declared = res.headers["content-length"];
      if (declared !== undefined && Number(declared) > maxBytes) return fail("sts-policy-invalid", `body of ${declared} bytes over ${maxBytes}`);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return fail("sts-policy-invalid", `body over ${maxBytes} bytes`);
        chunks.push(chunk);
      });
      res.on("end", () => {
        try {
          finish({ ok: true, body: new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks)) });
        } catch {
          fail("sts-policy-invalid", "body is not UTF-8");
        }
      });
      res.on("error", (err) => fail("sts-policy-fetch-error", err.message));
      res.on("close", () => {
        if (!res.complete) fail("sts-policy-fetch-error", "incomplete response");
      });
    };

    try {
      req = https.request(
        {
          host: opts.connect?.host ?? host,
          port: opts.connect?.port ?? 443,
          servername: host,
          path: "/.well-known/mta-sts.txt",
          method: "GET",
          headers: { host, accept: "text/plain", "user-agent": "Wardmail MTA-STS" },
          agent: false,
          rejectUnauthorized: true,
          ...(opts.ca !== undefined ? { ca: Array.isArray(opts.ca) ? [...(opts.ca as readonly (string | Buffer)[])] : (opts.ca as string | Buffer) } : {}),
          ...(opts.lookup !== undefined ? { lookup: opts.lookup } : {}),
          checkServerIdentity: (_name: string, cert: tls.PeerCertificate): Error | undefined => {
            if (certMatchesName(cert.raw, host)) return undefined;
            return Object.assign(new Error(`certificate is not valid for ${host}`), { code: "STS_CERT_NAME" });
          },
        },
        onResponse,
      );
    } catch (err) {
      fail("sts-policy-fetch-error", err instanceof Error ? err.message : String(err));
      return;
    }
    req.on("error", (err: Error & { code?: string }) => {
      const code = err.code ?? "";
      if (WEBPKI_CODE.test(code)) fail("sts-webpki-invalid", `${code}: ${err.message}`);
      else fail("sts-policy-fetch-error", code !== "" ? `${code}: ${err.message}` : err.message);
    });
    req.end();
  });
}

// ---------------------------------------------------------------------------
// Policy cache and client

export interface StoredStsPolicy {
  readonly policy: MtaStsPolicy;
  /** ms since the epoch; the policy expires at fetchedAt + maxAge s. */
  readonly fetchedAt: number;
}

/** Where policies persist (RFC 8461 §5: the cache must survive restarts). Keyed by normalized domain. */
export interface MtaStsStore {
  get(domain: string): StoredStsPolicy | undefined | Promise<StoredStsPolicy | undefined>;
  set(domain: string, policy: MtaStsPolicy, fetchedAt: number): void | Promise<void>;
}

export class MemoryMtaStsStore implements MtaStsStore {
  readonly #map = new Map<string, StoredStsPolicy>();
  get(domain: string): StoredStsPolicy | undefined {
    return this.#map.get(domain);
  }
  set(domain: string, policy: MtaStsPolicy, fetchedAt: number): void {
    this.#map.set(domain, { policy: { ...policy, mx: [...policy.mx] }, fetchedAt });
  }
}

export interface MtaStsClientOptions {
  readonly resolver: DnsResolver;
  readonly store?: MtaStsStore;
  /** Options of every policy fetch. */
  readonly fetch?: StsFetchOptions;
  /** Replaces the HTTPS fetch entirely (tests of callers). */
  readonly fetcher?: (domain: string) => Promise<StsFetchResult>;
  /** Clock in ms (tests). */
  readonly now?: () => number;
}

export type MtaStsLookup =
  /** A policy applies. source "cache": not fetched now; `failure` says why a live one was not used, if one failed. */
  | { readonly status: "valid"; readonly policy: MtaStsPolicy; readonly source: "fetched" | "cache"; readonly failure?: { readonly reason: TlsRptResultType; readonly detail: string } }
  /** The domain has no MTA-STS policy. */
  | { readonly status: "none"; readonly detail: string }
  /** A policy may exist but could not be discovered or fetched, and none is cached: deliver as without MTA-STS (§5.1), report it. */
  | { readonly status: "error"; readonly reason: TlsRptResultType; readonly detail: string };

type Discovery = { readonly id: string } | { readonly none: string } | { readonly error: string };

function isStored(v: unknown): v is StoredStsPolicy {
  if (v === null || typeof v !== "object") return false;
  const s = v as { policy?: Partial<MtaStsPolicy> | null; fetchedAt?: unknown };
  const p = s.policy;
  return (
    typeof s.fetchedAt === "number" &&
    p !== undefined &&
    p !== null &&
    (p.mode === "enforce" || p.mode === "testing" || p.mode === "none") &&
    Array.isArray(p.mx) &&
    p.mx.every((x) => typeof x === "string") &&
    typeof p.maxAge === "number" &&
    typeof p.id === "string"
  );
}

export class MtaStsClient {
  readonly #resolver: DnsResolver;
  readonly #store: MtaStsStore;
  readonly #fetcher: (domain: string) => Promise<StsFetchResult>;
  readonly #now: () => number;
  readonly #inflight = new Map<string, Promise<MtaStsLookup>>();

  constructor(opts: MtaStsClientOptions) {
    this.#resolver = opts.resolver;
    this.#store = opts.store ?? new MemoryMtaStsStore();
    this.#fetcher = opts.fetcher ?? ((domain: string) => fetchStsPolicy(domain, opts.fetch));
    this.#now = opts.now ?? Date.now;
  }

  /** The policy to apply to mail for `domain` (mode none included), or undefined when there is none. */
  async policyFor(domain: string): Promise<MtaStsPolicy | undefined> {
    const r = await this.lookup(domain);
    return r.status === "valid" ? r.policy : undefined;
  }

  /** Like policyFor, with where the policy came from and what failed (for TLS-RPT and logs). */
  lookup(domain: string): Promise<MtaStsLookup> {
    const d = normalizeDomain(domain);
    if (d === undefined) return Promise.resolve({ status: "none", detail: "not a domain name" });
    const running = this.#inflight.get(d);
    if (running !== undefined) return running;
    const p = this.#lookup(d).finally(() => this.#inflight.delete(d));
    this.#inflight.set(d, p);
    return p;
  }

  async #lookup(domain: string): Promise<MtaStsLookup> {
    const stored: unknown = await this.#store.get(domain);
    const now = this.#now();
    const cached = isStored(stored) && now < stored.fetchedAt + stored.policy.maxAge * 1000 ? stored.policy : undefined;
    const found = await this.#discover(domain);
    if (!("id" in found)) {
      if (cached !== undefined) {
        return "error" in found ? { status: "valid", policy: cached, source: "cache", failure: { reason: "sts-policy-fetch-error", detail: found.error } } : { status: "valid", policy: cached, source: "cache" };
      }
      return "error" in found ? { status: "error", reason: "sts-policy-fetch-error", detail: found.error } : { status: "none", detail: found.none };
    }
    if (cached !== undefined && cached.id === found.id) return { status: "valid", policy: cached, source: "cache" };

    const fetched = await this.#fetcher(domain);
    let failure: { reason: TlsRptResultType; detail: string };
    if (fetched.ok) {
      const parsed = parseStsPolicy(fetched.body);
      if (parsed.ok) {
        const policy: MtaStsPolicy = { ...parsed.policy, id: found.id };
        await this.#store.set(domain, policy, now);
        return { status: "valid", policy, source: "fetched" };
      }
      failure = { reason: "sts-policy-invalid", detail: parsed.detail };
    } else {
      failure = { reason: fetched.reason, detail: fetched.detail };
    }
    if (cached !== undefined) return { status: "valid", policy: cached, source: "cache", failure };
    return { status: "error", ...failure };
  }

  /** The id of the one valid STSv1 TXT record (§3.1), "none" when there is none, "error" when DNS failed. */
  async #discover(domain: string): Promise<Discovery> {
    let records: unknown[];
    try {
      records = (await this.#resolver.query(`_mta-sts.${domain}`, "TXT")).records;
    } catch (err) {
      if (err instanceof DnsError && (err.code === "ENOTFOUND" || err.code === "ENODATA")) return { none: "no _mta-sts TXT record" };
      return { error: `TXT _mta-sts.${domain}: ${err instanceof DnsError ? err.code : String(err)}` };
    }
    const texts = records.map((r) => (Array.isArray(r) ? r.map(String).join("") : String(r)));
    const candidates = texts.filter((t) => /^v=STSv1[ \t]*(?:;|$)/.test(t));
    if (candidates.length !== 1) return { none: candidates.length === 0 ? "no STSv1 TXT record" : "several STSv1 TXT records" };
    const id = parseStsRecord(candidates[0] ?? "");
    return id === undefined ? { none: "invalid STSv1 TXT record" } : { id };
  }
}

// ---------------------------------------------------------------------------
// MX connection check (RFC 8461 §4.2)

const NOT_TRUSTED = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
]);

/**
 * For an MX under an enforce/testing policy, after the handshake: the chain
 * must have validated (the SMTP client connects with rejectUnauthorized
 * false, servername = MX host, and the CA set it trusts — Node's default,
 * or `ca` in tests; this reads OpenSSL's verdict from the socket) and the
 * certificate must carry a DNS-ID subjectAltName for the MX host (checked
 * here, no CN fallback).
 */
export function checkCertificate(socket: tls.TLSSocket, mxHost: string): TlsCheck {
  // getPeerCertificate, not getPeerX509Certificate: in node 24 the latter empties later calls of either.
  const cert = socket.getPeerCertificate(false) as Partial<tls.PeerCertificate>;
  if (!Buffer.isBuffer(cert.raw)) return { ok: false, reason: "validation-failure", detail: "no peer certificate" };
  const raw: unknown = socket.authorizationError;
  const code = typeof raw === "string" ? raw : raw instanceof Error ? ((raw as Error & { code?: string }).code ?? raw.message) : "";
  // node runs its own name check only after the chain verified: that code means "chain fine".
  if (!socket.authorized && code !== "ERR_TLS_CERT_ALTNAME_INVALID") {
    if (code === "CERT_HAS_EXPIRED") return { ok: false, reason: "certificate-expired", detail: code };
    if (NOT_TRUSTED.has(code)) return { ok: false, reason: "certificate-not-trusted", detail: code };
    return { ok: false, reason: "validation-failure", detail: code !== "" ? code : "certificate not verified" };
  }
  const host = mxHost.endsWith(".") ? mxHost.slice(0, -1) : mxHost;
  if (!certMatchesName(cert.raw, host)) return { ok: false, reason: "certificate-host-mismatch", detail: `certificate is not valid for ${host}` };
  return { ok: true };
}

/** checkCertificate bound to one MX host: the SMTP client's post-handshake `verify(socket)` hook. */
export function stsVerifier(mxHost: string): (socket: tls.TLSSocket) => TlsCheck {
  return (socket) => checkCertificate(socket, mxHost);
}
