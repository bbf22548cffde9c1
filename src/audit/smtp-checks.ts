/**
 * The SMTP checks of one listener, each on its own connection and each ended
 * with RSET and QUIT (Probe.finish): what the greeting and EHLO reveal and
 * offer (STARTTLS, AUTH in the clear, SIZE, REQUIRETLS, SMTPUTF8, software
 * and version), VRFY/EXPN enumeration, STARTTLS plaintext injection
 * (CVE-2011-0411 class), a transaction before EHLO, and the open-relay
 * battery. No probe here sends message content: DATA is never issued, and
 * AUTH is only started (never with a credential) and then cancelled with "*".
 */
import { randomBytes } from "node:crypto";
import { replyText, type Extensions, type Reply } from "../protocol/index.ts";
import type { Finding } from "./types.ts";
import { ProbeError, openGreeted, openSession, type ProbeTarget } from "./probe.ts";

/** What the first, plain connection learnt. */
export interface Survey {
  readonly greeting: Reply;
  /** The host name the server announced in its greeting (first word), when it looks like one. */
  readonly announced?: string;
  readonly ext: Extensions;
  /** EHLO extensions after STARTTLS (or over implicit TLS). */
  readonly extTls?: Extensions;
  /** The reply to "AUTH PLAIN" (no credential) before TLS, when sent. */
  readonly authPlainClear?: Reply;
  readonly vrfy: { readonly known: Reply; readonly unknown: Reply } | undefined;
  readonly expn: Reply | undefined;
}

const HOST_RE = /^[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z0-9-]{1,63}\.?$/i;

function text(r: Reply): string {
  return `${r.code} ${replyText(r)}`;
}

/** Greeting, EHLO, AUTH PLAIN before TLS (cancelled), VRFY, EXPN, then STARTTLS and EHLO again. */
export async function survey(target: ProbeTarget): Promise<Survey> {
  const { probe, greeting } = await openGreeted(target);
  try {
    const first = (greeting.lines[0] ?? "").split(/\s+/)[0] ?? "";
    const announced = HOST_RE.test(first) ? first.replace(/\.$/, "").toLowerCase() : undefined;
    const { reply, ext } = await probe.ehlo();
    if (ext === undefined) throw new ProbeError(`EHLO refused: ${text(reply)}`, "protocol");
    let authPlainClear: Reply | undefined;
    if (!target.implicitTls) {
      authPlainClear = await probe.cmd("AUTH", "PLAIN");
      if (authPlainClear.code === 334) await probe.cmd("*");
    }
    const known = await probe.cmd("VRFY", "postmaster");
    const unknown = await probe.cmd("VRFY", `wm-audit-${randomBytes(6).toString("hex")}`);
    const expn = await probe.cmd("EXPN", "postmaster");
    await probe.cmd("RSET");
    let extTls: Extensions | undefined;
    if (target.implicitTls) extTls = ext;
    else if (ext.starttls) {
      try {
        await probe.startTls({});
        extTls = (await probe.ehlo()).ext;
      } catch (e) {
        if (!(e instanceof ProbeError)) throw e;
      }
    }
    return {
      greeting,
      ...(announced !== undefined ? { announced } : {}),
      ext,
      ...(extTls !== undefined ? { extTls } : {}),
      ...(authPlainClear !== undefined ? { authPlainClear } : {}),
      vrfy: { known, unknown },
      expn,
    };
  } finally {
    await probe.finish();
  }
}

const SOFTWARE_RE = /\b(postfix|exim|sendmail|microsoft esmtp|exchange|haraka|opensmtpd|qmail|courier|zimbra|mdaemon|kerio|hmailserver|stalwart|maddy|mox|james|communigate|axigen|icewarp|wardmail)\b/i;
const VERSION_RE = /\b\d+\.\d+(?:\.\d+)*\b/;

