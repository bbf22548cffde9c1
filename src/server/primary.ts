/**
 * The main thread of `wardmail serve`: prepares the data directory and the
 * self-signed certificate (once, before any worker can race for it), refuses
 * to start when a listen address is taken, starts one worker thread per shard
 * (worker.ts), drops privileges once every worker has bound its ports, prints
 * what the workers listen on, restarts a worker that dies (same shard, so its
 * successor recovers its spool), forwards SIGHUP (certificate reload) and on
 * SIGTERM/SIGINT stops the workers gracefully.
 *
 * Why threads and not processes: each Node process costs ~45 MB before it
 * does anything; threads share the runtime, so two cores are used within the
 * memory budget. A worker that throws is ended and restarted alone; if it
 * cannot bind again after privileges were dropped (a port below 1024), the
 * whole server exits non-zero so that the service manager restarts it.
 */
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import v8 from "node:v8";
import os from "node:os";
import { Worker } from "node:worker_threads";
import type { Config } from "../config/index.ts";
import { SpoolKeyring } from "../queue/index.ts";
import { logWritten, type Logger } from "../log/index.ts";
import { TICKET_KEYS_LENGTH, resolveCertificatePairs } from "../tls/index.ts";
import type { BoundListener } from "./listeners.ts";
import { ClientTable, tableSlots } from "./clients.ts";
import { chownTo, dropPrivileges, willDrop } from "./privileges.ts";
import type { WorkerData, WorkerReady } from "./worker.ts";
import { monitorEventLoopDelay } from "node:perf_hooks";
// The HTTPS listener and the metrics endpoint are imported only when configured: the main thread runs for months and keeps what it loads.
import type { RunningHttps } from "../https/index.ts";
import type { Sample } from "../metrics/index.ts";

