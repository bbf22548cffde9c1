// The outbound bench's command line: its options, defaults and --help text.
import path from "node:path";
import { parseArgs } from "node:util";
import { BENCH_IN_FLOW_DELAY, inFlowDelayValue } from "../../test/peers/postfix.ts";
import { REPO_ROOT } from "../wardmail.ts";
import { fsModeOf, type FsMode } from "../fs.ts";

export type ServerName = "postfix" | "wardmail";

export interface Options {
  runs: number;
  messages: number;
  sessions: number;
  size: number;
  injectPerConn: number;
  warmup: number;
  timeoutMs: number;
  only: ServerName | undefined;
  out: string;
  /** --fs: where the servers' files go (bench/fs.ts). */
  fs: FsMode;
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
  --out FILE            JSON result (default bench/out/outbound-latest.json)
  --fs auto|host        a journaled ext4 mounted for the bench where os.tmpdir() has none (auto), or os.tmpdir() (bench/fs.ts)`);
  process.exit(2);
}

export function parseOptions(argv: string[]): Options {
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
        fs: { type: "string" },
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
    fs: fsModeOf(values.fs) ?? usage("--fs must be auto or host"),
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
