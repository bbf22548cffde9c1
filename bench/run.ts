// Wardmail vs Postfix: SMTP acceptance rate, measured in the same run.
//
//   npm run bench                      # both servers, 3 runs per case
//   node bench/run.ts --only postfix   # just the Postfix peer
//   node bench/run.ts --runs 5 --messages 5000
//
// See bench/README.md for what is measured and how it is verified.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { BENCH_IN_FLOW_DELAY, inFlowDelayValue, postconfValue, POSTFIX_SKIP_REASON, postfixAvailable, POSTCONF_BIN, SMTP_SOURCE_BIN, startPostfix, type PostfixInstance } from "../test/peers/postfix.ts";
import { machineBusyCpuSeconds, reapedChildrenCpuSeconds, RssSampler, sampleTrees, treeCpuSeconds } from "../test/peers/procs.ts";
import { killLoadChildren, runLoad, type LoadResult, type LoadSpec } from "./load.ts";
import { median, fmt, table, caseName, writeResult } from "./report.ts";
import { loopDelayText, RSPAMD_SERVER, spamSummary, startSpamBench, type SpamBench } from "./spam.ts";
import { killWardmailSync, REPO_ROOT, startWardmail, type Command, type WardmailInstance, type WardmailPaths } from "./wardmail.ts";
import { clamdMissing, startClamd, type Clamd } from "../test/peers/clamd.ts";

/** "wardmail-plain": spool.encrypt = false (--spool-plain); "wardmail-av": [antivirus] on a clamd started by the bench (--antivirus). */
type ServerName = "postfix" | "wardmail" | "wardmail-plain" | "wardmail-av" | typeof RSPAMD_SERVER;

