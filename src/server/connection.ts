/**
 * The socket adapter for one SMTP connection: feeds bytes from the socket to
 * the protocol core, writes its replies, runs the STARTTLS upgrade, enforces
 * the idle / data / handshake timeouts, and passes the core's questions to
 * the host (policy and spool).
 *
 * Slow and hostile clients (the limits are in src/limits): a command line
 * must be complete within command_timeout of its first byte, however often
 * bytes come; content must come at min_data_rate on average (a budget of
 * data_timeout, spent by time, refilled by bytes); a session lasts at most
 * session_timeout. Under pressure (the listener near its connection limit)
 * these timeouts are cut to stress_timeout. Error replies are delayed more
 * and more (tarpit: n × error_delay for the n-th error). On the MX port the
 * greeting can be split (pregreet test): a byte before its end gets 554.
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
 * - After QUIT the socket is closed as soon as the 221 is in the kernel (its
 *   FIN follows the reply); every other close (421, 554, limits) shuts the
 *   sending side down and waits for the client (at most 5 s), so a client
 *   still sending gets its reply rather than a reset.
 * - A socket error or a host failure never crashes the process: the client
 *   gets 451 (host failure) or the connection is dropped (socket failure).
 * - The host's transaction (ConnectionScratch.transaction, host.ts) lives
 *   no longer than the core's: once the core has no transaction and no open
 *   question (the message's answer, RSET, EHLO, STARTTLS, a refused MAIL)
 *   and when the connection ends, it is closed and dropped here.
 */
import type { Socket } from "node:net";
import tls from "node:tls";
import type { Logger } from "../log/index.ts";
import { SmtpSession, type Action, type Question, type SessionOptions } from "../protocol/index.ts";
import { TEMPORARY_FAILURE, SmtpError, reply, type Reply } from "../protocol/index.ts";
import type { TlsManager } from "../tls/index.ts";
import { describeTls } from "../tls/index.ts";
import { formatReply } from "../protocol/index.ts";
import { MEMORY_BUSY_CONNECT, overMemoryBudget, residentSet } from "./memory.ts";
import { countAnswer } from "./metrics.ts";
import { ContentRate } from "./content-rate.ts";
import { endTransaction, type ConnectionInfo, type ConnectionScratch, type HostAnswer, type SessionHost } from "./host.ts";

export type { ConnectionInfo, ConnectionScratch, HostAnswer, SessionHost } from "./host.ts";

/** Replies waiting in the socket above which the connection stops reading. */
const OUTPUT_HIGH_WATER = 64 * 1024;
/** Input is fed to the core in slices of this size, so one read cannot make more than one slice's replies at once. */
const FEED_SLICE = 4096;

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
  /** Time to complete one command line once its first byte came. */
  readonly commandTimeoutMs: number;
  /** Longest session. */
  readonly sessionTimeoutMs: number;
  /** The idle, command and data timeouts under pressure. */
  readonly stressTimeoutMs: number;
  /** Least average content rate (bytes per second). */
  readonly minDataRate: number;
  /** Tarpit step: the n-th error reply waits n × this; 0 = none. */
  readonly errorDelayMs: number;
  /** The pause inside a split greeting (pregreet test); 0 = a plain greeting. */
  readonly pregreetMs: number;
  /** The listener is near its connection limit: shorter timeouts. */
  readonly underPressure: () => boolean;
  /**
   * Asked before a question reaches the host: a reply (e.g. 421 over a
   * per-client rate) answers it instead. Undefined: the host answers.
   */
  readonly gate?: (q: Question, authenticated: boolean) => Reply | undefined;
  /** The client sent before the greeting ended. */
  readonly onEarlyTalker?: () => void;
  /** A command line reached command_timeout (the client is remembered as slow: listeners.ts). */
  readonly onSlowCommand?: () => void;
  /** The client waited for the whole split greeting. */
  readonly onPregreetPassed?: () => void;
  /** A trusted client: no tarpit. */
  readonly trusted: boolean;
  readonly logger: Logger;
  readonly sessionId: string;
  /** The session made progress (a reply sent, content received): what a busy listener's idle order follows. */
  readonly onProgress?: () => void;
  readonly onClose: () => void;
  /** limits.memory_budget in bytes; undefined: not checked. */
  readonly memoryBudget?: number;
}

const BUSY = reply(421, "4.7.0", "Server busy, closing idle connection");
const SESSION_OVER = reply(421, "4.4.2", "Session time limit reached, closing connection");

