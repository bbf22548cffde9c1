// One run of the outbound bench: one server relays N injected messages to
// the sink while its CPU, the sink's, smtp-source's and the machine's are
// counted; then the run is verified (every message at the sink over TLS,
// the server's log and queue agree) and its record returned.
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { PostfixInstance } from "../../test/peers/postfix.ts";
import { cpuSecondsWithReaped, machineBusyCpuSeconds, reapedChildrenCpuSeconds, sampleTrees, treeCpuSeconds, type RssSampler } from "../../test/peers/procs.ts";
import { runLoad, type LoadResult, type LoadSpec } from "../load.ts";
import { fileSize, readFrom } from "../log-tail.ts";
import type { WardmailInstance } from "../wardmail.ts";
import { countPostfixLog, countWardmailLog, type ServerLogCount } from "./logs.ts";
import type { Options, ServerName } from "./options.ts";
import { FROM, TO, WARDMAIL_HELO, wardmailQueued } from "./servers.ts";
import { nowMs, type Sink, type SinkClientStats, type SinkConnection } from "./sink.ts";

export interface CpuUse {
  serverS: number;
  sinkS: number;
  generatorS: number;
  benchS: number;
  machineS: number;
  otherS: number;
  capacityS: number;
}

export interface RunRecord {
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

export interface Ctx {
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

export async function runOnce(ctx: Ctx, server: ServerName, messages: number, label: string): Promise<Omit<RunRecord, "run" | "order">> {
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
    const text = await readFrom(logPath, offset, { missingOk: true });
    log = server === "postfix" ? countPostfixLog(text, ctx.pf!.syslogName) : countWardmailLog(text);
    if ((log.accepted >= messages && log.sent >= messages) || Date.now() >= logDeadline) break;
    await sleep(200);
  }
  if (opt.keepLogs !== undefined) await writeFile(path.join(opt.keepLogs, `${server}-${label}.log`), await readFrom(logPath, offset, { missingOk: true }));
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
