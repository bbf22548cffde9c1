/**
 * The listeners of one worker process: the MX role ("smtp", STARTTLS
 * offered), submission with STARTTLS ("submission") and submission with
 * implicit TLS ("submissions", RFC 8314). Each worker binds its own sockets
 * with SO_REUSEPORT, so the kernel spreads connections over the workers and
 * no process has to pass sockets around.
 *
 * Limits enforced here: total open connections per worker and per listener
 * group (MX, submission), where a full group first closes its session idle
 * longest (past it: 421 and close); per client, shared by all workers
 * (clients.ts): open connections, connection rate, messages and recipients
 * per minute on the MX port, and the memory of early talkers (pregreet);
 * the TLS handshake timeout for implicit TLS; a client whose command line
 * timed out is refused, with a delay, while its listener group is under
 * pressure (SLOW_CLIENT_S); so is a client refused again and again, or
 * refused by a full listener where it holds connections (REPEAT_REFUSALS).
 * Clients in relay.trusted_networks are exempt from the per-client limits.
 */
import net from "node:net";
import type { Config, ListenAddress } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import type { SessionOptions, TlsMode } from "../protocol/index.ts";
import type { TlsManager } from "../tls/index.ts";
import { Networks, clientKey } from "../submission/index.ts";
import { Connection, type SessionHost } from "./connection.ts";
import { ConnectionPool, type EvictionRule } from "./pool.ts";
import type { ClientGroup, ClientTable } from "./clients.ts";
import type { Question } from "../protocol/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import { metrics } from "../metrics/index.ts";

export type Role = "smtp" | "submission" | "submissions";

export interface BoundListener {
  readonly role: Role;
  readonly host: string;
  readonly port: number;
  readonly tls: "starttls" | "implicit" | "none";
}

export interface SmtpServerDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly host: SessionHost;
  readonly tls: TlsManager | undefined;
  /** Per-client counters shared by all workers. */
  readonly clients: ClientTable;
  /** Prefix for session ids, unique per worker. */
  readonly idPrefix: string;
}

// The replies of a connection refused before its session, written as they are (one Buffer for every refusal).
const TOO_MANY = Buffer.from("421 4.7.0 Too many connections, try again later\r\n");
const CLIENT_TOO_MANY = Buffer.from("421 4.7.0 Too many connections from your address, try again later\r\n");
const EARLY_TALKER = Buffer.from("554 5.5.1 Protocol error: you talked before the greeting ended\r\n");
const SHUTTING_DOWN = Buffer.from("421 4.3.2 Server shutting down\r\n");
const TOO_MANY_MESSAGES = reply(421, "4.7.0", "Too many messages from your address, try again later");
const TOO_MANY_RECIPIENTS = reply(421, "4.7.0", "Too many recipients from your address, try again later");
/** A full listener closes a session only when it made no progress for this long (working sessions make progress every round trip). */
const EVICT_IDLE_MS = 1000;
/** ... or, from a client holding more connections than the newcomer's, this long. */
const FAIR_IDLE_MS = 250;
/** A refused client is logged once per limit in this time (a flood must not flood the log). */
const LOG_EVERY_MS = 10_000;
/** Pressure: a listener group above this share of its connection limit. */
const STRESS_SHARE = 0.8;
/** How long a scan of a full pool that found no session idle enough is trusted (see evictIdle). */
const NO_VICTIM_MS = 50;
/**
 * A refused socket is closed as soon as its 421 is written, and destroyed
 * at the latest this long after the refusal, whatever the client does: one
 * that never reads or closes must not hold a descriptor beyond
 * max_connections.
 */
const REFUSED_LINGER_MS = 1000;
/**
 * A client one of whose sessions let a command line time out (the slowloris
 * signature: bytes trickled into a line that never ends) is remembered this
 * long; while a listener group is under pressure its new connections there
 * are refused (ClientTable.connect, refuseLater): its sessions would only be
 * timed out or evicted again, each costing a session's work that the
 * clients that complete their commands need. Without pressure it is
 * admitted as any client; trusted clients are never counted.
 */
