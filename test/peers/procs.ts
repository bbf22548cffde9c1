// Linux /proc helpers: process trees, resident memory, and a peak-RSS sampler.
// Used to stop leftover processes of a peer we started (by PID, never by name)
// and to measure a server's memory during the benchmark.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** All numeric PIDs currently in /proc. */
export function listPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (/^\d+$/.test(name)) out.push(Number(name));
  }
  return out;
}

/** Parent PID from /proc/PID/stat, or undefined if the process is gone. */
export function ppidOf(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may contain spaces and ')', so split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ppid = Number(rest[1]);
  return Number.isFinite(ppid) ? ppid : undefined;
}

/** Process state letter (R, S, Z, ...) or undefined if gone. */
export function stateOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

/** True if the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const s = stateOf(pid);
  return s !== undefined && s !== "Z" && s !== "X";
}

/** Direct children of pid from /proc/PID/task/TID/children, or undefined if the kernel lacks it. */
function childrenOf(pid: number): number[] | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT" && tid === String(pid)) return undefined;
      continue;
    }
    for (const w of text.split(" ")) if (w) out.push(Number(w));
  }
  return out;
}

/** rootPid and all its descendants (empty if rootPid is gone). */
export function processTree(rootPid: number): number[] {
  if (stateOf(rootPid) === undefined) return [];
  const out: number[] = [];
  const seen = new Set<number>();
  const todo = [rootPid];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    const kids = childrenOf(pid);
    if (kids === undefined) return processTreeByScan(rootPid);
    todo.push(...kids);
  }
  return out;
}

/** Same as processTree, by reading every /proc/PID/stat (kernels without task/TID/children). */
export function processTreeByScan(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of listPids()) {
    const pp = ppidOf(pid);
    if (pp === undefined) continue;
    const list = children.get(pp);
    if (list) list.push(pid);
    else children.set(pp, [pid]);
  }
  if (stateOf(rootPid) === undefined) return [];
  const out: number[] = [];
  const todo = [rootPid];
  const seen = new Set<number>();
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

/** Clock ticks per second for /proc CPU times (sysconf(_SC_CLK_TCK); 100 on Linux x86-64). */
export const CLK_TCK = 100;

/**
 * CPU seconds of one process including its reaped children
 * (utime + stime + cutime + cstime from /proc/PID/stat); 0 if gone.
 */
export function cpuSecondsWithReaped(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return 0;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields after "(comm)": state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14.
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  return Number.isFinite(ticks) ? ticks / CLK_TCK : 0;
}

/** CPU seconds of the reaped children of a process (cutime + cstime); 0 if gone. */
export function reapedChildrenCpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return 0;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[13]) + Number(f[14]);
  return Number.isFinite(ticks) ? ticks / CLK_TCK : 0;
}

/**
 * CPU seconds used so far by a process tree: the sum of cpuSecondsWithReaped
 * over the tree. When a member exits and its parent (also a member) reaps it,
 * its time moves into the parent's cutime/cstime, so the difference of two
 * readings is the CPU used in between, even with processes coming and going.
 */
export function treeCpuSeconds(rootPid: number): number {
  let sum = 0;
  for (const pid of processTree(rootPid)) sum += cpuSecondsWithReaped(pid);
  return sum;
}

/** Busy CPU seconds of the whole machine so far, all CPUs (from /proc/stat: total minus idle and iowait). */
export function machineBusyCpuSeconds(): number {
  let line: string | undefined;
  try {
    line = readFileSync("/proc/stat", "latin1").split("\n")[0];
  } catch {
    return 0;
  }
  const f = (line ?? "").trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return (total - (f[3] ?? 0) - (f[4] ?? 0)) / CLK_TCK;
}

/** VmRSS of one process in KiB (0 if gone or a zombie/kernel thread). */
export function rssKiB(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return 0;
  }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) : 0;
}

/**
 * Proportional set size of one process in KiB (shared pages divided among the
 * processes sharing them), from /proc/PID/smaps_rollup; 0 if unavailable.
 * Summing PSS over many processes (Postfix's smtpd pool) does not count
 * shared libraries once per process as summing RSS does.
 */
export function pssKiB(pid: number): number {
  let rollup: string;
  try {
    rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "latin1");
  } catch {
    return 0;
  }
  const m = /^Pss:\s+(\d+)\s+kB/m.exec(rollup);
  return m ? Number(m[1]) : 0;
}

/** Sum of VmRSS over a process and its descendants, in KiB. */
export function treeRssKiB(rootPid: number): number {
  let sum = 0;
  for (const pid of processTree(rootPid)) sum += rssKiB(pid);
  return sum;
}

/** One sample of summed VmRSS and PSS (KiB) over process trees, with the process count. */
export function sampleTrees(roots: number[]): { rssKiB: number; pssKiB: number; processes: number } {
  let rss = 0;
  let pss = 0;
  let processes = 0;
  for (const root of roots) {
    for (const pid of processTree(root)) {
      rss += rssKiB(pid);
      pss += pssKiB(pid);
      processes++;
    }
  }
  return { rssKiB: rss, pssKiB: pss, processes };
}

/** The working directory of a process, or undefined. */
export function cwdOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** The value of one environment variable of a process, or undefined. */
export function envOf(pid: number, name: string): string | undefined {
  let env: string;
  try {
    env = readFileSync(`/proc/${pid}/environ`, "latin1");
  } catch {
    return undefined;
  }
  const prefix = `${name}=`;
  for (const kv of env.split("\0")) if (kv.startsWith(prefix)) return kv.slice(prefix.length);
  return undefined;
}

/**
 * Samples the summed VmRSS of process trees at a fixed interval and keeps the
 * peak (reading PSS too is optional: smaps_rollup costs ~1 ms per process).
 * `roots` is called at every tick, so the caller may change it.
 */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private peak = 0;
  private peakPss = 0;
  private samples = 0;
  private readonly roots: () => number[];
  private readonly intervalMs: number;
  private readonly pss: boolean;

  constructor(roots: () => number[], opts: { intervalMs?: number; pss?: boolean } = {}) {
    this.roots = roots;
    this.intervalMs = opts.intervalMs ?? 100;
    this.pss = opts.pss ?? false;
  }

  /** Starts (or restarts) sampling with the peaks reset to zero. */
  start(): void {
    this.stop();
    this.peak = 0;
    this.peakPss = 0;
    this.samples = 0;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling; returns the peak summed RSS in KiB (one last sample is taken). */
  stop(): number {
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.tick();
    }
    return this.peak;
  }

  /** Peak summed VmRSS in KiB. */
  get peakKiB(): number {
    return this.peak;
  }

  /** Peak summed PSS in KiB (0 unless constructed with pss: true, or where smaps_rollup is unavailable). */
  get peakPssKiB(): number {
    return this.peakPss;
  }

  get sampleCount(): number {
    return this.samples;
  }

  private tick(): void {
    let rss = 0;
    let pss = 0;
    for (const root of this.roots()) {
      for (const pid of processTree(root)) {
        rss += rssKiB(pid);
        if (this.pss) pss += pssKiB(pid);
      }
    }
    this.samples++;
    if (rss > this.peak) this.peak = rss;
    if (pss > this.peakPss) this.peakPss = pss;
  }
}
