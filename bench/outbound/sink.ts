// The outbound bench's TLS sink: a small SMTP server in a child process of the
// bench (`node bench/outbound.ts --sink-child CERT KEY`; Postfix's smtp-sink
// cannot do STARTTLS) that offers STARTTLS, PIPELINING, 8BITMIME, SIZE,
// accepts every message and counts messages, connections, messages per
// connection and TLS versions per EHLO name, i.e. per server; and the
// bench's handle on it (startSink: stats, trace, reset, stop over IPC).
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { fileURLToPath } from "node:url";

/** The bench's entry script: run with --sink-child, it is the sink (see its last lines). */
const ENTRY = fileURLToPath(new URL("../outbound.ts", import.meta.url));

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** What the sink saw from one client (EHLO name) since the last reset. */
export interface SinkClientStats {
  /** Connections that sent EHLO/HELO with this name. */
  connections: number;
  /** Of those, still open. */
  open: number;
  /** Most open at once. */
  peakOpen: number;
  /** Closed connections by messages carried: "3" -> 12 connections. */
  perConnection: Record<string, number>;
  /** Closed connections by TLS version ("none" for plaintext). */
  tls: Record<string, number>;
  /** Closed connections by cipher. */
  ciphers: Record<string, number>;
  messages: number;
  recipients: number;
  /** Bytes between DATA's 354 and the final dot (dot-stuffed, CRLF). */
  bytes: number;
  /** nowMs() of the first and last message's final dot. */
  firstAt: number | null;
  lastAt: number | null;
  /** Messages received before STARTTLS (must stay 0). */
  plaintextMessages: number;
}

/** One closed connection, for --trace. Times are nowMs(). */
export interface SinkConnection {
  helo: string;
  openedAt: number;
  tlsAt: number | null;
  firstMsgAt: number | null;
  lastMsgAt: number | null;
  closedAt: number;
  messages: number;
  tls: string;
}

const END_OF_DATA = Buffer.from("\r\n.\r\n", "latin1");

function emptyStats(): SinkClientStats {
  return { connections: 0, open: 0, peakOpen: 0, perConnection: {}, tls: {}, ciphers: {}, messages: 0, recipients: 0, bytes: 0, firstAt: null, lastAt: null, plaintextMessages: 0 };
}

