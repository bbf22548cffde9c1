// A receiving SMTP server on 127.0.0.1 for outbound-delivery tests: the
// "remote MX" Wardmail delivers to. It offers STARTTLS (RFC 3207) with a
// certificate chosen by the SNI name the client sends (so one listener can
// stand for several MX hosts with different certificates), accepts every
// MAIL/RCPT/DATA, and records each session: the SNI name, whether and when
// TLS came up, every command line, and every message with its envelope.
// Nothing is delivered anywhere; the recorded sessions are what tests check.
//
// Bounds: a command line over 4 KiB or a message over 1 MiB ends the session.
import net from "node:net";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";

export interface SinkCert {
  /** PEM private key. */
  readonly key: string;
  /** PEM certificate chain the server sends, leaf first. */
  readonly cert: string;
}

export interface SinkMessage {
  readonly from: string;
  readonly rcpts: readonly string[];
  /** The content as received (dot-stuffing removed, without the final "."). */
  readonly data: string;
  readonly tls: boolean;
  readonly servername: string | undefined;
}

export interface SinkSession {
  readonly id: number;
  /** SNI name of the TLS handshake, if any. */
  servername: string | undefined;
  /** The TLS version once STARTTLS completed. */
  tls: string | undefined;
  /** Command lines, prefixed "tls:" once TLS is up (an AUTH line without its credentials). */
  readonly commands: string[];
  /** Decoded AUTH PLAIN credentials ("\0user\0password"), with whether TLS was up. */
  readonly auths: { readonly decoded: string; readonly tls: boolean }[];
  readonly messages: SinkMessage[];
  closed: boolean;
}

export interface SmtpSink {
  readonly port: number;
  readonly sessions: readonly SinkSession[];
  /** Every message received so far, in order. */
  messages(): SinkMessage[];
  /** Waits (at most timeoutMs) for a message whose content includes token. */
  waitForMessage(token: string, timeoutMs?: number): Promise<SinkMessage | undefined>;
  close(): Promise<void>;
}

export interface SinkOptions {
  /** The certificate for an SNI name (undefined: no SNI); undefined → `fallback`. */
  readonly certFor?: (servername: string) => SinkCert | undefined;
  readonly fallback: SinkCert;
  /** The name in the greeting and EHLO reply. */
  readonly hostname?: string;
  /** The reply to RCPT TO (the argument as given), e.g. a 4xx for a first attempt; undefined: 250. */
  readonly rcptReply?: (rcpt: string) => string | undefined;
  /** Offer AUTH PLAIN (after STARTTLS only) and accept any credentials (a relay host); recorded in `auths`. */
  readonly auth?: boolean;
  /** Close a connection that sat idle (no command) this long, as a server's timeout does: "421", then close. */
  readonly idleCloseMs?: number;
  /** The reply to RSET in a session (e.g. "421 ..." to refuse a reused connection; a 421 also closes); undefined: 250. */
  readonly rsetReply?: (session: SinkSession) => string | undefined;
}

const MAX_LINE = 4096;
const MAX_MESSAGE = 1 << 20;

