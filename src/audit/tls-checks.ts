/**
 * TLS checks of one SMTP listener, each on its own connection (greeting,
 * EHLO, STARTTLS, handshake; or implicit TLS), each ended with QUIT:
 *
 * - the default handshake of a modern client: protocol, cipher, key
 *   exchange group, the certificate (chain trust, name, expiry, key size,
 *   signature), and on port 25 the TLS 1.3 session tickets sent;
 * - one handshake per protocol version, TLS 1.0 to 1.3 (the client allows
 *   everything at OpenSSL security level 0, so that what is refused is the
 *   server's choice);
 * - TLS 1.2 suites without forward secrecy (kRSA), anonymous suites (aNULL)
 *   and CBC suites with forward secrecy;
 * - the post-quantum hybrid X25519MLKEM768 as the only group offered;
 * - client-initiated renegotiation on TLS 1.2.
 *
 * Not tested, because Node's OpenSSL cannot offer them as a client: SSLv2,
 * SSLv3, RC4, DES/3DES, NULL and export suites, TLS compression, insecure
 * (pre-RFC 5746) renegotiation (see docs/audit.md for the tools that do).
 */
import { X509Certificate } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import type { Finding } from "./types.ts";
import { ProbeError, openGreeted, type Probe, type ProbeTarget } from "./probe.ts";
import { replyText, type Extensions } from "../protocol/index.ts";

const LEGACY = "DEFAULT:@SECLEVEL=0";

export interface HandshakeResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly protocol?: string;
  readonly cipher?: string;
  readonly group?: string;
  /** TLS 1.3 NewSessionTicket messages seen until the EHLO reply over TLS. */
  readonly tickets?: number;
  readonly cert?: tls.DetailedPeerCertificate;
  readonly authorized?: boolean;
  readonly authorizationError?: string;
  /** The EHLO extensions over TLS (undefined when EHLO failed). */
  readonly ext?: Extensions;
}

/**
 * One connection with one TLS configuration. Without TLS on offer (no
 * STARTTLS) it says so with ok false and error "no STARTTLS".
 */
export async function tlsHandshake(target: ProbeTarget, options: tls.ConnectionOptions): Promise<HandshakeResult> {
  let probe: Probe | undefined;
  let tickets = 0;
  try {
    if (target.implicitTls) {
      ({ probe } = await openGreeted(target, options));
    } else {
      ({ probe } = await openGreeted(target));
      const { ext } = await probe.ehlo();
      if (ext === undefined || !ext.starttls) return { ok: false, error: "no STARTTLS" };
      const r = await probe.cmd("STARTTLS");
      if (r.code !== 220) return { ok: false, error: `STARTTLS refused: ${r.code} ${replyText(r)}` };
      await probe.handshake(options);
    }
    const t = probe.tls as tls.TLSSocket;
    // TLS 1.2 reports its session once, tickets or not; TLS 1.3 once per NewSessionTicket.
    t.on("session", () => {
      if (t.getProtocol() === "TLSv1.3") tickets++;
    });
    const c = t.getCipher() as tls.CipherNameAndProtocol | undefined;
    const ek = t.getEphemeralKeyInfo() as { name?: string; type?: string; size?: number } | null;
    const err = t.authorizationError as unknown;
    // The EHLO round trip: TLS 1.3 tickets, sent right after the handshake, have arrived by its reply.
    const { ext } = await probe.ehlo();
    return {
      ok: true,
      protocol: t.getProtocol() ?? "unknown",
      ...(c !== undefined ? { cipher: c.standardName ?? c.name } : {}),
      ...(ek?.name !== undefined ? { group: ek.name } : ek?.type !== undefined ? { group: `${ek.type}${ek.size !== undefined ? `-${ek.size}` : ""}` } : {}),
      tickets,
      cert: t.getPeerCertificate(true),
      authorized: t.authorized,
      ...(err !== undefined && err !== null ? { authorizationError: err instanceof Error ? err.message : String(err as string) } : {}),
      ...(ext !== undefined ? { ext } : {}),
    };
  } catch (e) {
    if (e instanceof ProbeError && e.kind !== "tls") throw e;
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  } finally {
    await probe?.finish(false);
  }
}

