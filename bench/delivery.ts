/**
 * Maildir delivery CPU per message, alone (not a test): the queue manager
 * (src/qmgr) of one spool shard delivering 10 KB messages into Maildirs in
 * a temp directory, every file and `new/` directory fsynced, the spool
 * sealed (AES-256-GCM) as by default, the queue manager built as the server
 * builds it (encrypt-on-store looked up in an accounts database, log at
 * info into /dev/null).
 *
 *   node bench/delivery.ts [--messages 3000] [--runs 3] [--producers 50]
 *     [--concurrency 16] [--size 10240] [--mailboxes 20] [--plain]
 *     [--modes enqueue,fresh,drain] [--backlog 256] [--dir DIR]
 *     [--fs auto|host] [--cpu-prof FILE]
 *
 * Per run, three measurements of `--messages` messages each, CPU from
 * process.cpuUsage() (every thread of the process: the event loop, libuv's
 * thread pool doing the file system calls, V8's helpers) and per thread from
 * /proc/self/task/(id)/stat:
 * - enqueue: producers enqueue into a spool with no queue manager (group
 *   commit, sealing, fdatasync of the WAL); the messages stay queued.
 * - fresh: the same with the queue manager running, as in the server: fresh
 *   messages handed over in memory once durable; until every message is
 *   stored and its outcome committed. The producers wait while `--backlog`
 *   (256) messages are accepted and not yet delivered, so that every message
 *   goes through the in-memory handoff (its bound is 1024) as in a server
 *   whose delivery keeps up. Delivery = fresh - enqueue.
 * - drain: the queue manager started on the spool of `enqueue`: claims from
 *   the database (read back and unsealed), delivery, outcomes.
 * Prints the medians over runs. `--cpu-prof FILE` writes the event loop
 * thread's profile of the last fresh (or, without fresh, drain) measurement.
 *
 * The data directories are made under `--dir`, by default the system's
 * temp directory, or with `--fs auto` (the default) a journaled ext4 the
 * bench mounts there when that is an ext4 without one (bench/fs.ts: without
 * a journal, creating a file scans past every inode freed in the last 60 to
 * 300 s, the kernel's recently_deleted(), so each Maildir file costs more
 * kernel CPU the more files were deleted before it), and removed only at the end.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { fsModeOf, prepareBenchFs } from "./fs.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Spool } from "../src/queue/index.ts";
import { routed, sampleMessage } from "../test/helpers/queue.ts";
import { QueueManager } from "../src/qmgr/index.ts";
import { Router } from "../src/sink/index.ts";
import { createLogger } from "../src/log/index.ts";
import { AccountStore } from "../src/accounts/index.ts";
import { KeyStore, StoreEncryption } from "../src/e2e/index.ts";
import type { IncomingMessage } from "../src/queue/index.ts";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "3000" },
    runs: { type: "string", default: "3" },
    producers: { type: "string", default: "50" },
    concurrency: { type: "string", default: "16" },
    size: { type: "string", default: "10240" },
    mailboxes: { type: "string", default: "20" },
    plain: { type: "boolean", default: false },
    modes: { type: "string", default: "enqueue,fresh,drain" },
    backlog: { type: "string", default: "256" },
    dir: { type: "string" },
    fs: { type: "string", default: "auto" },
    "cpu-prof": { type: "string" },
  },
});
const N = Number(args.messages);
const runs = Number(args.runs);
const producers = Number(args.producers);
const concurrency = Number(args.concurrency);
const size = Number(args.size);
const mailboxCount = Number(args.mailboxes);
const encrypt = !args.plain;
const modes = new Set(args.modes.split(","));
const backlog = Number(args.backlog);

const CLK_TCK = 100;

/** CPU ticks per thread name (comm) of this process, from /proc. */
function threadTicks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    const name = stat.slice(open + 1, close).replace(/[0-9]+$/, "").trim();
    const f = stat.slice(close + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]);
    out.set(name, (out.get(name) ?? 0) + ticks);
  }
  return out;
}

