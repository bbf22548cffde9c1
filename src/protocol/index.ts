/** Public face of the I/O-free SMTP protocol core. */
export { SmtpSession, type Action, type Question, type SessionOptions, type TlsMode } from "./session.ts";
export { DataReceiver, BdatReceiver, type ContentResult, type ContentProblem } from "./data.ts";
export { parsePathAndParams, parseParams, decodeXtext, isValidDomain, type ParsedPath, type ParsedArgs } from "./address.ts";
export { mailParams, rcptParams, type MailParams } from "./params.ts";
export { COMMANDS, FOREIGN_VERBS, type Verb, type CommandSpec } from "./commands.ts";
export { reply, formatReply, SmtpError, TEMPORARY_FAILURE, type Reply } from "./reply.ts";
export type { Envelope, EnvelopeRecipient, RecipientDsn } from "./envelope.ts";
export type { AuthOptions, BareLineEndingPolicy, EightBitPolicy, ProtocolLimits, TlsFacts } from "./session-types.ts";
