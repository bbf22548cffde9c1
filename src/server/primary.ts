/**
 * The primary process of `wardmail serve`: prepares the data directory and
 * the self-signed certificate (once, before any worker can race for it),
 * forks one worker per shard, prints what the workers listen on, restarts a
 * worker that dies (same shard, so its spool is recovered by its successor),
 * forwards SIGHUP (certificate reload), and on SIGTERM/SIGINT stops the
 * workers gracefully.
 *
 * The primary never touches mail or sockets; it may stay root (like Postfix's
 * master) so that a restarted worker can bind privileged ports again.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import { fileURLToPath } from "node:url";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/index.ts";
import { resolveCertificatePairs } from "../tls/index.ts";
import type { BoundListener } from "./listeners.ts";
import { chownTo, type WorkerReady } from "./worker.ts";

const WORKER_ENTRY = fileURLToPath(new URL("./worker-main.ts", import.meta.url));

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
  const data = config.server.dataDir;
  await mkdir(data, { recursive: true, mode: 0o750 });
  await mkdir(`${data}/spool`, { recursive: true, mode: 0o700 });
  await resolveCertificatePairs(config, logger); // generates the self-signed pair once, here
  await chownTo(config, data);

  await assertAddressesFree(config);
  const n = workerCount(config);
  const workers = new Map<number, ChildProcess>();
  let stopping = false;
  let readyCount = 0;
  const restarts: number[] = [];

  const start = (shard: number): Promise<WorkerReady> =>
    new Promise((resolve, reject) => {
      const child = fork(WORKER_ENTRY, opts.configPath ? [opts.configPath] : [], {
        env: { ...process.env, WARDMAIL_SHARD: String(shard) },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      workers.set(shard, child);
      let ready = false;
      child.on("message", (m: unknown) => {
        if (typeof m === "object" && m !== null && (m as { type?: string }).type === "ready") {
          ready = true;
          resolve(m as WorkerReady);
        }
      });
      child.on("exit", (code, signal) => {
        workers.delete(shard);
        if (!ready) {
          reject(new Error(`worker ${shard} exited before it was ready (code ${code}, signal ${signal})`));
          return;
        }
        if (stopping) return;
        logger.error({ shard, code, signal }, "worker died; restarting");
        const now = Date.now();
        restarts.push(now);
        while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift();
        // A crash loop must not spin: back off when workers keep dying.
        const delay = restarts.length > 5 ? 5000 : 100;
        setTimeout(() => {
          if (!stopping) start(shard).catch((err: unknown) => logger.error({ shard, err: String(err) }, "worker restart failed"));
        }, delay);
      });
    });

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping workers");
    const exits = [...workers.values()].map((w) => new Promise<void>((resolve) => {
      if (w.exitCode !== null) return resolve();
      w.once("exit", () => resolve());
      w.send("shutdown", (err) => {
        if (err) w.kill("SIGTERM");
      });
    }));
    const timer = setTimeout(() => {
      for (const w of workers.values()) w.kill("SIGKILL");
    }, 15_000);
    await Promise.all(exits);
    clearTimeout(timer);
  };

  process.on("SIGTERM", () => void stopAll().then(() => process.exit(0)));
  process.on("SIGINT", () => void stopAll().then(() => process.exit(0)));
  process.on("SIGHUP", () => {
    logger.info("SIGHUP: reloading certificates in the workers");
    for (const w of workers.values()) w.kill("SIGHUP");
  });

  let readies: WorkerReady[];
  try {
    readies = await Promise.all(Array.from({ length: n }, (_, shard) => start(shard)));
  } catch (err) {
    await stopAll();
    throw err;
  }
  readyCount = readies.length;
  const first = readies[0];
  print(`wardmail: ${readyCount} worker${readyCount === 1 ? "" : "s"}, data in ${data}, config ${opts.configPath ?? "(embedded defaults)"}`);
  for (const l of first?.listeners ?? []) print(`wardmail: listening ${describe(l)}`);
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