const profiles: unknown[] = [];

interface Measure {
  readonly wallMs: number;
  readonly userUs: number;
  readonly systemUs: number;
  readonly threads: Map<string, number>;
}

/** With --cpu-prof FILE: the event loop thread's profile over the fresh (else drain) measurements only, without start-up and clean-up. */
const profileMode = args["cpu-prof"] === undefined ? undefined : modes.has("fresh") ? "fresh" : "drain";
const session = profileMode === undefined ? undefined : new Session();
if (session) {
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
}

async function measure(fn: () => Promise<void>, mode?: string): Promise<Measure> {
  const profiling = session !== undefined && mode === profileMode;
  if (profiling) await session.post("Profiler.start");
  const t0 = threadTicks();
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await fn();
  const wallMs = performance.now() - w0;
  const c = process.cpuUsage(c0);
  const t1 = threadTicks();
  if (profiling) profiles.push((await session.post("Profiler.stop")).profile);
  const threads = new Map<string, number>();
  for (const [k, v] of t1) threads.set(k, v - (t0.get(k) ?? 0));
  return { wallMs, userUs: c.user, systemUs: c.system, threads };
}

const local = {
  domains: ["example.test"],
  mailboxes: Array.from({ length: mailboxCount }, (_, i) => `user${i}@example.test`),
  discard: [],
  aliases: {},
  maildir: "mail/%d/%n/Maildir",
  lmtp: {},
};
const router = new Router({ local });
const messages: IncomingMessage[] = Array.from({ length: producers }, (_, i) =>
  routed(sampleMessage({ size, to: [`user${i % mailboxCount}@example.test`] }), (a) => router.routeInPlace(a)),
);

/** Enqueues N messages from the producers; with `agent`, at most `backlog` of them accepted and not yet delivered. */
async function enqueueAll(spool: Spool, agent?: QueueManager): Promise<void> {
  let left = N;
  let accepted = 0;
  let waiters: (() => void)[] = [];
  const room = (): boolean => agent === undefined || accepted - agent.stats().delivered < backlog;
  const gate = setInterval(() => {
    if (waiters.length === 0 || !room()) return;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  }, 2);
  try {
    await Promise.all(
      messages.map(async (m) => {
        while (left > 0) {
          while (!room()) await new Promise<void>((r) => waiters.push(r));
          if (left <= 0) break;
          left--;
          accepted++;
          await spool.writer.enqueue(m);
        }
      }),
    );
  } finally {
    clearInterval(gate);
  }
}

