/**
 * Wires the outbound parts into one RemoteTransport for a worker: the SMTP
 * session (connect.ts), the TLS planner (operator policy, DANE, MTA-STS),
 * the post-handshake verifiers, DKIM signing with the keys on disk, and the
 * connection cache (pool.ts): a session request takes a cached connection
 * of the same key (cacheKey) when there is one, RSET first; one that turns
 * out unusable before anything was accepted ("stale") is closed and the
 * batch goes on a new connection at once, not counted as a failed attempt.
 * TLS-RPT records a connection once, when it was opened.
 *
 * TLS planning for one MX host (RFC 7672 §2.2, RFC 8461 §4, §5):
 * - outbound.tls_policy for the domain wins: "dane-only" needs usable
 *   TLSA records in a signed zone (else defer), "verify" needs a PKIX-valid
 *   certificate for the MX name, "encrypt" any TLS, "may" opportunistic;
 * - else DANE: a signed MX answer and signed TLSA records for the host →
 *   the certificate must match them; signed but unusable TLSA → TLS
 *   required, unauthenticated; a bogus or failed TLSA lookup → defer (an
 *   attacker must not turn DANE off by blocking the query);
 * - else MTA-STS "enforce": the MX name must match the policy (else this
 *   host is skipped) and its certificate must be PKIX-valid for that name;
 * - else MTA-STS "testing": delivered as opportunistic STARTTLS, but the MX
 *   name and certificate are checked as under "enforce" and what fails goes
 *   to TLS-RPT under policy type "sts" with its real result type
 *   (certificate-host-mismatch, starttls-not-supported...), RFC 8461 §5;
 * - else opportunistic STARTTLS.
 *
 * Relays: tls = "required" verifies the relay's certificate for its host
 * (name or IP address) with node's checks, against the relay's ca_file
 * (read once, here) when it has one, else the system CAs.
 *
 * Relay AUTH: each relay's password_file is read once, when the transport is
 * made (before the worker drops its privileges, so the file may be
 * root-only), its trailing line ending dropped. A file that cannot be read
 * is logged (its path, never its content) and defers that relay's mail.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { isIP } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Config } from "../config/index.ts";
import type { DnsResolver, TlsaRecord } from "../dns/index.ts";
import { loadSigningKeys, signMessage, signingDomain, type SigningKeys } from "../dkim/index.ts";
import type { Logger } from "../log/index.ts";
import { SmtpConnection, type SessionResult } from "./connect.ts";
import { ConnectionCache } from "./pool.ts";
import { daneVerifier, tlsaFor } from "./dane.ts";
import { checkCertificate, mxMatches, type MtaStsClient } from "./mta-sts.ts";
import type { MxHost } from "./mx.ts";
import { RemoteTransport, type RelayAuth, type RelayCredentials, type SessionOutcome, type SessionRequest, type TlsRequirement } from "./transport.ts";
import type { TlsRptStore } from "./tlsrpt.ts";
import { metrics } from "../metrics/index.ts";

export interface AgentOptions {
  readonly config: Config;
  /** Records every TLS session for TLS-RPT (RFC 8460); optional. */
  readonly tlsrpt?: TlsRptStore;
  readonly resolver: DnsResolver;
  readonly mtaSts: MtaStsClient;
  readonly logger: Logger;
  /** Milliseconds; tests shorten them. */
  readonly timeouts?: { connectMs: number; greetingMs: number; commandMs: number; dataMs: number };
}

const TIMEOUTS = { connectMs: 30_000, greetingMs: 300_000, commandMs: 300_000, dataMs: 600_000 };

