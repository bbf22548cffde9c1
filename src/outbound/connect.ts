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
 * socket is closed in every path. SmtpConnection with `keepOpen` (the
 * connection cache, pool.ts) leaves a connection that is still in step open
 * and idle after its batch instead of QUIT; send() carries the next batch,
 * quit() or destroy() end it, and every other path closes it as above.
 */
import net from "node:net";
import tls from "node:tls";
import {
  ClientSession,
  NO_EXTENSIONS,
  type ClientAction,
  type ClientOptions,
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

/** What the client core takes (helo, tls, messages, maxLineLength, auth, lmtp: see ClientOptions), and how to reach the server. */
export interface DeliverOptions extends Pick<ClientOptions, "helo" | "tls" | "messages" | "maxLineLength" | "auth" | "lmtp"> {
  /** The server's name: for SNI and the certificate name check (MX host name). */
  readonly host: string;
  /** The IP address to connect to. */
  readonly address: string;
  readonly port: number;
  readonly localAddress?: string;
  /** Extra options for tls.connect (ca, checkServerIdentity, minVersion...). Defaults: minVersion TLSv1.2, rejectUnauthorized false. */
  readonly tlsOptions?: tls.ConnectionOptions;
  /** Called after the handshake; not ok → QUIT, every recipient temporary. */
  readonly verify?: (socket: tls.TLSSocket) => { ok: boolean; reason?: string };
  readonly timeouts: Timeouts;
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

/** How long a cached connection's QUIT waits for the reply before the socket is closed. */
const QUIT_WAIT_MS = 2000;
/**
 * How long a reused connection's RSET waits for its reply (at most the
 * command timeout): a connection a firewall dropped while idle answers
 * nothing, and its batch goes on a fresh connection after this, not after
 * the whole command timeout (as Postfix's smtp_rset_timeout).
 */
const PROBE_TIMEOUT_MS = 20_000;

/** Delivers `messages` over one connection to `address`:`port`, then QUIT. Never rejects. */
export function deliverSession(opts: DeliverOptions): Promise<SessionResult> {
  return new SmtpConnection(opts).start();
}

/**
 * One outbound connection. start() opens it and sends the options'
 * messages; with `keepOpen` the connection then stays idle (no QUIT) and
 * send() carries the next batch over it (RSET first), until quit() or
 * destroy(). `onClosed` is told when the socket goes away, whatever the
 * reason (the connection cache drops it then). start() and send() never
 * reject.
 */
export class SmtpConnection {
  private readonly opts: DeliverOptions & { readonly keepOpen?: boolean; readonly onClosed?: () => void };
  private session: ClientSession | undefined;
  private resolveBatch: ((r: SessionResult) => void) | undefined;
  private batchMessages: readonly OutboundMessage[];
  private connected = false;
  private closing = false;
  private gone = false;
  private timer: NodeJS.Timeout | undefined;
  private lastReplies = -1;
  private raw: net.Socket | undefined;
  private secure: tls.TLSSocket | undefined;
  private localAddress: string | undefined;
  private readonly peer: string;
  /** Messages handed to this connection so far (every batch). */
  sent = 0;
  /** When the connection was opened (Date.now()). */
  readonly openedAt = Date.now();

  constructor(opts: DeliverOptions & { readonly keepOpen?: boolean; readonly onClosed?: () => void }) {
    this.opts = opts;
    this.batchMessages = opts.messages;
    this.peer = opts.path !== undefined ? `unix:${opts.path}` : `${opts.address}:${opts.port}`;
  }

  /** Parked after a batch, socket open: send() may be called. */
  get idle(): boolean {
    return !this.closing && !this.gone && this.session?.idle === true;
  }

  start(): Promise<SessionResult> {
    const opts = this.opts;
    return new Promise<SessionResult>((resolve) => {
      this.resolveBatch = resolve;
      this.sent += opts.messages.length;
      try {
        this.session = new ClientSession({
          helo: opts.helo,
          tls: opts.tls,
          messages: opts.messages,
          ...(opts.maxLineLength !== undefined ? { maxLineLength: opts.maxLineLength } : {}),
          ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
          ...(opts.lmtp === true ? { lmtp: true } : {}),
          ...(opts.keepOpen === true ? { keepOpen: true } : {}),
        });
      } catch (e) {
        this.gone = true;
        this.settle(failedResult(opts.messages, "4.3.5", `outbound client misconfigured: ${errorText(e)}`));
        return;
      }
      this.connect();
    });
  }

  /** The next batch over this idle connection. */
  send(messages: readonly OutboundMessage[]): Promise<SessionResult> {
    const session = this.session;
    if (!this.idle || session === undefined) {
      return Promise.resolve({ ...failedResult(messages, "4.4.2", "cached connection gone"), connection: { esmtp: false, extensions: NO_EXTENSIONS, error: "4.4.2 cached connection gone", stale: true } });
    }
    return new Promise<SessionResult>((resolve) => {
      this.resolveBatch = resolve;
      this.batchMessages = messages;
      this.sent += messages.length;
      this.run(session.reuse(messages));
    });
  }

  /** Ends an idle connection with QUIT, waiting at most QUIT_WAIT_MS for the peer's reply. */
  quit(): void {
    if (this.session?.idle !== true || this.closing) return this.destroyAll();
    this.run(this.session.quit());
    setTimeout(() => this.destroy(), QUIT_WAIT_MS).unref();
  }

  destroy(): void {
    this.closing = true;
    this.stopTimer();
    this.destroyAll();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private destroyAll(): void {
    this.secure?.destroy();
    this.raw?.destroy();
  }

  private close(graceful: boolean): void {
    this.stopTimer();
    if (this.closing) return;
    this.closing = true;
    const sock = this.secure ?? this.raw;
    if (!graceful || sock === undefined || sock.destroyed) return this.destroyAll();
    // Flush what was written (QUIT), then close; never wait long for the peer.
    sock.end(() => this.destroyAll());
    setTimeout(() => this.destroyAll(), 2000).unref();
  }

  private settle(r: SessionResult): void {
    const resolve = this.resolveBatch;
    if (resolve === undefined) return; // a QUIT's or a lost idle connection's "done": nobody waits
    this.resolveBatch = undefined;
    resolve(this.localAddress === undefined ? r : { ...r, connection: { ...r.connection, localAddress: this.localAddress } });
  }

  private armTimer(force: boolean): void {
    const session = this.session;
    if (session === undefined) return;
    const w = session.waitingFor();
    if (w === "none" || this.closing) return this.stopTimer();
    if (!force && session.replies === this.lastReplies) return;
    this.lastReplies = session.replies;
    const t = this.opts.timeouts;
    const ms = w === "greeting" ? t.greetingMs : w === "data" ? t.dataMs : session.probe ? Math.min(t.commandMs, PROBE_TIMEOUT_MS) : t.commandMs;
    this.stopTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run(session.timeout(), false);
    }, ms);
  }

  /** Carries out the core's actions. graceful: a "close" may flush first. */
  private run(actions: ClientAction[], graceful = true): void {
    try {
      for (const a of actions) {
        if (a.kind === "send") (this.secure ?? this.raw)?.write(a.data);
        else if (a.kind === "starttls") this.startTls();
        else if (a.kind === "done") this.settle(a.result);
        else this.close(graceful);
      }
      this.armTimer(actions.length > 0);
    } catch (e) {
      this.fatal(e);
    }
  }

  /** Something unexpected (a bug or a throwing hook): end with temporary results. */
  private fatal(e: unknown): void {
    try {
      const out = this.session?.connectionLost(`internal error: ${errorText(e)}`, "4.3.0") ?? [];
      for (const a of out) if (a.kind === "done") this.settle(a.result);
    } catch {
      // fall through to the generic result
    }
    this.settle(failedResult(this.batchMessages, "4.3.0", `internal error: ${errorText(e)}`));
    this.close(false);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.session !== undefined) this.run(this.session.feed(chunk));
  };

  private lost(reason: string, status?: string): void {
    if (this.session !== undefined) this.run(this.session.connectionLost(reason, status), false);
  }

  private closed(): void {
    if (this.gone) return;
    this.gone = true;
    this.stopTimer();
    this.opts.onClosed?.();
  }

  private startTls(): void {
    const opts = this.opts;
    const sock = this.raw;
    const session = this.session;
    if (sock === undefined || session === undefined) return;
    sock.removeListener("data", this.onData);
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
    this.secure = t;
    let up = false;
    t.on("error", (e) => this.run(up ? session.connectionLost(errorText(e)) : session.tlsFailed(errorText(e)), false));
    t.on("close", () => {
      this.lost("connection closed by the server");
      this.closed();
    });
    t.once("secureConnect", () => {
      up = true;
      try {
        const facts = tlsFacts(t);
        const check = opts.verify?.(t) ?? { ok: true };
        t.on("data", this.onData);
        if (check.ok) this.run(session.tlsStarted(facts));
        else this.run(session.tlsRejected(facts, check.reason ?? "peer not acceptable"));
      } catch (e) {
        this.fatal(e);
      }
    });
  }

  private connect(): void {
    const opts = this.opts;
    const peer = this.peer;
    let sock: net.Socket;
    try {
      sock =
        opts.path !== undefined
          ? net.connect({ path: opts.path })
          : net.connect({ host: opts.address, port: opts.port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
    } catch (e) {
      this.gone = true;
      this.settle(failedResult(opts.messages, "4.4.1", `cannot connect to ${peer}: ${errorText(e)}`));
      return;
    }
    this.raw = sock;
    if (opts.path === undefined) sock.setNoDelay(true);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lost(`connect to ${peer} timed out`, "4.4.1");
    }, opts.timeouts.connectMs);
    sock.once("connect", () => {
      this.connected = true;
      this.localAddress = sock.localAddress;
      this.armTimer(true);
    });
    sock.on("data", this.onData);
    sock.on("error", (e) => {
      if (this.secure !== undefined) return; // the TLS socket reports it
      const where = this.connected ? "" : `connect to ${peer}: `;
      this.lost(where + errorText(e), this.connected ? "4.4.2" : "4.4.1");
    });
    sock.on("close", () => {
      if (this.secure === undefined) this.lost(this.connected ? "connection closed by the server" : `connect to ${peer} failed`, this.connected ? "4.4.2" : "4.4.1");
      this.closed();
    });
  }
}
