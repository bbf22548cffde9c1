// Inbound acceptance rate with sender authentication (SPF, DKIM, ARC, DMARC)
// on and off, on loopback, with DNS answered by a local Knot DNS server.
//
//   node bench/checks.ts                       # 3 runs per case and config
//   node bench/checks.ts --runs 5 --messages 5000 --configs off,on
//
// What it does (see docs/benchmarks.md, "Inbound with sender authentication"):
//  1. starts knotd (test/peers/knot.ts) with the zone sender.test: SPF
//     "ip4:127.0.0.1 -all" for the domain and for the HELO name
//     mta.sender.test, an RSA-2048 DKIM key at sel._domainkey, DMARC p=reject;
//     and the empty zone "test" above it;
//  2. makes ONE message of about 10 KB (--size body bytes) from
//     sender@sender.test to sink@bench.test and signs it with dkimpy's
//     dkimsign (an independent signer; relaxed/simple, rsa-sha256);
//  3. for every case (messages per connection) and run, and for each config,
//     in alternating order, starts a fresh Wardmail (built dist/, as
//     bench/wardmail.ts; sink@bench.test in local.discard):
//       off        [checks] enabled = false
//       on         checks on, [dns] servers = the local Knot (answers cached
//                  per worker for their TTL, as in production)
//       on-nocache the same with dns.cache_size = 0: every question goes to
//                  Knot (per message the DKIM key, _dmarc.sender.test and
//                  _dmarc.test; per connection the two SPF records)
//     sends --warmup messages (not reported), then the measured load with
//     smtp-source -F (bench/load.ts; more than 1 message per connection in
//     --conn-mode batch by default, where the generator costs little, as the
//     core targets in docs/benchmarks.md are read), then stops the server
//     (SIGTERM) and reads its log;
//  4. verifies each run: the generator saw only 2xx replies, the log has one
//     "message accepted" line per message sent (warm-up included), and with
//     checks on one "checks" line per message with spf, dkim and dmarc pass
//     and action "ignore";
//  5. reports msg/s per config, the ratio on/off (the issue's target: >= 0.5),
//     server CPU per message, and each worker's event loop delay (its
//     "event loop delay" log line at stop: p50, p99 and max of how late a
//     10 ms timer fired, from ready to shutdown), as a table and JSON.
//
// Needs: knotd and kdig (knot, knot-dnsutils), /usr/bin/dkimsign
// (python3-dkim), /usr/sbin/smtp-source (postfix), a built dist/
// (`npm run build`). Loopback only.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { killLoadChildren, runLoad, type LoadResult, type LoadSpec } from "./load.ts";
import { killWardmailSync, REPO_ROOT, startWardmail, type WardmailInstance } from "./wardmail.ts";
import { knotMissing, startKnot, type Knot } from "../test/peers/knot.ts";
import { DKIMSIGN, makeSignedMessage, SENDER_DOMAIN as DOMAIN, SENDER_FROM as FROM, SENDER_HELO as HELO } from "../test/peers/signed-message.ts";
import { SMTP_SOURCE_BIN } from "../test/peers/postfix.ts";
import { median, fmt, table, caseName, writeResult } from "./report.ts";
import { machineBusyCpuSeconds, reapedChildrenCpuSeconds, treeCpuSeconds } from "../test/peers/procs.ts";

const TO = "sink@bench.test";

type ConfigName = "off" | "on" | "on-nocache";
const CONFIGS: readonly ConfigName[] = ["off", "on", "on-nocache"];

interface Options {
  runs: number;
  messages: number;
  sessions: number;
  size: number;
  cases: number[];
  warmup: number;
  timeoutMs: number;
  configs: ConfigName[];
  connMode: "exact" | "batch";
  out: string;
}

const HELP = `usage: node bench/checks.ts [options]
  --runs N          runs per case and config (default 3)
  --messages N      messages per run, a multiple of every case (default 3000)
  --sessions N      concurrent SMTP sessions (default 50)
  --size BYTES      body bytes of the message (default 10240)
  --cases LIST      messages per connection (default 1,10)
  --warmup N        unreported messages per server start (default 200; 0 = none)
  --timeout-s N     hard limit for one run's load (default 180)
  --configs LIST    off,on,on-nocache (default all three)
  --conn-mode M     batch (default) or exact: how cases > 1 are generated (bench/README.md)
  --out FILE        JSON result (default bench/out/checks-latest.json)`;

