/** Public face of the message sink: the one road into the queue (sink.ts). */
export { MessageSink, SinkTransaction, type Origin, type EnvelopeHead, type CommitOptions, type Committed, type SinkOptions } from "./sink.ts";
export { receivedHeader, rfc5322Date } from "./received.ts";
