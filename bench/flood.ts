// Acceptance rate of a well-behaved client on a quiet server and under a
// flood from one address plus a slowloris from many, on the built server
// (dist/) with every limit at its default. Target: under attack, at least
// 80% of the quiet rate.
//
//   npm run build && node bench/flood.ts [--runs 2] [--messages 2000] [--sessions 20] [--size 4096]
//       [--flood 100] [--flood-delay-ms 100] [--slowloris-addresses 200] [--slowloris-per-address 10]
//       [--buildup-s 15] [--out FILE]
//
// The well-behaved client is smtp-source from 127.0.0.1 (one message per
// connection, --sessions at a time). It is in relay.trusted_networks, so the
// per-client limits (30 connections, 120 a minute) do not cap its own rate:
// the ratio measures what the attack takes from it, not what the limits do
// (test/dos.test.ts proves those). The attackers are not trusted:
//
// - flood: --flood loops from 127.0.0.2, each connecting again --flood-delay-ms
//   after its connection ends; a greeted connection sends EHLO and then an
//   unknown command after each reply (the tarpit slows it, 421 after
//   max_errors). Most attempts get 421 at once (max_connections_per_client).
// - slowloris: --slowloris-per-address connections to the MX port and a
//   fifth as many to submission (587) from each of --slowloris-addresses
//   addresses (127.0.4.1, ...), each sending one byte of a command line every
//   2 s, connecting again 500 ms after the server closed it.
//
// Each run: the quiet measurement, then the attack (child process
// `node bench/flood.ts --attacker ...`) with --buildup-s to fill the
// listeners, then the same measurement under attack, then the attack stops.
// Bounded: each smtp-source run is killed after 180 s, the attacker after the
// measurement.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { SMTP_SOURCE_BIN } from "../test/peers/postfix.ts";
import { LIMIT_SPECS } from "../src/limits/index.ts";
import { median, writeResult } from "./report.ts";
import { REPO_ROOT, startWardmail, type WardmailInstance } from "./wardmail.ts";

const { values } = parseArgs({
  options: {
    attacker: { type: "boolean", default: false },
    "mx-port": { type: "string" },
    "submission-port": { type: "string" },
    runs: { type: "string", default: "2" },
    messages: { type: "string", default: "2000" },
    sessions: { type: "string", default: "20" },
    size: { type: "string", default: "4096" },
    flood: { type: "string", default: "100" },
    "flood-delay-ms": { type: "string", default: "100" },
    "slowloris-addresses": { type: "string", default: "200" },
    "slowloris-per-address": { type: "string", default: "10" },
    "buildup-s": { type: "string", default: "15" },
    out: { type: "string", default: path.join(REPO_ROOT, "bench", "out", "flood.json") },
  },
  strict: true,
});
const int = (k: keyof typeof values, max: number): number => Math.min(max, Number(values[k]));

interface AttackStats {
  flood: { attempts: number; greeted: number; refused: number };
  /** closedByServer: evicted (421 4.7.0 Server busy), timedOut (421 4.4.2), other. */
  slowloris: { connections: number; refused: number; evicted: number; timedOut: number; otherClose: number; openAtStop: number };
  /** Per second of the attack: slowloris [connections, refused, evicted, timed out], flood [attempts, refused]. */
  timeline?: number[][];
}

// ---------------------------------------------------------------- the attacker (child process)

