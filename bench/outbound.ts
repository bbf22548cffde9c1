// Outbound delivery: Wardmail vs Postfix relaying the same load to the same
// TLS sink on loopback, measured in the same run (issue: outbound).
//
//   npm run build && node bench/outbound.ts          # 3 runs, 3,000 messages each
//   node bench/outbound.ts --runs 5 --messages 5000
//   node bench/outbound.ts --only wardmail --wardmail-cpu-prof /tmp/prof
//
// What happens per run (one server at a time, the other idle; order
// alternates between runs):
//   smtp-source injects N messages (sender@bench.test -> rcpt@remote.test)
//   into the server's port 25 listener from 127.0.0.1, a network both
//   servers let relay without AUTH; the server relays every message to
//   its relay host, the sink: a small SMTP server in a child process of
//   this script (Postfix's smtp-sink cannot do STARTTLS), which offers
//   STARTTLS, PIPELINING, 8BITMIME, SIZE, accepts every message and counts
//   messages, connections, messages per connection and TLS versions per
//   EHLO name, i.e. per server. Both servers must use STARTTLS to it
//   (Postfix smtp_tls_security_level = encrypt, Wardmail relay tls =
//   "encrypt": TLS required, certificate not verified on either side; the
//   sink's certificate is self-signed) and may reuse connections (Postfix
//   smtp_tls_connection_reuse = yes through tlsproxy, Wardmail
//   outbound.messages_per_connection).
//
// See bench/README.md ("Outbound delivery") for what is measured and how it is verified.
//
// The parts: bench/outbound/options.ts (command line), sink.ts (the sink and
// its handle), servers.ts (the two servers' set-up), run-once.ts (one run and
// its verification), logs.ts (the servers' log accounting), report.ts (the
// lines, table and summary).
import { execFile as execFileCb } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { postconfValue, POSTFIX_SKIP_REASON, postfixAvailable, SMTP_SOURCE_BIN, type PostfixInstance } from "../test/peers/postfix.ts";
import { RssSampler } from "../test/peers/procs.ts";
import { killLoadChildren } from "./load.ts";
import { prepareBenchFs } from "./fs.ts";
import { machineInfo } from "./machine.ts";
import { fmt, writeResult } from "./report.ts";
import { killWardmailSync, type WardmailInstance } from "./wardmail.ts";
import { parseOptions, type ServerName } from "./outbound/options.ts";
import { printRun, printSummary } from "./outbound/report.ts";
import { runOnce, type Ctx, type RunRecord } from "./outbound/run-once.ts";
import { FROM, startPostfixOutbound, startWardmailOutbound, TO, wardmailJs } from "./outbound/servers.ts";
import { killSinkSync, runSinkChild, startSink, type Sink } from "./outbound/sink.ts";

const execFile = promisify(execFileCb);

