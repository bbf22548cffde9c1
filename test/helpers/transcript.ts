/**
 * A transcript driver for the protocol core, used by its unit, transcript and
 * property tests: it plays the host (answers questions with a simple local
 * policy), feeds writes in order and records what the session sent and which
 * messages it handed over. No sockets, no clocks.
 */
import { DEFAULT_LIMITS } from "../../src/limits/index.ts";
import type { Envelope } from "../../src/queue/index.ts";
import { reply } from "../../src/protocol/reply.ts";
import { SmtpSession, type Action, type SessionOptions } from "../../src/protocol/session.ts";

export interface Delivered {
  readonly envelope: Envelope;
  readonly content: Buffer;
}

export interface TranscriptResult {
  /** Everything the server sent, as text. */
  readonly output: string;
  /** Reply lines split (without CRLF). */
  readonly lines: string[];
  readonly messages: Delivered[];
  readonly closed: boolean;
  readonly starttls: boolean;
  readonly session: SmtpSession;
}

export function sessionOptions(over: Partial<SessionOptions> = {}): SessionOptions {
  return {
    hostname: "mx.test",
    limits: DEFAULT_LIMITS,
    bareLineEndings: "reject",
    eightBitWithout8bitmime: "accept",
    tls: "available",
    ...over,
  };
}

/** Local recipients the test host accepts. */
export const LOCAL = new Set(["user@example.test", "other@example.test", "postmaster"]);

/**
 * Runs a session over the given writes (each one a separate feed()).
 * When the session asks to start TLS, the driver completes it at once
 * (the core does not see the handshake bytes).
 */
/** The one account the test host knows for AUTH PLAIN: "\0user@example.test\0secret". */
export const TEST_PLAIN = Buffer.from("\0user@example.test\0secret").toString("base64");

export function transcript(writes: (string | Buffer)[], over: Partial<SessionOptions> = {}, channelBinding = false): TranscriptResult {
  const session = new SmtpSession(sessionOptions(over));
  let output = "";
  const messages: Delivered[] = [];
  let closed = false;
  let starttls = false;
  const handle = (actions: Action[]): void => {
    const queue = actions.slice();
    while (queue.length > 0) {
      const a = queue.shift() as Action;
      switch (a.kind) {
        case "send":
          output += a.data;
          break;
        case "close":
          closed = true;
          break;
        case "starttls":
          starttls = true;
          queue.push(...session.tlsStarted({ channelBinding }));
          break;
        case "ask": {
          const q = a.question;
          let r;
          let address: string | undefined;
          if (q.type === "mail") r = reply(250, "2.1.0", "Sender ok");
          else if (q.type === "auth") {
            if (q.response === undefined) r = reply(334, "", "");
            else if (q.response.toString("base64") === TEST_PLAIN) {
              r = reply(235, "2.7.0", "Authentication successful");
              address = "user@example.test";
            } else r = reply(535, "5.7.8", "Authentication credentials invalid");
          }
          else if (q.type === "rcpt") r = LOCAL.has(q.path.address.toLowerCase()) ? reply(250, "2.1.5", "Recipient ok") : reply(550, "5.1.1", "No such user");
          else {
            messages.push({ envelope: q.envelope, content: q.content });
            r = reply(250, "2.0.0", `Ok: queued as Q${messages.length}`);
          }
          queue.push(...session.answer(r, address));
          break;
        }
      }
    }
  };
  handle(session.greeting(over.tls === "active" ? { channelBinding } : undefined));
  for (const w of writes) {
    if (closed) break;
    handle(session.feed(typeof w === "string" ? Buffer.from(w, "latin1") : w));
  }
  const lines = output.split("\r\n").filter((l) => l.length > 0);
  return { output, lines, messages, closed, starttls, session };
}

/** The basic codes of the replies, in order (continuation lines folded). */
export function codes(r: TranscriptResult): number[] {
  return r.lines.filter((l) => l[3] === " ").map((l) => Number(l.slice(0, 3)));
}