function parseOptions(argv: string[]): Options {
  const o: Options = {
    runs: 3,
    messages: 3000,
    sessions: 50,
    size: 10240,
    cases: [1, 10],
    warmup: 200,
    timeoutMs: 180_000,
    configs: [...CONFIGS],
    connMode: "batch",
    out: path.join(REPO_ROOT, "bench", "out", "checks-latest.json"),
  };
  const int = (v: string | undefined, name: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer >= ${min}, got ${String(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case "--runs": o.runs = int(v, a, 1); i++; break;
      case "--messages": o.messages = int(v, a, 1); i++; break;
      case "--sessions": o.sessions = int(v, a, 1); i++; break;
      case "--size": o.size = int(v, a, 0); i++; break;
      case "--cases": o.cases = (v ?? "").split(",").map((x) => int(x, a, 1)); i++; break;
      case "--warmup": o.warmup = int(v, a, 0); i++; break;
      case "--timeout-s": o.timeoutMs = int(v, a, 1) * 1000; i++; break;
      case "--out": o.out = path.resolve(v ?? ""); i++; break;
      case "--conn-mode":
        if (v !== "exact" && v !== "batch") throw new Error(`--conn-mode: exact or batch, got ${String(v)}`);
        o.connMode = v;
        i++;
        break;
      case "--configs": {
        const names = (v ?? "").split(",");
        for (const n of names) if (!CONFIGS.includes(n as ConfigName)) throw new Error(`--configs: unknown ${n} (known: ${CONFIGS.join(",")})`);
        o.configs = names as ConfigName[];
        i++;
        break;
      }
      case "--help":
      case "-h":
        console.log(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${String(a)}\n${HELP}`);
    }
  }
  for (const k of o.cases) if (o.messages % k !== 0) throw new Error(`--messages ${o.messages} is not a multiple of case ${k}`);
  return o;
}

// ------------------------------------------------------------------ helpers


// ------------------------------------------------------------------ log reading

interface LoopDelay {
  worker: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

interface LogFacts {
  accepted: number;
  /** "checks" lines whose verdicts have spf, dkim and dmarc pass, nothing failing, action ignore. */
  checksPass: number;
  /** Other "checks" lines (first few, for the report). */
  checksOther: unknown[];
  checksOtherCount: number;
  loop: LoopDelay[];
  errors: string[];
}

function readLogFacts(log: string): LogFacts {
  const f: LogFacts = { accepted: 0, checksPass: 0, checksOther: [], checksOtherCount: 0, loop: [], errors: [] };
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const msg = o.msg;
    if (msg === "message accepted") f.accepted++;
    else if (msg === "checks") {
      const v = Array.isArray(o.verdicts) ? (o.verdicts as string[]) : [];
      const pass = ["spf.pass", "dkim.pass", "dmarc.pass"].every((x) => v.includes(x)) && !v.some((x) => /\.(fail|softfail|temperror|permerror|reject|quarantine)$/.test(x));
      if (pass && o.action === "ignore") f.checksPass++;
      else {
        f.checksOtherCount++;
        if (f.checksOther.length < 3) f.checksOther.push({ verdicts: v, action: o.action, triggered: o.triggered });
      }
    } else if (msg === "event loop delay") {
      f.loop.push({
        worker: Number(o.worker),
        p50Ms: Number(o.p50Ms),
        p99Ms: Number(o.p99Ms),
        maxMs: Number(o.maxMs),
        samples: Number(o.samples),
      });
    } else if (typeof o.level === "number" && o.level >= 50 && f.errors.length < 5) {
      f.errors.push(String(msg));
    }
  }
  return f;
}

// ------------------------------------------------------------------ one run

interface RunRecord {
  config: ConfigName;
  perConnection: number;
  run: number;
  order: number;
  ok: boolean;
  msgsPerSec: number | null;
  wallMs: number;
  serverCpuS: number;
  serverCpuMsPerMsg: number | null;
  knotCpuS: number;
  /** smtp-source and xargs (children of the bench, reaped during the load). */
  generatorCpuS: number;
  machineCpuS: number;
  capacityS: number;
  load: LoadResult;
  warmup: LoadResult | null;
  log: Omit<LogFacts, "errors"> & { errors: string[] };
  /** Worst worker: highest p99 and max of the run. */
  loopP50Ms: number | null;
  loopP99Ms: number | null;
  loopMaxMs: number | null;
  notes: string[];
}

function checksToml(config: ConfigName, knotPort: number): string {
  if (config === "off") return "[checks]\nenabled = false";
  return [
    "[checks]",
    "enabled = true",
    'authserv_id = "mx.bench.test"',
    "[dns]",
    `servers = ["127.0.0.1:${knotPort}"]`,
    ...(config === "on-nocache" ? ["cache_size = 0"] : []),
  ].join("\n");
}

async function runOnce(
  config: ConfigName,
  perConnection: number,
  opt: Options,
  knot: Knot,
  messageFile: string,
  started: Set<WardmailInstance>,
): Promise<Omit<RunRecord, "run" | "order">> {
  // The built server (defaultWardmailCommand), server.workers = one per core (the default).
  const wm = await startWardmail({ checks: checksToml(config, knot.port) });
  started.add(wm);
  const notes: string[] = [];
  const spec = (messages: number, k: number): LoadSpec => ({
    port: wm.paths.smtpPort,
    sessions: opt.sessions,
    messages,
    perConnection: k,
    perConnectionMode: opt.connMode,
    size: opt.size,
    messageFile,
    from: FROM,
    to: TO,
    helo: HELO,
    timeoutMs: opt.timeoutMs,
  });
  let warm: LoadResult | null = null;
  let load: LoadResult;
  let serverCpuS = 0;
  let knotCpuS = 0;
  let generatorCpuS = 0;
  let machineCpuS = 0;
  let capacityS = 0;
  let log = "";
  try {
    if (opt.warmup > 0) {
      warm = await runLoad(spec(opt.warmup, 1));
      if (!warm.ok) notes.push(`warm-up failed: ${warm.errors.join("; ")}`);
    }
    const s0 = treeCpuSeconds(wm.pid);
    const k0 = treeCpuSeconds(knot.pid);
    const m0 = machineBusyCpuSeconds();
    const g0 = reapedChildrenCpuSeconds(process.pid);
    const t0 = performance.now();
    load = await runLoad(spec(opt.messages, perConnection));
    capacityS = ((performance.now() - t0) / 1000) * os.availableParallelism();
    serverCpuS = treeCpuSeconds(wm.pid) - s0;
    knotCpuS = treeCpuSeconds(knot.pid) - k0;
    generatorCpuS = reapedChildrenCpuSeconds(process.pid) - g0;
    machineCpuS = machineBusyCpuSeconds() - m0;
    if (wm.child.exitCode !== null || wm.child.signalCode !== null) notes.push("wardmail exited during the run");
  } finally {
    log = await wm.stopAndReadLog();
    started.delete(wm);
  }
  const facts = readLogFacts(log);
  const sent = opt.messages + (warm?.ok ? opt.warmup : 0);
  if (facts.accepted !== sent) notes.push(`expected ${sent} "message accepted" log lines (warm-up included), found ${facts.accepted}`);
  if (config !== "off") {
    if (facts.checksPass !== sent) {
      notes.push(`expected ${sent} "checks" lines with spf/dkim/dmarc pass, found ${facts.checksPass}; others: ${facts.checksOtherCount} ${JSON.stringify(facts.checksOther)}`);
    }
  } else if (facts.checksPass + facts.checksOtherCount > 0) {
    notes.push(`checks are off but the log has ${facts.checksPass + facts.checksOtherCount} "checks" lines`);
  }
  if (facts.loop.length === 0) notes.push('no "event loop delay" line in the log (not a graceful stop?)');
  if (facts.errors.length > 0) notes.push(`error lines in the log: ${facts.errors.join("; ")}`);
  const verified = load.ok && notes.length === 0;
  if (!verified) {
    // Keep the server's log of a failed run for a look (bench/out/ is git-ignored).
    const file = path.join(path.dirname(opt.out), `checks-failed-${config}-${perConnection}-${Date.now()}.log`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, log);
    notes.push(`server log kept in ${path.relative(process.cwd(), file)}`);
  }
  const worst = (k: "p50Ms" | "p99Ms" | "maxMs"): number | null => (facts.loop.length ? Math.max(...facts.loop.map((l) => l[k])) : null);
  return {
    config,
    perConnection,
    ok: verified,
    msgsPerSec: load.ok ? opt.messages / (load.wallMs / 1000) : null,
    wallMs: load.wallMs,
    serverCpuS,
    serverCpuMsPerMsg: load.ok ? (serverCpuS * 1000) / opt.messages : null,
    knotCpuS,
    generatorCpuS,
    machineCpuS,
    capacityS,
    load,
    warmup: warm,
    log: facts,
    loopP50Ms: worst("p50Ms"),
    loopP99Ms: worst("p99Ms"),
    loopMaxMs: worst("maxMs"),
    notes: [...load.errors, ...notes],
  };
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  const missing =
    knotMissing() ??
    (existsSync(DKIMSIGN) ? undefined : `${DKIMSIGN} missing: install python3-dkim with scripts/install-peers.sh`) ??
    (existsSync(SMTP_SOURCE_BIN) ? undefined : `${SMTP_SOURCE_BIN} missing: install postfix with scripts/install-peers.sh`) ??
    (existsSync(path.join(REPO_ROOT, "dist", "bin", "wardmail.js")) ? undefined : "dist/ not built: npm run build");
  if (missing) {
    console.error(`bench/checks: ${missing}`);
    return 1;
  }
  const startedAt = new Date().toISOString();
  const started = new Set<WardmailInstance>();
  let knot: Knot | undefined;
  const tmp = await mkdtemp(path.join(os.tmpdir(), "wm-bench-checks-"));
  const emergency = (): void => {
    killLoadChildren();
    killWardmailSync();
  };
  process.on("exit", emergency);
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\nbench/checks: ${sig}, stopping servers`);
    emergency();
    process.exit(130); // knot.ts's exit hook kills knotd
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const records: RunRecord[] = [];
  try {
    // Key, zone, signed message (test/peers/signed-message.ts), Knot.
    const message = await makeSignedMessage(tmp, { size: opt.size, to: TO, subject: "sender authentication benchmark", messageId: "bench-checks" });
    knot = await startKnot({ zones: message.zones });
    const messageFile = message.file;
    console.log(
      `knotd 127.0.0.1:${knot.port} (zone ${DOMAIN}); message ${message.bytes} bytes signed by dkimsign (d=${DOMAIN}, s=sel, rsa-sha256, RSA-2048)`,
    );
    console.log(
      `${opt.sessions} concurrent sessions, ${opt.messages} messages per run (+${opt.warmup} warm-up), ${opt.runs} runs per case, --conn-mode ${opt.connMode}; ` +
        `configs ${opt.configs.join(", ")} alternate order; a fresh server per run.\n`,
    );

    for (const k of opt.cases) {
      for (let run = 1; run <= opt.runs; run++) {
        const order = run % 2 === 1 ? opt.configs : [...opt.configs].reverse();
        for (const [i, config] of order.entries()) {
          const r: RunRecord = { ...(await runOnce(config, k, opt, knot, messageFile, started)), run, order: i + 1 };
          records.push(r);
          const share = (x: number): string => `${r.capacityS > 0 ? ((x / r.capacityS) * 100).toFixed(0) : "-"}%`;
          const other = Math.max(0, r.machineCpuS - r.serverCpuS - r.knotCpuS - r.generatorCpuS);
          console.log(
            `  ${caseName(k)} run ${run} ${config.padEnd(10)} ${fmt(r.msgsPerSec).padStart(6)} msg/s  ${(r.wallMs / 1000).toFixed(2)} s  ` +
              `server CPU ${fmt(r.serverCpuMsPerMsg, 2)} ms/msg; machine: server ${share(r.serverCpuS)}, smtp-source ${share(r.generatorCpuS)}, knot ${share(r.knotCpuS)}, other ${share(other)}  ` +
              `loop delay p50/p99/max ${fmt(r.loopP50Ms, 1)}/${fmt(r.loopP99Ms, 1)}/${fmt(r.loopMaxMs, 1)} ms` +
              `${r.ok ? "  verified" : "  NOT OK"}${r.notes.length ? `\n      ${r.notes.join("\n      ")}` : ""}`,
          );
        }
      }
    }

    // Summary.
    const rows: string[][] = [["case", "run", ...opt.configs.map((c) => `${c} msg/s`), ...opt.configs.filter((c) => c !== "off").map((c) => `${c}/off`)]];
    const summary: Record<string, unknown>[] = [];
    for (const k of opt.cases) {
      const rates = new Map<ConfigName, number[]>(opt.configs.map((c) => [c, []]));
      const ratios = new Map<ConfigName, number[]>(opt.configs.map((c) => [c, []]));
      for (let run = 1; run <= opt.runs; run++) {
        const get = (c: ConfigName): number | null => {
          const r = records.find((x) => x.config === c && x.perConnection === k && x.run === run);
          return r?.ok ? r.msgsPerSec : null;
        };
        const off = get("off");
        const cells = opt.configs.map((c) => fmt(get(c)));
        const ratioCells: string[] = [];
        for (const c of opt.configs) {
          const v = get(c);
          if (v !== null) rates.get(c)!.push(v);
          if (c === "off") continue;
          const ratio = v !== null && off !== null ? v / off : null;
          if (ratio !== null) ratios.get(c)!.push(ratio);
          ratioCells.push(fmt(ratio, 2));
        }
        rows.push([caseName(k), String(run), ...cells, ...ratioCells]);
      }
      for (const c of opt.configs) {
        const rs = records.filter((x) => x.config === c && x.perConnection === k && x.ok);
        summary.push({
          case: caseName(k),
          perConnection: k,
          config: c,
          okRuns: rs.length,
          medianMsgsPerSec: median(rates.get(c)!),
          medianRatioToOff: c === "off" ? null : median(ratios.get(c)!),
          medianServerCpuMsPerMsg: median(rs.flatMap((r) => (r.serverCpuMsPerMsg === null ? [] : [r.serverCpuMsPerMsg]))),
          medianLoopP50Ms: median(rs.flatMap((r) => (r.loopP50Ms === null ? [] : [r.loopP50Ms]))),
          medianLoopP99Ms: median(rs.flatMap((r) => (r.loopP99Ms === null ? [] : [r.loopP99Ms]))),
          medianLoopMaxMs: median(rs.flatMap((r) => (r.loopMaxMs === null ? [] : [r.loopMaxMs]))),
          worstLoopMaxMs: rs.length ? Math.max(...rs.map((r) => r.loopMaxMs ?? 0)) : null,
        });
      }
    }
    console.log(`\n${table(rows)}`);
    console.log("(msg/s: messages / wall-clock time of the load; ratio: checks on / checks off in the same run)\n");
    const srows: string[][] = [["case", "config", "median msg/s", "ratio to off", "server CPU ms/msg", "loop p50 ms", "loop p99 ms", "loop max ms", "worst max ms"]];
    for (const s of summary) {
      srows.push([
        String(s.case),
        String(s.config),
        fmt(s.medianMsgsPerSec as number | null),
        fmt(s.medianRatioToOff as number | null, 2),
        fmt(s.medianServerCpuMsPerMsg as number | null, 2),
        fmt(s.medianLoopP50Ms as number | null, 1),
        fmt(s.medianLoopP99Ms as number | null, 1),
        fmt(s.medianLoopMaxMs as number | null, 1),
        fmt(s.worstLoopMaxMs as number | null, 1),
      ]);
    }
    console.log(table(srows));
    console.log("(medians over the runs; loop: event loop delay of the busiest worker of each run, from ready to shutdown)\n");
    let targetMet = true;
    for (const s of summary) {
      if (s.config === "off") continue;
      const ratio = s.medianRatioToOff as number | null;
      const met = ratio !== null && ratio >= 0.5;
      if (s.config === "on") targetMet &&= met;
      console.log(`target ${String(s.case).padEnd(12)} ${String(s.config).padEnd(10)} median ratio ${fmt(ratio, 3)} ${met ? ">= 0.5: met" : "< 0.5: NOT met"}`);
    }

    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? "unknown",
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        kernel: os.release(),
        node: process.version,
        loadavgAtEnd: os.loadavg(),
      },
      params: { ...opt, message: { bytes: message.bytes, from: FROM, to: TO, helo: HELO, signer: "dkimsign (dkimpy), rsa-sha256, RSA-2048, relaxed/simple" } },
      summary,
      targetMet,
      runs: records,
    };
    await writeResult(opt.out, "checks", startedAt, result);
    return records.every((r) => r.ok) ? 0 : 1;
  } finally {
    killLoadChildren();
    for (const wm of started) await wm.stop();
    await knot?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`bench/checks: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
