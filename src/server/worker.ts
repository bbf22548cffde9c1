/**
 * One worker thread: owns spool shard N (its only writer), runs the SMTP
 * listeners (own sockets, SO_REUSEPORT) and the local delivery agent for its
 * shard. Started by the primary (primary.ts) with `{ configPath, shard }`.
 *
 * Messages from the primary: "go" (privileges are dropped: start local
 * delivery, which creates files), "reload" (certificates), "shutdown".
 * Messages to the primary: { type: "ready", shard, listeners }, then
 * { type: "stopped" } after a shutdown (the primary then ends the thread).
 * Stop: stops accepting, gives sessions that are committing a message their
 * reply, lets deliveries in flight finish, closes the spool, ends the thread.
 */
import { parentPort } from "node:worker_threads";
import { loadConfig } from "../config/index.ts";
import { LocalDelivery } from "../delivery/index.ts";
import { createLogger } from "../log/index.ts";
import { Spool } from "../queue/index.ts";
import { TlsManager, resolveCertificatePairs } from "../tls/index.ts";
import { join } from "node:path";
import { SmtpServer, type BoundListener } from "./listeners.ts";
import { chownTo } from "./privileges.ts";
import { Receiver } from "./receiver.ts";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createPrivateKey } from "node:crypto";
import { AccountStore, ACCOUNTS_FILE } from "../accounts/index.ts";
import { AuthGuard, AuthService, serverSecret } from "../submission/index.ts";
import { createResolver } from "../dns/index.ts";
import { CheckRunner } from "../policy/index.ts";
import { SenderAuthCheck } from "../mailauth/index.ts";

export interface WorkerReady {
  readonly type: "ready";
  readonly shard: number;
  readonly listeners: BoundListener[];
}

export interface WorkerData {
  readonly configPath: string | undefined;
  readonly shard: number;
}

/** Reads the ARC sealing key and refuses one that cannot seal (not RSA, or under 1024 bits). */
async function sealingKey(path: string): Promise<string> {
  const pem = await readFile(path, "utf8");
  const key = createPrivateKey(pem);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== "rsa" || bits < 1024) throw new Error(`checks.arc_seal_key ${path}: expected an RSA private key of at least 1024 bits`);
  return pem;
}

export async function runWorker(data: WorkerData): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error("runWorker must run in a worker thread");
  const { configPath, shard } = data;
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
  const spool = Spool.open({ dataDir: config.server.dataDir, shard, maxBatch: config.spool.maxBatch, logger });
  // The shard files were created by whoever we are now; the unprivileged user must own them.
  await chownTo(config, join(config.server.dataDir, "spool"));
  const accounts = AccountStore.open(config.server.dataDir, { create: true, localDomains: config.local.domains });
  for (const f of [ACCOUNTS_FILE, `${ACCOUNTS_FILE}-wal`, `${ACCOUNTS_FILE}-shm`]) {
    if (existsSync(join(config.server.dataDir, f))) await chownTo(config, join(config.server.dataDir, f));
  }
  const guard = new AuthGuard(accounts.db, config);
  const auth = new AuthService(accounts, guard, serverSecret(accounts.db, "fake-scram-salt"), config.auth.mechanisms.includes("SCRAM-SHA-256-PLUS"));
  const resolver = createResolver(config.dns);
  const checks = config.checks.enabled
    ? new CheckRunner(
        [
          new SenderAuthCheck({
            resolver: (name, type) => resolver.resolve(name, type),
            authservId: config.checks.authservId || config.server.hostname,
            checks: config.checks,
            ...(config.checks.arcSeal
              ? { seal: { domain: config.checks.arcSeal.domain, selector: config.checks.arcSeal.selector, privateKey: await sealingKey(config.checks.arcSeal.key) } }
              : {}),
          }),
        ],
        config.checks.actions,
        config.checks.timeout * 1000,
      )
    : undefined;
  const receiver = new Receiver({ config, spool, shard, accounts, auth, guard, ...(checks ? { checks } : {}) });
  const delivery = new LocalDelivery({
    spool,
    dataDir: config.server.dataDir,
    local: config.local,
    isAccount: (a) => accounts.resolve(a) === a,
    logger,
    hostname: config.server.hostname,
  });
  const server = new SmtpServer({ config, logger, host: receiver, tls, idPrefix: `${shard.toString(36)}${Date.now().toString(36)}` });
  const listeners = await server.listen();

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("worker stopping");
    await server.close(10_000);
    await delivery.stop();
    spool.close();
    accounts.close();
    resolver.close();
    tls.close();
    logger.flush();
    port.postMessage({ type: "stopped", shard });
  };
  port.on("message", (m: unknown) => {
    if (m === "go") delivery.start();
    else if (m === "reload") void tls.reload();
    else if (m === "shutdown") void stop();
  });
  const ready: WorkerReady = { type: "ready", shard, listeners };
  port.postMessage(ready);
  logger.info({ listeners }, "worker ready");
}