async function until(cond: () => boolean, timeoutMs = 300_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting for delivery");
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Env {
  readonly dir: string;
  readonly spool: Spool;
  readonly agent: QueueManager;
  readonly accounts: AccountStore;
  close(): Promise<void>;
}

/** Data directories, removed at the end only: deleting files frees inodes, and ext4 without a journal (--fs host on this machine) scans past inodes freed in the last 60 to 300 s at every file it creates. */
const dirs: string[] = [];
const fsMode = fsModeOf(args.fs);
if (fsMode === undefined) throw new Error("--fs must be auto or host");
const baseDir = args.dir ?? (prepareBenchFs(fsMode), tmpdir());

function env(): Env {
  const dir = mkdtempSync(join(baseDir, "wardmail-bench-delivery-"));
  dirs.push(dir);
  const logger = createLogger({ level: "info", destination: "/dev/null", base: { worker: 0 } });
  const spool = Spool.open({ dataDir: dir, shard: 0, logger, encrypt });
  const accounts = AccountStore.open(dir, { create: true, localDomains: local.domains });
  const agent = new QueueManager({
    spool: { scheduler: spool.scheduler, writer: spool.writer },
    dataDir: dir,
    logger,
    concurrency,
    hostname: "mx.example.test",
    encryption: new StoreEncryption(new KeyStore(accounts)),
  });
  return {
    dir,
    spool,
    agent,
    accounts,
    close: async () => {
      await agent.stop();
      spool.close();
      accounts.close();
    },
  };
}

const delivered = (e: Env): boolean => e.agent.stats().stored >= N && e.agent.stats().inFlight === 0 && e.spool.stats().done >= N;

interface Row {
  readonly mode: string;
  readonly m: Measure;
}
const rows: Row[] = [];

for (let run = 0; run < runs; run++) {
  const a = env();
  if (modes.has("enqueue") || modes.has("drain")) {
    const m = await measure(() => enqueueAll(a.spool));
    rows.push({ mode: "enqueue", m });
  }
  if (modes.has("fresh")) {
    const b = env();
    b.agent.start();
    const m = await measure(async () => {
      await enqueueAll(b.spool, b.agent);
      await until(() => delivered(b));
    }, "fresh");
    rows.push({ mode: "fresh", m });
    await b.close();
  }
  if (modes.has("drain")) {
    const m = await measure(async () => {
      a.agent.start();
      await until(() => delivered(a));
    }, "drain");
    rows.push({ mode: "drain", m });
  }
  await a.close();
}

for (const d of dirs) rmSync(d, { recursive: true, force: true });
if (args["cpu-prof"] !== undefined && profiles.length > 0) {
  // The last run's profile (a .cpuprofile file, for Chrome DevTools or any reader of the format).
  writeFileSync(args["cpu-prof"], JSON.stringify(profiles[profiles.length - 1]));
  console.log(`profile of the ${profileMode} measurement: ${args["cpu-prof"]}`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const perMsg = (us: number): number => us / N / 1000;
const summary: Record<string, { cpuMs: number; userMs: number; systemMs: number; rate: number; threadsMs: Record<string, number> }> = {};
for (const mode of ["enqueue", "fresh", "drain"]) {
  const rs = rows.filter((r) => r.mode === mode);
  if (rs.length === 0) continue;
  const names = new Set(rs.flatMap((r) => [...r.m.threads.keys()]));
  const threadsMs: Record<string, number> = {};
  for (const n of names) {
    const v = median(rs.map((r) => ((r.m.threads.get(n) ?? 0) * 1e6) / CLK_TCK));
    if (v > 0) threadsMs[n] = Number(perMsg(v).toFixed(3));
  }
  summary[mode] = {
    cpuMs: Number(perMsg(median(rs.map((r) => r.m.userUs + r.m.systemUs))).toFixed(3)),
    userMs: Number(perMsg(median(rs.map((r) => r.m.userUs))).toFixed(3)),
    systemMs: Number(perMsg(median(rs.map((r) => r.m.systemUs))).toFixed(3)),
    rate: Math.round(median(rs.map((r) => N / (r.m.wallMs / 1000)))),
    threadsMs,
  };
  for (const r of rs) {
    console.log(`${mode.padEnd(8)} ${Math.round(N / (r.m.wallMs / 1000))} msg/s, CPU ${perMsg(r.m.userUs + r.m.systemUs).toFixed(3)} ms/msg (user ${perMsg(r.m.userUs).toFixed(3)}, system ${perMsg(r.m.systemUs).toFixed(3)})`);
  }
}
console.log(`\n${N} messages of ${size} B per measurement, ${runs} runs, ${producers} producers, concurrency ${concurrency}, ${mailboxCount} mailboxes, spool ${encrypt ? "sealed" : "plain"}; medians, CPU ms per message:`);
for (const [mode, s] of Object.entries(summary)) {
  console.log(`${mode.padEnd(8)} ${String(s.rate).padStart(6)} msg/s  CPU ${s.cpuMs.toFixed(3)} (user ${s.userMs.toFixed(3)}, system ${s.systemMs.toFixed(3)})  threads ${JSON.stringify(s.threadsMs)}`);
}
if (summary.enqueue && summary.fresh) {
  console.log(`delivery (fresh - enqueue): ${(summary.fresh.cpuMs - summary.enqueue.cpuMs).toFixed(3)} ms CPU per message`);
}
