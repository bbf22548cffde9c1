// A tiny raw SMTP client over node:net for tests: sends exactly the bytes it is
// given and parses (possibly multi-line) replies. No pipelining, no TLS.
import net from "node:net";

export interface SmtpReply {
  code: number;
  /** Text of each reply line, without the "250-" / "250 " prefix. */
  lines: string[];
  /** The reply exactly as received, CRLFs included. */
  raw: string;
}

/**
 * Parses one complete (possibly multi-line) reply at the start of text
 * (latin1: one character per byte). Undefined while it is incomplete;
 * `consumed` is its length in characters (= bytes).
 */
export function parseReply(text: string): { reply: SmtpReply; consumed: number } | undefined {
  let pos = 0;
  const lines: string[] = [];
  for (;;) {
    const eol = text.indexOf("\r\n", pos);
    if (eol < 0) return undefined;
    const line = text.slice(pos, eol);
    pos = eol + 2;
    lines.push(line.slice(4));
    if (line.length < 4 || line[3] !== "-") {
      return { reply: { code: Number(line.slice(0, 3)), lines, raw: text.slice(0, pos) }, consumed: pos };
    }
  }
}

export class RawSmtpClient {
  private readonly sock: net.Socket;
  private buf = "";
  private waiters: Array<{ resolve: (r: SmtpReply) => void; reject: (e: Error) => void }> = [];
  private closedErr: Error | undefined;
  private readonly timeoutMs: number;

  private constructor(sock: net.Socket, timeoutMs: number) {
    this.sock = sock;
    this.timeoutMs = timeoutMs;
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      this.buf += d;
      this.pump();
    });
    const fail = (e: Error): void => {
      this.closedErr ??= e;
      for (const w of this.waiters.splice(0)) w.reject(this.closedErr);
    };
    sock.on("error", fail);
    sock.on("close", () => fail(new Error("connection closed")));
  }

  /** Connects and returns the client; the greeting is read with readReply(). */
  static connect(port: number, host = "127.0.0.1", timeoutMs = 10_000): Promise<RawSmtpClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect ${host}:${port}: timeout`));
      }, timeoutMs);
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeListener("error", reject);
        resolve(new RawSmtpClient(sock, timeoutMs));
      });
      sock.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private pump(): void {
    while (this.waiters.length > 0) {
      const reply = this.takeReply();
      if (!reply) return;
      this.waiters.shift()!.resolve(reply);
    }
  }

  private takeReply(): SmtpReply | undefined {
    const r = parseReply(this.buf);
    if (!r) return undefined;
    this.buf = this.buf.slice(r.consumed);
    return r.reply;
  }

  /** Reads the next reply (greeting, or the answer to something already sent). */
  readReply(): Promise<SmtpReply> {
    const ready = this.takeReply();
    if (ready) return Promise.resolve(ready);
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no SMTP reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const waiter = {
        resolve: (r: SmtpReply) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Writes raw bytes as given (no CRLF added). */
  write(data: string | Uint8Array): void {
    this.sock.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
  }

  /** Sends one command line (CRLF appended) and reads its reply. */
  async command(line: string): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.readReply();
  }

  /** Sends a message body after a 354 (dot-stuffed here, ".\r\n" appended) and reads the reply. */
  async sendData(body: string): Promise<SmtpReply> {
    let text = body.replace(/\r?\n/g, "\r\n");
    if (!text.endsWith("\r\n")) text += "\r\n";
    text = text.replace(/^\./gm, "..");
    this.write(`${text}.\r\n`);
    return this.readReply();
  }

  /** Sends QUIT (ignoring errors) and closes the socket. */
  async quit(): Promise<SmtpReply | undefined> {
    let r: SmtpReply | undefined;
    try {
      if (!this.closedErr) r = await this.command("QUIT");
    } catch {
      r = undefined;
    }
    this.close();
    return r;
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * One complete transaction: greeting, EHLO, MAIL, RCPT..., DATA, QUIT.
 * Throws if any step does not get the expected code. Returns all replies.
 */
export async function sendOneMessage(opts: {
  port: number;
  host?: string;
  helo?: string;
  from: string;
  to: string[];
  body: string;
}): Promise<SmtpReply[]> {
  const c = await RawSmtpClient.connect(opts.port, opts.host);
  const replies: SmtpReply[] = [];
  const expect = (r: SmtpReply, code: number, what: string): void => {
    replies.push(r);
    if (r.code !== code) throw new Error(`${what}: expected ${code}, got ${r.raw.trim()}`);
  };
  try {
    expect(await c.readReply(), 220, "greeting");
    expect(await c.command(`EHLO ${opts.helo ?? "client.wardmail.test"}`), 250, "EHLO");
    expect(await c.command(`MAIL FROM:<${opts.from}>`), 250, "MAIL");
    for (const rcpt of opts.to) expect(await c.command(`RCPT TO:<${rcpt}>`), 250, "RCPT");
    expect(await c.command("DATA"), 354, "DATA");
    expect(await c.sendData(opts.body), 250, "end of DATA");
    const q = await c.quit();
    if (q) replies.push(q);
    return replies;
  } finally {
    c.close();
  }
}

/**
 * Exact bytes out, replies in, over a plain or TLS socket, and whether the
 * server closed. Reads bytes (never setEncoding), so a plain socket can be
 * detach()ed and handed to TLS for STARTTLS tests.
 */
export class SmtpWire {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onEnd);
  }

  /** Connects to 127.0.0.1:port. */
  static open(port: number): Promise<SmtpWire> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.removeListener("error", reject);
        resolve(new SmtpWire(s));
      });
      s.once("error", reject);
    });
  }

  /** Everything received and not yet consumed by reply(). */
  get pending(): string {
    return this.buf.toString("latin1");
  }

  /** Stops reading; returns the socket (e.g. to wrap it in TLS). */
  detach(): net.Socket {
    this.socket.removeListener("data", this.onData);
    this.socket.removeListener("end", this.onEnd);
    this.socket.removeListener("close", this.onEnd);
    this.socket.removeListener("error", this.onEnd);
    return this.socket;
  }

  /** Sends exactly these bytes (a string is taken as latin1, one byte per character). */
  send(data: string | Buffer): void {
    this.socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string, timeoutMs?: number): Promise<SmtpReply> {
    this.send(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  async reply(timeoutMs = 5000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = parseReply(this.buf.toString("latin1"));
      if (r) {
        this.buf = this.buf.subarray(r.consumed);
        return r.reply;
      }
      if (this.ended) throw new Error(`connection closed before a full reply; have ${JSON.stringify(this.pending)}`);
      if (!(await this.waitEvent(deadline))) throw new Error(`no reply within ${timeoutMs} ms; have ${JSON.stringify(this.pending)}`);
    }
  }

  /** Resolves once the server has closed the connection with nothing more sent. */
  async closedByServer(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (!(await this.waitEvent(deadline))) throw new Error(`the server did not close within ${timeoutMs} ms`);
    }
    if (this.pending !== "") throw new Error(`unexpected bytes before the close: ${JSON.stringify(this.pending)}`);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Waits for data or a close, or the deadline (false). */
  private async waitEvent(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = undefined;
    return true;
  }
}

/** A raw connection from 127.0.0.N (its own client for the per-client limits). */
export function openFrom(port: number, localAddress: string): Promise<SmtpWire> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    s.once("connect", () => {
      s.removeListener("error", reject);
      resolve(new SmtpWire(s));
    });
    s.once("error", reject);
  });
}
