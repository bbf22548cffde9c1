/**
 * The fixed replies of the protocol core (RFC 5321 codes with RFC 3463
 * enhanced codes), in one table so their text is reviewed in one place.
 */
import { reply } from "./reply.ts";

export const R = {
  ok: reply(250, "2.0.0", "Ok"),
  bye: reply(221, "2.0.0", "Bye"),
  lineTooLong: reply(500, "5.5.2", "Line too long"),
  bareEol: reply(500, "5.5.2", "Bare CR or LF in command line not allowed; use CRLF"),
  badBytes: reply(500, "5.5.2", "Invalid characters in command line"),
  unknown: reply(500, "5.5.2", "Command unrecognized"),
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
  shutdown: reply(421, "4.3.2", "Server shutting down, try again later"),
  overflow: reply(421, "4.7.0", "Too much pipelined input, closing connection"),
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
