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
 * the TLS handshake timeout for implicit TLS. Clients in
 * relay.trusted_networks are exempt from the per-client limits.
 */
import net from "node:net";
import type { Config, ListenAddress } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import type { SessionOptions, TlsMode } from "../protocol/index.ts";
import type { TlsManager } from "../tls/index.ts";
import { Networks, clientKey } from "../submission/index.ts";
import { Connection, type SessionHost } from "./connection.ts";
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

const TOO_MANY = "421 4.7.0 Too many connections, try again later\r\n";
const CLIENT_TOO_MANY = "421 4.7.0 Too many connections from your address, try again later\r\n";
const EARLY_TALKER = "554 5.5.1 Protocol error: you talked before the greeting ended\r\n";
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
 * A refused socket is destroyed this long after its 421, whatever the client
 * does: one that never closes its side must not hold a descriptor beyond
 * max_connections (socket.end() alone keeps it until the client's FIN).
 */
const REFUSED_LINGER_MS = 1000;

export class SmtpServer {
  private readonly deps: SmtpServerDeps;
  private readonly servers: net.Server[] = [];
  private readonly connections = new Set<Connection>();
  private readonly groups: Record<ClientGroup, Set<Connection>> = { mx: new Set(), submission: new Set() };
  /** The client key (IPv4 address, IPv6 /64) of each open connection, for fair eviction. */
  private readonly keys = new Map<Connection, string>();
  /** Open connections per client key, for each pool (all, mx, submission), kept as they open and close. */
  private readonly keyCounts = new Map<Set<Connection>, Map<string, number>>();
  /** Per pool: before this time (Date.now()) no session can be idle long enough to be evicted. */
  private readonly noVictimUntil = new Map<Set<Connection>, number>();
  /** Per "ip limit": when it was last logged and the refusals since (bounded: cleared at 10,000 entries). */
  private readonly logged = new Map<string, { at: number; suppressed: number }>();
  /** clients.untracked when it was last reported. */
  private untrackedSeen = 0;
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
    const mode: TlsMode = role === "submissions" ? "active" : this.deps.tls ? "available" : "none";
    return net.createServer((s) => this.accept(s, role, mode));
  }

  private cap(group: ClientGroup): number {
    const { limits } = this.deps.config;
    return group === "mx" ? limits.max_mx_connections : limits.max_submission_connections;
  }

  /** Near a connection limit: the sessions get shorter timeouts. */
  private underPressure(group: ClientGroup): boolean {
    const { limits } = this.deps.config;
    return this.groups[group].size >= STRESS_SHARE * this.cap(group) || this.connections.size >= STRESS_SHARE * limits.max_connections;
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
  private evictIdle(pool: Set<Connection>, key: string, trusted: boolean): boolean {
    const now = Date.now();
    // Under a flood every newcomer asks; a scan that found no session idle long enough says when one could be.
    if (now < (this.noVictimUntil.get(pool) ?? 0)) return false;
    const counts = this.countsOf(pool);
    const mine = counts.get(key) ?? 0;
    const floor = mine + 2;
    let most = 0;
    for (const n of counts.values()) if (n > most) most = n;
    const wantFair = most >= floor;
    const wantOldest = mine === 0 || trusted;
    if (!wantFair && !wantOldest) return false;
    let fair: Connection | undefined;
    let fairCount = 0;
    let fairIdle = 0;
    let oldest: Connection | undefined;
    let longest = EVICT_IDLE_MS;
    let maxIdle = -1;
    for (const c of pool) {
      const idle = c.idleFor(now);
      if (idle < 0) continue;
      if (idle > maxIdle) maxIdle = idle;
      if (idle >= longest) {
        longest = idle;
        oldest = c;
      }
      if (!wantFair || idle < FAIR_IDLE_MS || c.trusted) continue;
      const n = counts.get(this.keys.get(c) ?? "") ?? 0;
      if (n >= floor && (n > fairCount || (n === fairCount && idle > fairIdle))) {
        fair = c;
        fairCount = n;
        fairIdle = idle;
      }
    }
    // No session idle FAIR_IDLE_MS yet: none can be a victim before the most idle one gets there (idle time only grows; a session
    // leaving a wait, e.g. the pregreet pause, may jump, so the answer is kept NO_VICTIM_MS at most).
    if (maxIdle < FAIR_IDLE_MS) this.noVictimUntil.set(pool, now + Math.min(FAIR_IDLE_MS - Math.max(maxIdle, 0), NO_VICTIM_MS));
    const victim = fair ?? (wantOldest ? oldest : undefined);
    victim?.evict();
    return victim !== undefined;
  }

  /** The open connections per client key in a pool. */
  private countsOf(pool: Set<Connection>): Map<string, number> {
    let m = this.keyCounts.get(pool);
    if (m === undefined) {
      m = new Map();
      this.keyCounts.set(pool, m);
    }
    return m;
  }

  /** A connection joins (+1) or leaves (-1) a pool. */
  private count(pool: Set<Connection>, conn: Connection, key: string, delta: 1 | -1): void {
    if (delta === 1) pool.add(conn);
    else if (!pool.delete(conn)) return;
    const m = this.countsOf(pool);
    const n = (m.get(key) ?? 0) + delta;
    if (n > 0) m.set(key, n);
    else m.delete(key);
  }

  /**
   * The line fail2ban matches ("client limit" or "pregreet", with ip and
   * limit): at most one per client and limit every LOG_EVERY_MS, carrying
   * how many refusals were not logged since the last one.
   */
  private logLimit(ip: string, listener: Role, limit: string, msg: string): void {
    const key = `${ip} ${limit}`;
    const now = Date.now();
    const last = this.logged.get(key);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    if (this.logged.size >= 10_000) this.logged.clear();
    this.deps.logger.warn({ ip, listener, limit, ...(last && last.suppressed > 0 ? { suppressed: last.suppressed } : {}) }, msg);
    this.logged.set(key, { at: now, suppressed: 0 });
  }

  /**
   * Refuses a connection before its session: the 421 text, then close. On
   * the implicit-TLS port (465) the client speaks TLS first, so a plaintext
   * 421 would only reach its TLS stack as garbage and a handshake would
   * cost the flood's CPU: the connection is closed without a word.
   */
  private refuse(socket: net.Socket, text: string, implicitTls: boolean): void {
    socket.on("error", () => socket.destroy());
    if (implicitTls) socket.end();
    else socket.end(text);
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  }

  private accept(socket: net.Socket, role: Role, mode: TlsMode): void {
    const { config, logger } = this.deps;
    const { limits } = config;
    const group: ClientGroup = role === "smtp" ? "mx" : "submission";
    const implicitTls = role === "submissions";
    if (this.stopping) return this.refuse(socket, "421 4.3.2 Server shutting down\r\n", implicitTls);
    const ip = socket.remoteAddress ?? "";
    const trusted = this.trusted.has(ip);
    if (!trusted) {
      const r = this.deps.clients.connect(ip, group, limits.max_connections_per_client, limits.connections_per_client_per_minute, group === "mx");
      if (r !== "ok") {
        const limit = r === "banned" ? "pregreet_ban_time" : r === "concurrency" ? "max_connections_per_client" : "connections_per_client_per_minute";
        this.logLimit(ip, role, limit, "client limit");
        metrics.inc("wardmail_connections_refused_total", { listener: role, limit });
        return this.refuse(socket, r === "banned" ? EARLY_TALKER : CLIENT_TOO_MANY, implicitTls);
      }
    }
    if (this.deps.clients.untracked !== this.untrackedSeen) {
      // The table is full (clients.ts fails open): the operator should know.
      this.logLimit("", role, "client table", "client table full: clients not counted");
      this.untrackedSeen = this.deps.clients.untracked;
    }
    const key = clientKey(ip);
    const totalFull = this.connections.size >= limits.max_connections;
    if ((totalFull || this.groups[group].size >= this.cap(group)) && !this.evictIdle(totalFull ? this.connections : this.groups[group], key, trusted)) {
      if (!trusted) this.deps.clients.release(ip, group);
      this.logLimit("", role, totalFull ? "max_connections" : group === "mx" ? "max_mx_connections" : "max_submission_connections", "listener full");
      metrics.inc("wardmail_connections_refused_total", { listener: role, limit: totalFull ? "max_connections" : group === "mx" ? "max_mx_connections" : "max_submission_connections" });
      return this.refuse(socket, TOO_MANY, implicitTls);
    }
    metrics.inc("wardmail_connections_total", { listener: role });
    const sessionId = `${this.deps.idPrefix}${(this.counter++).toString(36)}`;
    const log = logger.child({ session: sessionId });
    if (log.isLevelEnabled("debug")) log.debug({ role, ip: socket.remoteAddress, port: socket.remotePort }, "connect");
    const session: SessionOptions = {
      hostname: config.server.hostname,
      limits: config.limits,
      bareLineEndings: config.protocol.bareLineEndings,
      eightBitWithout8bitmime: config.protocol.eightBitWithout8bitmime,
      strictPipelining: config.protocol.strictPipelining,
      tls: mode,
      ...this.authOptions(role, socket.remoteAddress ?? ""),
    };
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
      underPressure: () => this.underPressure(group),
      ...(role === "smtp" && !trusted ? { gate: (q: Question, authenticated: boolean) => this.rates(q, authenticated, ip) } : {}),
      onEarlyTalker: () => {
        this.logLimit(ip, role, "pregreet_delay", "pregreet");
        if (limits.pregreet_ban_time > 0) this.deps.clients.ban(ip, limits.pregreet_ban_time);
      },
      onPregreetPassed: () => {
        if (limits.pregreet_pass_time > 0) this.deps.clients.pass(ip, limits.pregreet_pass_time);
      },
      trusted,
      memoryBudget: config.limits.memory_budget,
      logger: log,
      sessionId,
      onClose: () => {
        this.count(this.connections, conn, key, -1);
        this.count(this.groups[group], conn, key, -1);
        this.keys.delete(conn);
        if (!trusted) this.deps.clients.release(ip, group);
        log.debug("disconnect");
      },
    });
    this.count(this.connections, conn, key, 1);
    this.count(this.groups[group], conn, key, 1);
    this.keys.set(conn, key);
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
   * AUTH per listener: submission always offers it (and requires it, unless
   * the client is in relay.trusted_networks); the MX only with auth.on_mx.
   */
  private authOptions(role: Role, ip: string): Pick<SessionOptions, "auth"> {
    const { config } = this.deps;
    if (role === "smtp") return config.auth.onMx ? { auth: { mechanisms: config.auth.mechanisms, required: false } } : {};
    return { auth: { mechanisms: config.auth.mechanisms, required: !this.trusted.has(ip) } };
  }

  /**
   * Stops accepting, tells idle clients 421, and waits (up to graceMs) for
   * the sessions that are committing a message to get their reply.
   */
  async close(graceMs: number): Promise<void> {
    this.stopping = true;
    // close() stops accepting at once; its callback would wait for every connection.
    for (const s of this.servers) s.close();
    for (const c of this.connections) c.shutdown();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      for (const c of this.connections) c.shutdown();
    }
  }
}