/** Findings from the survey. */
export function surveyFindings(s: Survey, opts: { submission: boolean; port: number; implicitTls: boolean }): Finding[] {
  const out: Finding[] = [];
  const banner = [...s.greeting.lines].join(" ");
  // The first word is the host name: "mx.postfix.example" names no software.
  const afterHost = banner.replace(/^\S*\s*/, "");
  if (!opts.implicitTls && !s.ext.starttls) {
    out.push({
      id: "tls.starttls.missing",
      severity: opts.submission ? "critical" : "high",
      area: "transport",
      title: "STARTTLS is not offered: mail (and passwords) cross the network in clear text",
      evidence: `EHLO keywords: ${s.ext.keywords.join(" ") || "(none)"}`,
      fix: "configure a certificate and offer STARTTLS (Postfix: smtpd_tls_chain_files and smtpd_tls_security_level = may on port 25, encrypt on 587)",
    });
  }
  const software = SOFTWARE_RE.exec(afterHost);
  if (software !== null) {
    const version = VERSION_RE.exec(afterHost.slice(software.index));
    out.push({
      id: version !== null ? "banner.version" : "banner.software",
      severity: version !== null ? "low" : "info",
      area: "relay",
      title: version !== null ? "the greeting names the software and its version" : "the greeting names the software",
      evidence: `220 ${banner}`,
      fix: "greet with the host name only (Postfix: smtpd_banner = $myhostname ESMTP; Exim: smtp_banner)",
    });
  }
  const offeredClear = !opts.implicitTls && s.ext.auth.length > 0;
  const acceptedClear = s.authPlainClear !== undefined && s.authPlainClear.code === 334;
  if (offeredClear || acceptedClear) {
    out.push({
      id: "auth.before-tls",
      severity: opts.submission || acceptedClear ? "critical" : "high",
      area: "authentication",
      title: acceptedClear ? "AUTH is accepted before TLS: passwords can be sent in clear text" : "AUTH is offered before TLS",
      evidence: `${offeredClear ? `EHLO before STARTTLS offers AUTH ${s.ext.auth.join(" ")}` : ""}${offeredClear && acceptedClear ? "; " : ""}${acceptedClear && s.authPlainClear !== undefined ? `"AUTH PLAIN" before TLS got ${text(s.authPlainClear)}` : ""}`,
      fix: "allow AUTH only over TLS (Postfix: smtpd_tls_auth_only = yes; Exim: auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}})",
    });
  }
  const authTls = s.extTls?.auth ?? [];
  if (!opts.submission && (authTls.length > 0 || s.ext.auth.length > 0)) {
    out.push({
      id: "auth.port25",
      severity: "low",
      area: "authentication",
      title: "AUTH is offered on the MX port",
      evidence: `AUTH ${[...new Set([...s.ext.auth, ...authTls])].join(" ")}`,
      fix: "offer AUTH only on submission (465/587): on port 25 it only invites password guessing",
    });
  }
  const weakMechs = authTls.filter((m) => m === "CRAM-MD5" || m === "DIGEST-MD5" || m === "NTLM");
  if (weakMechs.length > 0) {
    out.push({
      id: "auth.weak-mechanisms",
      severity: "low",
      area: "authentication",
      title: "AUTH offers mechanisms that need passwords stored in a recoverable form",
      evidence: `AUTH ${authTls.join(" ")}`,
      fix: "offer SCRAM-SHA-256 (and PLAIN/LOGIN over TLS) instead of CRAM-MD5, DIGEST-MD5 and NTLM",
    });
  }
  if (opts.submission && s.extTls !== undefined && authTls.length === 0) {
    out.push({
      id: "auth.missing",
      severity: "medium",
      area: "authentication",
      title: "submission offers no AUTH after TLS",
      evidence: `EHLO over TLS: ${s.extTls.keywords.join(" ")}`,
      fix: "enable SASL AUTH on the submission ports",
    });
  }
  if (s.vrfy !== undefined) {
    const k = s.vrfy.known.code;
    const u = s.vrfy.unknown.code;
    // 252 ("cannot verify, will try") for one and "no such user" for the other tells them apart as
    // well as 250 does. "No such user" is 5.1.x, or a bare 550 without an enhanced code; a 5.7.x
    // (e.g. relay denied for an unqualified name) says nothing about the user.
    const unknownUser = u >= 500 && (s.vrfy.unknown.status.startsWith("5.1.") || (s.vrfy.unknown.status === "" && u === 550));
    if (k >= 250 && k <= 252 && unknownUser) {
      out.push({
        id: "smtp.vrfy",
        severity: "medium",
        area: "relay",
        title: "VRFY tells existing users from unknown ones",
        evidence: `VRFY postmaster: ${text(s.vrfy.known)}; VRFY <random>: ${text(s.vrfy.unknown)}`,
        fix: "disable VRFY (Postfix: disable_vrfy_command = yes) or answer every VRFY alike (252)",
      });
    }
  }
  if (s.expn !== undefined && (s.expn.code === 250 || s.expn.code === 251)) {
    out.push({
      id: "smtp.expn",
      severity: "medium",
      area: "relay",
      title: "EXPN expands addresses",
      evidence: `EXPN postmaster: ${text(s.expn)}`,
      fix: "disable EXPN (Exim: no expn_hosts; sendmail: PrivacyOptions=noexpn)",
    });
  }
  const ext = s.extTls ?? s.ext;
  if (ext.size === undefined) {
    out.push({ id: "ext.size", severity: "info", area: "relay", title: "SIZE is not advertised", evidence: ext.keywords.join(" "), fix: "advertise SIZE with the message size limit (RFC 1870) so that senders learn it before DATA" });
  } else if (ext.size === 0) {
    out.push({ id: "ext.size", severity: "low", area: "relay", title: "SIZE advertises no limit", evidence: "SIZE 0 or SIZE without a value", fix: "set a message size limit (e.g. 25-50 MB)" });
  }
  if (s.extTls !== undefined && !s.extTls.requireTls) {
    out.push({ id: "ext.requiretls", severity: "info", area: "transport", title: "REQUIRETLS (RFC 8689) is not advertised", evidence: s.extTls.keywords.join(" "), fix: "advertise REQUIRETLS if the server can honour it" });
  }
  if (!ext.smtputf8) {
    out.push({ id: "ext.smtputf8", severity: "info", area: "relay", title: "SMTPUTF8 (RFC 6531) is not advertised", evidence: ext.keywords.join(" "), fix: "enable SMTPUTF8 so that internationalised addresses can be delivered" });
  }
  return out;
}

