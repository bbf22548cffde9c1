// Every check on and Maildir delivery: Wardmail against the same Postfix and
// against Postfix with the stack an operator would otherwise run (issue 12,
// "Performance targets"), side by side in the same run.
//
//   npx tsc -p tsconfig.build.json && node bench/stack.ts --runs 1 --messages 1000
//
// Three servers, all delivering into a Maildir with fsync, all asking the
// same Knot DNS server on loopback (test/peers/signed-message.ts: SPF, DKIM and
// DMARC of sender.example; one message signed by dkimpy):
//   wardmail       the built server, embedded defaults, checks on (SPF,
//                  DKIM, DMARC, ARC) against Knot, sink@bench.test a Maildir
//                  mailbox; antivirus off (neither Postfix has one).
//   postfix        the Postfix of bench/run.ts (in_flow_delay = 0,
//                  default_process_limit = 100) delivering with virtual(8)
//                  into a virtual Maildir (test/peers/postfix.ts "mailbox").
//   postfix-stack  that Postfix plus opendkim (verify) and opendmarc as
//                  milters and postfix-policyd-spf-python as a policy service
//                  spawned by master (test/peers/milters.ts).
// For every case (messages per connection) and run, each server in turn
// (the order rotates): the load (bench/load.ts, smtp-source -F), then the
// wait until the Maildir holds every message (the queue drained); a run is
// verified when the generator saw only 2xx, the Maildir holds exactly the
// messages sent, and every delivered file carries Authentication-Results
// (authserv-id mx.bench.test) with spf=pass, dkim=pass and dmarc=pass; then
// the Maildir is emptied. See bench/README.md.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readdir, rename, rm, unlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { knotMissing, startKnot, type Knot } from "../test/peers/knot.ts";
import { POSTCONF_BIN, postconfValue, postfixMissing, startPostfix, type PostfixInstance } from "../test/peers/postfix.ts";
import { machineBusyCpuSeconds, reapedChildrenCpuSeconds, RssSampler, sampleTrees, treeCpuSeconds } from "../test/peers/procs.ts";
import { killLoadChildren, runLoad, type LoadResult } from "./load.ts";
import { budgetLine, caseName, fmt, median, table, targetLine, writeResult } from "./report.ts";
import { DKIMSIGN, makeSignedMessage, type SignedMessage } from "../test/peers/signed-message.ts";
import { port53Address, resolvNamespace, stackMissing, startPostfixStack, writeResolvConf, type Milter, type PostfixStack } from "../test/peers/milters.ts";
import { killWardmailSync, REPO_ROOT, serverCommand, startWardmail, type WardmailInstance } from "./wardmail.ts";
import { fsModeOf, prepareBenchFs, type FsMode } from "./fs.ts";
import { isPostfixProblem } from "./run/postfix-log.ts";

const SERVERS = ["wardmail", "postfix", "postfix-stack"] as const;
type ServerName = (typeof SERVERS)[number];
const TO = "sink@bench.test";
const AUTHSERV_ID = "mx.bench.test";
const SENDER_DOMAIN = "sender.example";
const MiB = 1024;

