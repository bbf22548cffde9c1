/**
 * A transcript driver for the outbound client core (src/protocol/client-session.ts),
 * used by its unit tests: a scripted server, a small in-memory SMTP responder
 * that answers each command line (and the content after 354) through a
 * handler, so every byte the client sends is checked and replies can be cut
 * anywhere. No sockets, no clocks.
 */
import assert from "node:assert/strict";
import { ClientSession, type ClientAction, type ClientOptions, type OutboundMessage, type SessionResult } from "../../src/protocol/client-session.ts";
import type { Envelope } from "../../src/protocol/envelope.ts";

export const EHLO_FULL = "250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";
export const EHLO_BARE = "250-mx.test\r\n250 ENHANCEDSTATUSCODES\r\n";

/** Answers one command (or "." for the content); undefined: the default answer. */
export type Handler = (cmd: string) => string | undefined;

export function defaults(ehlo: string): Handler {
  return (cmd) => {
    const verb = cmd.split(/[ :]/)[0]?.toUpperCase();
    if (verb === "EHLO") return ehlo;
    if (verb === "HELO") return "250 mx.test\r\n";
    if (verb === "MAIL") return "250 2.1.0 Ok\r\n";
    if (verb === "RCPT") return "250 2.1.5 Ok\r\n";
    if (verb === "DATA") return "354 go ahead\r\n";
    if (verb === ".") return "250 2.0.0 Ok: queued\r\n";
    if (verb === "RSET") return "250 2.0.0 Ok\r\n";
    if (verb === "QUIT") return "221 2.0.0 Bye\r\n";
    return "502 5.5.2 what?\r\n";
  };
}

export interface Run {
  /** Each write of the client, as latin1 text. */
  writes: string[];
  /** The content bytes sent after each 354 (with the terminator). */
  contents: string[];
  result: SessionResult | undefined;
  closed: boolean;
  starttls: number;
  session: ClientSession;
}

export interface RunOpts extends Partial<ClientOptions> {
  ehlo?: string;
  greeting?: string;
  handler?: Handler;
  /** How server output is cut into feeds. */
  split?: "whole" | "byte";
  /** Extra server bytes right after the reply to STARTTLS (must be dropped). */
  afterStarttls?: string;
  /** The TLS facts the host reports after the handshake (default: verified). */
  tlsFacts?: { version: string; cipher: string; verified?: boolean; error?: string };
}

export function run(o: RunOpts): Run {
  const session = new ClientSession({ helo: "out.test", tls: "none", messages: [], ...o });
  const base = defaults(o.ehlo ?? EHLO_FULL);
  const answer = (cmd: string): string => o.handler?.(cmd) ?? base(cmd) ?? "";
  const r: Run = { writes: [], contents: [], result: undefined, closed: false, starttls: 0, session };
  let inData = false;
  let pending = "";
  let serverOut: string[] = [o.greeting ?? "220 mx.test ESMTP\r\n"];
  const server = (data: string): void => {
    r.writes.push(data);
    let rest = data;
    while (rest.length > 0) {
      if (inData) {
        pending += rest;
        rest = "";
        const end = pending.startsWith(".\r\n") ? 0 : pending.indexOf("\r\n.\r\n");
        if (end < 0) break;
        const cut = end === 0 ? 3 : end + 5;
        r.contents.push(pending.slice(0, cut));
        rest = pending.slice(cut);
        pending = "";
        inData = false;
        serverOut.push(answer("."));
        continue;
      }
      const nl = rest.indexOf("\r\n");
      assert.ok(nl >= 0, `client wrote an unterminated line: ${JSON.stringify(rest)}`);
      const line = rest.slice(0, nl);
      assert.doesNotMatch(line, /[\r\n\0]/);
      rest = rest.slice(nl + 2);
      const a = answer(line);
      serverOut.push(a);
      if (a.startsWith("354")) inData = true;
      if (/^STARTTLS$/i.test(line) && a.startsWith("220") && o.afterStarttls !== undefined) serverOut.push(o.afterStarttls);
    }
  };
  const handle = (actions: ClientAction[]): void => {
    for (const a of actions) {
      if (a.kind === "send") server(a.data.toString("latin1"));
      else if (a.kind === "close") r.closed = true;
      else if (a.kind === "done") {
        assert.equal(r.result, undefined, "done twice");
        r.result = a.result;
      } else {
        r.starttls++;
        // Bytes the server sent after its 220, in the same flight, are dropped by the client.
        handle(session.feed(Buffer.from("250 injected\r\n")));
        serverOut = [];
        handle(session.tlsStarted(o.tlsFacts ?? { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", verified: true }));
      }
    }
  };
  for (let guard = 0; guard < 1000 && !r.closed && serverOut.length > 0; guard++) {
    const flight = Buffer.from(serverOut.join(""), "latin1");
    serverOut = [];
    if (o.split === "byte") for (const b of flight) handle(session.feed(Buffer.from([b])));
    else handle(session.feed(flight));
  }
  return r;
}

export function env(over: Partial<Envelope> = {}, rcpts = ["b@example.org"]): Envelope {
  return { mailFrom: "a@wardmail.test", recipients: rcpts.map((address) => ({ address, dsn: {} })), smtputf8: false, ...over };
}
export function msg(content = "Subject: hi\r\n\r\nbody\r\n", e: Envelope = env(), extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return { envelope: e, content: Buffer.from(content, "utf8"), ...extra };
}
export const finals = (r: Run, i = 0): string[] => r.result?.messages[i]?.recipients.map((x) => `${x.final} ${x.code} ${x.status}`) ?? [];