const SLOW_CLIENT_S = 60;
/**
 * A slow client's refused connection gets its 421 this long after it came
 * (the socket is never read meanwhile): a slowloris that reconnects at once
 * after each refusal costs a refusal every few hundred ms per connection
 * otherwise. At most max_connections / SLOW_HOLD_SHARE are held at once per
 * worker; past that, refused at once.
 */
const SLOW_REFUSAL_DELAY_MS = 2000;
const SLOW_HOLD_SHARE = 2;
/**
 * A client refused by a per-client limit (connections or connection rate)
 * more than this many times within LOG_EVERY_MS, or refused by a full
 * listener group more than this many times within LOG_EVERY_MS while it
 * already holds connections there, gets its next refusals after
 * SLOW_REFUSAL_DELAY_MS too (held as a slow client's, within
 * the same bound): a flood that reconnects at once after each 421 costs a
 * refusal (and its TCP handshake on both sides) every few milliseconds per
 * loop otherwise. The first refusals in the interval still come at once.
 */
const REPEAT_REFUSALS = 5;
const EVICTION: EvictionRule = { idleMs: EVICT_IDLE_MS, fairIdleMs: FAIR_IDLE_MS, noVictimMs: NO_VICTIM_MS };

function ignoreError(): void {}

/**
 * What the connections of one listener role share, made once per role:
 * its group's pool and cap, its counters, its session options and its
 * pressure test. accept() reads these fields instead of looking things up
 * by role or group name per connection, so the code stays the same for MX
 * and submission, trusted and untrusted clients (no per-connection closure
 * for the pressure test either).
 */
interface ListenerState {
  readonly role: Role;
  readonly group: ClientGroup;
  readonly mode: TlsMode;
  readonly implicitTls: boolean;
  /** Open connections of the listener group (MX, or both submission listeners). */
  readonly pool: ConnectionPool<Connection>;
  /** max_mx_connections or max_submission_connections. */
  readonly cap: number;
  /** The listener group is above STRESS_SHARE of its cap, or the worker of max_connections. */
  readonly underPressure: () => boolean;
  /** wardmail_connections_total of the listener. */
  readonly accepted: { inc(): void };
  /** wardmail_connections_refused_total of the listener by limit, bound once. */
  readonly refused: Map<string, { inc(): void }>;
  /** The protocol core's options for untrusted and trusted clients. */
  readonly untrustedSession: SessionOptions;
  readonly trustedSession: SessionOptions;
}

/** A 'finish' listener: a refusal that could not be written at once is written and our side shut down. */
function destroySocket(this: net.Socket): void {
  this.destroy();
}

export class SmtpServer {
  private readonly deps: SmtpServerDeps;
  private readonly servers: net.Server[] = [];
  /** Every open connection, and those of each listener group: in the order of their last progress, counted per client key (pool.ts). */
  private readonly connections = new ConnectionPool<Connection>(EVICTION);
  private readonly groups: Record<ClientGroup, ConnectionPool<Connection>> = { mx: new ConnectionPool(EVICTION), submission: new ConnectionPool(EVICTION) };
  /** Per "ip limit": when it was last logged and the refusals since (bounded: cleared at 10,000 entries). */
  private readonly logged = new Map<string, { at: number; suppressed: number }>();
  /** Refusals of a client by a full listener group in the current LOG_EVERY_MS interval (see REPEAT_REFUSALS), by client key and group. */
  private readonly fullRefusals = new Map<string, { at: number; n: number }>();
  /** clients.untracked when it was last reported. */
  private untrackedSeen = 0;
  /** Refused sockets and when they must be destroyed at the latest (REFUSED_LINGER_MS), oldest first; swept by one timer. */
  private readonly lingering = new Map<net.Socket, number>();
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Refused sockets held (slow clients, repeated refusals) and when their reply is due (SLOW_REFUSAL_DELAY_MS), oldest first; swept by one timer. */
  private readonly holding = new Map<net.Socket, { due: number; text: Buffer; implicitTls: boolean }>();
  private holdTimer: NodeJS.Timeout | undefined;
  /** Per listener role, made once (see ListenerState). */
  private readonly listenerStates = new Map<Role, ListenerState>();
  private counter = 0;
  private stopping = false;
  private readonly trusted: Networks;