const VERSIONS: readonly tls.SecureVersion[] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

export interface TlsSurvey {
  readonly main: HandshakeResult;
  readonly versions: ReadonlyMap<tls.SecureVersion, HandshakeResult>;
  readonly nonFs: HandshakeResult;
  readonly anon: HandshakeResult;
  readonly cbc: HandshakeResult;
  readonly pq: HandshakeResult;
  /** Client-initiated renegotiation on TLS 1.2: accepted, refused, or not tried (no TLS 1.2). */
  readonly renegotiation: "accepted" | "refused" | "untested";
}

/** Runs every TLS handshake probe, one after the other. `progress` names each. */
export async function surveyTls(target: ProbeTarget, progress: (what: string) => void, ca?: readonly string[]): Promise<TlsSurvey> {
  progress("TLS: default handshake and certificate");
  // `ca`: the trust anchors the certificate is verified against (default: Node's CA set and NODE_EXTRA_CA_CERTS).
  const main = await tlsHandshake(target, ca !== undefined ? { ca: [...ca] } : {});
  const versions = new Map<tls.SecureVersion, HandshakeResult>();
  for (const v of VERSIONS) {
    progress(`TLS: protocol ${v}`);
    versions.set(v, await tlsHandshake(target, { minVersion: v, maxVersion: v, ciphers: LEGACY }));
  }
  const tls12 = { minVersion: "TLSv1" as const, maxVersion: "TLSv1.2" as const };
  progress("TLS: cipher suites");
  const nonFs = await tlsHandshake(target, { ...tls12, ciphers: "kRSA:@SECLEVEL=0" });
  const anon = await tlsHandshake(target, { ...tls12, ciphers: "aNULL:@SECLEVEL=0" });
  const cbc = await tlsHandshake(target, { ...tls12, ciphers: "ECDHE:!AESGCM:!CHACHA20:!AESCCM:!ARIAGCM:@SECLEVEL=0" });
  progress("TLS: post-quantum key exchange");
  const pq = await tlsHandshake(target, { minVersion: "TLSv1.3", ecdhCurve: "X25519MLKEM768" });
  progress("TLS: client-initiated renegotiation");
  const renegotiation = versions.get("TLSv1.2")?.ok === true ? await renegotiationProbe(target) : "untested";
  return { main, versions, nonFs, anon, cbc, pq, renegotiation };
}

/**
 * A TLS 1.2 session, then a client-initiated renegotiation (RFC 5746 secure
 * renegotiation; OpenSSL refuses insecure renegotiation itself). Refused
 * when the server answers with a no_renegotiation alert, fails it, or does
 * not complete it within the timeout.
 */
async function renegotiationProbe(target: ProbeTarget): Promise<"accepted" | "refused" | "untested"> {
  let probe: Probe | undefined;
  const options: tls.ConnectionOptions = { minVersion: "TLSv1.2", maxVersion: "TLSv1.2", ciphers: LEGACY };
  try {
    if (target.implicitTls) ({ probe } = await openGreeted(target, options));
    else {
      ({ probe } = await openGreeted(target));
      const { ext } = await probe.ehlo();
      if (ext === undefined || !ext.starttls || (await probe.cmd("STARTTLS")).code !== 220) return "untested";
      await probe.handshake(options);
    }
    const t = probe.tls as tls.TLSSocket;
    const ms = target.timeoutMs;
    return await new Promise<"accepted" | "refused">((resolve) => {
      const timer = setTimeout(() => resolve("refused"), ms);
      // A refusal usually comes as a no_renegotiation alert: an error on the socket, not the callback.
      t.once("error", () => {
        clearTimeout(timer);
        resolve("refused");
      });
      t.once("close", () => {
        clearTimeout(timer);
        resolve("refused");
      });
      const started = t.renegotiate({ rejectUnauthorized: false }, (err) => {
        clearTimeout(timer);
        resolve(err ? "refused" : "accepted");
      });
      if (started === false) {
        clearTimeout(timer);
        resolve("refused");
      }
    });
  } catch (e) {
    if (e instanceof ProbeError && e.kind !== "tls") throw e;
    return "untested";
  } finally {
    await probe?.finish(false);
  }
}