// Compiled to dist/*.js for production, run from src/*.ts in development.
const WORKER_ENTRY = new URL(`./worker-main.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

/** Young-generation cap per worker isolate: bounds memory, costs a little more GC. */
const YOUNG_GENERATION_MB = 8;

export interface PrimaryOptions {
  readonly config: Config;
  readonly configPath: string | undefined;
  readonly logger: Logger;
  /** Where the human-readable banner goes. */
  readonly print: (line: string) => void;
}

export function workerCount(config: Config): number {
  return config.server.workers > 0 ? config.server.workers : Math.max(1, os.availableParallelism());
}

export async function runPrimary(opts: PrimaryOptions): Promise<void> {
  const { config, logger, print } = opts;
  // bin/wardmail gives the main thread a small young generation with
  // --max-semi-space-size; V8 applies that flag to every isolate made while
  // it is set, over each Worker's resourceLimits. Cleared here, before the
  // first Worker, so each thread gets its own: session workers
  // YOUNG_GENERATION_MB, task threads theirs (src/threads).
  v8.setFlagsFromString("--max-semi-space-size=0");
  const data = config.server.dataDir;
  await mkdir(data, { recursive: true, mode: 0o750 });
  await mkdir(`${data}/spool`, { recursive: true, mode: 0o700 });
  // The spool key, created once here (0600), before the data directory is given to the server's user.
  if (config.spool.encrypt) SpoolKeyring.open(data, { create: true });
  await resolveCertificatePairs(config, logger); // generates the self-signed pair once, here
  await chownTo(config, data);
  await assertAddressesFree(config);

  const n = workerCount(config);
  // One session ticket key for every worker (a restarted one too), so that a
  // submission client resumes whichever thread accepts it. In memory only:
  // a new start makes a new key and old tickets fall back to a full handshake.
  const ticketKeys = randomBytes(TICKET_KEYS_LENGTH);
  // Per-client counters shared by all workers (and by a restarted worker's successor).
  const clients = ClientTable.allocate(tableSlots(config.limits.max_connections, n));
  const workers = new Map<number, Worker>();
  // The task pools the workers share (src/threads PoolHost): the verifier threads of sender authentication.
  // Imported only when the checks are on: with them off the primary loads none of it.
  const pools = config.checks.enabled ? new (await import("../threads/index.ts")).PoolHost() : undefined;
  // Metrics scrapes waiting for the workers' snapshots, by request id.
  const scrapes = new Map<number, (samples: Sample[]) => void>();
  let stopping = false;
  let dropped = false;
  const restarts: number[] = [];

  const start = (shard: number): Promise<WorkerReady> =>
    new Promise((resolve, reject) => {
      // With the checks on, every worker's verifications run in the one pool of verifier threads held here.
      const link = pools?.connect();
      const workerData: WorkerData = { config, shard, ticketKeys, clients, ...(link ? { pools: link } : {}) };
      const w = new Worker(WORKER_ENTRY, { workerData, transferList: link ? [link] : [], resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB, maxOldGenerationSizeMb: Math.floor(config.limits.worker_heap_limit / 1048576) } });
      workers.set(shard, w);
      let ready = false;
      let lastError: Error | undefined;
      w.on("message", (m: unknown) => {
        const type = typeof m === "object" && m !== null ? (m as { type?: string }).type : undefined;
        if (type === "ready") {
          ready = true;
          if (dropped) w.postMessage("go");
          resolve(m as WorkerReady);
        } else if (type === "stopped") {
          void w.terminate();
        } else if (type === "metrics") {
          const r = m as { id?: unknown; samples?: Sample[] };
          const waiting = typeof r.id === "number" ? scrapes.get(r.id) : undefined;
          waiting?.(r.samples ?? []);
        }
      });
      w.on("error", (err) => {
        lastError = err;
        logger.error({ shard, err: err.message, stack: err.stack }, "worker failed");
      });
      w.on("exit", (code) => {
        if (workers.get(shard) === w) workers.delete(shard);
        if (!ready) {
          reject(new Error(`worker ${shard} stopped before it was ready: ${lastError?.message ?? `exit code ${code}`}`));
          return;
        }
        if (stopping) return;
        logger.error({ shard, code }, "worker died; restarting it");
        const now = Date.now();
        restarts.push(now);
        while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift();
        // A crash loop must not spin: back off when workers keep dying.
        const delay = restarts.length > 5 ? 5000 : 100;
        setTimeout(() => {
          if (stopping) return;
          start(shard).catch((err: unknown) => {
            logger.fatal({ shard, err: String(err) }, "cannot restart worker; stopping the server");
            void stopAll().then(() => process.exit(1));
          });
        }, delay);
      });
    });

  // The HTTPS listener (MTA-STS, autoconfig), bound below; its certificates reload with the workers'.
  let httpsListener: RunningHttps | undefined;
  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping workers");
    void httpsListener?.close();
    const exits = [...workers.values()].map(
      (w) =>
        new Promise<void>((resolve) => {
          w.once("exit", () => resolve());
          w.postMessage("shutdown");
        }),
    );
    const timer = setTimeout(() => {
      for (const w of workers.values()) void w.terminate();
    }, 15_000);
    await Promise.all(exits);
    clearTimeout(timer);
    pools?.close();
    // process.exit() follows: wait until the last lines are written out.
    await logWritten(logger, 2000);
  };

  process.on("SIGTERM", () => void stopAll().then(() => process.exit(0)));
  process.on("SIGINT", () => void stopAll().then(() => process.exit(0)));
  process.on("SIGHUP", () => {
    logger.info("SIGHUP: reloading certificates");
    for (const w of workers.values()) w.postMessage("reload");
    void httpsListener?.reload();
  });

  // ACME: the challenge listener is bound (still root) and a certificate put in place before any worker loads it.
  let acmeBound: { host: string; port: number }[] = [];
  if (config.acme.directory !== "") {
    // Imported only when ACME is configured: its client library is large.
    const { AcmeManager } = await import("../acme/index.ts");
    const manager = new AcmeManager({ config, logger, reload: () => {
      logger.info("acme: reloading certificates");
      for (const w of workers.values()) w.postMessage("reload");
      void httpsListener?.reload();
    } });
    acmeBound = await manager.start();
  }
  let readies: WorkerReady[];
  try {
    readies = await Promise.all(Array.from({ length: n }, (_, shard) => start(shard)));
  } catch (err) {
    await stopAll();
    throw err;
  }
  const metricsBound: { host: string; port: number }[] = [];
  if (config.metrics.listen.length > 0) {
    const { MetricsServer, aggregate, loopDelaySamples, metrics, processSamples } = await import("../metrics/index.ts");
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    let nextId = 0;
    const collect = async (): Promise<Sample[]> => {
      const asks = [...workers.values()].map(
        (w) =>
          new Promise<Sample[] | undefined>((resolve) => {
            const id = nextId++;
            const timer = setTimeout(() => {
              scrapes.delete(id);
              resolve(undefined);
            }, 2000);
            scrapes.set(id, (samples) => {
              clearTimeout(timer);
              scrapes.delete(id);
              resolve(samples);
            });
            w.postMessage({ type: "metrics", id });
          }),
      );
      const answers = (await Promise.all(asks)).filter((a): a is Sample[] => a !== undefined);
      const own: Sample[] = [...metrics.snapshot(), ...loopDelaySamples(loop, 10, "primary"), ...processSamples("primary", true), ...(pools?.threadSamples() ?? []), { name: "wardmail_workers", labels: {}, value: answers.length }];
      return aggregate([own, ...answers]);
    };
    const metricsServer = new MetricsServer({ listen: config.metrics.listen, collect, logger });
    try {
      metricsBound.push(...(await metricsServer.listen()));
    } catch (err) {
      await stopAll();
      throw new Error(`cannot listen for metrics: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (config.https.listen.length > 0) {
    try {
      const { startHttps } = await import("../https/index.ts");
      httpsListener = await startHttps(config, logger);
    } catch (err) {
      await stopAll();
      throw new Error(`cannot start the HTTPS listener: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // Every port is bound and every key loaded: now give up root for good.
  if (willDrop(config)) dropPrivileges(config, logger);
  dropped = true;
  for (const w of workers.values()) w.postMessage("go");

  const first = readies[0];
  print(`wardmail: ${n} worker thread${n === 1 ? "" : "s"}, data in ${data}, config ${opts.configPath ?? "(embedded defaults)"}`);
  for (const l of first?.listeners ?? []) print(`wardmail: listening ${describe(l)}`);
  for (const b of acmeBound) print(`wardmail: listening acme-http01  ${b.host.includes(":") ? `[${b.host}]` : b.host}:${b.port} (HTTP, ACME challenges)`);
  for (const b of httpsListener?.bound ?? []) print(`wardmail: listening https       ${b.host.includes(":") ? `[${b.host}]` : b.host}:${b.port} (HTTPS, MTA-STS policy, autoconfig)`);
  for (const b of metricsBound) print(`wardmail: listening metrics     ${b.host.includes(":") ? `[${b.host}]` : b.host}:${b.port} (HTTP, GET /metrics)`);
  print(`wardmail: local domains ${config.local.domains.join(", ")}`);
  print("wardmail: ready");
}

/**
 * Workers bind with SO_REUSEPORT, which would let a second Wardmail (same
 * user) silently share our ports. A plain bind fails while any socket holds
 * the address, so try one first and refuse to start when it is taken.
 */
async function assertAddressesFree(config: Config): Promise<void> {
  const all = [...config.smtp.listen, ...config.submission.listen, ...config.submissions.listen];
  for (const a of all) {
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer();
      s.once("error", (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${a.host}:${a.port}: ${err.code === "EADDRINUSE" ? "address already in use (is another Wardmail running?)" : err.message}`)),
      );
      s.listen({ host: a.host, port: a.port, exclusive: true }, () => s.close(() => resolve()));
    });
  }
}

function describe(l: BoundListener): string {
  const addr = l.host.includes(":") ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
  const kind = l.tls === "implicit" ? "implicit TLS" : l.tls === "starttls" ? "STARTTLS" : "plain";
  return `${l.role.padEnd(11)} ${addr} (${kind})`;
}