export function runSinkChild(certFile: string, keyFile: string): void {
  const secureContext = tls.createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile) });
  let stats = new Map<string, SinkClientStats>();
  let trace: SinkConnection[] = [];
  const statsFor = (helo: string): SinkClientStats => {
    let s = stats.get(helo);
    if (!s) {
      s = emptyStats();
      stats.set(helo, s);
    }
    return s;
  };
  const sockets = new Set<net.Socket>();

  const handle = (raw: net.Socket): void => {
    sockets.add(raw);
    raw.setNoDelay(true);
    let sock: net.Socket | tls.TLSSocket = raw;
    let tlsUp = false;
    let helo = "";
    let counted: SinkClientStats | undefined;
    let messages = 0;
    let inData = false;
    let carry = Buffer.alloc(0);
    let dataBytes = 0;
    let pending = "";
    let rcpts = 0;
    let closed = false;

    const write = (s: string): void => {
      if (s !== "" && !sock.destroyed) sock.write(s);
    };
    const openedAt = nowMs();
    let tlsVersion = "none";
    let cipher: string | undefined;
    let tlsAt: number | undefined;
    let firstMsgAt: number | undefined;
    let lastMsgAt: number | undefined;
    const onClose = (): void => {
      if (closed) return;
      closed = true;
      sockets.delete(raw);
      const s = counted;
      if (!s) return;
      s.open--;
      s.perConnection[messages] = (s.perConnection[messages] ?? 0) + 1;
      s.tls[tlsVersion] = (s.tls[tlsVersion] ?? 0) + 1;
      if (cipher !== undefined) s.ciphers[cipher] = (s.ciphers[cipher] ?? 0) + 1;
      if (trace.length < 100_000) {
        trace.push({ helo, openedAt, tlsAt: tlsAt ?? null, firstMsgAt: firstMsgAt ?? null, lastMsgAt: lastMsgAt ?? null, closedAt: nowMs(), messages, tls: tlsVersion });
      }
    };

    /** One command line; returns the reply, or "starttls" / "quit" / "data". */
    const command = (line: string): string => {
      const verb = line.slice(0, 4).toUpperCase();
      switch (verb) {
        case "EHLO":
        case "HELO": {
          const name = line.slice(5).trim().toLowerCase() || "(empty)";
          if (counted === undefined) {
            helo = name;
            counted = statsFor(helo);
            counted.connections++;
            counted.open++;
            if (counted.open > counted.peakOpen) counted.peakOpen = counted.open;
          }
          if (verb === "HELO") return "250 sink.bench.test\r\n";
          return (
            "250-sink.bench.test\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n" + (tlsUp ? "" : "250-STARTTLS\r\n") + "250 ENHANCEDSTATUSCODES\r\n"
          );
        }
        case "STAR":
          return tlsUp ? "454 4.7.0 TLS already active\r\n" : "starttls";
        case "MAIL":
          rcpts = 0;
          return "250 2.1.0 Ok\r\n";
        case "RCPT":
          rcpts++;
          return "250 2.1.5 Ok\r\n";
        case "DATA":
          if (rcpts === 0) return "554 5.5.1 Error: no valid recipients\r\n";
          return "data";
        case "RSET":
          rcpts = 0;
          return "250 2.0.0 Ok\r\n";
        case "NOOP":
          return "250 2.0.0 Ok\r\n";
        case "QUIT":
          return "quit";
        default:
          return "502 5.5.2 Error: command not recognized\r\n";
      }
    };

    const onData = (chunk: Buffer): void => {
      let out = "";
      let buf: Buffer | undefined = chunk;
      while (buf !== undefined && buf.length > 0) {
        if (inData) {
          const whole: Buffer = carry.length > 0 ? Buffer.concat([carry, buf]) : buf;
          const end = whole.indexOf(END_OF_DATA);
          if (end < 0) {
            dataBytes += buf.length;
            carry = Buffer.from(whole.subarray(Math.max(0, whole.length - 4)));
            buf = undefined;
            break;
          }
          dataBytes += end + 5 - carry.length;
          const rest = whole.subarray(end + 5);
          inData = false;
          carry = Buffer.alloc(0);
          messages++;
          const s = counted ?? statsFor("(no helo)");
          s.messages++;
          s.recipients += rcpts;
          s.bytes += dataBytes;
          if (!tlsUp) s.plaintextMessages++;
          const t = nowMs();
          s.firstAt ??= t;
          s.lastAt = t;
          firstMsgAt ??= t;
          lastMsgAt = t;
          rcpts = 0;
          out += "250 2.0.0 Ok: queued as sink\r\n";
          buf = rest;
          continue;
        }
        pending += buf.toString("latin1");
        buf = undefined;
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl).replace(/\r$/, "");
          pending = pending.slice(nl + 1);
          const r = command(line);
          if (r === "starttls") {
            write(out + "220 2.0.0 Ready to start TLS\r\n");
            out = "";
            pending = ""; // anything pipelined after STARTTLS is dropped (RFC 3207 §4.2)
            raw.removeListener("data", onData);
            const t = new tls.TLSSocket(raw, { isServer: true, secureContext });
            sock = t;
            t.on("secure", () => {
              tlsUp = true;
              tlsAt = nowMs();
              tlsVersion = t.getProtocol() ?? "unknown";
              const c = t.getCipher();
              cipher = c.standardName ?? c.name;
            });
            t.on("data", onData);
            t.on("error", () => raw.destroy());
            return;
          }
          if (r === "quit") {
            write(out + "221 2.0.0 Bye\r\n");
            sock.end();
            return;
          }
          if (r === "data") {
            out += "354 End data with <CR><LF>.<CR><LF>\r\n";
            inData = true;
            dataBytes = 0;
            carry = Buffer.from("\r\n", "latin1"); // an empty message ends right after DATA's CRLF
            if (pending.length > 0) buf = Buffer.from(pending, "latin1");
            pending = "";
            break;
          }
          out += r;
        }
        if (pending.length > 100_000) {
          write(out + "500 5.5.0 Line too long\r\n");
          raw.destroy();
          return;
        }
      }
      write(out);
    };

    raw.on("data", onData);
    raw.on("error", () => raw.destroy());
    raw.on("close", onClose);
    raw.write("220 sink.bench.test ESMTP bench sink\r\n");
  };

  const server = net.createServer(handle);
  server.maxConnections = 1000;
  server.listen({ port: 0, host: "127.0.0.1", backlog: 1024 }, () => {
    const a = server.address();
    process.send?.({ type: "listening", port: typeof a === "object" && a ? a.port : 0 });
  });
  process.on("message", (m: unknown) => {
    const msg = m as { type?: string; id?: number };
    if (msg.type === "stats") process.send?.({ type: "stats", id: msg.id, stats: Object.fromEntries(stats) });
    else if (msg.type === "trace") process.send?.({ type: "trace", id: msg.id, trace });
    else if (msg.type === "reset") {
      // Connections still open keep counting into the old map.
      stats = new Map();
      trace = [];
      process.send?.({ type: "reset", id: msg.id });
    } else if (msg.type === "stop") {
      server.close();
      for (const s of sockets) s.destroy();
      process.exit(0);
    }
  });
  // The parent is gone: so are we.
  process.on("disconnect", () => process.exit(0));
}