export class Connection {
  private socket: Socket;
  private readonly session: SmtpSession;
  private readonly opts: ConnectionOptions;
  private readonly log: Logger;
  private tlsInfo: { version: string; cipher: string } | undefined;
  private channelBinding: Buffer | undefined;
  private readonly scratch: ConnectionScratch = {};
  private infoCache: ConnectionInfo | undefined;
  private ended = false;
  /** Read once: each read of remoteAddress is a getpeername() system call. */
  private readonly clientIp: string;
  private readonly clientPort: number;
  /** Timers of the slow-client limits (cleared at the end). */
  private commandTimer: NodeJS.Timeout | undefined;
  private sessionTimer: NodeJS.Timeout | undefined;
  private greetTimer: NodeJS.Timeout | undefined;
  /** Content phase, and its rate (made at the first content). */
  private inContent = false;
  private rate: ContentRate | undefined;
  /** Last reply, or last content bytes: what "idle" is measured from when a busy listener closes idle sessions. */
  private progressAt = Date.now();
  /** Errors already tarpitted. */
  private errorsSeen = 0;
  private delaying = false;
  private handshaking = false;
  /** Input read but not yet fed to the core, while the client does not read its replies. */
  private held: Buffer | undefined;
  private readonly onData = (chunk: Buffer): void => this.feed(chunk);
  /** Replies of this turn not yet written (see write()). */
  private outBuf = "";
  private flushQueued = false;

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
      this.log.warn({ rss: residentSet(), budget: this.opts.memoryBudget }, "memory budget reached; connection refused");
      this.socket.on("error", () => this.destroy());
      // Implicit TLS: no plaintext into a TLS client (listeners.ts refuses the same way).
      if (!this.opts.implicitTls) this.write(formatReply(MEMORY_BUSY_CONNECT));
      this.end();
      return;
    }
    this.sessionTimer = setTimeout(() => this.sessionOver(), this.opts.sessionTimeoutMs);
    this.opts.host.connected?.(this.info());
    if (this.opts.implicitTls) {
      this.socket.on("error", () => this.destroy());
      this.handshake(() => this.handle(this.session.greeting({ channelBinding: this.channelBinding !== undefined })));
      return;
    }
    this.wire(this.socket);
    if (this.opts.pregreetMs > 0) {
      this.handle(this.session.greetingStart());
      this.greetTimer = setTimeout(() => {
        this.greetTimer = undefined;
        if (this.ended) return;
        this.opts.onPregreetPassed?.();
        this.handle(this.session.greetingDone());
      }, this.opts.pregreetMs);
      return;
    }
    this.handle(this.session.greeting());
  }

  /** How long the session has made no progress (ms); -1 while it cannot be closed (a question, the tarpit, a TLS handshake or the pregreet pause is ours to finish). */
  idleFor(now: number): number {
    if (this.ended || this.session.waiting || this.delaying || this.handshaking || this.greetTimer !== undefined) return -1;
    return now - this.progressAt;
  }

  /** A client in relay.trusted_networks. */
  get trusted(): boolean {
    return this.opts.trusted;
  }

  /** Closed to make room on a busy listener. */
  evict(): void {
    this.log.debug({ ip: this.clientIp }, "idle session closed: listener busy");
    this.handle(this.session.abort(BUSY));
  }

  /** `following`: bytes of the same read after chunk (Session.feed). */
  private input(chunk: Buffer, following = 0): void {
    const now = Date.now();
    if (this.inContent) this.spendBudget(now, chunk.length);
    const talked = this.session.earlyTalker;
    const actions = this.session.feed(chunk, following);
    if (this.session.earlyTalker && !talked) this.opts.onEarlyTalker?.();
    // A command line must end within command_timeout of its first byte.
    if (!this.session.receivingContent && chunk[chunk.length - 1] !== 0x0a && !this.session.closed) {
      this.commandTimer ??= setTimeout(() => this.slowCommand(), this.timeout(this.opts.commandTimeoutMs));
    } else {
      clearTimeout(this.commandTimer);
      this.commandTimer = undefined;
    }
    this.handle(actions);
  }

  /** command_timeout: not while the server itself is busy with a question or the tarpit (the partial line waits behind it). */
  private slowCommand(): void {
    if (this.session.waiting || this.delaying) {
      this.commandTimer = setTimeout(() => this.slowCommand(), 1000);
      return;
    }
    this.commandTimer = undefined;
    this.opts.onSlowCommand?.();
    this.handle(this.session.timeout());
  }

  /** A timeout, cut to stress_timeout under pressure. */
  private timeout(ms: number): number {
    return this.opts.underPressure() ? Math.min(ms, this.opts.stressTimeoutMs) : ms;
  }

  /** Content rate (content-rate.ts): time spends the budget, bytes refill it, up to data_timeout. */
  private spendBudget(now: number, bytes: number): void {
    this.rate?.spend(now, bytes, this.timeout(this.opts.dataTimeoutMs));
    this.progressAt = now;
    this.opts.onProgress?.();
  }

  /** The content rate ran out while content was still coming. */
  private tooSlow(): void {
    this.log.info({ ip: this.clientIp }, "content below min_data_rate");
    this.handle(this.session.timeout());
  }

  private sessionOver(): void {
    if (this.ended) return;
    // A message being committed gets its reply first.
    if (this.session.waiting || this.delaying) {
      this.sessionTimer = setTimeout(() => this.sessionOver(), 1000);
      return;
    }
    this.log.info({ ip: this.clientIp }, "session_timeout reached");
    this.handle(this.session.abort(SESSION_OVER));
  }

  private clearTimers(): void {
    clearTimeout(this.commandTimer);
    this.rate?.stop();
    clearTimeout(this.sessionTimer);
    clearTimeout(this.greetTimer);
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
      // A read that fits in one slice (a command line) goes in as it is, without a view made of it.
      this.input(pos === 0 && end === chunk.length ? chunk : chunk.subarray(pos, end), chunk.length - end);
      pos = end;
    }
  }

  private congested(): boolean {
    return this.socket.writableLength + this.outBuf.length > OUTPUT_HIGH_WATER;
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
    const content = this.session.receivingContent;
    const ms = this.timeout(content ? this.opts.dataTimeoutMs : this.opts.idleTimeoutMs);
    // The socket restarts its inactivity timer on every read and write itself: set it only when the value changes (not once per 4 KB slice).
    if (this.socket.timeout !== ms) this.socket.setTimeout(ms);
    if (content && !this.inContent) {
      this.inContent = true;
      this.rate ??= new ContentRate(this.opts.minDataRate, () => this.session.receivingContent, () => this.tooSlow());
      this.rate.start(ms, Date.now());
    } else if (!content && this.inContent) {
      this.inContent = false;
      this.rate?.stop();
    }
  }

  /**
   * The facts for the host, made again only when one of them changed
   * (EHLO, STARTTLS, AUTH): a message asks four times (connect, MAIL,
   * RCPT, content), the facts rarely move between.
   */
  private info(): ConnectionInfo {
    const c = this.infoCache;
    if (c !== undefined && c.helo === (this.session.helo ?? "") && c.protocol === this.session.protocol && c.tls === this.tlsInfo && c.authUser === this.session.authenticated && c.channelBinding === this.channelBinding) return c;
    return (this.infoCache = this.makeInfo());
  }

  private makeInfo(): ConnectionInfo {
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
    this.syncTransaction();
    if (actions.length === 0) {
      if (!this.delaying) this.armTimer();
      return;
    }
    const delay = this.tarpit();
    if (delay > 0) {
      // Tarpit: nothing is read or written until the delay is over.
      this.delaying = true;
      this.socket.pause();
      this.socket.setTimeout(0);
      setTimeout(() => {
        this.delaying = false;
        if (this.ended) return;
        if (!this.session.waiting && !this.session.closed) this.socket.resume();
        this.perform(actions);
      }, delay).unref();
      return;
    }
    this.perform(actions);
  }

  /**
   * The host's transaction ends with the core's (RSET, the message's
   * answer, a refused MAIL, EHLO, STARTTLS): closed and dropped here, not
   * while a question is open (a MAIL being answered opens the next one).
   */
  private syncTransaction(): void {
    if (this.scratch.transaction !== undefined && !this.session.waiting && !this.session.inTransaction) endTransaction(this.scratch);
  }

  /** The delay owed for the error replies since the last call: n × error_delay for the n-th (n at most 30). */
  private tarpit(): number {
    const errors = this.session.errorCount;
    let delay = 0;
    if (this.opts.errorDelayMs > 0 && !this.opts.trusted && this.session.authenticated === undefined) {
      for (let n = this.errorsSeen + 1; n <= errors; n++) delay += Math.min(n, 30) * this.opts.errorDelayMs;
    }
    this.errorsSeen = errors;
    return delay;
  }

  private perform(actions: Action[]): void {
    this.progressAt = Date.now();
    this.opts.onProgress?.();
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

  /** Reading stops while the host's answer is awaited (an answer given at once never lets a read in between). */
  private ask(q: Question): void {
    let result: HostAnswer | Promise<HostAnswer>;
    try {
      const refused = this.opts.gate?.(q, this.session.authenticated !== undefined);
      result = refused ? { reply: refused } : this.opts.host.answer(q, this.info());
    } catch (err) {
      result = { reply: this.failure(err) };
    }
    if (result instanceof Promise) {
      this.socket.pause();
      result.then(
        (r) => this.resume(r, q),
        (err: unknown) => this.resume({ reply: this.failure(err) }, q),
      );
    } else {
      this.resume(result, q);
    }
  }

  private failure(err: unknown): Reply {
    if (err instanceof SmtpError) return err.reply;
    this.log.error({ err: err instanceof Error ? err.message : String(err) }, "host failure; answered 451");
    return TEMPORARY_FAILURE;
  }

  private resume(r: HostAnswer, q?: Question): void {
    if (this.ended) return;
    if (q !== undefined) countAnswer(this.opts.listener, q.type, r.reply);
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
    // The 220 to STARTTLS goes out on the plain socket, before it is wrapped.
    this.flushOut();
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
    // The MX gets contexts without session tickets (unless tls.mx_session_tickets).
    const secure = new tls.TLSSocket(plain, { isServer: true, ...manager.serverOptions(this.opts.listener === "smtp" ? "mx" : "submission") });
    this.socket = secure;
    secure.setTimeout(this.timeout(this.opts.handshakeTimeoutMs));
    this.handshaking = true;
    const onTimeout = (): void => {
      this.log.debug("TLS handshake timeout");
      this.destroy();
    };
    secure.once("timeout", onTimeout);
    secure.once("secure", () => {
      secure.removeListener("timeout", onTimeout);
      this.handshaking = false;
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

  /**
   * Replies are gathered for the rest of the current turn of the event loop
   * and written in one socket write (a microtask flushes them): a pipelined
   * batch whose questions are answered at once (MAIL, RCPT, ...) costs one
   * write, not one per reply (RFC 2920 §3.1 lets a server hold replies while
   * it has input to process). Nothing waits longer than this turn: an
   * answer that must wait for I/O (a spool commit) leaves the turn first.
   * Closing and STARTTLS flush at once.
   */
  private write(data: string): void {
    if (this.ended || this.socket.destroyed) return;
    this.outBuf += data;
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flushOut();
    });
  }

  private flushOut(): void {
    const data = this.outBuf;
    if (data === "") return;
    this.outBuf = "";
    if (this.ended || this.socket.destroyed) return;
    this.socket.write(data, "utf8");
  }

  private end(): void {
    if (this.ended) return;
    this.flushOut();
    this.ended = true;
    endTransaction(this.scratch);
    this.clearTimers();
    if (this.quitClose()) {
      this.opts.onClose();
      return;
    }
    this.socket.setTimeout(0);
    this.socket.end();
    // A client that never reads must not hold the socket forever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
    this.opts.onClose();
  }

  /**
   * After QUIT, as Postfix's smtpd does: the socket is closed as soon as
   * the 221 is in the kernel (close() sends it, then our FIN), instead of
   * a shutdown and waiting for the client's FIN or reset. That wait cost
   * every connection a shutdown(), another read and, for the many clients
   * that reset after QUIT (smtp-source, SO_LINGER 0), an ECONNRESET error
   * object. Only on a plain socket whose replies were all written (a TLS
   * socket still owes its records to the TCP socket, and a reply still
   * queued in Node would be lost) and when no input was held back. A
   * client that sent more after QUIT (nothing may follow it, RFC 5321
   * §4.1.1.10) and left it unread in the kernel gets a reset instead of
   * our FIN and may lose the 221, as with Postfix.
   */
  private quitClose(): boolean {
    const socket = this.socket;
    if (!this.session.quit || this.tlsInfo !== undefined || this.handshaking || this.held !== undefined) return false;
    if (socket.destroyed || socket.writableLength !== 0 || socket instanceof tls.TLSSocket) return false;
    socket.destroy();
    return true;
  }

  private destroy(): void {
    endTransaction(this.scratch);
    this.clearTimers();
    if (!this.socket.destroyed) this.socket.destroy();
    if (!this.ended) {
      this.ended = true;
      this.opts.onClose();
    }
  }
}
