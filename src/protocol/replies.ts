/**
 * Every reply of the protocol core (RFC 5321 codes with RFC 3463 enhanced
 * codes), in one table so their text is reviewed in one place. Replies that
 * carry a value (a name, a verb) are functions.
 */
import { reply, type Reply } from "./reply.ts";

/** fn with its last result kept: the replies that carry our own hostname are built (and checked) once, not for every connection. */
function lastOf(fn: (v: string) => Reply): (v: string) => Reply {
  let key: string | undefined;
  let value: Reply | undefined;
  return (v) => {
    if (value === undefined || v !== key) {
      value = fn(v);
      key = v;
    }
    return value;
  };
}

export const R = {
  greeting: lastOf((hostname) => reply(220, "", `${hostname} ESMTP`)),
  helo: lastOf((hostname) => reply(250, "", hostname)),
  ehlo: (lines: readonly string[]) => reply(250, "", ...lines),
  ok: reply(250, "2.0.0", "Ok"),
  bye: reply(221, "2.0.0", "Bye"),
  startData: reply(354, "", "End data with <CR><LF>.<CR><LF>"),
  chunkReceived: reply(250, "2.0.0", "Chunk received"),
  startTls: reply(220, "2.0.0", "Ready to start TLS"),
  help: (verbs: readonly string[]) => reply(214, "2.0.0", `Commands: ${verbs.join(" ")}`),
  vrfy: reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"),
  lineTooLong: reply(500, "5.5.2", "Line too long"),
  bareEol: reply(500, "5.5.2", "Bare CR or LF in command line not allowed; use CRLF"),
  badBytes: reply(500, "5.5.2", "Invalid characters in command line"),
  unknown: reply(500, "5.5.2", "Command unrecognized"),
  heloSyntax: (verb: string) => reply(501, "5.5.4", `Syntax: ${verb} hostname`),
  mailSyntax: reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"),
  rcptSyntax: reply(501, "5.5.4", "Syntax: RCPT TO:<address>"),
  vrfySyntax: reply(501, "5.5.4", "Syntax: VRFY address"),
  bdatSyntax: reply(501, "5.5.4", "Syntax: BDAT size [LAST]; closing connection"),
  // Paths and parameters (address.ts, params.ts).
  badPath: (what: string) => reply(501, "5.1.7", `Bad address syntax: ${what}`),
  addressTooLong: reply(501, "5.1.7", "Address too long"),
  sourceRoute: reply(501, "5.1.3", "Source routes are not accepted"),
  badParamSyntax: reply(501, "5.5.4", "Bad parameter syntax"),
  badParamValue: (key: string) => reply(501, "5.5.4", `Bad value for ${key}`),
  duplicateParam: (key: string) => reply(501, "5.5.4", `Duplicate parameter ${key}`),
  badSize: reply(501, "5.5.4", "Bad SIZE value"),
  unsupportedBody: reply(555, "5.5.4", "Unsupported BODY type"),
  smtputf8Value: reply(501, "5.5.4", "SMTPUTF8 takes no value"),
  badRet: reply(501, "5.5.4", "RET must be FULL or HDRS"),
  badEnvid: reply(501, "5.5.4", "Bad ENVID value"),
  requireTlsNeedsTls: reply(530, "5.7.10", "REQUIRETLS needs TLS"),
  requireTlsValue: reply(501, "5.5.4", "REQUIRETLS takes no value"),
  unsupportedParam: (key: string) => reply(555, "5.5.4", `Unsupported parameter ${key}`),
  badAuthParam: reply(501, "5.5.4", "Bad AUTH parameter"),
  badNotify: reply(501, "5.5.4", "Bad NOTIFY value"),
  badOrcpt: reply(501, "5.5.4", "Bad ORCPT value"),
  paramsNeedEhlo: reply(555, "5.5.4", "Parameters need EHLO"),
  expn: reply(502, "5.5.1", "EXPN not available"),
  heloFirst: reply(503, "5.5.1", "Send EHLO or HELO first"),
  ehloFirst: reply(503, "5.5.1", "Send EHLO first"),
  nested: reply(503, "5.5.1", "Nested MAIL command"),
  mailFirst: reply(503, "5.5.1", "Send MAIL first"),
  noRcpt: reply(554, "5.5.1", "No valid recipients"),
  dataAfterBdat: reply(503, "5.5.1", "DATA not allowed after BDAT"),
  noArgs: (verb: string) => reply(501, "5.5.4", `${verb} takes no arguments`),
  tooManyErrors: reply(421, "4.7.0", "Too many errors, closing connection"),
  tooManyCommands: reply(421, "4.7.0", "Too many commands, closing connection"),
  foreign: reply(421, "4.7.0", "This is an SMTP server, closing connection"),
  tooBig: reply(552, "5.3.4", "Message size exceeds fixed maximum message size"),
  headerTooBig: reply(552, "5.3.4", "Message header too large"),
  bareContent: reply(550, "5.6.0", "Message contains bare CR or LF; lines must end with CRLF; closing connection"),
  nulContent: reply(550, "5.6.0", "Message contains NUL characters; closing connection"),
  eightBit: reply(550, "5.6.1", "8-bit content requires BODY=8BITMIME"),
  utf8Needed: reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"),
  tooManyRcpts: reply(452, "4.5.3", "Too many recipients"),
  timeout: reply(421, "4.4.2", "Timeout, closing connection"),
  earlyTalker: reply(554, "5.5.1", "Protocol error: you talked before the greeting ended"),
  improperPipelining: reply(554, "5.5.0", "Protocol error: improper command pipelining"),
  shutdown: reply(421, "4.3.2", "Server shutting down, try again later"),
  overflow: reply(421, "4.7.0", "Too much pipelined input, closing connection"),
  tlsActive: reply(503, "5.5.1", "TLS already active"),
  tlsUnavailable: reply(454, "4.7.0", "TLS not available"),
  authUnavailable: reply(502, "5.5.1", "AUTH not available on this service"),
  authNeedsTls: reply(538, "5.7.11", "Encryption required for requested authentication mechanism"),
  authTwice: reply(503, "5.5.1", "Already authenticated"),
  authInTxn: reply(503, "5.5.1", "AUTH not allowed during a mail transaction"),
  authUnknownMech: reply(504, "5.5.4", "Unrecognized authentication type"),
  authBadBase64: reply(501, "5.5.2", "Cannot decode response"),
  authCancelled: reply(501, "5.0.0", "Authentication cancelled"),
  authSyntax: reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"),
  authRequired: reply(530, "5.7.0", "Authentication required"),
  tlsFirst: reply(530, "5.7.0", "Must issue a STARTTLS command first"),
} as const;