/** The parent's handle on the sink child. */
export interface Sink {
  port: number;
  pid: number;
  child: ChildProcess;
  stats(): Promise<Record<string, SinkClientStats>>;
  /** Closed connections since the last reset (at most 100,000). */
  trace(): Promise<SinkConnection[]>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSink(certFile: string, keyFile: string): Promise<Sink> {
  // Same Node binary and flags (type stripping) as this script.
  const child = fork(ENTRY, ["--sink-child", certFile, keyFile], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  liveSink = child;
  let nextId = 1;
  const waiters = new Map<number, (m: unknown) => void>();
  let onListening: ((port: number) => void) | undefined;
  child.on("message", (m: unknown) => {
    const msg = m as { type?: string; id?: number; port?: number };
    if (msg.type === "listening") onListening?.(msg.port ?? 0);
    else if (msg.id !== undefined) {
      waiters.get(msg.id)?.(m);
      waiters.delete(msg.id);
    }
  });
  const ask = (type: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiters.delete(id);
        reject(new Error(`sink did not answer "${type}" within 10 s`));
      }, 10_000);
      waiters.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      child.send({ type, id });
    });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sink did not start within 10 s")), 10_000);
    onListening = (p) => {
      clearTimeout(timer);
      resolve(p);
    };
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sink exited (code ${code})`));
    });
  });
  return {
    port,
    pid: child.pid!,
    child,
    async stats() {
      const m = (await ask("stats")) as { stats: Record<string, SinkClientStats> };
      return m.stats;
    },
    async trace() {
      const m = (await ask("trace")) as { trace: SinkConnection[] };
      return m.trace;
    },
    async reset() {
      await ask("reset");
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.send({ type: "stop" });
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      liveSink = undefined;
    },
  };
}

let liveSink: ChildProcess | undefined;

/** Kills the sink child at once (the bench's exit and signal hooks). */
export function killSinkSync(): void {
  if (liveSink?.pid !== undefined && liveSink.exitCode === null) {
    try {
      process.kill(liveSink.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}
