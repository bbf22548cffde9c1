/**
 * The socket adapter for one SMTP connection: feeds bytes from the socket to
 * the protocol core, writes its replies, runs the STARTTLS upgrade, enforces
 * the idle / data / handshake timeouts, and passes the core's questions to
 * the host (policy and spool).
 *
 * Guarantees:
 * - While a question is open (e.g. the spool commit before a 250) the socket
 *   is paused, so a pipelining client cannot make us buffer without bound.
 * - Output is backpressured: input is fed to the core in slices of
 *   FEED_SLICE bytes, and once more than OUTPUT_HIGH_WATER bytes of replies
 *   wait in the socket (a client that does not read them) the rest of the
 *   read is held and the socket paused until it drains. Replies held per
 *   connection stay below OUTPUT_HIGH_WATER plus the replies to one slice;
 *   input held, below one read. (A client that never reads meets the idle
 *   timeout.)
 * - At or above the process memory budget (limits.memory_budget) a new
 *   connection gets 421 4.3.2 instead of the greeting.
 * - STARTTLS: the core has thrown away every plaintext byte after the
 *   command; this adapter stops reading plaintext before it writes the 220,
 *   then hands the raw socket to TLS. Nothing read before the handshake can
 *   reach the TLS session.
 * - A socket error or a host failure never crashes the process: the client
 *   gets 451 (host failure) or the connection is dropped (socket failure).
 */
import type { Socket } from "node:net";
import tls from "node:tls";
import type { Logger } from "../log/index.ts";
import { SmtpSession, type Action, type Question, type SessionOptions } from "../protocol/session.ts";
import { TEMPORARY_FAILURE, SmtpError, type Reply } from "../protocol/reply.ts";
import type { TlsManager } from "../tls/index.ts";
import { describeTls } from "../tls/index.ts";
import type { SaslMechanism } from "../auth/types.ts";
import { formatReply } from "../protocol/reply.ts";
import { MEMORY_BUSY_CONNECT, overMemoryBudget } from "./memory.ts";

/** Replies waiting in the socket above which the connection stops reading. */
const OUTPUT_HIGH_WATER = 64 * 1024;
/** Input is fed to the core in slices of this size, so one read cannot make more than one slice's replies at once. */
const FEED_SLICE = 4096;

/** State the host keeps per connection: the SASL exchange, the check state of the transaction and of the connection. */
export interface ConnectionScratch {
  sasl?: SaslMechanism;
  checks?: Map<string, unknown>;
  /** The checks' per-connection state (CheckInput.connection). */
  connectionChecks?: Map<string, unknown>;
}

/** Facts about the connection the host may need. */
export interface ConnectionInfo {
  readonly sessionId: string;
  readonly listener: string;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly helo: string;
  readonly protocol: string;
  readonly tls?: { readonly version: string; readonly cipher: string };
  /** The account of a successful AUTH on this connection. */
  readonly authUser?: string;
  /** RFC 9266 tls-exporter channel binding data (TLS 1.3 only). */
  readonly channelBinding: Buffer | undefined;
  /** Per-connection state the host may keep (the SASL exchange in progress). */
  readonly scratch: ConnectionScratch;
  readonly logger: Logger;
}

export interface HostAnswer {
  readonly reply: Reply;
  /** For RCPT: the normalised recipient to record. */
  readonly address?: string;
}

/** What the connection asks about; implemented by the receiver (policy + spool). */
export interface SessionHost {
  answer(q: Question, info: ConnectionInfo): HostAnswer | Promise<HostAnswer>;
}

export interface ConnectionOptions {
  readonly session: SessionOptions;
  readonly listener: string;
  readonly host: SessionHost;
  readonly tls: TlsManager | undefined;
  readonly idleTimeoutMs: number;
  readonly dataTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** Implicit TLS (RFC 8314): the handshake comes before the greeting. */
  readonly implicitTls: boolean;
  readonly logger: Logger;
  readonly sessionId: string;
  readonly onClose: () => void;
  /** limits.memory_budget in bytes; undefined: not checked. */
  readonly memoryBudget?: number;
}

