/**
 * Public face of the I/O-free SMTP protocol core, both directions: the
 * server codec (SmtpSession, DATA/BDAT receivers, paths and parameters) and
 * the client codec (ClientSession for SMTP and LMTP, the reply parser, EHLO
 * keywords, command building and DATA encoding), with the envelope, DSN and
 * reply types they share. No sockets, files or clocks: src/server and
 * src/outbound (and src/delivery for LMTP) hold the I/O.
 */
export { SmtpSession, type Action, type Question, type SessionOptions, type TlsMode } from "./session.ts";
export { DataReceiver, BdatReceiver, type ContentResult, type ContentProblem } from "./data.ts";
export { parsePathAndParams, parseParams, decodeXtext, isValidDomain, type ParsedPath, type ParsedArgs } from "./address.ts";
export { mailParams, rcptParams, type MailParams } from "./params.ts";
export { COMMANDS, FOREIGN_VERBS, type Verb, type CommandSpec } from "./commands.ts";
export { reply, formatReply, SmtpError, TEMPORARY_FAILURE, type Reply } from "./reply.ts";
export type { Envelope, EnvelopeRecipient, RecipientDsn } from "./envelope.ts";
export type { AuthOptions, BareLineEndingPolicy, EightBitPolicy, ProtocolLimits, TlsFacts } from "./session-types.ts";
export {
  ClientSession,
  type ClientAction,
  type ClientOptions,
  type OutboundMessage,
  type SessionResult,
  type TlsInfo,
  type TlsPolicy as ClientTlsPolicy,
} from "./client-session.ts";
export { NO_EXTENSIONS, ProtocolError, ReplyParser, checkPath, command, encodeData, parseExtensions, replyText, type Extensions } from "./client-wire.ts";
