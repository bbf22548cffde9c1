/**
 * One audit probe connection to the audited server: a raw TCP socket (or
 * implicit TLS), the reply reader of the client codec (ReplyParser from
 * src/protocol/client-wire.ts: lines capped at 2048 bytes, 100 lines a reply, no
 * control characters) and STARTTLS through node:tls.
 *
 * The audited server is hostile: every wait has a timeout (`timeoutMs` per
 * reply and for connect and handshake), a connection may receive at most
 * MAX_BYTES in all and lives at most `lifetimeMs`; any breach ends it with a
 * ProbeError, never a hang. The caller ends every probe with `finish()`,
 * which sends RSET and QUIT when the connection is still usable (a probe is
 * polite) and then closes the socket in every case.
 */
import net from "node:net";
import tls from "node:tls";
import { ProtocolError, ReplyParser, command, parseExtensions, replyText, type Extensions, type Reply } from "../protocol/index.ts";

/** A connection to the audited server failed, timed out or broke the protocol. */
export class ProbeError extends Error {
  readonly kind: "connect" | "timeout" | "closed" | "protocol" | "tls" | "limit";
  constructor(message: string, kind: ProbeError["kind"]) {
    super(message);
    this.name = "ProbeError";
    this.kind = kind;
  }
}

export interface ProbeTarget {
  /** The name given by the operator (SNI and certificate name when it is not an IP). */
  readonly host: string;
  /** The address to connect to. */
  readonly address: string;
  readonly port: number;
  /** TLS from the first byte (port 465, RFC 8314). */
  readonly implicitTls: boolean;
  /** Our EHLO name. */
  readonly helo: string;
  /** Per reply, connect and handshake. */
  readonly timeoutMs: number;
}

/** Everything one connection may receive. */
export const MAX_BYTES = 256 * 1024;

type Waiter = { resolve: (r: Reply) => void; reject: (e: Error) => void };

function errText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code !== undefined ? `${(e as NodeJS.ErrnoException).code}: ${e.message}` : e.message;
  return String(e);
}

export class Probe {
  private sock: net.Socket;
  private secure: tls.TLSSocket | undefined;
  private readonly parser = new ReplyParser();
  private readonly replies: Reply[] = [];
  private waiter: Waiter | undefined;
  private failure: ProbeError | undefined;
  private received = 0;
  private readonly life: NodeJS.Timeout;
  private readonly onData = (chunk: Buffer): void => this.data(chunk);
  readonly target: ProbeTarget;

  private constructor(sock: net.Socket, target: ProbeTarget, lifetimeMs: number) {
    this.sock = sock;
    this.target = target;
    sock.on("data", this.onData);
    sock.on("error", (e) => this.fail(new ProbeError(errText(e), "closed")));
    sock.on("close", () => this.fail(new ProbeError("connection closed by the server", "closed")));
    this.life = setTimeout(() => {
      this.fail(new ProbeError(`connection lived longer than ${lifetimeMs} ms`, "timeout"));
      this.destroy();
    }, lifetimeMs);
    this.life.unref();
  }