async function attacker(): Promise<void> {
  const mx = Number(values["mx-port"]);
  const sub = Number(values["submission-port"]);
  const stats: AttackStats = { flood: { attempts: 0, greeted: 0, refused: 0 }, slowloris: { connections: 0, refused: 0, evicted: 0, timedOut: 0, otherClose: 0, openAtStop: 0 } };
  let stop = false;
  const open = new Set<net.Socket>();
  const timeline: number[][] = [];
  const t0 = Date.now();
  const tick = (i: number): void => {
    const sec = Math.min(600, Math.floor((Date.now() - t0) / 1000));
    while (timeline.length <= sec) timeline.push([0, 0, 0, 0, 0, 0]);
    const row = timeline[sec] as number[];
    row[i] = (row[i] ?? 0) + 1;
  };

  /** One connection; resolves when it is closed. onData gets everything received so far. */
  const connection = (port: number, localAddress: string, onData: (s: net.Socket, text: string) => void): Promise<string> =>
    new Promise((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port, localAddress });
      open.add(s);
      let text = "";
      s.on("data", (d: Buffer) => {
        text += d.toString("latin1");
        onData(s, text);
      });
      s.on("error", () => s.destroy());
      s.on("close", () => {
        open.delete(s);
        resolve(text);
      });
    });

  const floodLoop = async (): Promise<void> => {
    while (!stop) {
      stats.flood.attempts++;
      tick(4);
      let counted = false;
      let replies = 0;
      await connection(mx, "127.0.0.2", (s, text) => {
        if (!counted && /^[45]\d\d /m.test(text) && !/^220 /m.test(text)) {
          counted = true;
          stats.flood.refused++;
          tick(5);
          s.destroy();
          return;
        }
        if (!counted && /^220 /m.test(text)) {
          counted = true;
          stats.flood.greeted++;
          s.write("EHLO flood.test\r\n");
          return;
        }
        const n = text.split("\r\n").filter((l) => /^\d\d\d /.test(l)).length;
        while (replies < n - 1) {
          replies++;
          s.write("XYZZY\r\n");
        }
      });
      await sleep(int("flood-delay-ms", 60_000));
    }
  };

  const slowLoop = async (port: number, from: string): Promise<void> => {
    const line = "EHLO slowloris.example.test and some more";
    while (!stop) {
      stats.slowloris.connections++;
      tick(0);
      let refusedAtOnce = false;
      let timer: NodeJS.Timeout | undefined;
      const text = await connection(port, from, (s, text) => {
        if (timer === undefined && /^220 /m.test(text)) {
          let i = 0;
          timer = setInterval(() => s.write(line[i++ % line.length] ?? "x"), 2000);
        } else if (timer === undefined && /^[45]\d\d /m.test(text)) {
          refusedAtOnce = true;
          s.destroy();
        }
      });
      clearInterval(timer);
      if (refusedAtOnce) {
        stats.slowloris.refused++;
        tick(1);
      } else if (text.includes("421 4.7.0 Server busy")) {
        stats.slowloris.evicted++;
        tick(2);
      } else if (text.includes("421 4.4.2")) {
        stats.slowloris.timedOut++;
        tick(3);
      }
      else if (!stop) stats.slowloris.otherClose++;
      await sleep(500);
    }
  };

  const loops: Promise<void>[] = [];
  for (let i = 0; i < int("flood", 1000); i++) loops.push(floodLoop());
  const per = int("slowloris-per-address", 29);
  for (let a = 0; a < int("slowloris-addresses", 2000); a++) {
    const from = `127.0.${4 + Math.floor(a / 250)}.${1 + (a % 250)}`;
    for (let k = 0; k < per; k++) loops.push(slowLoop(mx, from));
    for (let k = 0; k < Math.ceil(per / 5); k++) loops.push(slowLoop(sub, from));
  }
  // The parent says when: a line on stdin.
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  stop = true;
  stats.slowloris.openAtStop = open.size;
  stats.timeline = timeline;
  for (const s of open) s.destroy();
  await Promise.race([Promise.all(loops), sleep(5000)]);
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------- the measurement

/** smtp-source from 127.0.0.1: messages / wall time, or an error. */
function wellBehaved(port: number): Promise<{ rate: number; seconds: number; code: number | null; out: string }> {
  const m = int("messages", 1_000_000);
  const args = ["-s", String(int("sessions", 1000)), "-m", String(m), "-l", String(int("size", 10_000_000)), "-f", "sender@bench.test", "-t", "sink@bench.test", "-M", "client.bench.test", `127.0.0.1:${port}`];
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(SMTP_SOURCE_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => c.kill("SIGKILL"), 180_000);
    c.on("exit", (code) => {
      clearTimeout(killer);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve({ rate: m / seconds, seconds, code, out: out.slice(-2000) });
    });
  });
}

