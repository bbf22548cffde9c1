/**
 * One worker process: owns spool shard N (its only writer), runs the SMTP
 * listeners (own sockets, SO_REUSEPORT) and the local delivery agent for its
 * shard. Started by the primary (primary.ts) with WARDMAIL_SHARD set.
 *
 * Privileges: when started as root with server.user set, it binds and loads
 * its TLS keys first, then drops to that user and group for good.
 * Stop: on SIGTERM/SIGINT or a "shutdown" message it stops accepting, gives
 * sessions that are committing a message their reply, lets deliveries in
 * flight finish, closes the spool and exits 0.
 */
import { execFileSync } from "node:child_process";
import { loadConfig } from "../config/index.ts";
import type { Config } from "../config/types.ts";
import { LocalDelivery } from "../delivery/index.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { Spool } from "../queue/index.ts";
import { TlsManager, installReloadSignal, resolveCertificatePairs } from "../tls/index.ts";
import { SmtpServer, type BoundListener } from "./listeners.ts";
import { Receiver } from "./receiver.ts";
import { join } from "node:path";
import { chown, lstat, readdir } from "node:fs/promises";

export interface WorkerReady {
  readonly type: "ready";
  readonly shard: number;
  readonly listeners: BoundListener[];
}

/** Drops root to config.server.user/group (after binding). */
export function dropPrivileges(config: Config, log: Logger): void {
  const { user, group } = config.server;
  if (!user || typeof process.getuid !== "function" || process.getuid() !== 0) return;
  const g = group || primaryGroupOf(user);
  process.setgid?.(g);
  (process as { initgroups?: (user: string, group: string | number) => void }).initgroups?.(user, g);
  process.setuid?.(user);
  log.info({ user, group: g, uid: process.getuid(), gid: process.getgid?.() }, "privileges dropped");
}

function primaryGroupOf(user: string): string | number {
  try {
    return Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
  } catch {
    return user;
  }
}

/** When running as root with server.user set, gives the tree under dir to that user. */
export async function chownTo(config: Config, dir: string): Promise<void> {
  const { user, group } = config.server;
  if (!user || typeof process.getuid !== "function" || process.getuid() !== 0) return;
  const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
  const g = group || primaryGroupOf(user);
  const gid = typeof g === "number" ? g : Number(execFileSync("getent", ["group", g], { encoding: "utf8" }).split(":")[2]);
  const walk = async (p: string): Promise<void> => {
    await chown(p, uid, gid);
    const st = await lstat(p);
    if (st.isDirectory()) for (const e of await readdir(p)) await walk(join(p, e));
  };
  await walk(dir);
}

export async function runWorker(configPath: string | undefined, shard: number): Promise<void> {
  const config = await loadConfig(configPath);
  const logger = createLogger({ level: config.log.level, base: { worker: shard } });
  const pairs = await resolveCertificatePairs(config, logger);
  const tls = await TlsManager.create({
    pairs: [...pairs],
    minVersion: config.tls.minVersion,
    ciphers: config.tls.ciphers,
    watch: config.tls.watch,
    logger,
  });
  const spoolDir = join(config.server.dataDir, "spool");
  const spool = Spool.open({ dataDir: config.server.dataDir, shard, maxBatch: config.spool.maxBatch, logger });
  // The shard files were created as whoever we are now; the unprivileged user must own them.
  await chownTo(config, spoolDir);
  const delivery = new LocalDelivery({ spool, dataDir: config.server.dataDir, local: config.local, logger, hostname: config.server.hostname });
  delivery.start();
  const receiver = new Receiver(config, spool, shard);
  const server = new SmtpServer({ config, logger, host: receiver, tls, idPrefix: `${shard.toString(36)}${Date.now().toString(36)}` });
  const listeners = await server.listen();
  dropPrivileges(config, logger);
  const removeHup = installReloadSignal(tls);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("worker stopping");
    await server.close(10_000);
    await delivery.stop();
    spool.close();
    tls.close();
    removeHup();
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("message", (m: unknown) => {
    if (m === "shutdown") void stop();
  });
  process.on("disconnect", () => void stop());
  process.on("uncaughtException", (err) => {
    // A bug must not silently lose mail: log, then exit so the primary restarts us
    // (the spool's recovery picks up whatever was in flight).
    logger.fatal({ err: err.message, stack: err.stack }, "uncaught exception");
    logger.flush();
    process.exit(70);
  });
  const ready: WorkerReady = { type: "ready", shard, listeners };
  process.send?.(ready);
  logger.info({ listeners }, "worker ready");
}
