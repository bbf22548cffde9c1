// Outbound delivery: Wardmail vs Postfix relaying the same load to the same
// TLS sink on loopback, measured in the same run (issue: outbound).
//
//   npm run build && node bench/outbound.ts          # 3 runs, 3,000 messages each
//   node bench/outbound.ts --runs 5 --messages 5000
//   node bench/outbound.ts --only wardmail --wardmail-cpu-prof /tmp/prof
//
// What happens per run (one server at a time, the other idle; order
// alternates between runs):
//   smtp-source injects N messages (sender@bench.test -> rcpt@remote.test)
//   into the server's port 25 listener from 127.0.0.1, a network both
//   servers let relay without AUTH; the server relays every message to
//   its relay host, the sink: a small SMTP server in a child process of
//   this script (Postfix's smtp-sink cannot do STARTTLS), which offers
//   STARTTLS, PIPELINING, 8BITMIME, SIZE, accepts every message and counts
//   messages, connections, messages per connection and TLS versions per
//   EHLO name, i.e. per server. Both servers must use STARTTLS to it
//   (Postfix smtp_tls_security_level = encrypt, Wardmail relay tls =
//   "encrypt": TLS required, certificate not verified on either side; the
//   sink's certificate is self-signed) and may reuse connections (Postfix
//   smtp_tls_connection_reuse = yes through tlsproxy, Wardmail
//   outbound.messages_per_connection).
//
// See bench/README.md ("Outbound delivery") for what is measured and how it is verified.
import { execFile as execFileCb, execFileSync, fork, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { BENCH_IN_FLOW_DELAY, inFlowDelayValue, postconfValue, POSTCONF_BIN, POSTFIX_SKIP_REASON, postfixAvailable, SMTP_SOURCE_BIN, startPostfix, type PostfixInstance } from "../test/peers/postfix.ts";
import { cpuSecondsWithReaped, machineBusyCpuSeconds, reapedChildrenCpuSeconds, RssSampler, sampleTrees, treeCpuSeconds } from "../test/peers/procs.ts";
import { killLoadChildren, runLoad, type LoadResult, type LoadSpec } from "./load.ts";
import { median, fmt, table, writeResult } from "./report.ts";
import { killWardmailSync, REPO_ROOT, serverCommand, startWardmail, type Command, type WardmailInstance, type WardmailPaths } from "./wardmail.ts";

const execFile = promisify(execFileCb);
const THIS_FILE = fileURLToPath(import.meta.url);

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
const nowMs = (): number => performance.timeOrigin + performance.now();

// =============================================================================
// The sink (runs in a child process: `node bench/outbound.ts --sink-child CERT KEY`)
// =============================================================================

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

function runSinkChild(certFile: string, keyFile: string): void {
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
interface Sink {
  port: number;
  pid: number;
  child: ChildProcess;
  stats(): Promise<Record<string, SinkClientStats>>;
  /** Closed connections since the last reset (at most 100,000). */
  trace(): Promise<SinkConnection[]>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

async function startSink(certFile: string, keyFile: string): Promise<Sink> {
  // Same Node binary and flags (type stripping) as this script.
  const child = fork(THIS_FILE, ["--sink-child", certFile, keyFile], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
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

// =============================================================================
// Options
// =============================================================================

type ServerName = "postfix" | "wardmail";

interface Options {
  runs: number;
  messages: number;
  sessions: number;
  size: number;
  injectPerConn: number;
  warmup: number;
  timeoutMs: number;
  only: ServerName | undefined;
  out: string;
  /** Both servers: STARTTLS to the sink required (encrypt) or opportunistic (may). */
  tls: "encrypt" | "may";
  /** Postfix: smtp_tls_connection_reuse (reuse of TLS connections through tlsproxy). */
  postfixTlsReuse: boolean;
  /** Postfix: in_flow_delay (BENCH_IN_FLOW_DELAY: tuned for throughput). */
  postfixInFlowDelay: string;
  /** Wardmail: outbound.messages_per_connection and outbound.max_connections_per_domain. */
  messagesPerConnection: number;
  maxConnectionsPerDomain: number;
  /** Wardmail queue.concurrency; undefined: not written (the server's default; older builds lack the key). */
  queueConcurrency: number | undefined;
  /** Wardmail: server.workers (0 = one per CPU, the default). */
  workers: number;
  /** The sink's certificate key: ec (P-256, default) or rsa (2048 bits). */
  sinkKey: "ec" | "rsa";
  /** Directory for node --cpu-prof profiles of the Wardmail server (main thread and workers). */
  cpuProf: string | undefined;
  /** The checkout whose build runs, through its launcher bin/wardmail (default: this repository). */
  wardmailRoot: string;
  /** Put the sink's per-connection trace into the JSON. */
  trace: boolean;
  /** Copy each run's server log lines into this directory. */
  keepLogs: string | undefined;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench/outbound: ${msg}`);
  console.error(`usage: node bench/outbound.ts [options]
  --runs N              runs per server (default 3), alternating which server goes first
  --messages N          messages injected per run (default 3000)
  --sessions N          concurrent injecting SMTP sessions (default 50)
  --size BYTES          message body size for smtp-source -l (default 10240)
  --inject-per-conn K   messages per injecting connection: 1, or K > 1 on average
                        (smtp-source -d, bench/load.ts batch mode; default 10)
  --warmup N            warm-up messages per server, not reported (default 200; 0 = none)
  --timeout-s N         limit for one run, injection plus drain (default 300)
  --only NAME           postfix | wardmail
  --tls MODE            encrypt (default: STARTTLS required on both sides) | may
  --postfix-tls-reuse B yes (default) | no: Postfix smtp_tls_connection_reuse
  --postfix-in-flow-delay T  Postfix in_flow_delay (default ${BENCH_IN_FLOW_DELAY}, tuned for throughput; 1s is Postfix's default)
  --messages-per-connection N   Wardmail outbound.messages_per_connection (default 50)
  --max-connections-per-domain N Wardmail outbound.max_connections_per_domain (default 4)
  --queue-concurrency N Wardmail queue.concurrency (default: not set, the server's default)
  --workers N           Wardmail server.workers (default 0: one per CPU)
  --sink-key K          ec (P-256, default) | rsa (2048): the sink's TLS key
  --wardmail-cpu-prof DIR   run the Wardmail server under node --cpu-prof, profiles into DIR
  --wardmail-root DIR   run DIR/bin/wardmail, the launcher of that build (default: this repository's build)
  --trace               put the sink's per-connection trace (open, TLS, first/last message, close) into the JSON
  --keep-logs DIR       copy each run's server log lines (Postfix maillog, Wardmail JSON log) into DIR
  --out FILE            JSON result (default bench/out/outbound-latest.json)`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: "string" },
        messages: { type: "string" },
        sessions: { type: "string" },
        size: { type: "string" },
        "inject-per-conn": { type: "string" },
        warmup: { type: "string" },
        "timeout-s": { type: "string" },
        only: { type: "string" },
        tls: { type: "string" },
        "postfix-tls-reuse": { type: "string" },
        "postfix-in-flow-delay": { type: "string" },
        "messages-per-connection": { type: "string" },
        "max-connections-per-domain": { type: "string" },
        "queue-concurrency": { type: "string" },
        workers: { type: "string" },
        "sink-key": { type: "string" },
        "wardmail-cpu-prof": { type: "string" },
        "wardmail-root": { type: "string" },
        trace: { type: "boolean" },
        "keep-logs": { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  if (values.help) usage();
  const int = (name: string, v: string | undefined, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) usage(`--${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  const o: Options = {
    runs: int("runs", values.runs, 3, 1, 100),
    messages: int("messages", values.messages, 3000, 1, 1_000_000),
    sessions: int("sessions", values.sessions, 50, 1, 1000),
    size: int("size", values.size, 10240, 1, 50_000_000),
    injectPerConn: int("inject-per-conn", values["inject-per-conn"], 10, 1, 10_000),
    warmup: int("warmup", values.warmup, 200, 0, 1_000_000),
    timeoutMs: int("timeout-s", values["timeout-s"], 300, 1, 86_400) * 1000,
    only: undefined,
    out: values.out ?? path.join(REPO_ROOT, "bench", "out", "outbound-latest.json"),
    tls: "encrypt",
    postfixTlsReuse: true,
    postfixInFlowDelay: inFlowDelayValue(values["postfix-in-flow-delay"] ?? BENCH_IN_FLOW_DELAY) ?? usage("--postfix-in-flow-delay must be seconds, e.g. 0 or 1s"),
    messagesPerConnection: int("messages-per-connection", values["messages-per-connection"], 50, 1, 10_000),
    maxConnectionsPerDomain: int("max-connections-per-domain", values["max-connections-per-domain"], 4, 1, 100),
    queueConcurrency: values["queue-concurrency"] !== undefined ? int("queue-concurrency", values["queue-concurrency"], 16, 1, 1024) : undefined,
    workers: int("workers", values.workers, 0, 0, 64),
    sinkKey: "ec",
    cpuProf: values["wardmail-cpu-prof"] !== undefined ? path.resolve(values["wardmail-cpu-prof"]) : undefined,
    wardmailRoot: path.resolve(values["wardmail-root"] ?? REPO_ROOT),
    trace: values.trace === true,
    keepLogs: values["keep-logs"] !== undefined ? path.resolve(values["keep-logs"]) : undefined,
  };
  if (values.only !== undefined) {
    if (values.only !== "postfix" && values.only !== "wardmail") usage("--only must be postfix or wardmail");
    o.only = values.only;
  }
  if (values.tls !== undefined) {
    if (values.tls !== "encrypt" && values.tls !== "may") usage("--tls must be encrypt or may");
    o.tls = values.tls;
  }
  if (values["postfix-tls-reuse"] !== undefined) {
    if (values["postfix-tls-reuse"] !== "yes" && values["postfix-tls-reuse"] !== "no") usage("--postfix-tls-reuse must be yes or no");
    o.postfixTlsReuse = values["postfix-tls-reuse"] === "yes";
  }
  if (values["sink-key"] !== undefined) {
    if (values["sink-key"] !== "ec" && values["sink-key"] !== "rsa") usage("--sink-key must be ec or rsa");
    o.sinkKey = values["sink-key"];
  }
  for (const n of [o.messages, o.warmup]) {
    if (n > 0 && o.injectPerConn > 1 && n % o.injectPerConn !== 0) usage(`--messages and --warmup must be multiples of --inject-per-conn ${o.injectPerConn}`);
  }
  return o;
}

// =============================================================================
// The two servers
// =============================================================================

const FROM = "sender@bench.test";
const TO = "rcpt@remote.test";
const WARDMAIL_HELO = "wardmail.bench.test";

/** Wardmail's config for this bench: relay everything from 127.0.0.1 to the sink. */
function wardmailOutboundToml(p: WardmailPaths, o: Options, sinkPort: number): string {
  return `# Generated by bench/outbound.ts
[server]
data_dir = "${p.dataDir}"
hostname = "${WARDMAIL_HELO}"
workers = ${o.workers}

[smtp]
listen = ["127.0.0.1:${p.smtpPort}"]

[submission]
listen = ["127.0.0.1:${p.submissionPort}"]

[submissions]
listen = ["127.0.0.1:${p.submissionsPort}"]

[local]
domains = ["bench.test"]
mailboxes = []
# A bounce would go to the sender: dropped (there should be none).
discard = ["${FROM}"]

# smtp-source injects from 127.0.0.1 without AUTH, as into Postfix (mynetworks).
[relay]
trusted_networks = ["127.0.0.1/32"]

# The relay host is an IP address: no DNS is needed; a closed port makes sure.
[dns]
servers = ["127.0.0.1:9"]

[checks]
enabled = false
${o.queueConcurrency !== undefined ? `\n[queue]\nconcurrency = ${o.queueConcurrency}\n` : ""}
[outbound]
messages_per_connection = ${o.messagesPerConnection}
max_connections_per_domain = ${o.maxConnectionsPerDomain}

[[outbound.relays]]
domains = ["*"]
host = "127.0.0.1:${sinkPort}"
tls = "${o.tls === "encrypt" ? "encrypt" : "may"}"
`;
}

const wardmailJs = (o: Options): string => path.join(o.wardmailRoot, "dist", "bin", "wardmail.js");

/** Starts Wardmail (bench/wardmail.ts) with this bench's config, written next to the one startWardmail writes. */
function startWardmailOutbound(o: Options, sinkPort: number): Promise<WardmailInstance> {
  return startWardmail({
    command: (p: WardmailPaths): Command => {
      const config = path.join(p.dir, "outbound.toml");
      writeFileSync(config, wardmailOutboundToml(p, o, sinkPort));
      // Through the launcher (bin/wardmail), as production runs it; --cpu-prof through NODE_OPTIONS.
      return serverCommand(config, o.wardmailRoot, o.cpuProf !== undefined ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${o.cpuProf}` } : undefined);
    },
  });
}

function startPostfixOutbound(o: Options, sinkPort: number): Promise<PostfixInstance> {
  return startPostfix({
    mode: "relay",
    relayhost: `[127.0.0.1]:${sinkPort}`,
    tlsToRelay: o.tls,
    extraMain: {
      // TLS connections are cached and reused only through tlsproxy (Postfix >= 3.4).
      smtp_tls_connection_reuse: o.postfixTlsReuse ? "yes" : "no",
      // Tuned for throughput (see BENCH_IN_FLOW_DELAY): smtpd never waits for the queue manager.
      in_flow_delay: o.postfixInFlowDelay,
      // Back to Postfix's defaults (relay mode shortens them for the tests); nothing is deferred here anyway.
      queue_run_delay: "300s",
      minimal_backoff_time: "300s",
      maximal_backoff_time: "4000s",
      smtp_connect_timeout: "30s",
    },
    extraMaster: o.postfixTlsReuse ? ["tlsproxy  unix  -       -       n       -       0       tlsproxy"] : [],
  });
}

// =============================================================================
// Log accounting
// =============================================================================

async function fileSize(p: string): Promise<number> {
  try {
    return (await stat(p)).size;
  } catch {
    return 0;
  }
}

async function readFrom(p: string, offset: number): Promise<string> {
  let fh;
  try {
    fh = await open(p, "r");
  } catch {
    return "";
  }
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString("latin1");
  } finally {
    await fh.close();
  }
}

interface ServerLogCount {
  /** Messages the server accepted from smtp-source. */
  accepted: number;
  /** Deliveries to the sink the server logged as done. */
  sent: number;
  deferred: number;
  failed: number;
  /** Postfix: deliveries over a reused connection (conn_use=N >= 2); Wardmail: outbound sessions logged. */
  reuseOrSessions: number;
  problems: string[];
}

function countPostfixLog(log: string, syslogName: string): ServerLogCount {
  const c: ServerLogCount = { accepted: 0, sent: 0, deferred: 0, failed: 0, reuseOrSessions: 0, problems: [] };
  const disc = new RegExp(`${syslogName}/smtpd\\[\\d+\\]: disconnect from \\S+(.*)$`);
  for (const line of log.split("\n")) {
    const d = disc.exec(line);
    if (d) {
      const m = /\bdata=(\d+)(?:\/(\d+))?/.exec(d[1] ?? "");
      c.accepted += m ? Number(m[1]) : 0;
      continue;
    }
    if (/\/smtp\[\d+\]: .* relay=/.test(line)) {
      if (line.includes("status=sent")) c.sent++;
      else if (line.includes("status=deferred")) c.deferred++;
      else if (line.includes("status=bounced")) c.failed++;
      if (/\bconn_use=\d+/.test(line)) c.reuseOrSessions++;
      continue;
    }
    // tlsproxy says this at start: only its client role is used here.
    if (line.includes("TLS server role is disabled")) continue;
    if (/\b(reject|warning|fatal|error|panic):/.test(line) && c.problems.length < 5) c.problems.push(line.slice(0, 300));
  }
  return c;
}

function countWardmailLog(log: string): ServerLogCount {
  const c: ServerLogCount = { accepted: 0, sent: 0, deferred: 0, failed: 0, reuseOrSessions: 0, problems: [] };
  for (const line of log.split("\n")) {
    if (line.includes('"msg":"message accepted"')) c.accepted++;
    else if (line.includes('"msg":"delivered to the remote MX"')) c.sent++;
    else if (line.includes('"msg":"delivery deferred"')) c.deferred++;
    else if (line.includes('"msg":"delivery failed"')) c.failed++;
    else if (line.includes('"msg":"outbound session"')) c.reuseOrSessions++;
    if (/"level":(50|60)/.test(line) && c.problems.length < 5) c.problems.push(line.slice(0, 300));
  }
  return c;
}

async function wardmailQueued(o: Options, configPath: string): Promise<number | undefined> {
  try {
    const r = await execFile(process.execPath, [wardmailJs(o), "queue", "list", "--json", "--config", configPath], {
      cwd: o.wardmailRoot,
      timeout: 60_000,
      maxBuffer: 256 * 1024 * 1024,
    });
    const parsed: unknown = JSON.parse(r.stdout);
    if (Array.isArray(parsed)) return parsed.length;
    const arr = (parsed as { items?: unknown; messages?: unknown } | null)?.items ?? (parsed as { messages?: unknown } | null)?.messages;
    return Array.isArray(arr) ? arr.length : undefined;
  } catch {
    return undefined;
  }
}

// =============================================================================
// One run
// =============================================================================

interface CpuUse {
  serverS: number;
  sinkS: number;
  generatorS: number;
  benchS: number;
  machineS: number;
  otherS: number;
  capacityS: number;
}

interface RunRecord {
  server: ServerName;
  run: number;
  /** 1 = first of the pair in this run, 2 = second. */
  order: number;
  ok: boolean;
  messages: number;
  /** ms from the start of injection. */
  injectMs: number;
  /** ms from the start of injection to the sink's last final dot. */
  endToEndMs: number | null;
  /** ms from the sink's first to its last message. */
  sinkWindowMs: number | null;
  /** ms from the end of injection to the sink's last message. */
  drainTailMs: number | null;
  /** messages / endToEndMs: the outbound delivery rate. */
  outboundMsgsPerSec: number | null;
  /** messages / injectMs: how fast the server took the mail in meanwhile. */
  injectMsgsPerSec: number | null;
  /** messages / sinkWindowMs. */
  sinkWindowMsgsPerSec: number | null;
  sink: SinkClientStats | null;
  messagesPerConnection: number | null;
  cpu: CpuUse;
  serverCpuMsPerMsg: number | null;
  sinkCpuMsPerMsg: number | null;
  peakRssMiB: number;
  pssAfterRunMiB: number;
  processesAfterRun: number;
  log: ServerLogCount | null;
  load: LoadResult;
  notes: string[];
  /** --trace: the sink's connections from this server, times in ms from the start of injection. */
  trace?: SinkConnection[];
}

interface Ctx {
  opt: Options;
  sink: Sink;
  pf?: PostfixInstance;
  wm?: WardmailInstance;
  pfRss: RssSampler;
  wmRss: RssSampler;
}

function heloOf(ctx: Ctx, server: ServerName): string {
  return server === "postfix" ? `${ctx.pf!.syslogName}.wardmail.test`.toLowerCase() : WARDMAIL_HELO;
}

/** Waits until the sink has `n` messages from `helo`, up to the deadline; returns its last stats. */
async function waitForSink(sink: Sink, helo: string, n: number, deadline: number): Promise<SinkClientStats | undefined> {
  let s: SinkClientStats | undefined;
  while (true) {
    s = (await sink.stats())[helo];
    if ((s?.messages ?? 0) >= n || Date.now() >= deadline) return s;
    await sleep(20);
  }
}

/** Waits until no connection from `helo` is open at the sink (a cached connection closes after a while), up to timeoutMs. */
async function waitForSinkIdle(sink: Sink, helo: string, timeoutMs: number): Promise<SinkClientStats | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const s = (await sink.stats())[helo];
    if (!s || s.open === 0 || Date.now() >= deadline) return s;
    await sleep(100);
  }
}

async function runOnce(ctx: Ctx, server: ServerName, messages: number, label: string): Promise<Omit<RunRecord, "run" | "order">> {
  const { opt, sink } = ctx;
  const notes: string[] = [];
  const helo = heloOf(ctx, server);
  const root = server === "postfix" ? ctx.pf!.masterPid : ctx.wm!.pid;
  const port = server === "postfix" ? ctx.pf!.port : ctx.wm!.paths.smtpPort;
  const logPath = server === "postfix" ? ctx.pf!.logPath : ctx.wm!.paths.logPath;
  const rss = server === "postfix" ? ctx.pfRss : ctx.wmRss;

  // Quiet start: the server's queue empty, no connection of it open at the sink.
  if (server === "postfix") await ctx.pf!.waitForEmptyQueue(120_000);
  await waitForSinkIdle(sink, helo, 15_000);
  await sink.reset();
  const offset = await fileSize(logPath);

  const spec: LoadSpec = {
    port,
    sessions: opt.sessions,
    messages,
    perConnection: opt.injectPerConn,
    perConnectionMode: "batch",
    size: opt.size,
    from: FROM,
    to: TO,
    helo: "client.bench.test",
    timeoutMs: opt.timeoutMs,
  };

  const server0 = root !== undefined ? treeCpuSeconds(root) : 0;
  const sink0 = cpuSecondsWithReaped(sink.pid);
  const gen0 = reapedChildrenCpuSeconds(process.pid);
  const self0 = process.cpuUsage();
  const machine0 = machineBusyCpuSeconds();
  rss.start();
  const t0 = nowMs();
  const load = await runLoad(spec);
  const tInjected = nowMs();
  const s = await waitForSink(sink, helo, messages, Date.now() + Math.max(1000, opt.timeoutMs - (tInjected - t0)));
  const t1 = nowMs();
  const serverS = root !== undefined ? treeCpuSeconds(root) - server0 : 0;
  const sinkS = cpuSecondsWithReaped(sink.pid) - sink0;
  const generatorS = reapedChildrenCpuSeconds(process.pid) - gen0;
  const self = process.cpuUsage(self0);
  const benchS = (self.user + self.system) / 1e6;
  const machineS = machineBusyCpuSeconds() - machine0;
  const peakKiB = rss.stop();
  const snap = sampleTrees(root !== undefined ? [root] : []);
  const cpu: CpuUse = {
    serverS,
    sinkS,
    generatorS,
    benchS,
    machineS,
    otherS: Math.max(0, machineS - serverS - sinkS - generatorS - benchS),
    capacityS: ((t1 - t0) / 1000) * os.availableParallelism(),
  };

  const got = s?.messages ?? 0;
  const drained = got === messages;
  if (!load.ok) notes.push(...load.errors);
  if (!drained) notes.push(`the sink got ${got} of ${messages} messages from ${helo} within the time limit`);

  // The connection statistics are complete once the server has closed its connections.
  const idle = (await waitForSinkIdle(sink, helo, 15_000)) ?? s;
  if (idle && idle.open > 0) notes.push(`${idle.open} connection(s) of ${helo} still open at the sink 15 s after the last message`);
  if (idle && idle.plaintextMessages > 0) notes.push(`${idle.plaintextMessages} message(s) reached the sink without TLS`);
  if (idle && opt.tls === "encrypt" && (idle.tls.none ?? 0) > 0) notes.push(`${idle.tls.none} connection(s) without TLS`);
  if (idle && idle.messages > messages) notes.push(`the sink got ${idle.messages} messages, more than the ${messages} sent (duplicates)`);

  // The server's own account: every message accepted and delivered, nothing deferred.
  let log: ServerLogCount | null = null;
  const logDeadline = Date.now() + 15_000;
  while (true) {
    const text = await readFrom(logPath, offset);
    log = server === "postfix" ? countPostfixLog(text, ctx.pf!.syslogName) : countWardmailLog(text);
    if ((log.accepted >= messages && log.sent >= messages) || Date.now() >= logDeadline) break;
    await sleep(200);
  }
  if (opt.keepLogs !== undefined) await writeFile(path.join(opt.keepLogs, `${server}-${label}.log`), await readFrom(logPath, offset));
  let trace: SinkConnection[] | undefined;
  if (opt.trace) {
    const rel = (x: number | null): number | null => (x === null ? null : Math.round((x - t0) * 10) / 10);
    trace = (await sink.trace())
      .filter((c) => c.helo === helo)
      .map((c) => ({ ...c, openedAt: rel(c.openedAt)!, tlsAt: rel(c.tlsAt), firstMsgAt: rel(c.firstMsgAt), lastMsgAt: rel(c.lastMsgAt), closedAt: rel(c.closedAt)! }));
  }
  const logOk = log.accepted === messages && log.sent === messages && log.deferred === 0 && log.failed === 0;
  if (!logOk) notes.push(`server log: ${log.accepted} accepted, ${log.sent} sent, ${log.deferred} deferred, ${log.failed} failed (expected ${messages} accepted and sent)`);
  notes.push(...log.problems);
  if (server === "postfix") {
    const q = await ctx.pf!.queueCount();
    if (q !== 0) notes.push(`postfix queue not empty after the run: ${q}`);
  } else {
    const q = await wardmailQueued(opt, ctx.wm!.paths.configPath);
    if (q === undefined) notes.push("wardmail queue not checked: queue list --json failed");
    else if (q !== 0) notes.push(`wardmail queue not empty after the run: ${q}`);
    if (ctx.wm!.child.exitCode !== null || ctx.wm!.child.signalCode !== null) notes.push("wardmail exited during the run");
  }

  const ok = load.ok && drained && logOk && (idle?.plaintextMessages ?? 0) === 0 && (idle?.messages ?? 0) === messages && (opt.tls !== "encrypt" || (idle?.tls.none ?? 0) === 0);
  const lastAt = drained ? (s?.lastAt ?? null) : null;
  const firstAt = drained ? (s?.firstAt ?? null) : null;
  const endToEndMs = lastAt !== null ? lastAt - t0 : null;
  const sinkWindowMs = lastAt !== null && firstAt !== null ? lastAt - firstAt : null;
  const stats = idle ?? null;
  return {
    server,
    ok,
    messages,
    injectMs: load.wallMs,
    endToEndMs,
    sinkWindowMs,
    drainTailMs: lastAt !== null ? lastAt - tInjected : null,
    outboundMsgsPerSec: endToEndMs ? messages / (endToEndMs / 1000) : null,
    injectMsgsPerSec: load.ok ? messages / (load.wallMs / 1000) : null,
    sinkWindowMsgsPerSec: sinkWindowMs ? messages / (sinkWindowMs / 1000) : null,
    sink: stats,
    messagesPerConnection: stats && stats.connections > 0 ? stats.messages / stats.connections : null,
    cpu,
    serverCpuMsPerMsg: drained ? (serverS * 1000) / messages : null,
    sinkCpuMsPerMsg: drained ? (sinkS * 1000) / messages : null,
    peakRssMiB: peakKiB / 1024,
    pssAfterRunMiB: snap.pssKiB / 1024,
    processesAfterRun: snap.processes,
    log,
    load,
    notes,
    ...(trace ? { trace } : {}),
  };
}

// =============================================================================
// Reporting
// =============================================================================




function histogram(h: Record<string, number> | undefined): string {
  if (!h) return "-";
  return Object.entries(h)
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([k, v]) => `${k}x${v}`)
    .join(" ");
}

function machineInfo(): Record<string, unknown> {
  let postfixVersion = "unknown";
  try {
    postfixVersion = execFileSync(POSTCONF_BIN, ["-d", "-h", "mail_version"], { encoding: "utf8" }).trim();
  } catch {
    /* keep unknown */
  }
  let osRelease = "";
  try {
    osRelease = /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "";
  } catch {
    /* keep empty */
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    os: osRelease,
    kernel: os.release(),
    node: process.version,
    postfix: postfixVersion,
    openssl: process.versions.openssl,
    loadavgAtStart: os.loadavg(),
  };
}

function printRun(r: RunRecord): void {
  const s = r.sink;
  const tlsText = s ? Object.entries(s.tls).map(([k, v]) => `${k} x${v}`).join(", ") : "-";
  console.log(
    `  run ${r.run} ${r.server.padEnd(8)} outbound ${fmt(r.outboundMsgsPerSec).padStart(5)} msg/s (${fmt(r.endToEndMs !== null ? r.endToEndMs / 1000 : null, 2)} s first injection -> last at sink), ` +
      `injection ${fmt(r.injectMsgsPerSec)} msg/s, sink window ${fmt(r.sinkWindowMsgsPerSec)} msg/s, drain tail ${fmt(r.drainTailMs)} ms` +
      `\n      sink: ${s?.messages ?? 0} msgs over ${s?.connections ?? 0} connections (${fmt(r.messagesPerConnection, 1)} per conn, peak ${s?.peakOpen ?? 0} open; per conn: ${histogram(s?.perConnection)}); TLS ${tlsText}` +
      `\n      CPU s: server ${r.cpu.serverS.toFixed(2)} (${fmt(r.serverCpuMsPerMsg, 2)} ms/msg), sink ${r.cpu.sinkS.toFixed(2)}, smtp-source ${r.cpu.generatorS.toFixed(2)}, bench ${r.cpu.benchS.toFixed(2)}, ` +
      `other ${r.cpu.otherS.toFixed(2)}, machine ${r.cpu.machineS.toFixed(2)} of ${r.cpu.capacityS.toFixed(2)}; peak RSS ${r.peakRssMiB.toFixed(1)} MiB` +
      `${r.ok ? "  verified" : "  NOT OK"}${r.notes.length ? `\n      ${r.notes.join("\n      ")}` : ""}`,
  );
}

// =============================================================================
// main
// =============================================================================

async function makeCert(dir: string, kind: "ec" | "rsa"): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, "sink-cert.pem");
  const key = path.join(dir, "sink-key.pem");
  const keyArgs = kind === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["-newkey", "rsa:2048"];
  await execFile("openssl", ["req", "-x509", ...keyArgs, "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=sink.bench.test", "-addext", "subjectAltName=DNS:sink.bench.test"], {
    timeout: 30_000,
  });
  return { cert, key };
}

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  if (!postfixAvailable()) {
    console.error(`bench/outbound: ${POSTFIX_SKIP_REASON}`);
    return 1;
  }
  if (!existsSync(wardmailJs(opt))) {
    console.error(`bench/outbound: ${wardmailJs(opt)} missing: run npm run build`);
    return 1;
  }
  const servers: ServerName[] = opt.only ? [opt.only] : ["postfix", "wardmail"];
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  const tmp = await mkdtemp(path.join(os.tmpdir(), "wm-outbound-"));

  const emergency = (): void => {
    killLoadChildren();
    killWardmailSync();
    if (liveSink?.pid !== undefined && liveSink.exitCode === null) {
      try {
        process.kill(liveSink.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  };
  process.on("exit", emergency);
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\nbench/outbound: ${sig}, stopping servers`);
    emergency();
    process.exit(130); // postfix.ts's exit hook kills the Postfix instance
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let sink: Sink | undefined;
  let pf: PostfixInstance | undefined;
  let wm: WardmailInstance | undefined;
  const records: RunRecord[] = [];
  try {
    if (opt.cpuProf !== undefined) await mkdir(opt.cpuProf, { recursive: true });
    if (opt.keepLogs !== undefined) await mkdir(opt.keepLogs, { recursive: true });
    const { cert, key } = await makeCert(tmp, opt.sinkKey);
    sink = await startSink(cert, key);
    console.log(`sink: 127.0.0.1:${sink.port} pid ${sink.pid} (STARTTLS, ${opt.sinkKey === "ec" ? "ECDSA P-256" : "RSA-2048"} self-signed certificate)`);
    if (servers.includes("postfix")) {
      pf = await startPostfixOutbound(opt, sink.port);
      console.log(
        `postfix ${String(machine.postfix)}: 127.0.0.1:${pf.port}, relayhost [127.0.0.1]:${sink.port}, smtp_tls_security_level=${opt.tls}, smtp_tls_connection_reuse=${opt.postfixTlsReuse ? "yes" : "no"}, in_flow_delay=${postconfValue(pf.configDir, "in_flow_delay")}, dir ${pf.dir}`,
      );
    }
    if (servers.includes("wardmail")) {
      wm = await startWardmailOutbound(opt, sink.port);
      console.log(
        `wardmail: 127.0.0.1:${wm.paths.smtpPort} pid ${wm.pid}, relay 127.0.0.1:${sink.port} tls=${opt.tls === "encrypt" ? "encrypt" : "may"}, messages_per_connection=${opt.messagesPerConnection}, max_connections_per_domain=${opt.maxConnectionsPerDomain}, dir ${wm.paths.dir}`,
      );
    }
    const ctx: Ctx = {
      opt,
      sink,
      ...(pf ? { pf } : {}),
      ...(wm ? { wm } : {}),
      pfRss: new RssSampler(() => (pf?.masterPid !== undefined ? [pf.masterPid] : []), { intervalMs: 500 }),
      wmRss: new RssSampler(() => (wm ? [wm.pid] : [])),
    };
    const wmRssWhole = new RssSampler(() => (wm ? [wm.pid] : []));
    if (wm) wmRssWhole.start();

    if (opt.warmup > 0) {
      for (const s of servers) {
        const w = await runOnce(ctx, s, opt.warmup, "warmup");
        console.log(`warm-up ${s}: ${opt.warmup} messages, ${fmt(w.outboundMsgsPerSec)} msg/s${w.ok ? "" : ` (NOT OK: ${w.notes.join("; ")})`}`);
      }
    }

    console.log(
      `\n${opt.messages} messages per run (${opt.size}-byte bodies, ${opt.sessions} injecting sessions, ${opt.injectPerConn} per injecting connection), ${opt.runs} runs; servers alternate first/second.`,
    );
    for (let run = 1; run <= opt.runs; run++) {
      const order = run % 2 === 1 ? servers : [...servers].reverse();
      for (const [i, s] of order.entries()) {
        const r: RunRecord = { ...(await runOnce(ctx, s, opt.messages, `run${run}`)), run, order: i + 1 };
        const gen = r.cpu.generatorS / r.cpu.capacityS;
        const other = r.cpu.otherS / r.cpu.capacityS;
        if (gen > 0.2) r.notes.push(`note: smtp-source used ${(gen * 100).toFixed(0)}% of the machine's CPU`);
        if (other > 0.15) r.notes.push(`note: other processes used ${(other * 100).toFixed(0)}% of the machine's CPU`);
        records.push(r);
        printRun(r);
      }
    }
    const wmPeakWhole = wm ? wmRssWhole.stop() / 1024 : null;

    const rows: string[][] = [["run", "Postfix msg/s", "Wardmail msg/s", "ratio W/P", "P msgs/conn", "W msgs/conn", "P CPU ms/msg", "W CPU ms/msg", "W peak RSS MiB", "other load P/W %"]];
    const ratios: number[] = [];
    const pick = (server: ServerName, f: (r: RunRecord) => number | null): number[] =>
      records.filter((r) => r.server === server && r.ok).flatMap((r) => {
        const v = f(r);
        return v === null ? [] : [v];
      });
    for (let run = 1; run <= opt.runs; run++) {
      const p = records.find((r) => r.server === "postfix" && r.run === run);
      const w = records.find((r) => r.server === "wardmail" && r.run === run);
      const pr = p?.ok ? p.outboundMsgsPerSec : null;
      const wr = w?.ok ? w.outboundMsgsPerSec : null;
      const ratio = pr && wr ? wr / pr : null;
      if (ratio) ratios.push(ratio);
      rows.push([
        String(run),
        fmt(pr),
        fmt(wr),
        fmt(ratio, 2),
        fmt(p?.messagesPerConnection, 1),
        fmt(w?.messagesPerConnection, 1),
        fmt(p?.serverCpuMsPerMsg, 2),
        fmt(w?.serverCpuMsPerMsg, 2),
        fmt(w?.peakRssMiB, 1),
        `${fmt(p ? (p.cpu.otherS / p.cpu.capacityS) * 100 : null)}/${fmt(w ? (w.cpu.otherS / w.cpu.capacityS) * 100 : null)}`,
      ]);
    }
    const summary = {
      postfixMedianMsgsPerSec: median(pick("postfix", (r) => r.outboundMsgsPerSec)),
      wardmailMedianMsgsPerSec: median(pick("wardmail", (r) => r.outboundMsgsPerSec)),
      medianRatio: median(ratios),
      postfixMedianInjectMsgsPerSec: median(pick("postfix", (r) => r.injectMsgsPerSec)),
      wardmailMedianInjectMsgsPerSec: median(pick("wardmail", (r) => r.injectMsgsPerSec)),
      postfixMedianDrainTailMs: median(pick("postfix", (r) => r.drainTailMs)),
      wardmailMedianDrainTailMs: median(pick("wardmail", (r) => r.drainTailMs)),
      postfixMedianMsgsPerConnection: median(pick("postfix", (r) => r.messagesPerConnection)),
      wardmailMedianMsgsPerConnection: median(pick("wardmail", (r) => r.messagesPerConnection)),
      postfixMedianCpuMsPerMsg: median(pick("postfix", (r) => r.serverCpuMsPerMsg)),
      wardmailMedianCpuMsPerMsg: median(pick("wardmail", (r) => r.serverCpuMsPerMsg)),
      postfixMedianSinkCpuMsPerMsg: median(pick("postfix", (r) => r.sinkCpuMsPerMsg)),
      wardmailMedianSinkCpuMsPerMsg: median(pick("wardmail", (r) => r.sinkCpuMsPerMsg)),
      wardmailPeakRssMiBWholeBench: wmPeakWhole,
      okRuns: { postfix: pick("postfix", (r) => r.outboundMsgsPerSec).length, wardmail: pick("wardmail", (r) => r.outboundMsgsPerSec).length },
    };
    console.log(`\n${table(rows)}`);
    console.log(
      "(msg/s: messages / time from the first injected message to the last one received by the sink; msgs/conn: messages per\n" +
        " connection at the sink; CPU: the server's process tree over that time, per message; Wardmail RSS: peak VmRSS;\n" +
        " other load: CPU used by processes outside the bench, % of the machine, during Postfix's and Wardmail's run)\n",
    );
    console.log(
      `median outbound: Postfix ${fmt(summary.postfixMedianMsgsPerSec)} msg/s, Wardmail ${fmt(summary.wardmailMedianMsgsPerSec)} msg/s, ratio W/P ${fmt(summary.medianRatio, 2)}` +
        `\nmedian injection meanwhile: Postfix ${fmt(summary.postfixMedianInjectMsgsPerSec)} msg/s, Wardmail ${fmt(summary.wardmailMedianInjectMsgsPerSec)} msg/s; ` +
        `drain after the last injection: Postfix ${fmt(summary.postfixMedianDrainTailMs)} ms, Wardmail ${fmt(summary.wardmailMedianDrainTailMs)} ms` +
        `\nmedian messages per connection: Postfix ${fmt(summary.postfixMedianMsgsPerConnection, 1)}, Wardmail ${fmt(summary.wardmailMedianMsgsPerConnection, 1)}` +
        `\nmedian server CPU per message: Postfix ${fmt(summary.postfixMedianCpuMsPerMsg, 2)} ms, Wardmail ${fmt(summary.wardmailMedianCpuMsPerMsg, 2)} ms ` +
        `(sink: ${fmt(summary.postfixMedianSinkCpuMsPerMsg, 2)} / ${fmt(summary.wardmailMedianSinkCpuMsPerMsg, 2)} ms)`,
    );
    if (wmPeakWhole !== null) console.log(`Wardmail peak RSS over the whole bench: ${wmPeakWhole.toFixed(1)} MiB`);

    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgAtEnd: os.loadavg() },
      params: {
        servers,
        runs: opt.runs,
        messagesPerRun: opt.messages,
        sessions: opt.sessions,
        bodyBytes: opt.size,
        injectPerConnection: opt.injectPerConn,
        warmupMessages: opt.warmup,
        timeoutMs: opt.timeoutMs,
        tls: opt.tls,
        sinkKey: opt.sinkKey,
        postfixTlsConnectionReuse: opt.postfixTlsReuse,
        postfixInFlowDelay: opt.postfixInFlowDelay,
        wardmail: {
          command: wm ? `${wm.command.command} ${wm.command.args.join(" ")}` : null,
          messagesPerConnection: opt.messagesPerConnection,
          maxConnectionsPerDomain: opt.maxConnectionsPerDomain,
          queueConcurrency: opt.queueConcurrency ?? null,
          workers: opt.workers,
        },
        loadGenerator: SMTP_SOURCE_BIN,
        envelope: { from: FROM, to: TO },
      },
      summary,
      runs: records,
    };
    await writeResult(opt.out, "outbound", startedAt, result);
    if (opt.cpuProf !== undefined) console.log(`Wardmail CPU profiles: ${opt.cpuProf} (written when the server stops)`);
    return records.length > 0 && records.every((r) => r.ok) ? 0 : 1;
  } finally {
    killLoadChildren();
    if (wm) await wm.stop();
    if (pf) await pf.stop();
    if (sink) await sink.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--sink-child") {
  runSinkChild(process.argv[3] ?? "", process.argv[4] ?? "");
} else {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`bench/outbound: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = 1;
    },
  );
}
