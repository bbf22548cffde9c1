/**
 * What the argument of a transaction verb means, apart from the state
 * machine that acts on it (session.ts): EHLO's name and capabilities, MAIL
 * and RCPT paths with their parameters (RFC 5321 §4.1.1, RFC 1870, RFC 3461,
 * RFC 6152, RFC 6531, RFC 8689), the BDAT size (RFC 3030) and the verdict on
 * finished content. Pure functions: each returns the reply to send, or the
 * question the session asks its host; none changes the session.
 *
 * Trust: the argument is hostile; it was already capped by the line limit
 * and checked to be UTF-8 without CR, LF or NUL.
 */
import type { Envelope } from "./envelope.ts";
import { parsePathAndParams } from "./address.ts";
import { mailParams, rcptParams } from "./params.ts";
import type { ContentResult } from "./data.ts";
import type { Reply } from "./reply.ts";
import { R } from "./replies.ts";
import type { AuthOptions, Question, SessionOptions, TlsMode } from "./session-types.ts";

/** What the verbs need to know of the connection now. */
export interface ConnectionFacts {
  readonly tls: TlsMode;
  /** EHLO (not HELO) was given. */
  readonly esmtp: boolean;
  readonly authenticated: boolean;
  /** AUTH mechanisms offered now (see offeredMechanisms). */
  readonly mechanisms: readonly string[];
}

type Ask<T extends Question["type"]> = Question & { readonly type: T };

/** Mechanisms to offer now: none before TLS; -PLUS only with channel binding. */
export function offeredMechanisms(auth: AuthOptions | undefined, tls: TlsMode, channelBinding: boolean): readonly string[] {
  if (!auth || tls !== "active") return [];
  return auth.mechanisms.filter((m) => channelBinding || !m.toUpperCase().endsWith("-PLUS"));
}

/** The EHLO/HELO name, or undefined when it is not one (501). */
export function heloName(arg: string): string | undefined {
  const name = arg.trim();
  if (name === "" || name.length > 255 || /[\s\x00-\x1f\x7f]/.test(name)) return undefined;
  return name;
}

/** The reply to a good EHLO: our name and the extensions offered now. */
export function ehloReply(name: string, facts: ConnectionFacts, opts: SessionOptions): Reply {
  // STARTTLS and AUTH early, as Postfix lists them: some clients (GNU
  // gsasl) only recognise "250-STARTTLS", never the last line "250 STARTTLS".
  const lines = [`${opts.hostname} greets ${name}`, "PIPELINING", `SIZE ${opts.limits.max_message_size}`];
  if (facts.tls === "available") lines.push("STARTTLS");
  if (facts.mechanisms.length > 0) lines.push(`AUTH ${facts.mechanisms.join(" ")}`);
  lines.push("8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN");
  if (facts.tls === "active") lines.push("REQUIRETLS");
  return R.ehlo(lines);
}

/** MAIL FROM (outside a transaction): the question to ask, or the refusal. */
export function mailCommand(arg: string, facts: ConnectionFacts, opts: SessionOptions): Reply | Ask<"mail"> {
  if (!/^FROM:/i.test(arg)) return R.mailSyntax;
  const parsed = parsePathAndParams(arg.slice(5), true, false);
  if ("code" in parsed) return parsed;
  const { path, params } = parsed;
  if (params.size > 0 && !facts.esmtp) return R.paramsNeedEhlo;
  if (opts.auth?.required && !facts.authenticated) return facts.tls === "active" ? R.authRequired : R.tlsFirst;
  const mp = mailParams(params, opts.limits.max_message_size, facts.mechanisms.length > 0, facts.tls === "active");
  if ("code" in mp) return mp;
  const { size, body, smtputf8, ret, envid, requireTls } = mp;
  if (path.utf8 && !smtputf8) return R.utf8Needed;
  const envelope: Envelope = { mailFrom: path.address, recipients: [], ...(body ? { body } : {}), smtputf8, ...(ret ? { ret } : {}), ...(envid !== undefined ? { envid } : {}), ...(requireTls ? { requireTls } : {}) };
  return { type: "mail", path, envelope, ...(size !== undefined ? { size } : {}) };
}

/**
 * RCPT TO in the transaction whose envelope is given: the question to ask,
 * or the refusal. The question carries that envelope itself, not a copy:
 * valid until the question is answered.
 */
export function rcptCommand(arg: string, envelope: Envelope, facts: ConnectionFacts, opts: SessionOptions): Reply | Ask<"rcpt"> {
  if (!/^TO:/i.test(arg)) return R.rcptSyntax;
  const parsed = parsePathAndParams(arg.slice(3), false, true);
  if ("code" in parsed) return parsed;
  const { path, params } = parsed;
  if (params.size > 0 && !facts.esmtp) return R.paramsNeedEhlo;
  const dsn = rcptParams(params);
  if ("code" in dsn) return dsn;
  if (path.utf8 && !envelope.smtputf8) return R.utf8Needed;
  if (envelope.recipients.length >= opts.limits.max_recipients) return R.tooManyRcpts;
  return { type: "rcpt", path, dsn, envelope };
}

/** BDAT's argument: the chunk size and LAST; undefined when it cannot be parsed (the chunk's end is unknown). */
export function bdatArgs(arg: string): { readonly size: number; readonly last: boolean } | undefined {
  const m = /^(\d{1,15})( +LAST)? *$/i.exec(arg);
  if (!m) return undefined;
  return { size: Number(m[1]), last: m[2] !== undefined };
}

/** Why finished content is refused, or undefined when it may be stored. */
export function contentProblem(result: ContentResult, envelope: Envelope, opts: SessionOptions): Reply | undefined {
  switch (result.problem) {
    case "size":
      return R.tooBig;
    case "header":
      return R.headerTooBig;
    case "bare-line-ending":
      return R.bareContent;
    case "nul":
      return R.nulContent;
    case undefined:
      break;
  }
  if (result.eightBit && opts.eightBitWithout8bitmime === "reject" && envelope.body !== "8BITMIME" && !envelope.smtputf8) return R.eightBit;
  return undefined;
}