const DAY = 86_400_000;

/** The names the certificate must carry: the host given, else the name the server announced. */
export function certificateNames(target: ProbeTarget, announced: string | undefined): string[] {
  if (net.isIP(target.host) === 0) return [target.host.replace(/\.$/, "").toLowerCase()];
  return announced !== undefined && /^[a-z0-9.-]+\.[a-z]{2,}$/i.test(announced) ? [announced.toLowerCase()] : [];
}

/** Findings from the TLS survey. `submission`: port 465/587, where clients send passwords. */
export function tlsFindings(s: TlsSurvey, opts: { names: readonly string[]; submission: boolean; port: number; now: Date }): Finding[] {
  const out: Finding[] = [];
  const add = (f: Omit<Finding, "area">): void => void out.push({ ...f, area: "transport" });
  const m = s.main;
  if (!m.ok) {
    add({
      id: "tls.handshake",
      severity: "high",
      title: "the TLS handshake fails for a modern client",
      evidence: m.error ?? "handshake failed",
      fix: "install a certificate and key the server can use, and allow TLS 1.2 and 1.3 with ECDHE suites",
    });
  }
  for (const v of ["TLSv1", "TLSv1.1"] as const) {
    const r = s.versions.get(v);
    if (r?.ok === true) {
      add({
        id: v === "TLSv1" ? "tls.version.tls10" : "tls.version.tls11",
        severity: "medium",
        title: `${v === "TLSv1" ? "TLS 1.0" : "TLS 1.1"} is accepted (deprecated by RFC 8996)`,
        evidence: `handshake with only ${v} allowed succeeded: ${r.protocol ?? ""} ${r.cipher ?? ""}`,
        fix: "accept TLS 1.2 and 1.3 only (Postfix: smtpd_tls_protocols = >=TLSv1.2; Exim: openssl_options = +no_tlsv1 +no_tlsv1_1)",
      });
    }
  }
  if (m.ok && s.versions.get("TLSv1.2")?.ok !== true && s.versions.get("TLSv1.3")?.ok !== true) {
    add({ id: "tls.version.modern", severity: "high", title: "neither TLS 1.2 nor TLS 1.3 is accepted", evidence: "both handshakes failed", fix: "enable TLS 1.2 and TLS 1.3" });
  } else if (m.ok && s.versions.get("TLSv1.3")?.ok !== true) {
    add({
      id: "tls.version.tls13",
      severity: "low",
      title: "TLS 1.3 is not offered",
      evidence: s.versions.get("TLSv1.3")?.error ?? "TLS 1.3 handshake failed",
      fix: "enable TLS 1.3 (needs OpenSSL 1.1.1 or later)",
    });
  }
  if (s.nonFs.ok) {
    add({
      id: "tls.cipher.no-forward-secrecy",
      severity: "medium",
      title: "suites without forward secrecy (RSA key exchange) are accepted",
      evidence: `accepted ${s.nonFs.cipher ?? "an RSA key exchange suite"} (${s.nonFs.protocol ?? ""})`,
      fix: "allow only ECDHE/DHE key exchange (Postfix: smtpd_tls_exclude_ciphers = kRSA, aNULL; or tls_medium_cipherlist without kRSA)",
    });
  }
  if (s.anon.ok) {
    add({
      id: "tls.cipher.anonymous",
      severity: opts.submission ? "high" : "low",
      title: "anonymous suites (no certificate, no authentication) are accepted",
      evidence: `accepted ${s.anon.cipher ?? "an aNULL suite"}`,
      fix: opts.submission
        ? "exclude aNULL suites on submission: a man in the middle can read the password"
        : "exclude aNULL suites (on port 25 opportunistic TLS tolerates them, but DANE and MTA-STS senders cannot use them)",
    });
  }
  if (s.cbc.ok && s.versions.get("TLSv1.3")?.ok !== true) {
    add({
      id: "tls.cipher.cbc",
      severity: "low",
      title: "CBC suites are accepted and TLS 1.3 is not offered",
      evidence: `accepted ${s.cbc.cipher ?? "a CBC suite"}`,
      fix: "prefer AEAD suites (AES-GCM, ChaCha20-Poly1305) and offer TLS 1.3",
    });
  }
  if (m.ok && !s.pq.ok) {
    add({
      id: "tls.pq.missing",
      severity: "info",
      title: "no post-quantum key exchange (X25519MLKEM768)",
      evidence: s.pq.error ?? "handshake offering only X25519MLKEM768 failed",
      fix: "use OpenSSL 3.5 or later and add X25519MLKEM768 to the server's groups (Postfix 3.10: tls_eecdh_auto_curves)",
    });
  }
  if (s.renegotiation === "accepted") {
    add({
      id: "tls.renegotiation.client",
      severity: "low",
      title: "client-initiated renegotiation is accepted",
      evidence: "a TLS 1.2 session renegotiated at the client's request",
      fix: "refuse client-initiated renegotiation (OpenSSL: SSL_OP_NO_RENEGOTIATION): each one costs the server a handshake (denial of service)",
    });
  }
  if (m.ok && !opts.submission && opts.port !== 465 && (m.tickets ?? 0) > 0) {
    add({
      id: "tls.tickets.port25",
      severity: "low",
      title: "TLS 1.3 session tickets are sent on the MX port",
      evidence: `${m.tickets ?? 0} NewSessionTicket message(s) after the handshake (${m.protocol ?? ""})`,
      fix: "send no session tickets on port 25: MTAs rarely resume, and Microsoft's SMTP client aborts STARTTLS when a TLS 1.3 server sends them (OpenSSL-based servers: SSL_OP_NO_TICKET and SSL_CTX_set_num_tickets(0); Postfix 3.7's tls_ssl_options = NO_TICKET does not stop TLS 1.3 tickets)",
    });
  }
  if (m.ok && m.cert !== undefined) out.push(...certFindings(m, opts));
  return out;
}

