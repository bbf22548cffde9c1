/** Public face of the message sink: the one road into the queue (sink.ts). */
export { MessageSink, SinkTransaction, type Origin, type EnvelopeHead, type CommitOptions, type Committed, type SinkOptions } from "./sink.ts";
export { receivedHeader, rfc5322Date } from "./received.ts";
export { Router, REMOTE_NOT_IMPLEMENTED, type RouterOptions, type Expansion } from "./router.ts";
export { resolveRecipient, MAX_ALIAS_DEPTH, type Resolution, type LocalConfig } from "./resolve.ts";