export class Connection {
  private socket: Socket;
  private readonly session: SmtpSession;
  private readonly opts: ConnectionOptions;
  private readonly log: Logger;
  private tlsInfo: { version: string; cipher: string } | undefined;
  private channelBinding: Buffer | undefined;
  private readonly scratch: ConnectionScratch = {};
  private ended = false;
  /** Read once: each read of remoteAddress is a getpeername() system call. */
  private readonly clientIp: string;
  private readonly clientPort: number;
  /** Input read but not yet fed to the core, while the client does not read its replies. */
  private held: Buffer | undefined;
  private readonly onData = (chunk: Buffer): void => this.feed(chunk);

  constructor(socket: Socket, opts: ConnectionOptions) {
    this.socket = socket;
    this.opts = opts;
    this.session = new SmtpSession(opts.session);
    this.log = opts.logger;
    this.clientIp = socket.remoteAddress ?? "";
    this.clientPort = socket.remotePort ?? 0;
  }

  /** Starts the session: the TLS handshake first for implicit TLS, then the greeting, then reading. */
  start(): void {
    if (this.opts.memoryBudget !== undefined && overMemoryBudget(this.opts.memoryBudget)) {
      this.log.warn({ rss: process.memoryUsage.rss(), budget: this.opts.memoryBudget }, "memory budget reached; connection refused");
      this.socket.on("error", () => this.destroy());
      this.write(formatReply(MEMORY_BUSY_CONNECT));
      this.end();
      return;
    }
    if (this.opts.implicitTls) {
      this.socket.on("error", () => this.destroy());
      this.handshake(() => this.handle(this.session.greeting({ channelBinding: this.channelBinding !== undefined })));
      return;
    }
    this.wire(this.socket);
    this.handle(this.session.greeting());
  }

  /** Graceful stop: 421 to the client unless a message is being committed. */
  shutdown(): void {
    if (this.session.waiting) return; // the answer will come; the client then gets its reply
    this.handle(this.session.shutdown());
  }

  private wire(socket: Socket): void {
    socket.setNoDelay(true);
    socket.on("data", this.onData);
    socket.on("timeout", () => this.handle(this.session.timeout()));
    socket.on("error", (err) => {
      this.log.debug({ err: err.message }, "socket error");
      this.destroy();
    });
    socket.on("close", () => this.destroy());
    socket.on("drain", () => this.drained());
    this.armTimer();
  }

  /** Feeds input to the core slice by slice; holds the rest while replies back up. */
  private feed(chunk: Buffer): void {
    const socket = this.socket;
    let pos = 0;
    while (pos < chunk.length) {
      // Ended, or STARTTLS replaced the socket (the core discards the rest anyway).
      if (this.ended || this.socket !== socket) return;
      // While a question is open the core would only buffer it: hold it here.
      if (this.session.waiting || this.congested()) {
        this.held = chunk.subarray(pos);
        this.socket.pause();
        return;
      }
      const end = Math.min(chunk.length, pos + FEED_SLICE);
      this.handle(this.session.feed(chunk.subarray(pos, end)));
      pos = end;
    }
  }

  private congested(): boolean {
    return this.socket.writableLength > OUTPUT_HIGH_WATER;
  }

  /** The client read its replies (or a question was answered): go on with held input, then read again. */
  private drained(): void {
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.feed(held);
    this.resumeReading();
  }

  /** Reads again unless a question is open, input is held, or the replies still back up. */
  private resumeReading(): void {
    if (this.ended || this.held !== undefined || this.session.waiting || this.session.closed || this.congested()) return;
    this.socket.resume();
  }

  private armTimer(): void {
    const ms = this.session.receivingContent ? this.opts.dataTimeoutMs : this.opts.idleTimeoutMs;
    this.socket.setTimeout(ms);
  }

