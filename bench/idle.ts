// Memory per idle SMTP connection: holds N concurrent greeted, idle
// connections to the MX port of the built server (dist/) and reports the
// server's RSS growth per connection over the idle server. Target: at most
// 10 KB each.
//
//   npm run build && node bench/idle.ts [--connections 10000] [--per-address 25] [--hold-s 10] [--out FILE]
//
// The connections come from many 127.0.x.y addresses, --per-address each
// (under the default max_connections_per_client, 30, and the default
// connection rate, 120 a minute), so the per-client limits stay at their
// defaults and do not refuse them. Only the per-worker connection limits are
// raised (max_connections and max_mx_connections to 20,000 per worker), so
// that 10,000 connections are far from the 80% where the stress timeouts
// start. The file limit is raised for the server (prlimit) and, when too low,
// for this process (it runs itself again under prlimit).
//
// Bounded: at most 60,000 connections, each phase has a deadline, and
// idle_timeout (300 s) is far above the hold time.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { writeResult } from "./report.ts";
import { REPO_ROOT, defaultWardmailCommand, startWardmail, type WardmailInstance } from "./wardmail.ts";

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "10000" },
    "per-address": { type: "string", default: "25" },
    "hold-s": { type: "string", default: "10" },
    out: { type: "string", default: path.join(REPO_ROOT, "bench", "out", "idle.json") },
  },
  strict: true,
});
const N = Math.min(60_000, Number(values.connections));
const PER_ADDRESS = Math.min(30, Number(values["per-address"]));
const HOLD_MS = Number(values["hold-s"]) * 1000;
const FILES = 2 * N + 4096;

/** [soft, hard] limits of open files of this process. */
function fileLimits(): [number, number] {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
  const f = line?.split(/\s+/) ?? [];
  const num = (x: string | undefined): number => (x === "unlimited" ? Infinity : Number(x ?? 1024));
  return [num(f[3]), num(f[4])];
}
const softFileLimit = (): number => fileLimits()[0];
// Raising the hard limit needs CAP_SYS_RESOURCE, which a container may not give even to root: stay within it then.
const canRaiseHard = spawnSync("prlimit", [`--nofile=${FILES}:${FILES}`, "true"]).status === 0;
const SERVER_FILES = canRaiseHard ? FILES : Math.min(FILES, fileLimits()[1]);

if (softFileLimit() < N + 1024 && process.env.WM_IDLE_REEXEC !== "1" && canRaiseHard) {
  // Node cannot raise its own file limit: run again under prlimit (root may raise the hard limit too).
  const r = spawnSync("prlimit", [`--nofile=${FILES}:${FILES}`, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, WM_IDLE_REEXEC: "1" },
  });
  process.exit(r.status ?? 1);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

/** Median of 5 samples 200 ms apart (RSS moves with GC). */
async function rssSample(pid: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    xs.push(rssKb(pid));
    await sleep(200);
  }
  xs.sort((a, b) => a - b);
  return xs[2] ?? 0;
}

/** The source address of the i-th connection: 127.X.Y.1 with X from 1 (never 127.0.0.1), PER_ADDRESS connections each. */
function sourceAddress(i: number): string {
  const a = Math.floor(i / PER_ADDRESS);
  return `127.${1 + Math.floor(a / 250)}.${1 + (a % 250)}.1`;
}

/** Opens one connection and resolves once the whole greeting ("220 " line) came; rejects on refusal or timeout. */
function greeted(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    let buf = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no greeting from ${localAddress} in 20 s: ${JSON.stringify(buf)}`));
    }, 20_000);
    s.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      if (/^220 /m.test(buf)) {
        clearTimeout(timer);
        s.removeAllListeners("data");
        s.pause(); // idle: nothing read or sent from now on
        resolve(s);
      } else if (/^[45]\d\d /m.test(buf)) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`refused from ${localAddress}: ${buf.trim()}`));
      }
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const startedAt = new Date().toISOString();
const limits = { max_connections: 20000, max_mx_connections: 20000, max_connections_per_client: 30, connections_per_client_per_minute: 120 };
let wm: WardmailInstance | undefined;
const sockets: net.Socket[] = [];
try {
  wm = await startWardmail({
    limits,
    command: (p) => {
      const c = defaultWardmailCommand(p);
      return { ...c, command: "prlimit", args: [`--nofile=${SERVER_FILES}:${SERVER_FILES}`, c.command, ...c.args] };
    },
  });
  const pid = wm.pid;
  const port = wm.paths.smtpPort;
  console.log(`wardmail pid ${pid} on 127.0.0.1:${port}; ${N} connections, ${PER_ADDRESS} per address`);
  // Warm up: a few connections and closes, so the idle figure is a server that has served.
  for (let i = 0; i < 20; i++) (await greeted(port, "127.0.0.2")).destroy();
  await sleep(2000);
  const idleKb = await rssSample(pid);
  const t0 = Date.now();
  // 500 at a time: a connection from a new address waits for the pregreet pause (1 s).
  let next = 0;
  await Promise.all(
    Array.from({ length: 500 }, async () => {
      while (next < N) {
        const i = next++;
        sockets.push(await greeted(port, sourceAddress(i)));
      }
    }),
  );
  const openMs = Date.now() - t0;
  console.log(`${sockets.length} connections greeted in ${(openMs / 1000).toFixed(1)} s; holding ${HOLD_MS / 1000} s`);
  await sleep(HOLD_MS);
  const heldKb = await rssSample(pid);
  const alive = sockets.filter((s) => !s.destroyed && s.readyState === "open").length;
  for (const s of sockets) s.destroy();
  await sleep(3000);
  const afterKb = await rssSample(pid);
  const perConnBytes = ((heldKb - idleKb) * 1024) / N;
  const result = {
    bench: "idle",
    startedAt,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, totalMemMb: Math.round(os.totalmem() / 2 ** 20), node: process.version },
    connections: N,
    serverFileLimit: SERVER_FILES,
    perAddress: PER_ADDRESS,
    addresses: Math.ceil(N / PER_ADDRESS),
    stillOpenAtMeasure: alive,
    limits,
    openSeconds: openMs / 1000,
    holdSeconds: HOLD_MS / 1000,
    rssKb: { idleServer: idleKb, holding: heldKb, afterClose: afterKb },
    bytesPerIdleConnection: Math.round(perConnBytes),
    targetBytes: 10 * 1024,
    withinTarget: perConnBytes <= 10 * 1024 && alive === N,
  };
  console.log(
    `idle server ${(idleKb / 1024).toFixed(1)} MB, holding ${N}: ${(heldKb / 1024).toFixed(1)} MB, after closing: ${(afterKb / 1024).toFixed(1)} MB\n` +
      `=> ${(perConnBytes / 1024).toFixed(2)} KB per idle connection (target <= 10 KB); ${alive}/${N} still open at the measurement`,
  );
  await writeResult(values.out, "idle", startedAt, result);
  if (!result.withinTarget) process.exitCode = 1;
} finally {
  for (const s of sockets) s.destroy();
  await wm?.stop();
}
