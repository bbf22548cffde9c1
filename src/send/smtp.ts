/**
 * Submission for `wardmail send` (RFC 6409 over RFC 8314 implicit TLS or
 * RFC 3207 STARTTLS): always TLS (1.2 at least) before AUTH, the server
 * certificate verified against the server name (or --tls-name) unless the
 * user says --insecure-tls; then AUTH with the best mechanism offered:
 * SCRAM-SHA-256-PLUS (tls-exporter, TLS 1.3), SCRAM-SHA-256, PLAIN; then
 * one transaction. Any refused recipient aborts it (RSET): the message goes
 * to every recipient or to none.
 *
 * Replies are parsed by the outbound client's hostile-reply parser (line
 * length and count bounded); every read has a timeout.
 */
import net from "node:net";
import tls from "node:tls";
import { ReplyParser, checkPath, command, encodeData, parseExtensions, replyText, type Extensions, type Reply } from "../protocol/index.ts";
import { ScramClient, ScramError, type ChannelBinding } from "./scram.ts";

export interface SubmitOptions {
  /** Address to connect to (an IP address or a name for the system resolver). */
  readonly address: string;
  readonly port: number;
  /** The name the certificate must carry (the --server host, or --tls-name). */
  readonly tlsName: string;
  readonly implicitTls: boolean;
  readonly insecureTls: boolean;
  /** Trusted CA certificates (PEM) instead of the system's. */
  readonly ca?: Buffer;
  readonly user: string;
  readonly password: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly message: Buffer;
  readonly timeoutMs: number;
  /** Progress lines (without secrets), e.g. for --verbose. */
  readonly trace?: (line: string) => void;
}

export interface SubmitResult {
  readonly tlsVersion: string;
  readonly mechanism: string;
  /** The server's reply to the end of DATA. */
  readonly reply: string;
}

/** kind "refused": the server said no (exit 1); "cannot": no connection, TLS or protocol failure (exit 3). */
export class SubmitError extends Error {
  readonly kind: "refused" | "cannot";
  constructor(kind: "refused" | "cannot", message: string) {
    super(message);
    this.kind = kind;
    this.name = "SubmitError";
  }
}

class Wire {
  private parser = new ReplyParser();
  private replies: Reply[] = [];
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  socket: net.Socket;
  private readonly timeoutMs: number;

  constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.listen(socket);
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.parser.append(chunk);
      for (let r = this.parser.next(); r !== undefined; r = this.parser.next()) this.replies.push(r);
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.socket.destroy();
    }
    this.wake?.();
  };

  private readonly onEnd = (): void => {
    this.failure ??= new Error("the server closed the connection");
    this.wake?.();
  };

  private readonly onError = (err: Error): void => {
    this.failure ??= err;
    this.wake?.();
  };

  private listen(s: net.Socket): void {
    s.on("data", this.onData);
    s.on("end", this.onEnd);
    s.on("close", this.onEnd);
    s.on("error", this.onError);
  }

  /** Stops reading the plaintext socket (STARTTLS); anything it sent after the 220 is dropped. */
  detach(): net.Socket {
    const s = this.socket;
    s.off("data", this.onData);
    s.off("end", this.onEnd);
    s.off("close", this.onEnd);
    s.off("error", this.onError);
    this.parser.discard();
    this.replies = [];
    return s;
  }

  attach(s: net.Socket): void {
    this.socket = s;
    this.listen(s);
  }

  async read(what: string): Promise<Reply> {
    const deadline = Date.now() + this.timeoutMs;
    while (this.replies.length === 0) {
      if (this.failure) throw new SubmitError("cannot", `${what}: ${this.failure.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new SubmitError("cannot", `${what}: no reply within ${this.timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.replies.shift() as Reply;
  }

  write(b: Buffer | string): void {
    this.socket.write(b);
  }

  async ask(line: Buffer | string, what: string): Promise<Reply> {
    this.write(line);
    return this.read(what);
  }
}

function show(r: Reply): string {
  return `${r.code}${r.status !== "" ? " " + r.status : ""} ${replyText(r)}`;
}

function expect(r: Reply, code: number, what: string, kind: "refused" | "cannot" = "refused"): void {
  if (r.code !== code) throw new SubmitError(kind, `${what}: the server said ${show(r)}`);
}

function tlsOptions(o: SubmitOptions): tls.ConnectionOptions {
  return {
    servername: net.isIP(o.tlsName) === 0 ? o.tlsName : undefined,
    rejectUnauthorized: !o.insecureTls,
    minVersion: "TLSv1.2",
    ...(o.ca !== undefined ? { ca: o.ca } : {}),
    // Verify against --tls-name (or the server's name), not the address we connected to.
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(o.tlsName, cert),
  };
}

function secure(o: SubmitOptions, socket?: net.Socket): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ ...tlsOptions(o), ...(socket ? { socket } : { host: o.address, port: o.port }) });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new SubmitError("cannot", `TLS handshake with ${o.address}:${o.port} timed out`));
    }, o.timeoutMs);
    s.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new SubmitError("cannot", `TLS with ${o.address}:${o.port} failed: ${err.message}${err.code === "ERR_TLS_CERT_ALTNAME_INVALID" || /certificate/i.test(err.message) ? " (use --ca-file or --tls-name; --insecure-tls skips the check)" : ""}`));
    });
  });
}

