/**
 * The socket adapter of the outbound client: one TCP connection to one
 * server address (or one unix socket, for LMTP to a local server), driven
 * by ClientSession (the client codec, src/protocol/client-session.ts), with STARTTLS
 * (RFC 3207) through node:tls and a timeout on every wait (RFC 5321
 * §4.5.3.2 suggests 5 min for the greeting, 5 min per command, 10 min for
 * the reply after the content; the caller chooses).
 *
 * Trust: the server is hostile; the core checks every byte. TLS: the
 * certificate is checked against `host` (SNI and name check use it, never the
 * address) and the result is recorded in the facts (`verified`, `error`);
 * it does not stop delivery by itself, because opportunistic TLS (RFC 7435)
 * is better than plaintext. The `verify` hook is where MTA-STS (RFC 8461)
 * and DANE (RFC 7672) decide: when it says no, the session sends QUIT over
 * TLS and every recipient stays temporary; nothing ever falls back to
 * plaintext on the same connection. With `tlsOptions.rejectUnauthorized`
 * true a certificate that does not verify fails the handshake instead.
 *
 * deliverSession() never throws and never rejects: every failure (connect,
 * TLS, timeout, lost connection, a bug) becomes per-recipient results. The
 * socket is closed in every path.
 */
import net from "node:net";
import tls from "node:tls";
import {
  ClientSession,
  NO_EXTENSIONS,
  type ClientAction,
  type ClientTlsPolicy as TlsPolicy,
  type OutboundMessage,
  type SessionResult,
  type TlsInfo,
} from "../protocol/index.ts";
import { sharedTlsContext } from "./tls-context.ts";

export interface Timeouts {
  /** TCP connect. */
  readonly connectMs: number;
  /** The 220 greeting after connect. */
  readonly greetingMs: number;
  /** Each other reply, and the TLS handshake. */
  readonly commandMs: number;
  /** The reply after the message content (the content is being written meanwhile). */
  readonly dataMs: number;
}

export interface DeliverOptions {
  /** The server's name: for SNI and the certificate name check (MX host name). */
  readonly host: string;
  /** The IP address to connect to. */
  readonly address: string;
  readonly port: number;
  readonly localAddress?: string;
  /** Our EHLO name. */
  readonly helo: string;
  readonly tls: TlsPolicy;
  /** Extra options for tls.connect (ca, checkServerIdentity, minVersion...). Defaults: minVersion TLSv1.2, rejectUnauthorized false. */
  readonly tlsOptions?: tls.ConnectionOptions;
  /** Called after the handshake; not ok → QUIT, every recipient temporary. */
  readonly verify?: (socket: tls.TLSSocket) => { ok: boolean; reason?: string };
  readonly timeouts: Timeouts;
  readonly messages: readonly OutboundMessage[];
  readonly maxLineLength?: number;
  /** AUTH PLAIN after STARTTLS (a relay host); never sent without TLS. */
  readonly auth?: { readonly user: string; readonly password: string };
  /** Speak LMTP (RFC 2033); tls must be "none". */
  readonly lmtp?: boolean;
  /** A unix socket to connect to instead of address:port (LMTP to a local server). */
  readonly path?: string;
}

export type { SessionResult } from "../protocol/index.ts";

/** A result without a connection: every recipient temporary (or as given). */
export function failedResult(messages: readonly OutboundMessage[], status: string, text: string): SessionResult {
  return {
    messages: messages.map((m) => ({
      recipients: m.envelope.recipients.map((r) => ({ address: r.address, code: 0, status, text, final: "temporary" as const })),
    })),
    connection: { esmtp: false, extensions: NO_EXTENSIONS, error: `${status} ${text}` },
  };
}

function errorText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code !== undefined ? `${(e as NodeJS.ErrnoException).code}: ${e.message}` : e.message;
  return String(e);
}

/** The TLS facts of an established socket, with the verification result. */
export function tlsFacts(socket: tls.TLSSocket): TlsInfo {
  const version = socket.getProtocol() ?? "unknown";
  const c = socket.getCipher() as tls.CipherNameAndProtocol | undefined;
  const cipher = c === undefined ? "unknown" : c.standardName !== undefined && c.standardName !== "" ? c.standardName : c.name;
  // Node sets authorizationError to a string (an OpenSSL code) despite its type.
  const err = socket.authorizationError as unknown;
  const error = err === undefined || err === null ? undefined : typeof err === "string" ? err : err instanceof Error ? err.message : JSON.stringify(err);
  return { version, cipher, verified: socket.authorized, ...(error !== undefined ? { error } : {}) };
}