interface Options {
  runs: number;
  messages: number;
  sessions: number;
  size: number;
  cases: number[];
  warmup: number;
  timeoutMs: number;
  only: ServerName | undefined;
  out: string;
  /** Replaces bench/wardmail.ts's default command: placeholders {config} {smtpPort} {dataDir}. */
  wardmailCmd: string | undefined;
  connMode: "batch" | "exact";
  /** What Wardmail does with the mail after the 250: discard (as Postfix here) or Maildir. */
  wardmailDelivery: "discard" | "maildir";
  /** Postfix's in_flow_delay (BENCH_IN_FLOW_DELAY: tuned for throughput). */
  postfixInFlowDelay: string;
  /** --wardmail-limits: [limits] for Wardmail on top of bench/wardmail.ts BENCH_LIMITS. */
  wardmailLimits: Record<string, number>;
  /** --rspamd: also a Wardmail with spam scoring by a real rspamd (bench/spam.ts). */
  rspamd: boolean;
  /** --spool-plain: also a Wardmail with spool.encrypt = false. */
  spoolPlain: boolean;
  /** --antivirus: also measure Wardmail with ClamAV (a clamd on loopback) against the same Wardmail without it. */
  antivirus: boolean;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench: ${msg}`);
  console.error(`usage: node bench/run.ts [options]
  --runs N          runs per case and server (default 3)
  --messages N      messages per run (default 3000; a multiple of every --cases value)
  --sessions N      concurrent SMTP sessions (default 50)
  --size BYTES      message body size for smtp-source -l (default 10240)
  --cases LIST      messages per connection, comma-separated (default 1,10)
  --conn-mode M     exact | batch: how cases > 1 are generated (default exact; see bench/README.md)
  --wardmail-delivery D  discard | maildir: Wardmail's delivery after the durable 250
                    (default discard, like the Postfix side; maildir adds fsynced Maildir writes)
  --warmup N        warm-up messages per server before measuring, not reported (default 200; 0 = none)
  --timeout-s N     hard limit for one run's load (default 180)
  --only NAME       postfix | wardmail: run one server only
  --postfix-in-flow-delay T  Postfix in_flow_delay (default ${BENCH_IN_FLOW_DELAY}, tuned for throughput; 1s is Postfix's default)
  --out FILE        JSON result (default bench/out/latest.json)
  --spool-plain     also run a second Wardmail with spool.encrypt = false (same run, alternating): the cost of the encrypted spool
  --wardmail-cmd T  run T instead of "bin/wardmail serve --config {config}"
                    (whitespace-separated; placeholders {config} {smtpPort} {dataDir})
  --wardmail-limits L  extra [limits] for Wardmail, "key=value,key=value" (e.g. pregreet_delay=0
                    to measure the pregreet pause, pregreet_pass_time=0 to pay it on every connection)
  --rspamd          also measure a Wardmail with [spam] rspamd on (a real rspamd, test config), same run
  --antivirus       start a clamd (test/peers/clamd.ts: one-line EICAR database) and a second Wardmail
                    scanning with it ("wardmail-av"); the plain Wardmail gets antivirus.enabled = false`);
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
        cases: { type: "string" },
        warmup: { type: "string" },
        "timeout-s": { type: "string" },
        only: { type: "string" },
        out: { type: "string" },
        "wardmail-cmd": { type: "string" },
        "conn-mode": { type: "string" },
        "wardmail-delivery": { type: "string" },
        "postfix-in-flow-delay": { type: "string" },
        "spool-plain": { type: "boolean" },
        "wardmail-limits": { type: "string" },
        rspamd: { type: "boolean" },
        antivirus: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  if (values.help) usage();
  const int = (name: string, v: string | undefined, def: number, min: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const cases = (values.cases ?? "1,10").split(",").map((s) => Number(s.trim()));
  if (cases.some((c) => !Number.isInteger(c) || c < 1)) usage("--cases must be positive integers");
  const o: Options = {
    runs: int("runs", values.runs, 3, 1),
    messages: int("messages", values.messages, 3000, 1),
    sessions: int("sessions", values.sessions, 50, 1),
    size: int("size", values.size, 10240, 1),
    cases,
    warmup: int("warmup", values.warmup, 200, 0),
    timeoutMs: int("timeout-s", values["timeout-s"], 180, 1) * 1000,
    only: undefined,
    out: values.out ?? path.join(REPO_ROOT, "bench", "out", "latest.json"),
    wardmailCmd: values["wardmail-cmd"],
    connMode: "exact",
    wardmailDelivery: "discard",
    postfixInFlowDelay: inFlowDelayValue(values["postfix-in-flow-delay"] ?? BENCH_IN_FLOW_DELAY) ?? usage("--postfix-in-flow-delay must be seconds, e.g. 0 or 1s"),
    wardmailLimits: {},
    rspamd: values.rspamd === true,
    spoolPlain: values["spool-plain"] === true,
    antivirus: values.antivirus === true,
  };
  for (const kv of (values["wardmail-limits"] ?? "").split(",").filter((x) => x.trim() !== "")) {
    const [k, v] = kv.split("=").map((x) => x.trim());
    if (!k || !/^[a-z_0-9]+$/.test(k) || !Number.isInteger(Number(v))) usage(`--wardmail-limits: bad entry ${kv}`);
    o.wardmailLimits[k] = Number(v);
  }
  const d = values["wardmail-delivery"];
  if (d !== undefined) {
    if (d !== "discard" && d !== "maildir") usage("--wardmail-delivery must be discard or maildir");
    o.wardmailDelivery = d;
  }
  if (values["conn-mode"] !== undefined) {
    if (values["conn-mode"] !== "batch" && values["conn-mode"] !== "exact") usage("--conn-mode must be batch or exact");
    o.connMode = values["conn-mode"];
  }
  if (values.only !== undefined) {
    if (values.only !== "postfix" && values.only !== "wardmail") usage("--only must be postfix or wardmail");
    o.only = values.only;
  }
  for (const c of o.cases) if (o.messages % c !== 0) usage(`--messages ${o.messages} is not a multiple of ${c} messages per connection`);
  return o;
}

// --- Postfix log accounting ---------------------------------------------------

async function fileSize(p: string): Promise<number> {
  try {
    return (await stat(p)).size;
  } catch {
    return 0;
  }
}

async function readFrom(p: string, offset: number): Promise<string> {
  const fh = await open(p, "r");
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString("latin1");
  } finally {
    await fh.close();
  }
}

interface PostfixCount {
  /** smtpd sessions that ended (one `disconnect from` line each), not counting empty ones. */
  connections: number;
  /** Sessions without a single command (readiness probes): not counted above. */
  emptySessions: number;
  /** Messages accepted: the sum of data=N over those sessions. */
  accepted: number;
  /** Messages per connection -> number of connections. */
  perConnection: Record<string, number>;
  /** Deliveries to discard: with status=sent. */
  delivered: number;
  /** Lines with reject/warning/fatal/error, first few. */
  problems: string[];
}

function countPostfixLog(log: string, syslogName: string): PostfixCount {
  const c: PostfixCount = { connections: 0, emptySessions: 0, accepted: 0, perConnection: {}, delivered: 0, problems: [] };
  const disc = new RegExp(`${syslogName}/smtpd\\[\\d+\\]: disconnect from \\S+(.*)$`);
  for (const line of log.split("\n")) {
    const d = disc.exec(line);
    if (d) {
      if (/\bcommands=0(\/0)?\b/.test(d[1] ?? "")) {
        c.emptySessions++;
        continue;
      }
      c.connections++;
      // "data=3" = 3 DATA commands, all accepted; "data=2/3" = 2 of 3 accepted.
      const m = /\bdata=(\d+)(?:\/(\d+))?/.exec(d[1] ?? "");
      const n = m ? Number(m[1]) : 0;
      c.accepted += n;
      c.perConnection[n] = (c.perConnection[n] ?? 0) + 1;
      continue;
    }
    if (line.includes("/discard[") && line.includes("status=sent")) {
      c.delivered++;
      continue;
    }
    if (/\b(reject|warning|fatal|error|panic):/.test(line) && c.problems.length < 5) c.problems.push(line);
  }
  return c;
}

// --- runs -----------------------------------------------------------------------

interface RunRecord {
  server: ServerName;
  perConnection: number;
  run: number;
  /** Position in the alternation: "first" or "second" within this run pair. */
  order: number;
  ok: boolean;
  messages: number;
  wallMs: number;
  msgsPerSec: number | null;
  /** Peak of the summed VmRSS of the server's process tree during the load. */
  peakRssMiB: number;
  /**
   * Summed PSS of the process tree, one sample right after the load (shared
   * pages split among processes: fairer than summed RSS for Postfix's pool).
   */
  pssAfterRunMiB: number;
  /** Processes in the server's tree at that sample. */
  processesAfterRun: number;
  /** CPU seconds during the load (from /proc; see measureCpu). */
  cpu: CpuUse;
  /** Server CPU milliseconds per message. */
  serverCpuMsPerMsg: number | null;
  /** wardmail+rspamd: rspamd's CPU milliseconds per message. */
  rspamdCpuMsPerMsg?: number | null;
  /** wardmail-av: clamd's CPU milliseconds per message (not in serverCpuMsPerMsg). */
  scannerCpuMsPerMsg?: number | null;
  /** Not failures: CPU contention from the generator or other processes (see contentionWarnings). */
  warnings: string[];
  load: LoadResult;
  verify: {
    accepted: number | null;
    connections: number | null;
    perConnection: Record<string, number> | null;
    delivered: number | null;
    source: string;
    ok: boolean | null;
    notes: string[];
  };
}

const MiB = 1024;

interface CpuUse {
  /** The server's process tree (including children it reaped). */
  serverS: number;
  /** smtp-source and xargs (children of this process, reaped). */
  generatorS: number;
  /** This Node process itself (spawning, sampling). */
  benchS: number;
  /** The whole machine, all CPUs. */
  machineS: number;
  /** machine - server - generator - bench: anything else running meanwhile. */
  otherS: number;
  /** machine CPU seconds available in the window (cores x wall). */
  capacityS: number;
}

/** Runs fn and accounts the CPU used meanwhile by the server tree, the generator, this process and the machine. */
async function measureCpu<T>(serverRoot: number | undefined, fn: () => Promise<T>): Promise<{ value: T; cpu: CpuUse }> {
  const server0 = serverRoot !== undefined ? treeCpuSeconds(serverRoot) : 0;
  const gen0 = reapedChildrenCpuSeconds(process.pid);
  const self0 = process.cpuUsage();
  const machine0 = machineBusyCpuSeconds();
  const t0 = performance.now();
  const value = await fn();
  const wallS = (performance.now() - t0) / 1000;
  const serverS = serverRoot !== undefined ? treeCpuSeconds(serverRoot) - server0 : 0;
  const generatorS = reapedChildrenCpuSeconds(process.pid) - gen0;
  const selfUse = process.cpuUsage(self0);
  const benchS = (selfUse.user + selfUse.system) / 1e6;
  const machineS = machineBusyCpuSeconds() - machine0;
  return {
    value,
    cpu: {
      serverS,
      generatorS,
      benchS,
      machineS,
      otherS: Math.max(0, machineS - serverS - generatorS - benchS),
      capacityS: wallS * os.availableParallelism(),
    },
  };
}

async function runPostfixOnce(pf: PostfixInstance, spec: LoadSpec, rss: RssSampler): Promise<Omit<RunRecord, "run" | "order">> {
  await pf.waitForEmptyQueue(120_000);
  const offset = await fileSize(pf.logPath);
  rss.start();
  const { value: load, cpu } = await measureCpu(pf.masterPid, () => runLoad(spec));
  const peakKiB = rss.stop();
  const snap = sampleTrees(pf.masterPid !== undefined ? [pf.masterPid] : []);
  const notes: string[] = [];
  try {
    await pf.waitForEmptyQueue(120_000);
  } catch (e) {
    notes.push(e instanceof Error ? e.message : String(e));
  }
  // The log is written asynchronously by postlogd: wait until every session's
  // summary line is in (or give up after 10 s).
  let count = countPostfixLog(await readFrom(pf.logPath, offset), pf.syslogName);
  const deadline = Date.now() + 10_000;
  while ((count.connections < load.connections || count.delivered < count.accepted) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    count = countPostfixLog(await readFrom(pf.logPath, offset), pf.syslogName);
  }
  // In batch mode only the totals are exact; the split over connections is not (see load.ts).
  const exactSplit = spec.perConnection === 1 || (spec.perConnectionMode ?? "exact") === "exact";
  const perConnOk = !exactSplit || Object.keys(count.perConnection).every((k) => Number(k) === spec.perConnection);
  const ok = count.accepted === spec.messages && count.connections === load.connections && perConnOk && count.delivered === count.accepted;
  if (!ok) {
    notes.push(
      `expected ${spec.messages} messages over ${load.connections} connections of ${spec.perConnection}; ` +
        `log says ${count.accepted} accepted over ${count.connections} connections ${JSON.stringify(count.perConnection)}, ${count.delivered} discarded`,
    );
  }
  notes.push(...count.problems);
  return {
    server: "postfix",
    perConnection: spec.perConnection,
    ok: load.ok && ok,
    messages: spec.messages,
    wallMs: load.wallMs,
    msgsPerSec: load.ok ? spec.messages / (load.wallMs / 1000) : null,
    peakRssMiB: peakKiB / MiB,
    pssAfterRunMiB: snap.pssKiB / MiB,
    processesAfterRun: snap.processes,
    cpu,
    serverCpuMsPerMsg: load.ok ? (cpu.serverS * 1000) / spec.messages : null,
    warnings: [],
    load,
    verify: {
      accepted: count.accepted,
      connections: count.connections,
      perConnection: count.perConnection,
      delivered: count.delivered,
      source: "postfix maillog: smtpd 'disconnect from ... data=N' lines, discard status=sent lines",
      ok,
      notes,
    },
  };
}

async function runWardmailOnce(wm: WardmailInstance, spec: LoadSpec, rss: RssSampler, server: ServerName = "wardmail", scannerPid?: number): Promise<Omit<RunRecord, "run" | "order">> {
  const before = await wm.waitSettled(120_000);
  rss.start();
  const scanner0 = scannerPid !== undefined ? treeCpuSeconds(scannerPid) : 0;
  const { value: load, cpu } = await measureCpu(wm.pid, () => runLoad(spec));
  const scannerS = scannerPid !== undefined ? treeCpuSeconds(scannerPid) - scanner0 : 0;
  const peakKiB = rss.stop();
  const snap = sampleTrees([wm.pid]);
  const after = await wm.waitSettled(120_000);
  const notes: string[] = [];
  let accepted: number | null = null;
  let ok: boolean | null = null;
  if (before && after) {
    accepted = after.delivered + after.queued - (before.delivered + before.queued);
    ok = accepted === spec.messages;
    if (!ok) notes.push(`expected ${spec.messages} accepted, counted ${accepted} (${after.source})`);
  } else {
    notes.push("accepted count not verified: countWardmailAccepted() (bench/wardmail.ts) returned nothing");
  }
  if (wm.child.exitCode !== null || wm.child.signalCode !== null) notes.push("wardmail exited during the run");
  return {
    server,
    ...(scannerPid !== undefined ? { scannerCpuMsPerMsg: load.ok ? (scannerS * 1000) / spec.messages : null } : {}),
    perConnection: spec.perConnection,
    ok: load.ok && ok !== false,
    messages: spec.messages,
    wallMs: load.wallMs,
    msgsPerSec: load.ok ? spec.messages / (load.wallMs / 1000) : null,
    peakRssMiB: peakKiB / MiB,
    pssAfterRunMiB: snap.pssKiB / MiB,
    processesAfterRun: snap.processes,
    cpu,
    serverCpuMsPerMsg: load.ok ? (cpu.serverS * 1000) / spec.messages : null,
    warnings: [],
    load,
    verify: {
      accepted,
      connections: null,
      perConnection: null,
      delivered: after && before ? after.delivered - before.delivered : null,
      source: after ? after.source : "none",
      ok,
      notes,
    },
  };
}

/** Says when the server did not have (most of) the machine to itself during a run. */
function contentionWarnings(cpu: CpuUse): string[] {
  const out: string[] = [];
  if (cpu.capacityS <= 0) return out;
  const gen = cpu.generatorS / cpu.capacityS;
  const other = cpu.otherS / cpu.capacityS;
  if (gen > 0.2) {
    out.push(`note: smtp-source itself used ${(gen * 100).toFixed(0)}% of the machine's CPU, which the server did not have (see --conn-mode in bench/README.md)`);
  }
  if (other > 0.15) out.push(`note: other processes used ${(other * 100).toFixed(0)}% of the machine's CPU during this run`);
  return out;
}