function plainConnect(o: SubmitOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: o.address, port: o.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new SubmitError("cannot", `connecting to ${o.address}:${o.port} timed out`));
    }, o.timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (err) => {
      clearTimeout(timer);
      reject(new SubmitError("cannot", `cannot connect to ${o.address}:${o.port}: ${err.message}`));
    });
  });
}

function ehloName(s: net.Socket): string {
  const a = s.localAddress ?? "127.0.0.1";
  return net.isIPv6(a) ? `[IPv6:${a}]` : `[${a.replace(/^::ffff:/, "")}]`;
}

async function ehlo(w: Wire, name: string): Promise<Extensions> {
  const r = await w.ask(command("EHLO", name), "EHLO");
  expect(r, 250, "EHLO");
  return parseExtensions(r);
}

/** The mechanism we use: the strongest one both sides have. */
export function chooseMechanism(offered: readonly string[], tls13: boolean): string | undefined {
  if (tls13 && offered.includes("SCRAM-SHA-256-PLUS")) return "SCRAM-SHA-256-PLUS";
  if (offered.includes("SCRAM-SHA-256")) return "SCRAM-SHA-256";
  if (offered.includes("PLAIN")) return "PLAIN";
  return undefined;
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const unb64 = (r: Reply): string => Buffer.from((r.lines[0] ?? "").trim(), "base64").toString("utf8");

/** RFC 4954 §4: "*" cancels the exchange; its reply (501) is awaited so the server sees it before we hang up. */
async function cancel(w: Wire, mech: string): Promise<void> {
  await w.ask("*\r\n", `AUTH ${mech} cancel`).catch(() => undefined);
}

async function authenticate(w: Wire, sock: tls.TLSSocket, ext: Extensions, o: SubmitOptions): Promise<string> {
  const tls13 = sock.getProtocol() === "TLSv1.3";
  const mech = chooseMechanism(ext.auth, tls13);
  if (mech === undefined) throw new SubmitError("cannot", `the server offers no AUTH mechanism we use (offered: ${ext.auth.join(" ") || "none"})`);
  o.trace?.(`AUTH ${mech} as ${o.user}`);
  if (mech === "PLAIN") {
    const r = await w.ask(command("AUTH", "PLAIN", b64(`\0${o.user}\0${o.password}`)), "AUTH PLAIN");
    expect(r, 235, "AUTH PLAIN");
    return mech;
  }
  const cb: ChannelBinding =
    mech === "SCRAM-SHA-256-PLUS" ? { kind: "plus", data: sock.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0)) } : tls13 ? { kind: "supported-not-used" } : { kind: "none" };
  const scram = new ScramClient(o.user, o.password, cb);
  let r = await w.ask(command("AUTH", mech, b64(scram.first())), `AUTH ${mech}`);
  expect(r, 334, `AUTH ${mech}`);
  let final: string;
  try {
    final = await scram.final(unb64(r));
  } catch (err) {
    await cancel(w, mech);
    throw new SubmitError("cannot", `AUTH ${mech}: ${(err as Error).message}`);
  }
  r = await w.ask(b64(final) + "\r\n", `AUTH ${mech}`);
  if (r.code === 334) {
    try {
      scram.verify(unb64(r));
    } catch (err) {
      if (err instanceof ScramError) {
        await cancel(w, mech);
        throw new SubmitError("cannot", `AUTH ${mech}: ${err.message}`);
      }
      throw err;
    }
    r = await w.ask("\r\n", `AUTH ${mech}`);
    expect(r, 235, `AUTH ${mech}`);
    return mech;
  }
  expect(r, 235, `AUTH ${mech}`);
  // 235 without the server's proof: we cannot know we talk to the right server.
  throw new SubmitError("cannot", `AUTH ${mech}: the server accepted us without proving it knows the password`);
}