export async function startSmtpSink(opts: SinkOptions): Promise<SmtpSink> {
  const sessions: SinkSession[] = [];
  const sockets = new Set<net.Socket>();
  const contexts = new Map<SinkCert, tls.SecureContext>();
  const contextOf = (c: SinkCert): tls.SecureContext => {
    let ctx = contexts.get(c);
    if (ctx === undefined) {
      ctx = tls.createSecureContext({ key: c.key, cert: c.cert });
      contexts.set(c, ctx);
    }
    return ctx;
  };
  const me = opts.hostname ?? "sink.test";

  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on("error", () => undefined);
    const s: SinkSession = { id: sessions.length + 1, servername: undefined, tls: undefined, commands: [], auths: [], messages: [], closed: false };
    sessions.push(s);
    let idleTimer: NodeJS.Timeout | undefined;
    raw.on("close", () => {
      sockets.delete(raw);
      s.closed = true;
      if (idleTimer !== undefined) clearTimeout(idleTimer);
    });
    let sock: net.Socket = raw;
    const idleAgain = (): void => {
      if (opts.idleCloseMs === undefined) return;
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => sock.end("421 4.4.2 sink: idle timeout\r\n"), opts.idleCloseMs);
    };
    idleAgain();
    let buf = "";
    let from: string | undefined;
    let rcpts: string[] = [];
    let inData = false;
    const reset = (): void => {
      from = undefined;
      rcpts = [];
    };
    const onData = (d: Buffer): void => {
      idleAgain();
      buf += d.toString("latin1");
      for (let guard = 0; guard < 10_000; guard++) {
        if (inData) {
          const end = buf.startsWith(".\r\n") ? 0 : buf.indexOf("\r\n.\r\n");
          if (end < 0) {
            if (buf.length > MAX_MESSAGE) sock.destroy();
            return;
          }
          const body = end === 0 ? "" : buf.slice(0, end + 2);
          buf = buf.slice(end === 0 ? 3 : end + 5);
          inData = false;
          s.messages.push({ from: from ?? "", rcpts: [...rcpts], data: body.replace(/^\.\./gm, "."), tls: s.tls !== undefined, servername: s.servername });
          reset();
          sock.write("250 2.0.0 Ok: queued\r\n");
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) {
          if (buf.length > MAX_LINE) sock.destroy();
          return;
        }
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = (line.split(/[ :]/)[0] ?? "").toUpperCase();
        s.commands.push((s.tls !== undefined ? "tls:" : "") + (verb === "AUTH" ? line.split(" ").slice(0, 2).join(" ") : line));
        const arg = (/<([^>]*)>/.exec(line)?.[1] ?? "").toLowerCase();
        if (verb === "EHLO" || verb === "HELO") {
          reset();
          sock.write(`250-${me}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n${s.tls === undefined ? "250-STARTTLS\r\n" : ""}${opts.auth === true && s.tls !== undefined ? "250-AUTH PLAIN\r\n" : ""}250 SIZE 1048576\r\n`);
        } else if (verb === "AUTH" && opts.auth === true) {
          s.auths.push({ decoded: Buffer.from(line.split(" ")[2] ?? "", "base64").toString("utf8"), tls: s.tls !== undefined });
          sock.write("235 2.7.0 Authentication successful\r\n");
        } else if (verb === "STARTTLS" && s.tls === undefined) {
          sock.write("220 2.0.0 Ready to start TLS\r\n");
          raw.removeListener("data", onData);
          buf = "";
          const secure = new tls.TLSSocket(raw, {
            isServer: true,
            secureContext: contextOf(opts.fallback),
            SNICallback: (name, cb) => {
              s.servername = name;
              cb(null, contextOf(opts.certFor?.(name.toLowerCase()) ?? opts.fallback));
            },
          });
          secure.on("error", () => undefined);
          const tlsUp = (): void => {
            s.tls ??= secure.getProtocol() ?? "unknown";
          };
          secure.once("secure", tlsUp);
          secure.on("data", (d: Buffer) => {
            tlsUp(); // data arrives only after the handshake
            onData(d);
          });
          sock = secure;
          return;
        } else if (verb === "MAIL") {
          from = arg;
          rcpts = [];
          sock.write("250 2.1.0 Ok\r\n");
        } else if (verb === "RCPT") {
          if (from === undefined) sock.write("503 5.5.1 MAIL first\r\n");
          else {
            const custom = opts.rcptReply?.(arg);
            if (custom !== undefined && !custom.startsWith("2")) sock.write(`${custom}\r\n`);
            else {
              rcpts.push(arg);
              sock.write("250 2.1.5 Ok\r\n");
            }
          }
        } else if (verb === "DATA") {
          if (rcpts.length === 0) sock.write("503 5.5.1 RCPT first\r\n");
          else {
            inData = true;
            sock.write("354 End data with <CR><LF>.<CR><LF>\r\n");
          }
        } else if (verb === "RSET") {
          reset();
          const custom = opts.rsetReply?.(s);
          if (custom?.startsWith("421") === true) {
            sock.end(`${custom}\r\n`);
            return;
          }
          sock.write(`${custom ?? "250 2.0.0 Ok"}\r\n`);
        } else if (verb === "NOOP") sock.write("250 2.0.0 Ok\r\n");
        else if (verb === "QUIT") {
          sock.end("221 2.0.0 Bye\r\n");
          return;
        } else sock.write("502 5.5.2 Command not recognized\r\n");
      }
    };
    raw.on("data", onData);
    raw.write(`220 ${me} ESMTP sink\r\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  const messages = (): SinkMessage[] => sessions.flatMap((s) => s.messages);
  return {
    port: addr.port,
    sessions,
    messages,
    async waitForMessage(token, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = messages().find((x) => x.data.includes(token));
        if (m !== undefined || Date.now() > deadline) return m;
        await sleep(50);
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