function certFindings(m: HandshakeResult, opts: { names: readonly string[]; submission: boolean; now: Date }): Finding[] {
  const out: Finding[] = [];
  const add = (f: Omit<Finding, "area">): void => void out.push({ ...f, area: "transport" });
  const cert = m.cert as tls.DetailedPeerCertificate;
  if (cert.subject === undefined && cert.raw === undefined) {
    add({ id: "tls.cert.missing", severity: "high", title: "the server sent no certificate", evidence: `${m.cipher ?? ""}`, fix: "configure a certificate" });
    return out;
  }
  const subject = cert.subject?.CN ?? "";
  const selfSigned = cert.issuerCertificate === undefined || cert.issuerCertificate.fingerprint256 === cert.fingerprint256;
  if (m.authorized !== true) {
    add({
      id: selfSigned ? "tls.cert.self-signed" : "tls.cert.untrusted",
      severity: opts.submission ? "high" : "medium",
      title: selfSigned ? "the certificate is self-signed" : "the certificate chain does not verify",
      evidence: `${m.authorizationError ?? "not trusted"}; subject CN=${subject}; issuer CN=${cert.issuer?.CN ?? ""}`,
      fix: opts.submission
        ? "use a certificate from a public CA (e.g. Let's Encrypt) with the full chain: mail clients check it"
        : "use a certificate from a public CA with its full chain, or publish DANE TLSA records: MTA-STS senders need a publicly trusted chain",
    });
  }
  const notAfter = Date.parse(cert.valid_to);
  const notBefore = Date.parse(cert.valid_from);
  if (Number.isFinite(notAfter) && notAfter < opts.now.getTime()) {
    add({ id: "tls.cert.expired", severity: "high", title: "the certificate has expired", evidence: `not after ${cert.valid_to}`, fix: "renew the certificate and automate renewal (ACME)" });
  } else if (Number.isFinite(notAfter) && notAfter - opts.now.getTime() < 14 * DAY) {
    add({ id: "tls.cert.expiring", severity: "medium", title: "the certificate expires within 14 days", evidence: `not after ${cert.valid_to}`, fix: "renew the certificate now and automate renewal (ACME)" });
  }
  if (Number.isFinite(notBefore) && notBefore > opts.now.getTime()) {
    add({ id: "tls.cert.not-yet-valid", severity: "high", title: "the certificate is not valid yet", evidence: `not before ${cert.valid_from}`, fix: "check the server's clock and the certificate's dates" });
  }
  if (opts.names.length > 0) {
    const bad = opts.names.filter((n) => tls.checkServerIdentity(n, cert) !== undefined);
    if (bad.length === opts.names.length) {
      add({
        id: "tls.cert.name",
        severity: opts.submission ? "high" : "medium",
        title: "the certificate does not name the host",
        evidence: `checked ${opts.names.join(", ")}; certificate CN=${subject}; SAN ${cert.subjectaltname ?? "(none)"}`,
        fix: "use a certificate whose subjectAltName holds the MX host name (the name clients connect to)",
      });
    }
  } else {
    add({
      id: "tls.cert.name-unchecked",
      severity: "info",
      title: "the certificate name was not checked",
      evidence: "the target is an IP address and the server announced no host name",
      fix: "audit the host by its name to check the certificate name",
    });
  }
  const bits = cert.bits ?? 0;
  const keyType = cert.asn1Curve !== undefined || cert.nistCurve !== undefined ? "EC" : cert.modulus !== undefined ? "RSA" : "other";
  if (keyType === "RSA" && bits > 0 && bits < 2048) {
    add({ id: "tls.cert.key-size", severity: "high", title: `the certificate's RSA key has ${bits} bits`, evidence: `RSA ${bits} bits`, fix: "use an RSA key of 2048 bits or more, or an ECDSA P-256 key" });
  } else if (keyType === "EC" && bits > 0 && bits < 256) {
    add({ id: "tls.cert.key-size", severity: "high", title: `the certificate's EC key has ${bits} bits`, evidence: `${cert.asn1Curve ?? ""} ${bits} bits`, fix: "use a P-256 or larger curve" });
  }
  const sigAlg = certSignatureAlgorithm(cert);
  if (!selfSigned && sigAlg !== undefined && /sha1|md5/i.test(sigAlg)) {
    add({ id: "tls.cert.signature", severity: "medium", title: "the certificate is signed with a broken hash", evidence: sigAlg, fix: "reissue the certificate with SHA-256 or better" });
  }
  return out;
}

/** The signature algorithm of the certificate, e.g. "sha256WithRSAEncryption". */
function certSignatureAlgorithm(cert: tls.DetailedPeerCertificate): string | undefined {
  try {
    return new X509Certificate(cert.raw).signatureAlgorithm;
  } catch {
    return undefined;
  }
}

/** A summary of the TLS facts for the report (info). */
export function tlsSummary(s: TlsSurvey): Finding | undefined {
  const m = s.main;
  if (!m.ok) return undefined;
  const versions = [...s.versions].filter(([, r]) => r.ok).map(([v]) => v);
  return {
    id: "tls.summary",
    severity: "info",
    area: "transport",
    title: "TLS as a modern client gets it",
    evidence: `${m.protocol ?? ""} ${m.cipher ?? ""}${m.group !== undefined ? ` group ${m.group}` : ""}; versions accepted: ${versions.join(", ") || "none"}; client renegotiation ${s.renegotiation}; certificate CN=${m.cert?.subject?.CN ?? ""} valid to ${m.cert?.valid_to ?? ""}`,
    fix: "nothing to do",
  };
}