  /** Connects (and, for implicit TLS, handshakes with `tlsOptions`). The greeting is read with reply(). */
  static async open(target: ProbeTarget, tlsOptions: tls.ConnectionOptions = {}, lifetimeMs = target.timeoutMs * 12): Promise<Probe> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: target.address, port: target.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new ProbeError(`connect to ${target.address}:${target.port} timed out`, "connect"));
      }, target.timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(timer);
        s.destroy();
        reject(new ProbeError(`connect to ${target.address}:${target.port}: ${errText(e)}`, "connect"));
      });
    });
    sock.setNoDelay(true);
    const p = new Probe(sock, target, lifetimeMs);
    if (target.implicitTls) await p.handshake(tlsOptions); // destroys the connection when it fails
    return p;
  }

  /** The TLS socket once TLS is up. */
  get tls(): tls.TLSSocket | undefined {
    return this.secure;
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  /** Writes bytes exactly as given. */
  write(data: Buffer | string): void {
    if (this.failure !== undefined) throw this.failure;
    (this.secure ?? this.sock).write(data);
  }

  /** The next reply, within timeoutMs. */
  reply(timeoutMs = this.target.timeoutMs): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new ProbeError(`no reply within ${timeoutMs} ms`, "timeout"));
      }, timeoutMs);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** A reply if one arrives within ms, else undefined (also when the connection ended). */
  async replyWithin(ms: number): Promise<Reply | undefined> {
    try {
      return await this.reply(ms);
    } catch {
      return undefined;
    }
  }

  /**
   * Sends one command line (CR, LF and NUL refused) and reads its reply. A
   * command left unanswered makes the connection unusable (a late reply
   * would be taken for the next one's): finish() then closes at once
   * instead of waiting for RSET and QUIT in turn.
   */
  async cmd(...parts: string[]): Promise<Reply> {
    this.write(command(...parts));
    try {
      return await this.reply();
    } catch (e) {
      if (e instanceof ProbeError && e.kind === "timeout") this.failure ??= e;
      throw e;
    }
  }

  /** EHLO; the extensions when it got 250, else undefined. */
  async ehlo(): Promise<{ reply: Reply; ext: Extensions | undefined }> {
    const reply = await this.cmd("EHLO", this.target.helo);
    return { reply, ext: reply.code === 250 ? parseExtensions(reply) : undefined };
  }

  /**
   * The TLS handshake on this connection (after the 220 to STARTTLS, or at
   * once for implicit TLS). Plaintext that arrived before is kept unless
   * `discard`: the injection probe needs to see what follows.
   */
  async handshake(options: tls.ConnectionOptions, discard = true): Promise<tls.TLSSocket> {
    const raw = this.sock;
    raw.removeListener("data", this.onData);
    if (discard) {
      this.parser.discard();
      this.replies.length = 0;
    }
    const servername = net.isIP(this.target.host) === 0 ? this.target.host.replace(/\.$/, "") : undefined;
    const t = tls.connect({
      rejectUnauthorized: false,
      ...(servername !== undefined ? { servername } : {}),
      ...options,
      socket: raw,
    });
    this.secure = t;
    // Errors after a failed handshake must not go unhandled.
    t.on("error", () => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new ProbeError(`TLS handshake timed out after ${this.target.timeoutMs} ms`, "tls")), this.target.timeoutMs);
        t.once("secureConnect", () => {
          clearTimeout(timer);
          resolve();
        });
        t.once("error", (e) => {
          clearTimeout(timer);
          reject(new ProbeError(errText(e), "tls"));
        });
        t.once("close", () => {
          clearTimeout(timer);
          reject(new ProbeError("connection closed during the TLS handshake", "tls"));
        });
      });
    } catch (e) {
      // A failed handshake ends the connection: nothing more can be said on it.
      this.fail(e as ProbeError);
      this.destroy();
      throw e;
    }
    t.on("data", this.onData);
    t.on("error", (e) => this.fail(new ProbeError(errText(e), "closed")));
    t.on("close", () => this.fail(new ProbeError("connection closed by the server", "closed")));
    return t;
  }

  /** STARTTLS then the handshake; the 220 reply is returned, TLS failures throw ProbeError "tls". */
  async startTls(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    const r = await this.cmd("STARTTLS");
    if (r.code !== 220) throw new ProbeError(`STARTTLS refused: ${r.code} ${replyText(r)}`, "protocol");
    return this.handshake(options);
  }

  /** Polite end: RSET (when asked) and QUIT if the connection still works, then close. Never throws. */
  async finish(rset = true): Promise<void> {
    try {
      if (this.failure === undefined) {
        if (rset) {
          this.write("RSET\r\n");
          await this.replyWithin(this.target.timeoutMs);
        }
        if (this.failure === undefined) {
          this.write("QUIT\r\n");
          await this.replyWithin(Math.min(this.target.timeoutMs, 2000));
        }
      }
    } catch {
      // the connection is gone: nothing more to say
    }
    this.destroy();
  }

  /** Closes at once. */
  destroy(): void {
    clearTimeout(this.life);
    this.fail(new ProbeError("connection closed by the audit", "closed"));
    this.secure?.destroy();
    this.sock.destroy();
  }

  private data(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.received > MAX_BYTES) {
      this.fail(new ProbeError(`the server sent more than ${MAX_BYTES} bytes on one connection`, "limit"));
      this.destroy();
      return;
    }
    this.parser.append(chunk);
    try {
      for (let r = this.parser.next(); r !== undefined; r = this.parser.next()) {
        const w = this.waiter;
        if (w !== undefined) {
          this.waiter = undefined;
          w.resolve(r);
        } else if (this.replies.length < 200) this.replies.push(r);
        else throw new ProtocolError("more than 200 replies nobody asked for");
      }
    } catch (e) {
      this.fail(new ProbeError(`protocol error: ${errText(e)}`, "protocol"));
      this.destroy();
    }
  }

  private fail(e: ProbeError): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }
}

/** Opens a connection and reads a 220 greeting; throws ProbeError otherwise (the connection is closed then). */
export async function openGreeted(target: ProbeTarget, tlsOptions: tls.ConnectionOptions = {}): Promise<{ probe: Probe; greeting: Reply }> {
  const probe = await Probe.open(target, tlsOptions);
  try {
    const greeting = await probe.reply();
    if (greeting.code !== 220) throw new ProbeError(`greeting was ${greeting.code} ${replyText(greeting)}`, "protocol");
    return { probe, greeting };
  } catch (e) {
    probe.destroy();
    throw e;
  }
}

/** A session ready for commands: greeting, EHLO, and STARTTLS + EHLO when `tls` and offered. */
export async function openSession(
  target: ProbeTarget,
  opts: { tls: boolean; tlsOptions?: tls.ConnectionOptions },
): Promise<{ probe: Probe; greeting: Reply; ext: Extensions; tls: boolean }> {
  const { probe, greeting } = await openGreeted(target, opts.tlsOptions ?? {});
  try {
    let { reply, ext } = await probe.ehlo();
    if (ext === undefined) throw new ProbeError(`EHLO refused: ${reply.code} ${replyText(reply)}`, "protocol");
    let secure = target.implicitTls;
    if (opts.tls && !secure && ext.starttls) {
      await probe.startTls(opts.tlsOptions ?? {});
      ({ reply, ext } = await probe.ehlo());
      if (ext === undefined) throw new ProbeError(`EHLO after STARTTLS refused: ${reply.code} ${replyText(reply)}`, "protocol");
      secure = true;
    }
    return { probe, greeting, ext, tls: secure };
  } catch (e) {
    probe.destroy();
    throw e;
  }
}