/** User + system CPU seconds of a process (all its threads), 0 when it is gone. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

/**
 * Busy CPU seconds of the whole machine (every core, from /proc/stat) and the
 * children this process has waited for (smtp-source once it exited): what
 * the other processes of a shared machine took during a measurement is the
 * machine's busy time less the server's, the attacker's, smtp-source's and
 * this process's own.
 */
function machineCpu(): { busy: number; self: number; children: number } {
  try {
    const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    const busy = ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / 100;
    const me = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
    return { busy, self: (Number(me[11]) + Number(me[12])) / 100, children: (Number(me[13]) + Number(me[14])) / 100 };
  } catch {
    return { busy: 0, self: 0, children: 0 };
  }
}

/** CPU seconds per thread of a process (by "comm tid"), for the breakdown of where the server's time goes. */
function threadCpu(pid: number | undefined): Map<string, number> {
  const m = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
        const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
        m.set(`${comm} ${tid}`, (Number(f[11]) + Number(f[12])) / 100);
      } catch {
        // the thread ended
      }
    }
  } catch {
    // the process is gone
  }
  return m;
}

/** Threads that used at least 0.05 CPU-s between two threadCpu() readings, busiest first. */
function threadDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const d = [...after].map(([k, v]) => [k, Math.round((v - (before.get(k) ?? 0)) * 100) / 100] as const).filter(([, v]) => v >= 0.05);
  return Object.fromEntries(d.sort((x, y) => y[1] - x[1]));
}