  private info(): ConnectionInfo {
    return {
      sessionId: this.opts.sessionId,
      listener: this.opts.listener,
      clientIp: this.clientIp,
      clientPort: this.clientPort,
      helo: this.session.helo ?? "",
      protocol: this.session.protocol,
      ...(this.tlsInfo ? { tls: this.tlsInfo } : {}),
      ...(this.session.authenticated !== undefined ? { authUser: this.session.authenticated } : {}),
      channelBinding: this.channelBinding,
      scratch: this.scratch,
      logger: this.log,
    };
  }

  private handle(actions: Action[]): void {
    let out = "";
    for (const a of actions) {
      switch (a.kind) {
        case "send":
          out += a.data;
          break;
        case "close":
          if (out) this.write(out);
          out = "";
          this.end();
          return;
        case "starttls":
          if (out) this.write(out);
          out = "";
          this.startTls();
          return;
        case "ask":
          if (out) this.write(out);
          out = "";
          this.ask(a.question);
          return;
      }
    }
    if (out) this.write(out);
    this.armTimer();
  }

  private ask(q: Question): void {
    this.socket.pause();
    let result: HostAnswer | Promise<HostAnswer>;
    try {
      result = this.opts.host.answer(q, this.info());
    } catch (err) {
      result = { reply: this.failure(err) };
    }
    if (result instanceof Promise) {
      result.then(
        (r) => this.resume(r),
        (err: unknown) => this.resume({ reply: this.failure(err) }),
      );
    } else {
      this.resume(result);
    }
  }

  private failure(err: unknown): Reply {
    if (err instanceof SmtpError) return err.reply;
    this.log.error({ err: err instanceof Error ? err.message : String(err) }, "host failure; answered 451");
    return TEMPORARY_FAILURE;
  }

  private resume(r: HostAnswer): void {
    if (this.ended) return;
    const actions = this.session.answer(r.reply, r.address);
    this.handle(actions);
    this.drained();
  }

  private startTls(): void {
    this.handshake(() => this.session.tlsStarted({ channelBinding: this.channelBinding !== undefined }));
  }

  /**
   * Wraps the current (plain) socket in server-side TLS and calls then()
   * once the handshake is done. Reading plaintext stops first: nothing more
   * goes to the core until TLS is up.
   */
  private handshake(then: () => void): void {
    const manager = this.opts.tls;
    const plain = this.socket;
    if (!manager) {
      this.end();
      return;
    }
    plain.removeListener("data", this.onData);
    plain.removeAllListeners("timeout");
    plain.removeAllListeners("drain");
    this.held = undefined;
    plain.pause();
    const secure = new tls.TLSSocket(plain, { isServer: true, ...manager.serverOptions() });
    this.socket = secure;
    secure.setTimeout(this.opts.handshakeTimeoutMs);
    const onTimeout = (): void => {
      this.log.debug("TLS handshake timeout");
      this.destroy();
    };
    secure.once("timeout", onTimeout);
    secure.once("secure", () => {
      secure.removeListener("timeout", onTimeout);
      this.tlsInfo = describeTls(secure);
      // RFC 9266: tls-exporter is defined for TLS 1.3 (for 1.2 only with the
      // extended master secret, which Node cannot confirm): SCRAM-*-PLUS
      // is offered on TLS 1.3 connections only.
      this.channelBinding = secure.getProtocol() === "TLSv1.3" ? secure.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0)) : undefined;
      this.log.debug(this.tlsInfo, "TLS established");
      this.wire(secure);
      then();
    });
    secure.on("error", (err: Error) => {
      this.log.debug({ err: err.message }, "TLS error");
      this.destroy();
    });
    secure.once("close", () => this.destroy());
  }

  private write(data: string): void {
    if (this.ended || this.socket.destroyed) return;
    this.socket.write(data, "utf8");
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.setTimeout(0);
    this.socket.end();
    // A client that never reads must not hold the socket forever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
    this.opts.onClose();
  }

  private destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy();
    if (!this.ended) {
      this.ended = true;
      this.opts.onClose();
    }
  }
}