/** Delivers `messages` over one connection to `address`:`port`. Never rejects. */
export function deliverSession(opts: DeliverOptions): Promise<SessionResult> {
  return new Promise<SessionResult>((resolve) => {
    let session: ClientSession;
    try {
      session = new ClientSession({
        helo: opts.helo,
        tls: opts.tls,
        messages: opts.messages,
        ...(opts.maxLineLength !== undefined ? { maxLineLength: opts.maxLineLength } : {}),
        ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
        ...(opts.lmtp === true ? { lmtp: true } : {}),
      });
    } catch (e) {
      resolve(failedResult(opts.messages, "4.3.5", `outbound client misconfigured: ${errorText(e)}`));
      return;
    }
    let settled = false;
    let connected = false;
    let closing = false;
    let timer: NodeJS.Timeout | undefined;
    let lastReplies = -1;
    let raw: net.Socket | undefined;
    let secure: tls.TLSSocket | undefined;
    const peer = opts.path !== undefined ? `unix:${opts.path}` : `${opts.address}:${opts.port}`;

    const stopTimer = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    const destroyAll = (): void => {
      secure?.destroy();
      raw?.destroy();
    };
    const close = (graceful: boolean): void => {
      stopTimer();
      if (closing) return;
      closing = true;
      const sock = secure ?? raw;
      if (!graceful || sock === undefined || sock.destroyed) return destroyAll();
      // Flush what was written (QUIT), then close; never wait long for the peer.
      sock.end(() => destroyAll());
      setTimeout(destroyAll, 2000).unref();
    };
    let localAddress: string | undefined;
    const settle = (r: SessionResult): void => {
      if (settled) return;
      settled = true;
      resolve(localAddress === undefined ? r : { ...r, connection: { ...r.connection, localAddress } });
    };
    const armTimer = (force: boolean): void => {
      const w = session.waitingFor();
      if (w === "none" || closing) return stopTimer();
      if (!force && session.replies === lastReplies) return;
      lastReplies = session.replies;
      const t = opts.timeouts;
      const ms = w === "greeting" ? t.greetingMs : w === "data" ? t.dataMs : t.commandMs;
      stopTimer();
      timer = setTimeout(() => {
        timer = undefined;
        run(session.timeout(), false);
      }, ms);
    };
    /** Carries out the core's actions. graceful: a "close" may flush first. */
    const run = (actions: ClientAction[], graceful = true): void => {
      try {
        for (const a of actions) {
          if (a.kind === "send") (secure ?? raw)?.write(a.data);
          else if (a.kind === "starttls") startTls();
          else if (a.kind === "done") settle(a.result);
          else close(graceful);
        }
        armTimer(actions.length > 0);
      } catch (e) {
        fatal(e);
      }
    };
    /** Something unexpected (a bug or a throwing hook): end with temporary results. */
    const fatal = (e: unknown): void => {
      try {
        const out = session.connectionLost(`internal error: ${errorText(e)}`, "4.3.0");
        for (const a of out) if (a.kind === "done") settle(a.result);
      } catch {
        // fall through to the generic result
      }
      settle(failedResult(opts.messages, "4.3.0", `internal error: ${errorText(e)}`));
      close(false);
    };
    const onData = (chunk: Buffer): void => run(session.feed(chunk));

    const startTls = (): void => {
      const sock = raw;
      if (sock === undefined) return;
      sock.removeListener("data", onData);
      const servername = net.isIP(opts.host) === 0 ? opts.host.replace(/\.$/, "") : undefined;
      const options: tls.ConnectionOptions = { minVersion: "TLSv1.2", rejectUnauthorized: false, ...opts.tlsOptions };
      // One context per CA/version set for every session (tls-context.ts), not one per connection.
      const secureContext = options.secureContext ?? sharedTlsContext(options);
      const t = tls.connect({
        ...options,
        ...(secureContext !== undefined ? { secureContext } : {}),
        socket: sock,
        host: opts.host.replace(/\.$/, ""),
        // SNI is never an IP literal (RFC 6066 §3) and never has the root dot.
        ...(servername !== undefined ? { servername: (opts.tlsOptions?.servername ?? servername).replace(/\.$/, "") } : {}),
      });
      secure = t;
      let up = false;
      t.on("error", (e) => run(up ? session.connectionLost(errorText(e)) : session.tlsFailed(errorText(e)), false));
      t.on("close", () => run(session.connectionLost("connection closed by the server"), false));
      t.once("secureConnect", () => {
        up = true;
        try {
          const facts = tlsFacts(t);
          const check = opts.verify?.(t) ?? { ok: true };
          t.on("data", onData);
          if (check.ok) run(session.tlsStarted(facts));
          else run(session.tlsRejected(facts, check.reason ?? "peer not acceptable"));
        } catch (e) {
          fatal(e);
        }
      });
    };

    try {
      raw =
        opts.path !== undefined
          ? net.connect({ path: opts.path })
          : net.connect({ host: opts.address, port: opts.port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
    } catch (e) {
      settle(failedResult(opts.messages, "4.4.1", `cannot connect to ${peer}: ${errorText(e)}`));
      return;
    }
    const sock = raw;
    if (opts.path === undefined) sock.setNoDelay(true);
    timer = setTimeout(() => {
      timer = undefined;
      run(session.connectionLost(`connect to ${peer} timed out`, "4.4.1"), false);
    }, opts.timeouts.connectMs);
    sock.once("connect", () => {
      connected = true;
      localAddress = sock.localAddress;
      armTimer(true);
    });
    sock.on("data", onData);
    sock.on("error", (e) => {
      if (secure !== undefined) return; // the TLS socket reports it
      const where = connected ? "" : `connect to ${peer}: `;
      run(session.connectionLost(where + errorText(e), connected ? "4.4.2" : "4.4.1"), false);
    });
    sock.on("close", () => {
      if (secure === undefined) run(session.connectionLost(connected ? "connection closed by the server" : `connect to ${peer} failed`, connected ? "4.4.2" : "4.4.1"), false);
    });
  });
}