/** Connects, secures, authenticates and sends one message. Throws SubmitError. */
export async function submit(o: SubmitOptions): Promise<SubmitResult> {
  for (const a of [o.from, ...o.to]) checkPath(a);
  let sock: net.Socket = o.implicitTls ? await secure(o) : await plainConnect(o);
  const w = new Wire(sock, o.timeoutMs);
  try {
    expect(await w.read("greeting"), 220, "greeting", "cannot");
    const name = ehloName(sock);
    let ext = await ehlo(w, name);
    if (!o.implicitTls) {
      if (!ext.starttls) throw new SubmitError("cannot", "the server does not offer STARTTLS: refusing to send without TLS");
      expect(await w.ask(command("STARTTLS"), "STARTTLS"), 220, "STARTTLS", "cannot");
      sock = await secure(o, w.detach());
      w.attach(sock);
      ext = await ehlo(w, name);
    }
    const t = sock as tls.TLSSocket;
    const tlsVersion = t.getProtocol() ?? "TLS";
    o.trace?.(`${tlsVersion} ${t.getCipher().name}${o.insecureTls ? " (certificate not verified: --insecure-tls)" : ", certificate verified"}`);
    const mechanism = await authenticate(w, t, ext, o);
    const size = ext.size !== undefined ? [`SIZE=${o.message.length}`] : [];
    if (ext.size !== undefined && ext.size > 0 && o.message.length > ext.size) throw new SubmitError("refused", `the message (${o.message.length} bytes) is larger than the server accepts (${ext.size})`);
    expect(await w.ask(command("MAIL", `FROM:<${o.from}>`, ...size), "MAIL FROM"), 250, `MAIL FROM:<${o.from}>`);
    for (const rcpt of o.to) {
      const r = await w.ask(command("RCPT", `TO:<${rcpt}>`), "RCPT TO");
      if (r.code !== 250 && r.code !== 251) {
        await w.ask(command("RSET"), "RSET").catch(() => undefined);
        throw new SubmitError("refused", `RCPT TO:<${rcpt}>: the server said ${show(r)}; nothing was sent`);
      }
    }
    expect(await w.ask(command("DATA"), "DATA"), 354, "DATA");
    const done = await w.ask(encodeData(o.message), "end of DATA");
    expect(done, 250, "end of DATA");
    await w.ask(command("QUIT"), "QUIT").catch(() => undefined);
    return { tlsVersion, mechanism, reply: show(done) };
  } finally {
    sock.destroy();
  }
}
