// One measured run of bench/run.ts against one server: smtp-source's load,
// the CPU used meanwhile (server tree, generator, bench, machine), the
// server's memory, and the verification that every message was accepted
// (Postfix: its log; Wardmail: its delivered and queued counts).
import os from "node:os";
import type { PostfixInstance } from "../../test/peers/postfix.ts";
import { machineBusyCpuSeconds, reapedChildrenCpuSeconds, sampleTrees, treeCpuSeconds, type RssSampler } from "../../test/peers/procs.ts";
import { runLoad, type LoadResult, type LoadSpec } from "../load.ts";
import { fileSize, readFrom } from "../log-tail.ts";
import type { WardmailInstance } from "../wardmail.ts";
import type { ServerName } from "./options.ts";
import { countPostfixLog } from "./postfix-log.ts";

export interface RunRecord {
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

export const MiB = 1024;

export interface CpuUse {
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

/** What both servers' runs record alike: the load, its rate, memory and CPU. */
function measured(spec: LoadSpec, load: LoadResult, cpu: CpuUse, peakKiB: number, snap: { pssKiB: number; processes: number }): Pick<RunRecord, "messages" | "wallMs" | "msgsPerSec" | "peakRssMiB" | "pssAfterRunMiB" | "processesAfterRun" | "cpu" | "serverCpuMsPerMsg" | "warnings" | "load"> {
  return {
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
  };
}

export async function runPostfixOnce(pf: PostfixInstance, spec: LoadSpec, rss: RssSampler): Promise<Omit<RunRecord, "run" | "order">> {
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
    ...measured(spec, load, cpu, peakKiB, snap),
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

export async function runWardmailOnce(wm: WardmailInstance, spec: LoadSpec, rss: RssSampler, server: ServerName = "wardmail", scannerPid?: number): Promise<Omit<RunRecord, "run" | "order">> {
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
    ...measured(spec, load, cpu, peakKiB, snap),
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
export function contentionWarnings(cpu: CpuUse): string[] {
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