interface Options {
  runs: number;
  messages: number;
  sessions: number;
  size: number;
  cases: number[];
  warmup: number;
  timeoutMs: number;
  drainTimeoutMs: number;
  connMode: "exact" | "batch";
  servers: ServerName[];
  /** Runs ROOT/bin/wardmail (the launcher of another checkout's build). */
  wardmailRoot: string;
  out: string;
  fs: FsMode;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench/stack: ${msg}`);
  console.error(`usage: node bench/stack.ts [options]
  --runs N            runs per case and server (default 3)
  --messages N        messages per run, a multiple of every case (default 1000)
  --sessions N        concurrent SMTP sessions (default 50)
  --size BYTES        body bytes of the signed message (default 10240)
  --cases LIST        messages per connection (default 1,10)
  --conn-mode M       exact (default, as bench/run.ts) or batch: how cases > 1 are generated (bench/README.md)
  --warmup N          unreported messages per server before measuring (default 200; 0 = none)
  --timeout-s N       hard limit for one run's load (default 180)
  --drain-timeout-s N how long to wait after the load for every message in the Maildir (default 120)
  --servers LIST      wardmail,postfix,postfix-stack (default all three)
  --wardmail-root DIR run DIR/bin/wardmail, the launcher of that build (default: this repository's build)
  --out FILE          JSON result (default bench/out/stack-latest.json)
  --fs auto|host      a journaled ext4 mounted for the bench where os.tmpdir() has none (auto), or os.tmpdir() (bench/fs.ts)`);
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
        "conn-mode": { type: "string" },
        warmup: { type: "string" },
        "timeout-s": { type: "string" },
        "drain-timeout-s": { type: "string" },
        servers: { type: "string" },
        "wardmail-root": { type: "string" },
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
  const int = (name: string, v: string | undefined, def: number, min: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const cases = (values.cases ?? "1,10").split(",").map((s) => Number(s.trim()));
  if (cases.some((c) => !Number.isInteger(c) || c < 1)) usage("--cases must be positive integers");
  const servers = (values.servers ?? SERVERS.join(",")).split(",").map((s) => s.trim());
  for (const s of servers) if (!SERVERS.includes(s as ServerName)) usage(`--servers: unknown ${s} (known: ${SERVERS.join(",")})`);
  const mode = values["conn-mode"] ?? "exact";
  if (mode !== "exact" && mode !== "batch") usage("--conn-mode must be exact or batch");
  const o: Options = {
    runs: int("runs", values.runs, 3, 1),
    messages: int("messages", values.messages, 1000, 1),
    sessions: int("sessions", values.sessions, 50, 1),
    size: int("size", values.size, 10240, 0),
    cases,
    warmup: int("warmup", values.warmup, 200, 0),
    timeoutMs: int("timeout-s", values["timeout-s"], 180, 1) * 1000,
    drainTimeoutMs: int("drain-timeout-s", values["drain-timeout-s"], 120, 1) * 1000,
    connMode: mode,
    servers: servers as ServerName[],
    wardmailRoot: path.resolve(values["wardmail-root"] ?? REPO_ROOT),
    out: path.resolve(values.out ?? path.join(REPO_ROOT, "bench", "out", "stack-latest.json")),
    fs: fsModeOf(values.fs) ?? usage("--fs must be auto or host"),
  };
  for (const c of o.cases) if (o.messages % c !== 0) usage(`--messages ${o.messages} is not a multiple of ${c} messages per connection`);
  return o;
}

// ------------------------------------------------------------------ Maildir

/** Files in every new/ and cur/ directory under root. */
async function maildirFiles(root: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(root, { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const parent = path.basename(e.parentPath);
    if (e.isFile() && (parent === "new" || parent === "cur")) out.push(path.join(e.parentPath, e.name));
  }
  return out;
}

/**
 * Where the messages of earlier runs go when a Maildir is emptied before a
 * run: moved (rename) rather than deleted until the bench ends. On ext4
 * without a journal (this machine's) every file created scans past the
 * inodes of its block group freed in the last 5 to 10 s (the kernel's
 * recently_deleted()), so deleting a run's 1000 files just before the next
 * run made that run's deliveries pay for it (docs/benchmarks.md).
 */
let setAside: string | undefined;
let setAsideCount = 0;

async function emptyMaildir(root: string): Promise<void> {
  for (const f of await maildirFiles(root)) {
    if (setAside !== undefined) {
      try {
        await rename(f, path.join(setAside, String(setAsideCount++)));
        continue;
      } catch {
        // another file system: deleted instead
      }
    }
    await unlink(f).catch(() => undefined);
  }
}

/** The header block of a stored message (up to 64 KiB), unfolded, one field per entry. */
async function headerFields(file: string): Promise<string[]> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(65536);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString("latin1").replace(/\r\n/g, "\n");
    const end = text.indexOf("\n\n");
    return (end >= 0 ? text.slice(0, end) : text).replace(/\n[ \t]+/g, " ").split("\n");
  } finally {
    await fh.close();
  }
}

interface HeaderCheck {
  /** Files whose Authentication-Results (authserv-id AUTHSERV_ID) say spf=pass, dkim=pass and dmarc=pass. */
  pass: number;
  checked: number;
  /** The first file that did not pass: its Authentication-Results. */
  firstFailure: string[] | null;
  /** The Authentication-Results of the first file, for the report. */
  sample: string[];
}

async function checkHeaders(files: readonly string[]): Promise<HeaderCheck> {
  const r: HeaderCheck = { pass: 0, checked: 0, firstFailure: null, sample: [] };
  for (const f of files) {
    const ar = (await headerFields(f)).filter((h) => /^authentication-results:/i.test(h));
    const ours = ar.filter((h) => h.slice(h.indexOf(":") + 1).trim().split(/[\s;]/)[0]?.toLowerCase() === AUTHSERV_ID);
    const all = ours.join("\n");
    const ok = ["spf", "dkim", "dmarc"].every((m) => new RegExp(`\\b${m}=pass\\b`, "i").test(all)) && !/\b(spf|dkim|dmarc)=(fail|softfail|temperror|permerror|none|neutral)\b/i.test(all);
    if (r.checked === 0) r.sample = ar;
    r.checked++;
    if (ok) r.pass++;
    else r.firstFailure ??= ar;
  }
  return r;
}

// ------------------------------------------------------------------ servers

interface Server {
  name: ServerName;
  port: number;
  /** Process trees counted as the server (CPU, RSS). */
  roots: () => number[];
  /** Of those, the milters (reported apart too). */
  milterRoots: () => number[];
  maildirRoot: string;
  /** Waits for an empty queue (Postfix) before a run. */
  drained: () => Promise<void>;
  rss: RssSampler;
  /** Log text since the last call, for errors. */
  problems: () => Promise<string[]>;
}

interface RunRecord {
  server: ServerName;
  perConnection: number;
  run: number;
  order: number;
  ok: boolean;
  /** Acceptance rate: messages / wall time of the load. */
  msgsPerSec: number | null;
  /** End to end: messages / time from the load's start until the last one was in the Maildir. */
  deliveredPerSec: number | null;
  loadMs: number;
  drainMs: number;
  cpu: { serverS: number; miltersS: number; knotS: number; generatorS: number; machineS: number; capacityS: number };
  /** Server CPU (process tree, milters included) per message, over load + drain. */
  cpuMsPerMsg: number | null;
  miltersCpuMsPerMsg: number | null;
  peakRssMiB: number;
  pssAfterMiB: number;
  processesAfter: number;
  delivered: number;
  headers: HeaderCheck;
  load: LoadResult;
  notes: string[];
}

async function runOnce(s: Server, k: number, messages: number, opt: Options, message: SignedMessage, knot: Knot): Promise<Omit<RunRecord, "run" | "order">> {
  const notes: string[] = [];
  await s.drained();
  await emptyMaildir(s.maildirRoot);
  const roots = s.roots();
  const cpuOf = (pids: number[]): number => pids.reduce((a, p) => a + treeCpuSeconds(p), 0);
  const c0 = { server: cpuOf(roots), milters: cpuOf(s.milterRoots()), knot: treeCpuSeconds(knot.pid), gen: reapedChildrenCpuSeconds(process.pid), machine: machineBusyCpuSeconds() };
  s.rss.start();
  const t0 = performance.now();
  const load = await runLoad({
    port: s.port,
    sessions: opt.sessions,
    messages,
    perConnection: k,
    perConnectionMode: opt.connMode,
    size: opt.size,
    messageFile: message.file,
    from: message.from,
    to: TO,
    helo: message.helo,
    timeoutMs: opt.timeoutMs,
  });
  const loadMs = performance.now() - t0;
  let files = await maildirFiles(s.maildirRoot);
  const deadline = Date.now() + opt.drainTimeoutMs;
  while (load.ok && files.length < messages && Date.now() < deadline) {
    await sleep(50);
    files = await maildirFiles(s.maildirRoot);
  }
  const drainMs = performance.now() - t0;
  const cpu = {
    serverS: cpuOf(roots) - c0.server,
    miltersS: cpuOf(s.milterRoots()) - c0.milters,
    knotS: treeCpuSeconds(knot.pid) - c0.knot,
    generatorS: reapedChildrenCpuSeconds(process.pid) - c0.gen,
    machineS: machineBusyCpuSeconds() - c0.machine,
    capacityS: (drainMs / 1000) * os.availableParallelism(),
  };
  const peakKiB = s.rss.stop();
  const snap = sampleTrees(roots);
  await sleep(300); // anything delivered twice or late shows up now
  files = await maildirFiles(s.maildirRoot);
  if (files.length !== messages) notes.push(`expected ${messages} messages in the Maildir, found ${files.length}${Date.now() >= deadline ? ` after ${opt.drainTimeoutMs} ms` : ""}`);
  const headers = await checkHeaders(files);
  // The plain Postfix checks nothing: its count is verified, not its headers.
  if (s.name !== "postfix" && headers.pass !== files.length) notes.push(`${files.length - headers.pass} of ${files.length} delivered messages lack spf=pass dkim=pass dmarc=pass; first: ${JSON.stringify(headers.firstFailure)}`);
  notes.push(...(await s.problems()));
  const ok = load.ok && notes.length === 0;
  return {
    server: s.name,
    perConnection: k,
    ok,
    msgsPerSec: load.ok ? messages / (load.wallMs / 1000) : null,
    deliveredPerSec: ok ? messages / (drainMs / 1000) : null,
    loadMs,
    drainMs,
    cpu,
    cpuMsPerMsg: load.ok ? (cpu.serverS * 1000) / messages : null,
    miltersCpuMsPerMsg: load.ok ? (cpu.miltersS * 1000) / messages : null,
    peakRssMiB: peakKiB / MiB,
    pssAfterMiB: snap.pssKiB / MiB,
    processesAfter: snap.processes,
    delivered: files.length,
    headers,
    load,
    notes: [...load.errors, ...notes],
  };
}

/** Lines of a log file written since the last call that look like trouble (first 5). */
function problemReader(readLog: () => Promise<string>, isProblem: (line: string) => boolean): () => Promise<string[]> {
  let offset = 0;
  return async () => {
    const log = await readLog();
    const fresh = log.slice(offset);
    offset = log.length;
    return fresh.split("\n").filter(isProblem).slice(0, 5).map((l) => `log: ${l.slice(0, 300)}`);
  };
}

function machineInfo(): Record<string, unknown> {
  const version = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim().split("\n")[0] ?? "";
    } catch {
      return "unknown";
    }
  };
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    postfix: version(POSTCONF_BIN, ["-d", "-h", "mail_version"]),
    packages: version("dpkg-query", ["-W", "-f=${Package} ${Version}, ", "opendkim", "opendmarc", "postfix-policyd-spf-python", "knot"]),
    loadavgAtStart: os.loadavg(),
  };
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  const needPostfix = opt.servers.some((s) => s !== "wardmail");
  const missing =
    knotMissing() ??
    (existsSync(DKIMSIGN) ? undefined : `${DKIMSIGN} missing: install python3-dkim (scripts/install-peers.sh)`) ??
    postfixMissing() ??
    (opt.servers.includes("postfix-stack") ? stackMissing() : undefined) ??
    (opt.servers.includes("wardmail") && !existsSync(path.join(opt.wardmailRoot, "dist", "bin", "wardmail.js")) ? `${opt.wardmailRoot}/dist not built: npx tsc -p tsconfig.build.json` : undefined) ??
    (needPostfix && process.getuid?.() !== 0 ? "needs root (Postfix, mount namespaces)" : undefined);
  if (missing) {
    console.error(`bench/stack: ${missing}`);
    return 1;
  }
  const startedAt = new Date().toISOString();
  const machine: Record<string, unknown> = { ...machineInfo(), filesystem: prepareBenchFs(opt.fs) };
  const tmp = await mkdtemp(path.join(os.tmpdir(), "wm-bench-stack-"));
  await chmod(tmp, 0o755); // policyd-spf (its own user) reads its config here
  setAside = path.join(tmp, "set-aside");
  await mkdir(setAside);
  let knot: Knot | undefined;
  let wm: WardmailInstance | undefined;
  const postfixes: PostfixInstance[] = [];
  const stacks: PostfixStack[] = [];
  const emergency = (): void => {
    killLoadChildren();
    killWardmailSync();
  };
  process.on("exit", emergency);
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\nbench/stack: ${sig}, stopping servers`);
    emergency();
    process.exit(130); // the exit hooks of postfix.ts and daemon.ts kill Postfix, the milters and knotd
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const records: RunRecord[] = [];
  try {
    // sender.example, not sender.test: opendkim's libunbound answers .test itself (test/peers/milters.ts).
    const message = await makeSignedMessage(tmp, { size: opt.size, to: TO, subject: "every check on, Maildir delivery", messageId: "bench-stack", domain: SENDER_DOMAIN });
    // Knot answers on 127.0.0.1:PORT and on 127.53.X.Y:53 (for resolv.conf, which has no port).
    const dnsAddr = port53Address();
    knot = await startKnot({ zones: message.zones, extraListen: [`${dnsAddr}@53`] });
    const resolvConf = await writeResolvConf(tmp, dnsAddr);
    console.log(`knotd 127.0.0.1:${knot.port} and ${dnsAddr}:53 pid ${knot.pid}; message ${message.bytes} bytes signed by dkimsign (d=${message.domain}, rsa-sha256, RSA-2048)`);

    const servers: Server[] = [];
    const knotRef = knot;
    if (opt.servers.includes("wardmail")) {
      wm = await startWardmail({
        delivery: "maildir",
        checks: ["[checks]", "enabled = true", `authserv_id = "${AUTHSERV_ID}"`, "[dns]", `servers = ["127.0.0.1:${knotRef.port}"]`].join("\n"),
        extra: "[antivirus]\nenabled = false\n",
        command: (p) => serverCommand(p.configPath, opt.wardmailRoot),
      });
      const w = wm;
      servers.push({
        name: "wardmail",
        port: w.paths.smtpPort,
        roots: () => [w.pid],
        milterRoots: () => [],
        maildirRoot: w.paths.dataDir,
        drained: () => Promise.resolve(), // every run waits until its last message is in the Maildir
        rss: new RssSampler(() => [w.pid]),
        problems: problemReader(() => w.readLog(), (l) => /"level":(5\d|60)/.test(l)),
      });
      console.log(`wardmail: 127.0.0.1:${w.paths.smtpPort} pid ${w.pid} (${w.command.args[0] ?? ""}), checks on against Knot, Maildir delivery, dir ${w.paths.dir}`);
    }
    const pfServer = (name: ServerName, pf: PostfixInstance, stackMilters: readonly Milter[]): Server => {
    const milterPids = stackMilters.map((m) => m.pid);
    const logProblems = problemReader(() => pf.readLog(), (l) => isPostfixProblem(l) || /milter-reject|status=(deferred|bounced)/.test(l));
    return {
      name,
      port: pf.port,
      roots: () => [...(pf.masterPid !== undefined ? [pf.masterPid] : []), ...milterPids],
      milterRoots: () => milterPids,
      maildirRoot: path.join(pf.dir, "vmail"),
      drained: () => pf.waitForEmptyQueue(opt.drainTimeoutMs),
      // ~60 to ~110 processes: sampled every 500 ms (each walk costs a few ms).
      rss: new RssSampler(() => [...(pf.masterPid !== undefined ? [pf.masterPid] : []), ...milterPids], { intervalMs: 500 }),
      problems: async () => [
        ...stackMilters.filter((m) => m.daemon.dead()).map((m) => `${m.name} (pid ${m.pid}) exited: ${m.daemon.log().slice(-500)}`),
        ...(await logProblems()),
      ],
    };
  };
    if (opt.servers.includes("postfix")) {
      // In the same kind of namespace as the stack's master (resolv.conf: Knot), though it asks DNS nothing here.
      const pf = await startPostfix({ mode: "mailbox", mailboxes: [TO], startWrapper: resolvNamespace(resolvConf), extraMain: { in_flow_delay: "0" } });
      postfixes.push(pf);
      servers.push(pfServer("postfix", pf, []));
      console.log(`postfix: 127.0.0.1:${pf.port} master ${pf.masterPid}, virtual Maildir, in_flow_delay = ${postconfValue(pf.configDir, "in_flow_delay")}, dir ${pf.dir}`);
    }
    if (opt.servers.includes("postfix-stack")) {
      const ps = await startPostfixStack({ knotPort: knotRef.port, resolvConf, authservId: AUTHSERV_ID, dir: tmp, mailboxes: [TO], extraMain: { in_flow_delay: "0" } });
      stacks.push(ps);
      const pf = ps.postfix;
      servers.push(pfServer("postfix-stack", pf, ps.milters));
      console.log(
        `postfix-stack: 127.0.0.1:${pf.port} master ${pf.masterPid}, smtpd_milters = ${postconfValue(pf.configDir, "smtpd_milters")} ` +
          `(opendkim pid ${ps.milters[0]!.pid}, opendmarc pid ${ps.milters[1]!.pid}), policyd-spf spawned by master, dir ${pf.dir}`,
      );
    }

    if (opt.warmup > 0) {
      for (const s of servers) {
        const w = await runOnce(s, 1, opt.warmup, opt, message, knotRef);
        console.log(`warm-up ${s.name}: ${opt.warmup} messages, ${fmt(w.msgsPerSec)} msg/s${w.ok ? "" : ` (NOT OK: ${w.notes.join("; ")})`}`);
        console.log(`  Authentication-Results of a delivered message:\n    ${w.headers.sample.join("\n    ")}`);
      }
    }
    console.log(
      `\n${opt.sessions} concurrent sessions, ${opt.messages} messages per run, ${opt.runs} runs per case, --conn-mode ${opt.connMode}; the order of the servers rotates every run.`,
    );
    for (const k of opt.cases) {
      for (let run = 1; run <= opt.runs; run++) {
        const order = servers.map((_, i) => servers[(i + run - 1) % servers.length]!);
        for (const [i, s] of order.entries()) {
          const r: RunRecord = { ...(await runOnce(s, k, opt.messages, opt, message, knotRef)), run, order: i + 1 };
          records.push(r);
          const share = (x: number): string => `${r.cpu.capacityS > 0 ? ((x / r.cpu.capacityS) * 100).toFixed(0) : "-"}%`;
          const other = Math.max(0, r.cpu.machineS - r.cpu.serverS - r.cpu.knotS - r.cpu.generatorS);
          console.log(
            `  ${caseName(k)} run ${run} ${s.name.padEnd(13)} ${fmt(r.msgsPerSec).padStart(6)} msg/s accepted, ${fmt(r.deliveredPerSec).padStart(6)} msg/s delivered  ` +
              `CPU ${fmt(r.cpuMsPerMsg, 2)} ms/msg${r.cpu.miltersS > 0 ? ` (milters ${fmt(r.miltersCpuMsPerMsg, 2)})` : ""}, peak RSS ${fmt(r.peakRssMiB, 0)} MiB, PSS after ${fmt(r.pssAfterMiB, 0)} MiB in ${r.processesAfter} processes\n` +
              `      machine over load+drain: server ${share(r.cpu.serverS)}, smtp-source ${share(r.cpu.generatorS)}, knot ${share(r.cpu.knotS)}, other ${share(other)}; ` +
              `AR pass ${r.headers.pass}/${r.headers.checked}${r.ok ? "  verified" : "  NOT OK"}${r.notes.length ? `\n      ${r.notes.join("\n      ")}` : ""}`,
          );
        }
      }
    }
    return await report(opt, records, { startedAt, machine, message, milters: stacks.flatMap((ps) => ps.milters) });
  } finally {
    killLoadChildren();
    if (wm) await wm.stop();
    for (const pf of postfixes) await pf.stop();
    for (const ps of stacks) await ps.stop();
    await knot?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

async function report(opt: Options, records: RunRecord[], ctx: { startedAt: string; machine: Record<string, unknown>; message: SignedMessage; milters: Milter[] }): Promise<number> {
  const get = (s: ServerName, k: number, run: number): RunRecord | undefined => records.find((r) => r.server === s && r.perConnection === k && r.run === run && r.ok);
  const rows: string[][] = [["case", "run", ...opt.servers.map((s) => `${s} msg/s`), "W/P", "W/Pstack"]];
  const summary: Record<string, unknown>[] = [];
  for (const k of opt.cases) {
    const wp: number[] = [];
    const ws: number[] = [];
    for (let run = 1; run <= opt.runs; run++) {
      const rate = (s: ServerName): number | null => get(s, k, run)?.msgsPerSec ?? null;
      const w = rate("wardmail");
      const p = rate("postfix");
      const ps = rate("postfix-stack");
      const rp = w !== null && p !== null ? w / p : null;
      const rs = w !== null && ps !== null ? w / ps : null;
      if (rp !== null) wp.push(rp);
      if (rs !== null) ws.push(rs);
      rows.push([caseName(k), String(run), ...opt.servers.map((s) => fmt(rate(s))), fmt(rp, 2), fmt(rs, 2)]);
    }
    const per = (s: ServerName, f: (r: RunRecord) => number | null): number | null => median(records.filter((r) => r.server === s && r.perConnection === k && r.ok).flatMap((r) => (f(r) === null ? [] : [f(r)!])));
    const entry: Record<string, unknown> = { case: caseName(k), perConnection: k, medianRatioWP: median(wp), medianRatioWPstack: median(ws) };
    for (const s of opt.servers) {
      entry[s] = {
        okRuns: records.filter((r) => r.server === s && r.perConnection === k && r.ok).length,
        medianMsgsPerSec: per(s, (r) => r.msgsPerSec),
        medianDeliveredPerSec: per(s, (r) => r.deliveredPerSec),
        medianCpuMsPerMsg: per(s, (r) => r.cpuMsPerMsg),
        medianMiltersCpuMsPerMsg: s === "postfix-stack" ? per(s, (r) => r.miltersCpuMsPerMsg) : null,
        maxPeakRssMiB: Math.max(0, ...records.filter((r) => r.server === s && r.perConnection === k).map((r) => r.peakRssMiB)),
        medianPssAfterMiB: per(s, (r) => r.pssAfterMiB),
      };
    }
    summary.push(entry);
  }
  console.log(`\n${table(rows)}`);
  console.log("(msg/s: accepted, messages / wall time of the load; ratios W/P and W/Pstack in the same run)\n");
  const srows: string[][] = [["case", "server", "median msg/s", "delivered msg/s", "CPU ms/msg", "of which milters", "peak RSS MiB", "PSS after MiB"]];
  for (const e of summary) {
    for (const s of opt.servers) {
      const x = e[s] as Record<string, number | null>;
      srows.push([String(e.case), s, fmt(x.medianMsgsPerSec), fmt(x.medianDeliveredPerSec), fmt(x.medianCpuMsPerMsg, 2), s === "postfix-stack" ? fmt(x.medianMiltersCpuMsPerMsg, 2) : "", fmt(x.maxPeakRssMiB, 0), fmt(x.medianPssAfterMiB, 0)]);
    }
  }
  console.log(table(srows));
  console.log(
    "(medians over runs; delivered: messages / time until the last one was in the Maildir; CPU: the server's process trees over load + drain,\n" +
      " Postfix's including policyd-spf and the milters; RSS: peak of the summed VmRSS of those trees; PSS: summed right after the load)\n",
  );
  const targets: Record<string, unknown>[] = [];
  for (const e of summary) {
    const k = e.perConnection as number;
    const wpTarget = k === 1 ? 1.5 : 3;
    for (const [name, value, target] of [["W/P", e.medianRatioWP, wpTarget], ["W/Pstack", e.medianRatioWPstack, 3]] as const) {
      if (value === null) continue;
      const met = (value as number) >= target;
      targets.push({ case: e.case, ratio: name, value, target, met });
      console.log(targetLine(String(e.case), name, value as number, target));
      // The cores' share: smtp-source and Knot, in Wardmail's runs, against the peer's median rate.
      const peer = (e[name === "W/P" ? "postfix" : "postfix-stack"] as Record<string, number | null> | undefined)?.medianMsgsPerSec ?? null;
      const load = median(records.filter((r) => r.server === "wardmail" && r.perConnection === k && r.ok).map((r) => ((r.cpu.generatorS + r.cpu.knotS) * 1000) / opt.messages));
      if (peer !== null && load !== null && load > 0) console.log(`       ${budgetLine(name, os.availableParallelism(), "smtp-source and Knot", load, peer, target, (e.wardmail as Record<string, number | null>).medianCpuMsPerMsg ?? null)}`);
    }
  }
  const result = {
    startedAt: ctx.startedAt,
    finishedAt: new Date().toISOString(),
    machine: { ...ctx.machine, loadavgAtEnd: os.loadavg() },
    params: { ...opt, messageBytes: ctx.message.bytes, from: ctx.message.from, helo: ctx.message.helo, to: TO, authservId: AUTHSERV_ID, milterConfigs: Object.fromEntries(ctx.milters.map((m) => [m.name, m.config])) },
    summary,
    targets,
    runs: records,
  };
  await writeResult(opt.out, "stack", ctx.startedAt, result);
  return records.length > 0 && records.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`bench/stack: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
