// The CPU one inbound connection costs the server, without a message:
// connect, greeting, HELO, QUIT, 221, then the client resets (SO_LINGER 0,
// as smtp-source does). Per thread of the server process (/proc/PID/task):
// the worker threads (event loops), V8's helper threads (GC), libuv's pool.
//
//   npx tsc -p tsconfig.build.json
//   node bench/connections.ts [--connections 8000] [--sessions 50] [--runs 2] [--root DIR ...]
//
// --root DIR (repeatable): the built server of another checkout
// (DIR/bin/wardmail, the launcher); with several, the runs alternate between them
// (root A, root B, root A, ...) so a before/after comparison shares the
// machine's moods. The client is a separate Node process (its CPU is not
// the server's). Config: the engine bench's (bench/wardmail.ts: discard,
// checks off, per-client limits raised, the pregreet test at its default:
// only the warm-up's first connections pay its pause). Bounded: each load is
// killed after --timeout-s.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { median } from "./report.ts";
import { REPO_ROOT, serverCommand, startWardmail } from "./wardmail.ts";

const { values } = parseArgs({
  options: {
    client: { type: "string" },
    connections: { type: "string", default: "8000" },
    sessions: { type: "string", default: "50" },
    runs: { type: "string", default: "2" },
    root: { type: "string", multiple: true },
    "timeout-s": { type: "string", default: "120" },
  },
  strict: true,
});

/** The client side (a child process): N bare sessions, `sessions` at a time; exits 0 when every one got its 221. */
async function client(port: number, n: number, sessions: number): Promise<void> {
  let started = 0;
  let failed = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      let buf = "";
      let step = 0;
      s.setEncoding("latin1");
      s.on("data", (d: string) => {
        buf += d;
        const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n$/.exec(buf);
        if (!m) return;
        buf = "";
        if (step === 0 && m[1] === "220") s.write("HELO client.bench.test\r\n");
        else if (step === 1 && m[1] === "250") s.write("QUIT\r\n");
        else if (step === 2 && m[1] === "221") return void s.resetAndDestroy();
        else {
          failed++;
          return void s.destroy();
        }
        step++;
      });
      s.on("error", () => undefined);
      s.on("close", () => {
        if (step < 2) failed++;
        resolve();
      });
    });
  const loop = async (): Promise<void> => {
    while (started < n) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: sessions }, loop));
  if (failed > 0) throw new Error(`${failed} of ${n} sessions did not end with 221`);
}

if (values.client !== undefined) {
  await client(Number(values.client), Number(values.connections), Number(values.sessions));
  process.exit(0);
}

interface ThreadCpu {
  readonly name: string;
  readonly ms: number;
}

/** CPU (ms) of each thread of pid, by thread id. */
function threads(pid: number): Map<string, ThreadCpu> {
  const m = new Map<string, ThreadCpu>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      m.set(t, { name: s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")), ms: (Number(f[11]) + Number(f[12])) * 10 });
    } catch {
      /* the thread ended */
    }
  }
  return m;
}

function load(port: number, n: number, sessions: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [import.meta.filename, "--client", String(port), "--connections", String(n), "--sessions", String(sessions)], { stdio: "inherit" });
    const timer = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`client exited ${code}`));
    });
  });
}

const n = Number(values.connections);
const sessions = Number(values.sessions);
const roots = (values.root ?? [REPO_ROOT]).map((r) => path.resolve(r));
const results = new Map<string, { perConn: number[]; worker: number[]; gc: number[]; rate: number[] }>(roots.map((r) => [r, { perConn: [], worker: [], gc: [], rate: [] }]));
for (let run = 0; run < Number(values.runs); run++) {
  for (const root of roots) {
    const w = await startWardmail({ command: (p) => serverCommand(p.configPath, root) });
    try {
      await load(w.paths.smtpPort, Math.min(1000, n), sessions, Number(values["timeout-s"]) * 1000);
      await sleep(1000);
      const before = threads(w.pid);
      const ms = await load(w.paths.smtpPort, n, sessions, Number(values["timeout-s"]) * 1000);
      await sleep(500);
      const after = threads(w.pid);
      let total = 0;
      let worker = 0;
      let gc = 0;
      for (const [t, a] of after) {
        const d = a.ms - (before.get(t)?.ms ?? 0);
        total += d;
        if (a.name === "WorkerThread") worker += d;
        else if (a.name === "V8Worker") gc += d;
      }
      const r = results.get(root)!;
      r.perConn.push((total / n) * 1000);
      r.worker.push((worker / n) * 1000);
      r.gc.push((gc / n) * 1000);
      r.rate.push(n / (ms / 1000));
      console.log(`${root} run ${run + 1}: ${((total / n) * 1000).toFixed(0)} us of server CPU per connection (worker threads ${((worker / n) * 1000).toFixed(0)}, GC helpers ${((gc / n) * 1000).toFixed(0)}), ${(n / (ms / 1000)).toFixed(0)} connections/s`);
    } finally {
      await w.stop();
    }
  }
}
const med = (xs: number[]): string => (median(xs) ?? 0).toFixed(0);
for (const [root, r] of results) {
  console.log(`median ${root}: ${med(r.perConn)} us per connection (worker threads ${med(r.worker)}, GC helpers ${med(r.gc)}), ${med(r.rate)} connections/s`);
}
