/**
 * The listeners of one worker process: the MX role ("smtp", STARTTLS
 * offered), submission with STARTTLS ("submission") and submission with
 * implicit TLS ("submissions", RFC 8314). Each worker binds its own sockets
 * with SO_REUSEPORT, so the kernel spreads connections over the workers and
 * no process has to pass sockets around.
 *
 * Limits enforced here: total open connections per worker (past it: 421 and
 * close), the TLS handshake timeout for implicit TLS.
 */
import net from "node:net";
import type { Config, ListenAddress } from "../config/types.ts";
import type { Logger } from "../log/index.ts";
import type { SessionOptions, TlsMode } from "../protocol/session.ts";
import type { TlsManager } from "../tls/index.ts";
import { Networks } from "../submission/networks.ts";
import { Connection, type SessionHost } from "./connection.ts";

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
  /** Prefix for session ids, unique per worker. */
  readonly idPrefix: string;
}

const TOO_MANY = "421 4.7.0 Too many connections, try again later\r\n";
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

  private accept(socket: net.Socket, role: Role, mode: TlsMode): void {
    const { config, logger } = this.deps;
    if (this.stopping || this.connections.size >= config.limits.max_connections) {
      socket.on("error", () => socket.destroy());
      socket.end(this.stopping ? "421 4.3.2 Server shutting down\r\n" : TOO_MANY);
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
      return;
    }
    const sessionId = `${this.deps.idPrefix}${(this.counter++).toString(36)}`;
    const log = logger.child({ session: sessionId });
    if (log.isLevelEnabled("debug")) log.debug({ role, ip: socket.remoteAddress, port: socket.remotePort }, "connect");
    const session: SessionOptions = {
      hostname: config.server.hostname,
      limits: config.limits,
      bareLineEndings: config.protocol.bareLineEndings,
      eightBitWithout8bitmime: config.protocol.eightBitWithout8bitmime,
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
      implicitTls: role === "submissions",
      memoryBudget: config.limits.memory_budget,
      logger: log,
      sessionId,
      onClose: () => {
        this.connections.delete(conn);
        log.debug("disconnect");
      },
    });
    this.connections.add(conn);
    conn.start();
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