function startAttack(wm: WardmailInstance): { pid: number | undefined; stop: () => Promise<AttackStats | undefined> } {
  const passOn = ["flood", "flood-delay-ms", "slowloris-addresses", "slowloris-per-address"] as const;
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      path.join(REPO_ROOT, "bench", "flood.ts"),
      "--attacker",
      "--mx-port", String(wm.paths.smtpPort),
      "--submission-port", String(wm.paths.submissionPort),
      ...passOn.flatMap((k) => [`--${k}`, String(values[k])]),
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    pid: child.pid,
    stop: async () => {
      child.stdin.write("stop\n");
      await Promise.race([exited, sleep(15_000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
      try {
        return JSON.parse(out.trim().split("\n").pop() ?? "") as AttackStats;
      } catch {
        return undefined;
      }
    },
  };
}

const count = (log: string, msg: string): number => log.split(`"msg":"${msg}"`).length - 1;

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  // Every limit at its default (bench/wardmail.ts raises the per-client ones for its one-address load).
  const defaults = Object.fromEntries(Object.values(LIMIT_SPECS).map((s) => [s.key, s.default]));
  const wm = await startWardmail({ limits: defaults, extra: '[relay]\ntrusted_networks = ["127.0.0.1/32"]' });
  const runs: Record<string, unknown>[] = [];
  let loopDelay: unknown[] = [];
  try {
    console.log(`wardmail pid ${wm.pid}: MX 127.0.0.1:${wm.paths.smtpPort}, submission ${wm.paths.submissionPort}`);
    await wellBehaved(wm.paths.smtpPort); // warm-up
    for (let r = 1; r <= int("runs", 100); r++) {
      let c0 = cpuSeconds(wm.pid);
      let t0 = threadCpu(wm.pid);
      let m0 = machineCpu();
      const quiet = await wellBehaved(wm.paths.smtpPort);
      const quietCpu = cpuSeconds(wm.pid) - c0;
      let m1 = machineCpu();
      const quietOther = m1.busy - m0.busy - quietCpu - (m1.self - m0.self) - (m1.children - m0.children);
      const quietThreads = threadDelta(t0, threadCpu(wm.pid));
      const attack = startAttack(wm);
      // The server's CPU seconds in each second of the attack (buildup and measurement).
      const cpuTimeline: number[] = [];
      let last = cpuSeconds(wm.pid);
      const sampler = setInterval(() => {
        const now = cpuSeconds(wm.pid);
        cpuTimeline.push(Math.round((now - last) * 100) / 100);
        last = now;
      }, 1000);
      await sleep(int("buildup-s", 600) * 1000);
      c0 = cpuSeconds(wm.pid);
      t0 = threadCpu(wm.pid);
      const a0 = cpuSeconds(attack.pid);
      m0 = machineCpu();
      const under = await wellBehaved(wm.paths.smtpPort);
      const underCpu = { server: cpuSeconds(wm.pid) - c0, attacker: cpuSeconds(attack.pid) - a0 };
      m1 = machineCpu();
      const underOther = m1.busy - m0.busy - underCpu.server - underCpu.attacker - (m1.self - m0.self) - (m1.children - m0.children);
      const underThreads = threadDelta(t0, threadCpu(wm.pid));
      clearInterval(sampler);
      const stats = await attack.stop();
      await sleep(3000); // the attack's connections close before the next quiet run
      const log = await wm.readLog();
      const run = {
        run: r,
        quiet: { rate: quiet.rate, seconds: quiet.seconds, ok: quiet.code === 0 },
        underAttack: { rate: under.rate, seconds: under.seconds, ok: under.code === 0 },
        ratio: under.rate / quiet.rate,
        attack: stats,
        serverLog: { clientLimitLines: count(log, "client limit"), pregreetLines: count(log, "pregreet") },
        cpuSeconds: { serverQuiet: quietCpu, serverUnderAttack: underCpu.server, attackerUnderAttack: underCpu.attacker },
        /** CPU seconds the rest of the machine took during each measurement (0 on a quiet machine; the cores are os.cpus().length × seconds). */
        otherProcessesCpuSeconds: { quiet: Math.max(0, quietOther), underAttack: Math.max(0, underOther) },
        threadCpuSeconds: { quiet: quietThreads, underAttack: underThreads },
        serverCpuPerSecondOfAttack: cpuTimeline,
        ...(quiet.code === 0 && under.code === 0 ? {} : { generatorOutput: { quiet: quiet.out, underAttack: under.out } }),
      };
      runs.push(run);
      console.log(
        `run ${r}: quiet ${quiet.rate.toFixed(0)} msg/s${quiet.code === 0 ? "" : " (FAILED)"}, under attack ${under.rate.toFixed(0)} msg/s${under.code === 0 ? "" : " (FAILED)"}, ` +
          `ratio ${(under.rate / quiet.rate).toFixed(2)}; CPU s ${JSON.stringify(run.cpuSeconds)}; other processes' CPU s ${JSON.stringify(run.otherProcessesCpuSeconds)}; per thread ${JSON.stringify(run.threadCpuSeconds)}; server CPU per second of the attack ${JSON.stringify(cpuTimeline)}; attack ${JSON.stringify(stats)}; server log so far ${JSON.stringify(run.serverLog)}`,
      );
      if (under.code !== 0) console.log(under.out);
    }
  } finally {
    // Each worker logs its event loop delay (from ready to stop) when it stops.
    const log = await wm.stopAndReadLog();
    loopDelay = log
      .split("\n")
      .filter((l) => l.includes('"msg":"event loop delay"'))
      .map((l) => JSON.parse(l) as unknown);
  }
  console.log(`event loop delay per worker: ${JSON.stringify(loopDelay)}`);
  const ratios = runs.filter((r) => (r.quiet as { ok: boolean }).ok && (r.underAttack as { ok: boolean }).ok).map((r) => r.ratio as number);
  const med = median(ratios);
  const result = {
    bench: "flood",
    startedAt,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    options: values,
    limits: "defaults (src/limits); the well-behaved client 127.0.0.1 in relay.trusted_networks",
    runs,
    eventLoopDelay: loopDelay,
    medianRatio: med,
    target: 0.8,
    withinTarget: med !== null && med >= 0.8 && ratios.length === runs.length,
  };
  console.log(`median ratio (under attack / quiet): ${med === null ? "-" : med.toFixed(2)} (target >= 0.80)`);
  await writeResult(values.out, "flood", startedAt, result);
  if (!result.withinTarget) process.exitCode = 1;
}

if (values.attacker) await attacker();
else await main();