/** The TLS requirement for a destination MX host, or why mail must wait. */
export async function planTls(
  domain: string,
  host: MxHost,
  mxSecure: boolean,
  deps: { config: Pick<Config, "outbound">; resolver: DnsResolver; mtaSts: MtaStsClient; reportStsFailure?: (domain: string, reason: string, detail: string) => void },
): Promise<TlsRequirement | { defer: string }> {
  const explicit = deps.config.outbound.tlsPolicy[domain];
  if (explicit === "may") return { mode: "may", source: "policy" };
  if (explicit === "encrypt") return { mode: "encrypt", source: "policy" };
  if (explicit === "verify") return { mode: "verify", source: "policy" };
  const secure = mxSecure && host.secure;
  if (explicit === "dane-only" || secure) {
    const t = await tlsaFor(deps.resolver, host.name, secure, deps.config.outbound.port);
    const strings = t.state === "secure" ? t.records.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString("hex")}`) : [];
    if (t.state === "secure") return t.usable ? { mode: "dane", source: "dane", tlsa: t.records, policyStrings: strings } : { mode: "encrypt", source: "dane", policyStrings: strings };
    if (t.state === "bogus" || t.state === "error") return { defer: `DANE: TLSA lookup for ${host.name} failed (${t.reason}: ${t.detail})` };
    if (explicit === "dane-only") return { defer: `DANE required by outbound.tls_policy but ${host.name} has no usable TLSA records (${t.detail})` };
  }
  const sts = await deps.mtaSts.lookup(domain);
  // RFC 8460 §4.3.2: a policy that could not be fetched or validated is a TLS-RPT failure too.
  if (sts.status === "error") deps.reportStsFailure?.(domain, sts.reason, sts.detail);
  else if (sts.status === "valid" && sts.failure) deps.reportStsFailure?.(domain, sts.failure.reason, sts.failure.detail);
  if (sts.status === "valid" && (sts.policy.mode === "enforce" || sts.policy.mode === "testing")) {
    const p = sts.policy;
    const policyStrings = ["version: STSv1", `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`];
    const inPolicy = mxMatches(p, host.name);
    if (p.mode === "testing") {
      // RFC 8461 §5: deliver as without MTA-STS, but check as under enforce and report what fails (TLS-RPT, policy type sts).
      return { mode: "may", source: "mta-sts-testing", policyId: p.id, policyStrings, ...(inPolicy ? {} : { stsMxMismatch: `${host.name} is not an MX of the ${domain} policy` }) };
    }
    if (!inPolicy) return { defer: `MTA-STS: ${host.name} is not an MX of the ${domain} policy` };
    return { mode: "verify", source: "mta-sts", policyId: p.id, policyStrings };
  }
  return { mode: "may", source: "opportunistic" };
}

/** The check run after the handshake for a TLS requirement. */
function verifierFor(tls: TlsRequirement, host: string): ((s: TLSSocket) => { ok: boolean; reason?: string }) | undefined {
  if (tls.mode === "verify" && tls.source === "relay") {
    // node's own check: chain to the system CAs (or the relay's ca_file) and the name
    // (or IP address) of relay.host; unlike MTA-STS, an IP-address relay is allowed.
    return (s) => {
      if (s.authorized) return { ok: true };
      const raw: unknown = s.authorizationError;
      const code = typeof raw === "string" ? raw : raw instanceof Error ? raw.message : "certificate not verified";
      return { ok: false, reason: `${code === "ERR_TLS_CERT_ALTNAME_INVALID" ? "certificate-host-mismatch" : "certificate-not-trusted"}: relay certificate not valid for ${host} (${code})` };
    };
  }
  if (tls.mode === "verify") {
    return (s) => {
      const c = checkCertificate(s, host);
      return c.ok ? { ok: true } : { ok: false, reason: `${c.reason}: ${c.detail}` };
    };
  }
  if (tls.mode === "dane") {
    const check = daneVerifier((tls.tlsa ?? []) as TlsaRecord[], host);
    return (s) => {
      const c = check(s);
      return c.ok ? { ok: true } : { ok: false, reason: `${c.reason}: ${c.detail}` };
    };
  }
  return undefined;
}

/** DKIM keys from disk, re-read when the key directory changes (checked at most every 30 s). */
class Signer {
  private keys: SigningKeys = new Map();
  private checkedAt = 0;
  private stamp = "";
  private readonly dataDir: string;
  private readonly log: Logger;

  constructor(dataDir: string, log: Logger) {
    this.dataDir = dataDir;
    this.log = log;
  }

  private async refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < 30_000) return;
    this.checkedAt = Date.now();
    // Names, sizes and mtimes of the key files: a new, replaced (keygen --force) or removed key reloads.
    let stamp = "";
    try {
      const parts: string[] = [];
      for (const d of await readdir(`${this.dataDir}/dkim`, { withFileTypes: true })) {
        if (!d.isDirectory()) continue;
        for (const f of await readdir(`${this.dataDir}/dkim/${d.name}`)) {
          const st = await stat(`${this.dataDir}/dkim/${d.name}/${f}`).catch(() => undefined);
          parts.push(`${d.name}/${f}:${st?.size ?? 0}:${st?.mtimeMs ?? 0}`);
        }
      }
      stamp = parts.sort().join(";");
    } catch {
      stamp = "";
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    try {
      this.keys = stamp === "" ? new Map() : await loadSigningKeys(this.dataDir, (problem) => this.log.warn({ problem }, "DKIM key set skipped"));
      this.log.info({ domains: [...this.keys.keys()] }, "DKIM signing keys loaded");
    } catch (err) {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, "DKIM keys could not be loaded; sending unsigned");
      this.keys = new Map();
    }
  }

  async sign(content: Buffer): Promise<Buffer> {
    await this.refresh();
    const domain = signingDomain(content, this.keys);
    if (domain === undefined) return content;
    try {
      return await signMessage(content, this.keys, { domain });
    } catch (err) {
      this.log.warn({ domain, err: err instanceof Error ? err.message : String(err) }, "DKIM signing failed; sending unsigned");
      return content;
    }
  }
}

const RESULT_TYPES = new Set(["starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"]);

/**
 * One TLS-RPT event per session that got as far as TLS (or should have):
 * success when TLS came up (and passed its check); the failure type when the
 * check refused the peer or STARTTLS was required and not offered. Sessions
 * that failed before TLS for other reasons (connection refused) are not
 * TLS results and are not recorded, nor are sessions to a relay host.
 */
function recordTls(
  store: TlsRptStore,
  req: SessionRequest,
  conn: { tls?: { version: string }; error?: string; esmtp: boolean; extensions: { starttls: boolean }; localAddress?: string },
  log: Logger,
  testingFailure?: { reason: string; detail: string },
): void {
  // A smarthost is not the domain's MX: its sessions say nothing about the domain's policy, and its rua must not learn our routing.
  if (req.tls.source === "relay") return;
  const testing = req.tls.source === "mta-sts-testing";
  const policyType = req.tls.source === "mta-sts" || testing ? "sts" : req.tls.source === "dane" ? "tlsa" : "no-policy-found";
  const reason = /TLS peer refused: ([a-z-]+):/.exec(conn.error ?? "")?.[1];
  let result: string | undefined;
  let detail = conn.error;
  if (testing && conn.tls && testingFailure !== undefined) {
    // Delivered all the same (testing), but it is the failure enforce would have deferred for.
    result = testingFailure.reason;
    detail = testingFailure.detail;
  } else if (testing && !conn.tls && conn.esmtp && !conn.extensions.starttls) {
    result = "starttls-not-supported";
    detail = "the MX does not offer STARTTLS (policy mode testing: sent without TLS)";
  } else if (conn.tls && (reason === undefined || !RESULT_TYPES.has(reason))) result = "success";
  else if (reason !== undefined && RESULT_TYPES.has(reason)) result = reason;
  else if (!conn.tls && req.tls.mode !== "may" && conn.error !== undefined && /STARTTLS|TLS required/i.test(conn.error)) result = "starttls-not-supported";
  if (result === undefined) return;
  try {
    store.record({
      policyDomain: req.domain,
      policyType,
      policyStrings: policyType === "no-policy-found" ? [] : [...(req.tls.policyStrings ?? [])],
      mxHost: req.host,
      receivingIp: req.address,
      ...(conn.localAddress !== undefined ? { sendingIp: conn.localAddress } : {}),
      result: result as "success",
      ...(detail !== undefined ? { detail } : {}),
    });
  } catch (err) {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, "TLS-RPT event not recorded");
  }
}

/** Reads every relay's password_file once; the result answers for a relay by its file. */
export function loadRelayAuth(relays: Config["outbound"]["relays"], log: Logger, read: (file: string) => string = (f) => readFileSync(f, "utf8")): RelayAuth {
  const byFile = new Map<string, RelayCredentials | { error: string }>();
  for (const r of relays) {
    if (r.user === "" || r.passwordFile === "" || byFile.has(`${r.user}\0${r.passwordFile}`)) continue;
    let entry: RelayCredentials | { error: string };
    try {
      const password = read(r.passwordFile).replace(/\r?\n$/, "");
      if (password === "") entry = { error: `password_file ${r.passwordFile} is empty` };
      else if (/[\0\r\n]/.test(password)) entry = { error: `password_file ${r.passwordFile} holds more than one line` };
      else entry = { user: r.user, password };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      entry = { error: `cannot read password_file ${r.passwordFile}: ${e.code ?? "error"}` };
    }
    if ("error" in entry) log.error({ relay: r.host, user: r.user, reason: entry.error }, "relay AUTH credentials unavailable; mail for this relay stays queued");
    byFile.set(`${r.user}\0${r.passwordFile}`, entry);
  }
  return (relay) => byFile.get(`${relay.user}\0${relay.passwordFile}`) ?? { error: "no password_file" };
}

/** Reads every relay's ca_file once (PEM); a file that cannot be read is logged and its relay's mail waits. */
function loadRelayCas(relays: Config["outbound"]["relays"], log: Logger): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of relays) {
    if (r.caFile === "" || out.has(r.caFile)) continue;
    try {
      const pem = readFileSync(r.caFile, "utf8");
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw Object.assign(new Error("no PEM certificate"), { code: "no PEM certificate" });
      out.set(r.caFile, pem);
    } catch (err) {
      log.error({ relay: r.host, caFile: r.caFile, reason: (err as NodeJS.ErrnoException).code ?? "error" }, "relay ca_file unreadable; mail for this relay stays queued");
    }
  }
  return out;
}

/**
 * The connection cache key of a session request (pool.ts): destination,
 * host, address, port, the whole TLS requirement and the relay credentials
 * (hashed). Relay sessions are keyed by the relay, not the domain: a relay's
 * TLS requirement does not depend on the domain.
 */
export function cacheKey(req: SessionRequest, helo: string): string {
  const t = req.tls;
  const tlsKey = [t.mode, t.source, t.policyId ?? "", t.caFile ?? "", t.stsMxMismatch ?? "", ...(t.policyStrings ?? [])].join("\u0001");
  const auth = req.auth === undefined ? "" : createHash("sha256").update(`${req.auth.user}\0${req.auth.password}`).digest("base64");
  const dest = t.source === "relay" ? "relay" : `domain:${req.domain}`;
  return [dest, req.host.toLowerCase(), req.address, String(req.port), helo, tlsKey, auth].join("\u0000");
}

/** The RemoteTransport of a worker. */
export function createTransport(opts: AgentOptions): RemoteTransport {
  const { config, resolver, mtaSts, logger } = opts;
  const timeouts = opts.timeouts ?? TIMEOUTS;
  const signer = new Signer(config.server.dataDir, logger.child({ component: "dkim" }));
  const relayAuth = loadRelayAuth(config.outbound.relays, logger);
  const relayCas = loadRelayCas(config.outbound.relays, logger);
  const cache = new ConnectionCache<SmtpConnection>({
    idleMs: config.outbound.connectionCacheTime * 1000,
    perDestination: config.outbound.maxConnectionsPerDomain,
    maxMessages: config.outbound.messagesPerConnection,
    maxAgeMs: config.outbound.connectionMaxAge * 1000,
  });
  const session = async (req: SessionRequest) => {
    const ca = req.tls.caFile !== undefined ? relayCas.get(req.tls.caFile) : undefined;
    if (req.tls.caFile !== undefined && ca === undefined) return { results: new Map<string, SessionOutcome[]>(), fatal: `relay ${req.host}: ca_file ${req.tls.caFile} unreadable; not sending` };
    const messages = req.messages.map((m) => ({
      envelope: { ...m.msg.envelope, recipients: m.recipients.map((r) => ({ address: r.address, dsn: r.dsn })) },
      content: m.content,
      ...(m.requireTls ? { requireTls: true } : {}),
    }));
    // MTA-STS testing: the enforce check runs, but only to report (TLS-RPT); it never stops delivery.
    let testingFailure: { reason: string; detail: string } | undefined = req.tls.stsMxMismatch !== undefined ? { reason: "validation-failure", detail: req.tls.stsMxMismatch } : undefined;
    const verify =
      req.tls.source === "mta-sts-testing"
        ? (s: TLSSocket) => {
            const c = checkCertificate(s, req.host);
            if (!c.ok) testingFailure = { reason: c.reason, detail: c.detail };
            return { ok: true };
          }
        : verifierFor(req.tls, req.host);
    const key = cacheKey(req, config.server.hostname);
    /** Outcomes of a batch; a connection still in step goes back to the cache. */
    const finish = (res: SessionResult, used: SmtpConnection, reused: boolean) => {
      if (used.idle) cache.put(key, used);
      const results = new Map<string, SessionOutcome[]>();
      req.messages.forEach((m, i) => results.set(m.id, [...(res.messages[i]?.recipients ?? [])]));
      const tls = res.connection.tls;
      // Verified: for DANE and MTA-STS/verify, our own check after the handshake passed;
      // otherwise whether the chain validated (PKIX) at all.
      const refused = /TLS peer refused/.test(res.connection.error ?? "");
      const verified = tls !== undefined && (req.tls.mode === "dane" || req.tls.mode === "verify" ? !refused : tls.verified === true);
      // One TLS-RPT session per connection: a reused one was recorded when it was opened.
      if (opts.tlsrpt && !reused) recordTls(opts.tlsrpt, req, res.connection, logger, testingFailure);
      metrics.inc("wardmail_outbound_sessions_total", { policy: req.tls.mode, source: req.tls.source, tls: tls === undefined ? "none" : verified ? "verified" : "unverified", result: res.connection.error === undefined ? "ok" : "error" });
      logger.info(
        { mx: req.host, ip: req.address, port: req.port, tlsPolicy: req.tls.mode, tlsSource: req.tls.source, ...(req.auth !== undefined ? { authUser: req.auth.user } : {}), tls: tls?.version, cipher: tls?.cipher, verified, messages: req.messages.length, ...(reused ? { reused: true } : {}), error: res.connection.error, ...(testingFailure !== undefined ? { stsTestingFailure: `${testingFailure.reason}: ${testingFailure.detail}` } : {}) },
        "outbound session",
      );
      return { results, ...(res.connection.error !== undefined ? { fatal: res.connection.error } : {}), ...(tls ? { tls: { version: tls.version, cipher: tls.cipher, verified } } : {}) };
    };
    // A cached connection to the same destination under the same policy and credentials: RSET, then the batch.
    const cached = cache.enabled ? cache.take(key, messages.length) : undefined;
    if (cached !== undefined) {
      const again = await cached.send(messages);
      if (again.connection.stale !== true) return finish(again, cached, true);
      cached.destroy();
      logger.info({ mx: req.host, ip: req.address, port: req.port, reason: again.connection.error }, "cached outbound connection unusable; sending on a new one");
    }
    const conn: SmtpConnection = new SmtpConnection({
      host: req.host,
      address: req.address,
      port: req.port,
      helo: config.server.hostname,
      tls: req.tls.mode === "may" ? "opportunistic" : "required",
      // SNI and node's name check take the host; an IP literal is never an SNI name (connect.ts).
      tlsOptions: { ...(isIP(req.host) === 0 ? { servername: req.host } : {}), ...(ca !== undefined ? { ca } : {}) },
      ...(verify ? { verify } : {}),
      ...(req.auth !== undefined ? { auth: req.auth } : {}),
      timeouts,
      messages,
      keepOpen: cache.enabled,
      onClosed: () => cache.forget(conn),
    });
    return finish(await conn.start(), conn, false);
  };
  return new RemoteTransport({
    config,
    resolver,
    logger,
    session,
    plan: (domain, host, mxSecure) =>
      planTls(domain, host, mxSecure, {
        config,
        resolver,
        mtaSts,
        reportStsFailure: (domain, reason, detail) => {
          try {
            opts.tlsrpt?.record({ policyDomain: domain, policyType: "sts", policyStrings: [], mxHost: "", result: reason as "success", detail });
          } catch (err) {
            logger.warn({ err: err instanceof Error ? err.message : String(err) }, "TLS-RPT event not recorded");
          }
        },
      }),
    sign: (content) => signer.sign(content),
    relayAuth,
    closeIdle: () => cache.closeAll(),
  });
}
