// Wardmail vs Postfix: SMTP acceptance rate, measured in the same run.
//
//   npm run bench                      # both servers, 3 runs per case
//   node bench/run.ts --only postfix   # just the Postfix peer
//   node bench/run.ts --runs 5 --messages 5000
//
// See bench/README.md for what is measured and how it is verified.
//
// The parts: bench/run/options.ts (command line), runs.ts (one measured run
// per server and its verification), postfix-log.ts (Postfix's log
// accounting), report.ts (the lines, table and summary).
import os from "node:os";
import { postconfValue, POSTFIX_SKIP_REASON, postfixAvailable, SMTP_SOURCE_BIN, startPostfix, type PostfixInstance } from "../test/peers/postfix.ts";
import { RssSampler } from "../test/peers/procs.ts";
import { clamdMissing, startClamd, type Clamd } from "../test/peers/clamd.ts";
import { killLoadChildren, type LoadSpec } from "./load.ts";
import { prepareBenchFs } from "./fs.ts";
import { machineInfo } from "./machine.ts";
import { fmt, writeResult } from "./report.ts";
import { loopDelayText, RSPAMD_SERVER, startSpamBench, type SpamBench } from "./spam.ts";
import { killWardmailSync, REPO_ROOT, startWardmail, type Command, type WardmailInstance, type WardmailPaths } from "./wardmail.ts";
import { parseOptions, type ServerName } from "./run/options.ts";
import { printRun, printSummary } from "./run/report.ts";
import { contentionWarnings, MiB, runPostfixOnce, runWardmailOnce, type RunRecord } from "./run/runs.ts";

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
  const filesystem = prepareBenchFs(opt.fs);
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
          printRun(r, perConn, run, s);
        }
      }
    }
    const wmPeakWhole = wm ? wmRssWhole.stop() / MiB : null;
    const summary = printSummary(opt, servers, records, spam !== undefined, wmPeakWhole);

    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, filesystem, loadavgAtEnd: os.loadavg() },
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