/**
 * STARTTLS plaintext injection: "STARTTLS\r\nRSET\r\n" in one write. A safe
 * server throws away what followed STARTTLS; a vulnerable one answers the
 * RSET inside the TLS session. After the handshake we send only QUIT and
 * count the replies before its 221: one more than zero means injection.
 */
export async function injectionCheck(target: ProbeTarget): Promise<Finding | undefined> {
  const { probe } = await openGreeted(target);
  try {
    const { ext } = await probe.ehlo();
    if (ext === undefined || !ext.starttls) return undefined;
    probe.write("STARTTLS\r\nRSET\r\n");
    const r = await probe.reply();
    if (r.code !== 220) return undefined;
    // A server that answered the RSET in clear text before the handshake broke STARTTLS itself; the
    // handshake then fails and we learn nothing: no finding.
    try {
      await probe.handshake({ minVersion: "TLSv1", ciphers: "DEFAULT:@SECLEVEL=0" }, false);
    } catch {
      return undefined;
    }
    probe.write("QUIT\r\n");
    const before: Reply[] = [];
    for (let i = 0; i < 5; i++) {
      const x = await probe.replyWithin(target.timeoutMs);
      if (x === undefined || x.code === 221) break;
      before.push(x);
    }
    if (before.length === 0) return undefined;
    return {
      id: "tls.starttls.injection",
      severity: "high",
      area: "transport",
      title: "commands sent in clear text before STARTTLS are executed inside TLS (CVE-2011-0411 class)",
      evidence: `"STARTTLS\\r\\nRSET\\r\\n" in one write; after the handshake the server answered ${before.map(text).join(" | ")} before QUIT's reply`,
      fix: "upgrade the server: it must discard every byte buffered before the TLS handshake (Postfix >= 2.8.4, Exim >= 4.75 do)",
    };
  } finally {
    probe.destroy();
  }
}

/** A transaction started before EHLO/HELO (RFC 5321 §4.1.4 says the client MUST greet first). */
export async function beforeEhloCheck(target: ProbeTarget): Promise<Finding | undefined> {
  const { probe } = await openGreeted(target);
  try {
    const r = await probe.cmd("MAIL", "FROM:<>");
    if (r.code < 200 || r.code >= 300) return undefined;
    return {
      id: "smtp.mail-before-ehlo",
      severity: "low",
      area: "relay",
      title: "a transaction is accepted before EHLO/HELO",
      evidence: `MAIL FROM:<> as the first command got ${text(r)}`,
      fix: "require EHLO/HELO first (Postfix: smtpd_helo_required = yes): ratware skips it",
    };
  } finally {
    await probe.finish();
  }
}

/** The recipient forms of the relay battery, for a local domain L and the server's address A. */
export function relayTricks(local: string, address: string): { readonly id: string; readonly rcpt: string }[] {
  const ext = "example.com";
  const victim = "wardmail-relay-test";
  const lit = address.includes(":") ? `[IPv6:${address}]` : `[${address}]`;
  return [
    { id: "plain", rcpt: `${victim}@${ext}` },
    { id: "percent", rcpt: `${victim}%${ext}@${local}` },
    { id: "percent-literal", rcpt: `${victim}%${ext}@${lit}` },
    { id: "bang", rcpt: `${ext}!${victim}@${local}` },
    { id: "bang-bare", rcpt: `${ext}!${victim}` },
    { id: "quoted", rcpt: `"${victim}@${ext}"` },
    { id: "quoted-local", rcpt: `"${victim}@${ext}"@${local}` },
    { id: "source-route", rcpt: `@${local}:${victim}@${ext}` },
    { id: "double-at", rcpt: `${victim}@${ext}@${local}` },
    { id: "ip-literal", rcpt: `${victim}@[192.0.2.1]` },
  ];
}