// --- reporting ---------------------------------------------------------------------

/** The wardmail+rspamd runs of one case: median rate, Wardmail's and rspamd's CPU per message. */
function rspamdSummary(records: readonly RunRecord[], perConn: number): Record<string, number | null> {
  const rs = records.filter((r) => r.server === RSPAMD_SERVER && r.perConnection === perConn && r.ok);
  const nums = (xs: (number | null | undefined)[]): number[] => xs.filter((x): x is number => typeof x === "number");
  return {
    rspamdMedianMsgsPerSec: median(nums(rs.map((r) => r.msgsPerSec))),
    rspamdWardmailMedianCpuMsPerMsg: median(nums(rs.map((r) => r.serverCpuMsPerMsg))),
    rspamdMedianCpuMsPerMsg: median(nums(rs.map((r) => r.rspamdCpuMsPerMsg))),
  };
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
    loadavgAtStart: os.loadavg(),
  };
}

// --- main ----------------------------------------------------------------------------

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  if (!postfixAvailable()) {
    console.error(`bench: ${POSTFIX_SKIP_REASON}`);
    return 1;
  }
  const servers: ServerName[] = opt.only ? [opt.only] : ["postfix", "wardmail"];
  if (opt.rspamd && opt.only !== "postfix") servers.push(RSPAMD_SERVER);
  if (opt.spoolPlain && servers.includes("wardmail")) servers.push("wardmail-plain");
  if (opt.antivirus) {
    const missing = clamdMissing();
    if (missing !== undefined) {
      console.error(`bench: --antivirus: ${missing}`);
      return 1;
    }
    servers.push("wardmail-av");
  }
  const machine = machineInfo();
  const startedAt = new Date().toISOString();

  let pf: PostfixInstance | undefined;
  let wm: WardmailInstance | undefined;
  let wmR: WardmailInstance | undefined;
  let spam: SpamBench | undefined;
  let wmPlain: WardmailInstance | undefined;
  let wmAv: WardmailInstance | undefined;
  let clamd: Clamd | undefined;
  const emergency = (): void => {
    killLoadChildren();
    killWardmailSync();
  };
  process.on("exit", emergency);
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\nbench: ${sig}, stopping servers`);
    emergency();
    process.exit(130); // postfix.ts's exit hook kills the Postfix instance
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const records: RunRecord[] = [];
  try {
    // Start only the servers being measured.
    if (servers.includes("postfix")) {
      pf = await startPostfix({ mode: "discard", extraMain: { in_flow_delay: opt.postfixInFlowDelay } });
      console.log(`postfix ${String(machine.postfix)}: 127.0.0.1:${pf.port} (discard after durable queueing, in_flow_delay = ${postconfValue(pf.configDir, "in_flow_delay")}), dir ${pf.dir}`);
    }
    const launch = (extra?: string): Promise<WardmailInstance> => {
      const template = opt.wardmailCmd;
      // With --antivirus the plain Wardmail must not scan with a clamd it finds by itself.
      const all = `${extra ?? ""}${opt.antivirus ? "[antivirus]\nenabled = false\n" : ""}`;
      const base = { delivery: opt.wardmailDelivery, limits: opt.wardmailLimits, ...(all !== "" ? { extra: all } : {}) };
      return startWardmail(
        template === undefined
          ? base
          : {
              ...base,
              command: (p: WardmailPaths): Command => {
                const [command, ...args] = template
                  .trim()
                  .split(/\s+/)
                  .map((a) => a.replaceAll("{config}", p.configPath).replaceAll("{smtpPort}", String(p.smtpPort)).replaceAll("{dataDir}", p.dataDir));
                return { command: command!, args, cwd: REPO_ROOT };
              },
            },
      );
    };
    if (servers.includes("wardmail")) {
      wm = await launch();
      console.log(`wardmail: 127.0.0.1:${wm.paths.smtpPort} pid ${wm.pid}, dir ${wm.paths.dir} (encrypted spool)`);
    }
    if (servers.includes("wardmail-plain")) {
      wmPlain = await launch("[spool]\nencrypt = false\n");
      console.log(`wardmail-plain: 127.0.0.1:${wmPlain.paths.smtpPort} pid ${wmPlain.pid}, dir ${wmPlain.paths.dir} (spool.encrypt = false)`);
    }
    if (servers.includes(RSPAMD_SERVER)) {
      spam = await startSpamBench();
      wmR = await startWardmail({ delivery: opt.wardmailDelivery, limits: opt.wardmailLimits, extra: spam.extra });
      console.log(`wardmail+rspamd: 127.0.0.1:${wmR.paths.smtpPort} pid ${wmR.pid}, rspamd ${spam.rspamd.url} pid ${spam.rspamd.daemon.pid}`);
    }
    if (servers.includes("wardmail-av")) {
      clamd = await startClamd();
      wmAv = await startWardmail({ delivery: opt.wardmailDelivery, limits: opt.wardmailLimits, extra: `[antivirus]\nclamd = "127.0.0.1:${clamd.port}"\n` });
      console.log(`wardmail-av: 127.0.0.1:${wmAv.paths.smtpPort} pid ${wmAv.pid}, clamd 127.0.0.1:${clamd.port} pid ${clamd.pid}`);
    }
    // Postfix's tree has ~60 processes: sampling it costs ~4 ms, so every 500 ms
    // (its memory is a steady process pool); Wardmail's costs ~0.2 ms: 100 ms.
    const pfRss = new RssSampler(() => (pf?.masterPid !== undefined ? [pf.masterPid] : []), { intervalMs: 500 });
    const wmRss = new RssSampler(() => (wm ? [wm.pid] : []));
    const wmPlainRss = new RssSampler(() => (wmPlain ? [wmPlain.pid] : []));
    const wmRssWhole = new RssSampler(() => (wm ? [wm.pid] : []));
    const avRss = new RssSampler(() => (wmAv ? [wmAv.pid] : []));
    if (wm) wmRssWhole.start();

    const spec = (port: number, perConnection: number, messages: number): LoadSpec => ({
      port,
      sessions: opt.sessions,
      messages,
      perConnection,
      perConnectionMode: opt.connMode,
      size: opt.size,
      from: "sender@bench.test",
      to: "sink@bench.test",
      helo: "client.bench.test",
      timeoutMs: opt.timeoutMs,
    });
    const wmRRss = new RssSampler(() => (wmR ? [wmR.pid] : []));
    const scanning = async (perConn: number, messages: number): Promise<Omit<RunRecord, "run" | "order">> => {
      const { value, rspamdCpuMsPerMsg } = await spam!.measure(messages, () => runWardmailOnce(wmR!, spec(wmR!.paths.smtpPort, perConn, messages), wmRRss));
      return { ...value, server: RSPAMD_SERVER, rspamdCpuMsPerMsg: value.load.ok ? rspamdCpuMsPerMsg : null };
    };
    const once = async (server: ServerName, perConn: number, messages: number): Promise<Omit<RunRecord, "run" | "order">> =>
      server === "postfix"
        ? runPostfixOnce(pf!, spec(pf!.port, perConn, messages), pfRss)
        : server === RSPAMD_SERVER
          ? scanning(perConn, messages)
          : server === "wardmail-plain"
            ? runWardmailOnce(wmPlain!, spec(wmPlain!.paths.smtpPort, perConn, messages), wmPlainRss, "wardmail-plain")
            : server === "wardmail-av"
              ? runWardmailOnce(wmAv!, spec(wmAv!.paths.smtpPort, perConn, messages), avRss, "wardmail-av", clamd!.pid)
              : runWardmailOnce(wm!, spec(wm!.paths.smtpPort, perConn, messages), wmRss);

    if (opt.warmup > 0) {
      for (const s of servers) {
        const w = await once(s, 1, opt.warmup);
        console.log(`warm-up ${s}: ${opt.warmup} messages, ${fmt(w.msgsPerSec)} msg/s${w.ok ? "" : ` (NOT OK: ${[...w.load.errors, ...w.verify.notes].join("; ")})`}`);
      }
    }

    console.log(
      `\n${opt.sessions} concurrent sessions, ${opt.size}-byte bodies, ${opt.messages} messages per run, ${opt.runs} runs per case; servers alternate first/second each run.`,
    );
    for (const perConn of opt.cases) {
      for (let run = 1; run <= opt.runs; run++) {
        const order = run % 2 === 1 ? servers : [...servers].reverse();
        for (const [i, s] of order.entries()) {
          const r: RunRecord = { ...(await once(s, perConn, opt.messages)), run, order: i + 1 };
          r.warnings = contentionWarnings(r.cpu);
          records.push(r);
          const problems = [...r.load.errors, ...r.verify.notes, ...r.warnings];
          console.log(
            `  ${caseName(perConn)} run ${run} ${s.padEnd(14)} ${fmt(r.msgsPerSec).padStart(6)} msg/s  ${(r.wallMs / 1000).toFixed(2)} s  peak RSS ${fmt(r.peakRssMiB, 1)} MiB, PSS after ${fmt(r.pssAfterRunMiB, 1)} MiB in ${r.processesAfterRun} processes` +
              `\n      CPU s: server ${r.cpu.serverS.toFixed(2)} (${fmt(r.serverCpuMsPerMsg, 2)} ms/msg), smtp-source ${r.cpu.generatorS.toFixed(2)}, ` +
              `bench ${r.cpu.benchS.toFixed(2)}, other ${r.cpu.otherS.toFixed(2)}, machine ${r.cpu.machineS.toFixed(2)} of ${r.cpu.capacityS.toFixed(2)}` +
              `${r.verify.ok === true ? "  verified" : ""}${r.ok ? "" : "  NOT OK"}${problems.length ? `\n      ${problems.join("\n      ")}` : ""}`,
          );
        }
      }
    }
    const wmPeakWhole = wm ? wmRssWhole.stop() / MiB : null;

    // Table.
    const plain = servers.includes("wardmail-plain");
    const rows: string[][] = [["case", "run", `Postfix msg/s (in_flow_delay ${opt.postfixInFlowDelay})`, "Wardmail msg/s", "ratio W/P", "Wardmail peak RSS MB", "Postfix PSS MB",
      ...(plain ? ["Wardmail plain-spool msg/s", "ratio encrypted/plain"] : [])]];
    const summary: Record<string, unknown>[] = [];
    for (const perConn of opt.cases) {
      const ratios: number[] = [];
      const pRates: number[] = [];
      const wRates: number[] = [];
      const pCpu: number[] = [];
      const wCpu: number[] = [];
      const plainRates: number[] = [];
      const encRatios: number[] = [];
      const plainCpu: number[] = [];
      for (let run = 1; run <= opt.runs; run++) {
        const p = records.find((r) => r.server === "postfix" && r.perConnection === perConn && r.run === run);
        const w = records.find((r) => r.server === "wardmail" && r.perConnection === perConn && r.run === run);
        const pr = p?.ok ? p.msgsPerSec : null;
        const wr = w?.ok ? w.msgsPerSec : null;
        const ratio = pr && wr ? wr / pr : null;
        if (pr) pRates.push(pr);
        if (wr) wRates.push(wr);
        if (ratio) ratios.push(ratio);
        if (p?.ok && p.serverCpuMsPerMsg !== null) pCpu.push(p.serverCpuMsPerMsg);
        if (w?.ok && w.serverCpuMsPerMsg !== null) wCpu.push(w.serverCpuMsPerMsg);
        const q = records.find((r) => r.server === "wardmail-plain" && r.perConnection === perConn && r.run === run);
        const qr = q?.ok ? q.msgsPerSec : null;
        const encRatio = wr && qr ? wr / qr : null;
        if (qr) plainRates.push(qr);
        if (encRatio) encRatios.push(encRatio);
        if (q?.ok && q.serverCpuMsPerMsg !== null) plainCpu.push(q.serverCpuMsPerMsg);
        rows.push([caseName(perConn), String(run), fmt(pr), fmt(wr), fmt(ratio, 2), fmt(w?.peakRssMiB, 1), fmt(p?.pssAfterRunMiB, 1), ...(plain ? [fmt(qr), fmt(encRatio, 3)] : [])]);
      }
      summary.push({
        case: caseName(perConn),
        perConnection: perConn,
        postfixMedianMsgsPerSec: median(pRates),
        wardmailMedianMsgsPerSec: median(wRates),
        medianRatio: median(ratios),
        postfixMedianCpuMsPerMsg: median(pCpu),
        wardmailMedianCpuMsPerMsg: median(wCpu),
        okRuns: { postfix: pRates.length, wardmail: wRates.length, ...(plain ? { wardmailPlain: plainRates.length } : {}) },
        ...(spam ? rspamdSummary(records, perConn) : {}),
        ...(plain
          ? { wardmailPlainMedianMsgsPerSec: median(plainRates), medianRatioEncryptedOverPlain: median(encRatios), wardmailPlainMedianCpuMsPerMsg: median(plainCpu) }
          : {}),
      });
    }
    console.log(`\n${table(rows)}`);
    console.log(
      "(msg/s: messages / wall-clock time of the load; ratio: Wardmail/Postfix in the same run; Wardmail RSS: peak VmRSS summed over its\n" +
        " process tree, sampled every 100 ms; Postfix PSS: summed over its process pool right after the load)\n",
    );
    for (const s of summary) {
      console.log(
        `median ${String(s.case).padEnd(12)} Postfix (in_flow_delay ${opt.postfixInFlowDelay}) ${fmt(s.postfixMedianMsgsPerSec as number | null)} msg/s, Wardmail ${fmt(s.wardmailMedianMsgsPerSec as number | null)} msg/s, ratio W/P ${fmt(s.medianRatio as number | null, 2)}` +
          `; server CPU per message: Postfix ${fmt(s.postfixMedianCpuMsPerMsg as number | null, 2)} ms, Wardmail ${fmt(s.wardmailMedianCpuMsPerMsg as number | null, 2)} ms` +
          (plain
            ? `\n       Wardmail plain spool ${fmt(s.wardmailPlainMedianMsgsPerSec as number | null)} msg/s (${fmt(s.wardmailPlainMedianCpuMsPerMsg as number | null, 2)} ms CPU/msg), encrypted/plain ${fmt(s.medianRatioEncryptedOverPlain as number | null, 3)}`
            : ""),
      );
    }
    for (const s of summary) {
      if (s.rspamdMedianMsgsPerSec === undefined) continue;
      console.log(spamSummary({ case: String(s.case), wardmail: s.wardmailMedianMsgsPerSec as number | null, scanning: s.rspamdMedianMsgsPerSec as number | null, postfix: s.postfixMedianMsgsPerSec as number | null, serverCpu: s.rspamdWardmailMedianCpuMsPerMsg as number | null, rspamdCpu: s.rspamdMedianCpuMsPerMsg as number | null }));
    }
    if (wmPeakWhole !== null) console.log(`Wardmail peak RSS over the whole bench: ${wmPeakWhole.toFixed(1)} MiB`);
    if (opt.antivirus) {
      for (const perConn of opt.cases) {
        const ok = (server: ServerName, run: number) => records.find((r) => r.server === server && r.perConnection === perConn && r.run === run && r.ok);
        const avRates: number[] = [];
        const vsW: number[] = [];
        const vsP: number[] = [];
        const scan: number[] = [];
        const avCpu: number[] = [];
        for (let run = 1; run <= opt.runs; run++) {
          const a = ok("wardmail-av", run);
          const w = ok("wardmail", run);
          const p = ok("postfix", run);
          if (!a?.msgsPerSec) continue;
          avRates.push(a.msgsPerSec);
          if (w?.msgsPerSec) vsW.push(a.msgsPerSec / w.msgsPerSec);
          if (p?.msgsPerSec) vsP.push(a.msgsPerSec / p.msgsPerSec);
          if (typeof a.scannerCpuMsPerMsg === "number") scan.push(a.scannerCpuMsPerMsg);
          if (a.serverCpuMsPerMsg !== null) avCpu.push(a.serverCpuMsPerMsg);
        }
        const s = { case: caseName(perConn), wardmailAvMedianMsgsPerSec: median(avRates), medianRatioAvToWardmail: median(vsW), medianRatioAvToPostfix: median(vsP), clamdMedianCpuMsPerMsg: median(scan), wardmailAvMedianCpuMsPerMsg: median(avCpu) };
        summary.push(s);
        console.log(
          `median ${s.case.padEnd(12)} Wardmail with ClamAV ${fmt(s.wardmailAvMedianMsgsPerSec)} msg/s, ratio AV/Wardmail ${fmt(s.medianRatioAvToWardmail, 2)}, ratio AV/Postfix ${fmt(s.medianRatioAvToPostfix, 2)}` +
            `; CPU per message: Wardmail ${fmt(s.wardmailAvMedianCpuMsPerMsg, 2)} ms + clamd ${fmt(s.clamdMedianCpuMsPerMsg, 2)} ms`,
        );
      }
    }

    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgAtEnd: os.loadavg() },
      params: {
        servers,
        wardmailCommand: wm ? `${wm.command.command} ${wm.command.args.join(" ")}` : null,
        runs: opt.runs,
        messagesPerRun: opt.messages,
        sessions: opt.sessions,
        bodyBytes: opt.size,
        cases: opt.cases,
        perConnectionMode: opt.connMode,
        warmupMessages: opt.warmup,
        timeoutMs: opt.timeoutMs,
        loadGenerator: SMTP_SOURCE_BIN,
        postfix: "discard mode: durable queue file (fsync) before 250, then discard: transport",
        postfixInFlowDelay: opt.postfixInFlowDelay,
      },
      summary,
      wardmailPeakRssMiBWholeBench: wmPeakWhole,
      runs: records,
    };
    await writeResult(opt.out, "bench", startedAt, result);
    return records.every((r) => r.ok) ? 0 : 1;
  } finally {
    killLoadChildren();
    if (wm && spam) console.log(loopDelayText("wardmail", await wm.stopAndReadLog()));
    else if (wm) await wm.stop();
    if (wmPlain) await wmPlain.stop();
    if (wmR) console.log(loopDelayText(RSPAMD_SERVER, await wmR.stopAndReadLog()));
    if (spam) await spam.rspamd.stop();
    if (wmAv) await wmAv.stop();
    if (clamd) await clamd.stop();
    if (pf) await pf.stop();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