async function makeCert(dir: string, kind: "ec" | "rsa"): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, "sink-cert.pem");
  const key = path.join(dir, "sink-key.pem");
  const keyArgs = kind === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["-newkey", "rsa:2048"];
  await execFile("openssl", ["req", "-x509", ...keyArgs, "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=sink.bench.test", "-addext", "subjectAltName=DNS:sink.bench.test"], {
    timeout: 30_000,
  });
  return { cert, key };
}

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  if (!postfixAvailable()) {
    console.error(`bench/outbound: ${POSTFIX_SKIP_REASON}`);
    return 1;
  }
  if (!existsSync(wardmailJs(opt))) {
    console.error(`bench/outbound: ${wardmailJs(opt)} missing: run npm run build`);
    return 1;
  }
  const servers: ServerName[] = opt.only ? [opt.only] : ["postfix", "wardmail"];
  const machine: Record<string, unknown> = { ...machineInfo({ openssl: true }), filesystem: prepareBenchFs(opt.fs) };
  const startedAt = new Date().toISOString();
  const tmp = await mkdtemp(path.join(os.tmpdir(), "wm-outbound-"));

  const emergency = (): void => {
    killLoadChildren();
    killWardmailSync();
    killSinkSync();
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  };
  process.on("exit", emergency);
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`\nbench/outbound: ${sig}, stopping servers`);
    emergency();
    process.exit(130); // postfix.ts's exit hook kills the Postfix instance
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let sink: Sink | undefined;
  let pf: PostfixInstance | undefined;
  let wm: WardmailInstance | undefined;
  const records: RunRecord[] = [];
  try {
    if (opt.cpuProf !== undefined) await mkdir(opt.cpuProf, { recursive: true });
    if (opt.keepLogs !== undefined) await mkdir(opt.keepLogs, { recursive: true });
    const { cert, key } = await makeCert(tmp, opt.sinkKey);
    sink = await startSink(cert, key);
    console.log(`sink: 127.0.0.1:${sink.port} pid ${sink.pid} (STARTTLS, ${opt.sinkKey === "ec" ? "ECDSA P-256" : "RSA-2048"} self-signed certificate)`);
    if (servers.includes("postfix")) {
      pf = await startPostfixOutbound(opt, sink.port);
      console.log(
        `postfix ${String(machine.postfix)}: 127.0.0.1:${pf.port}, relayhost [127.0.0.1]:${sink.port}, smtp_tls_security_level=${opt.tls}, smtp_tls_connection_reuse=${opt.postfixTlsReuse ? "yes" : "no"}, in_flow_delay=${postconfValue(pf.configDir, "in_flow_delay")}, dir ${pf.dir}`,
      );
    }
    if (servers.includes("wardmail")) {
      wm = await startWardmailOutbound(opt, sink.port);
      console.log(
        `wardmail: 127.0.0.1:${wm.paths.smtpPort} pid ${wm.pid}, relay 127.0.0.1:${sink.port} tls=${opt.tls === "encrypt" ? "encrypt" : "may"}, messages_per_connection=${opt.messagesPerConnection}, max_connections_per_domain=${opt.maxConnectionsPerDomain}, dir ${wm.paths.dir}`,
      );
    }
    const ctx: Ctx = {
      opt,
      sink,
      ...(pf ? { pf } : {}),
      ...(wm ? { wm } : {}),
      pfRss: new RssSampler(() => (pf?.masterPid !== undefined ? [pf.masterPid] : []), { intervalMs: 500 }),
      wmRss: new RssSampler(() => (wm ? [wm.pid] : [])),
    };
    const wmRssWhole = new RssSampler(() => (wm ? [wm.pid] : []));
    if (wm) wmRssWhole.start();

    if (opt.warmup > 0) {
      for (const s of servers) {
        const w = await runOnce(ctx, s, opt.warmup, "warmup");
        console.log(`warm-up ${s}: ${opt.warmup} messages, ${fmt(w.outboundMsgsPerSec)} msg/s${w.ok ? "" : ` (NOT OK: ${w.notes.join("; ")})`}`);
      }
    }

    console.log(
      `\n${opt.messages} messages per run (${opt.size}-byte bodies, ${opt.sessions} injecting sessions, ${opt.injectPerConn} per injecting connection), ${opt.runs} runs; servers alternate first/second.`,
    );
    for (let run = 1; run <= opt.runs; run++) {
      const order = run % 2 === 1 ? servers : [...servers].reverse();
      for (const [i, s] of order.entries()) {
        const r: RunRecord = { ...(await runOnce(ctx, s, opt.messages, `run${run}`)), run, order: i + 1 };
        const gen = r.cpu.generatorS / r.cpu.capacityS;
        const other = r.cpu.otherS / r.cpu.capacityS;
        if (gen > 0.2) r.notes.push(`note: smtp-source used ${(gen * 100).toFixed(0)}% of the machine's CPU`);
        if (other > 0.15) r.notes.push(`note: other processes used ${(other * 100).toFixed(0)}% of the machine's CPU`);
        records.push(r);
        printRun(r);
      }
    }
    const wmPeakWhole = wm ? wmRssWhole.stop() / 1024 : null;
    const summary = printSummary(records, opt.runs, wmPeakWhole);

    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgAtEnd: os.loadavg() },
      params: {
        servers,
        runs: opt.runs,
        messagesPerRun: opt.messages,
        sessions: opt.sessions,
        bodyBytes: opt.size,
        injectPerConnection: opt.injectPerConn,
        warmupMessages: opt.warmup,
        timeoutMs: opt.timeoutMs,
        tls: opt.tls,
        sinkKey: opt.sinkKey,
        postfixTlsConnectionReuse: opt.postfixTlsReuse,
        postfixInFlowDelay: opt.postfixInFlowDelay,
        wardmail: {
          command: wm ? `${wm.command.command} ${wm.command.args.join(" ")}` : null,
          messagesPerConnection: opt.messagesPerConnection,
          maxConnectionsPerDomain: opt.maxConnectionsPerDomain,
          queueConcurrency: opt.queueConcurrency ?? null,
          workers: opt.workers,
        },
        loadGenerator: SMTP_SOURCE_BIN,
        envelope: { from: FROM, to: TO },
      },
      summary,
      runs: records,
    };
    await writeResult(opt.out, "outbound", startedAt, result);
    if (opt.cpuProf !== undefined) console.log(`Wardmail CPU profiles: ${opt.cpuProf} (written when the server stops)`);
    return records.length > 0 && records.every((r) => r.ok) ? 0 : 1;
  } finally {
    killLoadChildren();
    if (wm) await wm.stop();
    if (pf) await pf.stop();
    if (sink) await sink.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--sink-child") {
  runSinkChild(process.argv[3] ?? "", process.argv[4] ?? "");
} else {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`bench/outbound: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = 1;
    },
  );
}