/** Probes per connection: servers slow down or hang up after a run of errors. */
const PER_CONNECTION = 4;

/**
 * The open-relay battery: MAIL FROM:<sender>, one RCPT per trick, RSET after
 * each, never DATA. `tls`: do it after STARTTLS (submission without AUTH).
 */
export async function relayCheck(target: ProbeTarget, opts: { local: string; sender: string; tls: boolean; submission: boolean }): Promise<Finding[]> {
  const tricks = relayTricks(opts.local, target.address);
  let accepted: { id: string; rcpt: string; reply: Reply }[] = [];
  let refused: string[] = [];
  let untried: string[] = [];
  let useTls = opts.tls;
  // A server that wants STARTTLS before MAIL (530) gets the battery again over TLS, once.
  for (let attempt = 0; attempt < 2; attempt++) {
    accepted = [];
    refused = [];
    untried = [];
    let needTls = false;
    for (let i = 0; i < tricks.length && !needTls; i += PER_CONNECTION) {
      const batch = tricks.slice(i, i + PER_CONNECTION);
      let probe;
      try {
        ({ probe } = await openSession(target, { tls: useTls }));
      } catch (e) {
        if (!(e instanceof ProbeError)) throw e;
        untried.push(...batch.map((t) => `${t.id} (${e.message})`));
        continue;
      }
      try {
        for (const t of batch) {
          if (!probe.usable) {
            untried.push(`${t.id} (connection ended)`);
            continue;
          }
          const m = await probe.cmd("MAIL", `FROM:<${opts.sender}>`);
          if (m.code === 530 && !useTls && !target.implicitTls) {
            needTls = true;
            break;
          }
          if (m.code >= 200 && m.code < 300) {
            const r = await probe.cmd("RCPT", `TO:<${t.rcpt}>`);
            if (r.code >= 200 && r.code < 300) accepted.push({ ...t, reply: r });
            else refused.push(`${t.id}: ${r.code}${r.status !== "" ? ` ${r.status}` : ""}`);
          } else refused.push(`${t.id}: MAIL ${m.code}`);
          await probe.cmd("RSET");
        }
      } catch (e) {
        if (!(e instanceof ProbeError)) throw e;
        const done = new Set([...accepted.map((a) => a.id), ...refused.map((r) => r.split(":")[0])]);
        untried.push(...batch.filter((t) => !done.has(t.id)).map((t) => `${t.id} (${e.message})`));
      } finally {
        await probe.finish(false);
      }
    }
    if (!needTls) break;
    useTls = true;
  }
  const where = opts.submission ? "without AUTH on submission" : "from the internet";
  const out: Finding[] = [];
  const plain = accepted.find((a) => a.id === "plain");
  if (plain !== undefined) {
    out.push({
      id: "relay.open",
      severity: "critical",
      area: "relay",
      title: `open relay: mail for other domains is accepted ${where}`,
      evidence: `RCPT TO:<${plain.rcpt}> got ${text(plain.reply)} (followed by RSET; no DATA sent)`,
      fix: "relay only for authenticated clients and your own networks (Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination; mynetworks = your hosts only)",
    });
  }
  for (const a of accepted.filter((x) => x.id !== "plain")) {
    out.push({
      id: `relay.trick.${a.id}`,
      severity: "high",
      area: "relay",
      title: `a relay trick (${a.id}) is accepted ${where}`,
      evidence: `RCPT TO:<${a.rcpt}> got ${text(a.reply)} (followed by RSET; whether it would then be relayed depends on the server's routing)`,
      fix: "refuse recipients with %, !, quoted @, source routes and foreign IP literals for non-local destinations (Postfix: allow_percent_hack = no, swap_bangpath = no, reject_unauth_destination)",
    });
  }
  out.push({
    id: "relay.summary",
    severity: "info",
    area: "relay",
    title: `relay battery${useTls ? " over TLS" : ""}: ${tricks.length} forms, ${accepted.length} accepted, ${refused.length} refused, ${untried.length} not tried`,
    evidence: [...accepted.map((a) => `${a.id}: ${a.reply.code}`), ...refused, ...untried.map((u) => `not tried: ${u}`)].join("; "),
    fix: untried.length > 0 ? "forms not tried could not be sent (the server ended the connection): run the audit again later" : "nothing to do",
  });
  return out;
}