  constructor(deps: SmtpServerDeps) {
    this.deps = deps;
    this.trusted = new Networks(deps.config.relay.trustedNetworks);
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** Binds every configured listener; resolves with what is bound. */
  async listen(): Promise<BoundListener[]> {
    const { config } = this.deps;
    const bound: BoundListener[] = [];
    const roles: [Role, readonly ListenAddress[]][] = [
      ["smtp", config.smtp.listen],
      ["submission", config.submission.listen],
      ["submissions", config.submissions.listen],
    ];
    for (const [role, addrs] of roles) {
      for (const addr of addrs) {
        const server = this.createServer(role);
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: addr.host, port: addr.port, reusePort: true, exclusive: true, backlog: 1024 }, () => {
            server.removeListener("error", reject);
            resolve();
          });
        });
        server.on("error", (err) => this.deps.logger.error({ err: err.message, role }, "listener error"));
        this.servers.push(server);
        const tlsKind = role === "submissions" ? "implicit" : this.deps.tls ? "starttls" : "none";
        bound.push({ role, host: addr.host, port: addr.port, tls: tlsKind });
      }
    }
    return bound;
  }

  private createServer(role: Role): net.Server {
    if (role === "submissions" && !this.deps.tls) throw new Error("implicit TLS listener needs TLS certificates");
    // Implicit TLS is done per connection by the adapter (as for STARTTLS), so a
    // connection counts against max_connections from its first byte, handshake included.
    const state = this.listenerState(role);
    // pauseOnConnect: a socket is read only once its session starts; one refused before costs no read, and its client's bytes or reset no event.
    return net.createServer({ pauseOnConnect: true }, (s) => this.accept(s, state));
  }

  /** The shared state of a listener role (made at its first listener). */
  private listenerState(role: Role): ListenerState {
    let state = this.listenerStates.get(role);
    if (state !== undefined) return state;
    const { limits } = this.deps.config;
    const mode: TlsMode = role === "submissions" ? "active" : this.deps.tls ? "available" : "none";
    const group: ClientGroup = role === "smtp" ? "mx" : "submission";
    const pool = this.groups[group];
    const cap = group === "mx" ? limits.max_mx_connections : limits.max_submission_connections;
    // Near a connection limit: the sessions get shorter timeouts.
    const underPressure = (): boolean => pool.size >= STRESS_SHARE * cap || this.connections.size >= STRESS_SHARE * limits.max_connections;
    state = {
      role,
      group,
      mode,
      implicitTls: role === "submissions",
      pool,
      cap,
      underPressure,
      accepted: metrics.counter("wardmail_connections_total", { listener: role }),
      refused: new Map(),
      untrustedSession: this.sessionOptions(role, mode, false),
      trustedSession: this.sessionOptions(role, mode, true),
    };
    this.listenerStates.set(role, state);
    return state;
  }

  /**
   * Makes room in a full pool for a newcomer from client `key`; false when
   * nothing can be closed now. First, fairness: an idle session (no
   * progress for FAIR_IDLE_MS) of the untrusted client holding the most
   * connections, at least two more than the newcomer's client, so that many
   * connections from few addresses give way to a client that has none.
   * Else, for a newcomer whose client holds no connection here (or is
   * trusted), the session that made no progress for longest, at least
   * EVICT_IDLE_MS: a client that already holds some is refused instead, so
   * that closed slow sessions coming back cannot keep evicting each other
   * (each eviction costs two sessions' work). Never a session waiting for a question, the tarpit, a
   * TLS handshake or the pregreet pause (idleFor() < 0). A working session
   * makes progress every round trip, so slow and idle clients go first.
   */
  private evictIdle(pool: ConnectionPool<Connection>, key: string, trusted: boolean): boolean {
    // The pool keeps its sessions in the order of their progress and counted per client: no scan of every session.
    const victim = pool.victim(key, trusted, Date.now());
    victim?.evict();
    return victim !== undefined;
  }

  /**
   * The line fail2ban matches ("client limit" or "pregreet", with ip and
   * limit): at most one per client and limit every LOG_EVERY_MS, carrying
   * how many refusals were not logged since the last one. Returns how many
   * were not logged in the current interval (0 when this one was).
   */
  private logLimit(ip: string, listener: Role, limit: string, msg: string): number {
    const key = `${ip} ${limit}`;
    const now = Date.now();
    const last = this.logged.get(key);
    if (last && now - last.at < LOG_EVERY_MS) return ++last.suppressed;
    if (this.logged.size >= 10_000) this.logged.clear();
    this.deps.logger.warn({ ip, listener, limit, ...(last && last.suppressed > 0 ? { suppressed: last.suppressed } : {}) }, msg);
    if (last) {
      last.at = now;
      last.suppressed = 0;
    } else this.logged.set(key, { at: now, suppressed: 0 });
    return 0;
  }

  /**
   * Refuses a connection before its session, as cheaply as it can: the
   * reply (one Buffer, the same for every refusal) and the socket closed as
   * soon as it is written (never read, never waited for: its kernel sends
   * the reply and our FIN). On the
   * implicit-TLS port (465) the client speaks TLS first, so a plaintext 421
   * would only reach its TLS stack as garbage and a handshake would cost the
   * flood's CPU: the connection is closed without a word.
   */
  private refuse(socket: net.Socket, text: Buffer, implicitTls: boolean): void {
    socket.on("error", ignoreError);
    if (implicitTls) {
      socket.destroy();
      return;
    }
    // No timeout (none is set): but a session's socket has its `timeout` property, and a refused one
    // must have the same hidden class, or writing a refusal deoptimizes the socket write path the
    // sessions made hot (measured: the flood bench's first run recompiled it under attack).
    socket.setTimeout(0);
    // A fresh socket takes the few bytes at once: then close() sends them and our FIN, no shutdown() needed.
    socket.write(text);
    if (socket.writableLength === 0 || socket.destroyed) {
      socket.destroy();
      return;
    }
    socket.once("finish", destroySocket);
    socket.end();
    // The backstop: destroyed REFUSED_LINGER_MS after the refusal at the latest, by one timer for all.
    this.lingering.set(socket, Date.now() + REFUSED_LINGER_MS);
    this.lingerTimer ??= setInterval(() => this.sweepRefused(), REFUSED_LINGER_MS / 4).unref();
  }

  /** Counts a refusal by a full listener group; returns how many this client had there in the current LOG_EVERY_MS interval, this one included. */
  private fullRefused(key: string): number {
    const now = Date.now();
    const e = this.fullRefusals.get(key);
    if (e && now - e.at < LOG_EVERY_MS) return ++e.n;
    if (this.fullRefusals.size >= 10_000) this.fullRefusals.clear();
    this.fullRefusals.set(key, { at: now, n: 1 });
    return 1;
  }

  /**
   * Refuses a connection after SLOW_REFUSAL_DELAY_MS, unread meanwhile, so
   * that its client comes back less often (a slow client, see SLOW_CLIENT_S;
   * a repeated refusal, see REPEAT_REFUSALS); at once when max_connections /
   * SLOW_HOLD_SHARE are already held.
   */
  private refuseLater(socket: net.Socket, text: Buffer, implicitTls: boolean): void {
    if (this.holding.size >= this.deps.config.limits.max_connections / SLOW_HOLD_SHARE) return this.refuse(socket, text, implicitTls);
    socket.on("error", ignoreError);
    this.holding.set(socket, { due: Date.now() + SLOW_REFUSAL_DELAY_MS, text, implicitTls });
    this.holdTimer ??= setInterval(() => this.sweepHeld(), 100).unref();
  }

  /** Refuses the held sockets whose time came (all of them when stopping). */
  private sweepHeld(all = false): void {
    const now = Date.now();
    for (const [socket, { due, text, implicitTls }] of this.holding) {
      if (due > now && !all) break;
      this.holding.delete(socket);
      if (socket.destroyed) continue;
      if (all) socket.destroy();
      else this.refuse(socket, text, implicitTls);
    }
    if (this.holding.size === 0 && this.holdTimer !== undefined) {
      clearInterval(this.holdTimer);
      this.holdTimer = undefined;
    }
  }

  /** Destroys the refused sockets past their time (all of them when stopping). */
  private sweepRefused(all = false): void {
    const now = Date.now();
    for (const [socket, until] of this.lingering) {
      if (!socket.destroyed) {
        if (until > now && !all) break;
        socket.destroy();
      }
      this.lingering.delete(socket);
    }
    // Nothing left to watch: the timer stops until the next slow refusal.
    if (this.lingering.size === 0 && this.lingerTimer !== undefined) {
      clearInterval(this.lingerTimer);
      this.lingerTimer = undefined;
    }
  }

  /** Counts a connection refused before its session. */
  private countRefused(l: ListenerState, limit: string): void {
    let inc = l.refused.get(limit);
    if (inc === undefined) {
      inc = metrics.counter("wardmail_connections_refused_total", { listener: l.role, limit });
      l.refused.set(limit, inc);
    }
    inc.inc();
  }

  private accept(socket: net.Socket, l: ListenerState): void {
    const { config, logger } = this.deps;
    const { limits } = config;
    const { role, group, implicitTls } = l;
    if (this.stopping) return this.refuse(socket, SHUTTING_DOWN, implicitTls);
    const ip = socket.remoteAddress ?? "";
    const trusted = this.trusted.has(ip);
    if (!trusted) {
      // Under pressure a client remembered as slow is refused too (refuseLater, see SLOW_CLIENT_S).
      const r = this.deps.clients.connect(ip, group, limits.max_connections_per_client, limits.connections_per_client_per_minute, group === "mx", l.underPressure());
      if (r !== "ok") {
        const limit = r === "slow" ? "command_timeout" : r === "banned" ? "pregreet_ban_time" : r === "concurrency" ? "max_connections_per_client" : "connections_per_client_per_minute";
        const repeated = this.logLimit(ip, role, limit, "client limit") >= REPEAT_REFUSALS;
        this.countRefused(l, limit);
        if (r === "banned") return this.refuse(socket, EARLY_TALKER, implicitTls);
        // A slow client, or one that keeps coming back after its refusals: held (see REPEAT_REFUSALS).
        if (r === "slow" || repeated) return this.refuseLater(socket, CLIENT_TOO_MANY, implicitTls);
        return this.refuse(socket, CLIENT_TOO_MANY, implicitTls);
      }
    }
    if (this.deps.clients.untracked !== this.untrackedSeen) {
      // The table is full (clients.ts fails open): the operator should know.
      this.logLimit("", role, "client table", "client table full: clients not counted");
      this.untrackedSeen = this.deps.clients.untracked;
    }
    const key = clientKey(ip);
    const totalFull = this.connections.size >= limits.max_connections;
    if ((totalFull || l.pool.size >= l.cap) && !this.evictIdle(totalFull ? this.connections : l.pool, key, trusted)) {
      if (!trusted) this.deps.clients.release(ip, group);
      const limit = totalFull ? "max_connections" : group === "mx" ? "max_mx_connections" : "max_submission_connections";
      this.logLimit("", role, limit, "listener full");
      this.countRefused(l, limit);
      // A client that already holds connections in the full pool and keeps coming back is held before its refusal (see REPEAT_REFUSALS).
      if (!trusted && (totalFull ? this.connections : l.pool).count(key) > 0 && this.fullRefused(`${key} ${group}`) > REPEAT_REFUSALS) return this.refuseLater(socket, TOO_MANY, implicitTls);
      return this.refuse(socket, TOO_MANY, implicitTls);
    }
    l.accepted.inc();
    const sessionId = `${this.deps.idPrefix}${(this.counter++).toString(36)}`;
    const log = logger.child({ session: sessionId });
    if (log.isLevelEnabled("debug")) log.debug({ role, ip: socket.remoteAddress, port: socket.remotePort }, "connect");
    const session = trusted ? l.trustedSession : l.untrustedSession;
    socket.resume(); // (accepted paused: see createServer)
    const conn: Connection = new Connection(socket, {
      session,
      listener: role,
      host: this.deps.host,
      tls: this.deps.tls,
      idleTimeoutMs: config.limits.idle_timeout * 1000,
      dataTimeoutMs: config.limits.data_timeout * 1000,
      handshakeTimeoutMs: config.limits.tls_handshake_timeout * 1000,
      implicitTls,
      commandTimeoutMs: limits.command_timeout * 1000,
      sessionTimeoutMs: limits.session_timeout * 1000,
      stressTimeoutMs: limits.stress_timeout * 1000,
      minDataRate: limits.min_data_rate,
      errorDelayMs: limits.error_delay,
      pregreetMs: role === "smtp" && !trusted && limits.pregreet_delay > 0 && !this.deps.clients.passed(ip) ? limits.pregreet_delay : 0,
      underPressure: l.underPressure,
      // (Every key in every connection's options, in one order, undefined where it does not apply: one hidden class for all of them, so the attack's untrusted connections do not deoptimize the code the trusted ones made hot.)
      gate: role === "smtp" && !trusted ? (q: Question, authenticated: boolean) => this.rates(q, authenticated, ip) : undefined,
      onEarlyTalker: () => {
        this.logLimit(ip, role, "pregreet_delay", "pregreet");
        if (limits.pregreet_ban_time > 0) this.deps.clients.ban(ip, limits.pregreet_ban_time);
      },
      onSlowCommand: trusted ? undefined : () => this.deps.clients.markSlow(ip, SLOW_CLIENT_S),
      onPregreetPassed: () => {
        if (limits.pregreet_pass_time > 0) this.deps.clients.pass(ip, limits.pregreet_pass_time);
      },
      trusted,
      memoryBudget: config.limits.memory_budget,
      logger: log,
      sessionId,
      onProgress: () => {
        this.connections.touch(conn);
        l.pool.touch(conn);
      },
      onClose: () => {
        this.connections.delete(conn);
        l.pool.delete(conn);
        if (!trusted) this.deps.clients.release(ip, group);
        log.debug("disconnect");
      },
    });
    this.connections.add(conn, key);
    l.pool.add(conn, key);
    conn.start();
  }

  /** Messages and recipients per client per minute on the MX port (authenticated clients exempt). */
  private rates(q: Question, authenticated: boolean, ip: string): Reply | undefined {
    if (authenticated || (q.type !== "mail" && q.type !== "rcpt")) return undefined;
    const { limits } = this.deps.config;
    const messages = q.type === "mail";
    if (this.deps.clients.take(ip, messages ? "messages" : "recipients", messages ? limits.messages_per_client_per_minute : limits.recipients_per_client_per_minute)) return undefined;
    this.logLimit(ip, "smtp", messages ? "messages_per_client_per_minute" : "recipients_per_client_per_minute", "client limit");
    return messages ? TOO_MANY_MESSAGES : TOO_MANY_RECIPIENTS;
  }

  /**
   * The protocol core's options for a listener and a client (trusted or
   * not): made once per pair (ListenerState) and shared by its sessions
   * (the core only reads them), not built for every connection.
   */
  private sessionOptions(role: Role, mode: TlsMode, trusted: boolean): SessionOptions {
    const { config } = this.deps;
    return Object.freeze({
      hostname: config.server.hostname,
      limits: config.limits,
      bareLineEndings: config.protocol.bareLineEndings,
      eightBitWithout8bitmime: config.protocol.eightBitWithout8bitmime,
      strictPipelining: config.protocol.strictPipelining,
      tls: mode,
      auth: this.authOptions(role, trusted),
    });
  }

  /**
   * AUTH per listener: submission always offers it (and requires it, unless
   * the client is in relay.trusted_networks); the MX only with auth.on_mx.
   */
  private authOptions(role: Role, trusted: boolean): SessionOptions["auth"] {
    const { config } = this.deps;
    // (undefined rather than absent: the options of every listener share one hidden class, see accept.)
    if (role === "smtp") return config.auth.onMx ? { mechanisms: config.auth.mechanisms, required: false } : undefined;
    return { mechanisms: config.auth.mechanisms, required: !trusted };
  }

  /**
   * Stops accepting, tells idle clients 421, and waits (up to graceMs) for
   * the sessions that are committing a message to get their reply.
   */
  async close(graceMs: number): Promise<void> {
    this.stopping = true;
    clearInterval(this.lingerTimer);
    this.lingerTimer = undefined;
    this.sweepHeld(true);
    this.sweepRefused(true);
    // close() stops accepting at once; its callback would wait for every connection.
    for (const s of this.servers) s.close();
    // (A copy: a session that replies moves to the end of the pool's order.)
    for (const c of [...this.connections]) c.shutdown();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      for (const c of [...this.connections]) c.shutdown();
    }
  }
}
