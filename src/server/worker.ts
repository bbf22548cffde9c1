/**
 * One worker thread: owns spool shard N (its only writer), runs the SMTP
 * listeners (own sockets, SO_REUSEPORT) and the queue manager (src/qmgr) for
 * its shard. Started by the primary (primary.ts) with `{ config, shard }`.
 *
 * Messages from the primary: "go" (privileges are dropped: start local
 * delivery, which creates files), "reload" (certificates), "shutdown".
 * Messages to the primary: { type: "ready", shard, listeners }, then
 * { type: "stopped" } after a shutdown (the primary then ends the thread).
 * Stop: stops accepting, gives sessions that are committing a message their
 * reply, lets deliveries in flight finish, closes the spool, ends the thread.
 */
import { parentPort, type MessagePort } from "node:worker_threads";
import type { Config } from "../config/index.ts";
import { PoolLink } from "../threads/index.ts";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import { QueueManager } from "../qmgr/index.ts";
import { createLogger, logWritten } from "../log/index.ts";
import { FreeSpace, Spool } from "../queue/index.ts";
import { TlsManager, resolveCertificatePairs } from "../tls/index.ts";
import { join } from "node:path";
import { SmtpServer, type BoundListener } from "./listeners.ts";
import { chownTo } from "./privileges.ts";
import { ClientTable } from "./clients.ts";
import { Receiver } from "./receiver.ts";
import { MessageSink } from "../sink/index.ts";
import { StorageGuard } from "./storage-guard.ts";
import { existsSync } from "node:fs";
import { AccountStore, ACCOUNTS_FILE } from "../accounts/index.ts";
import { AuthGuard, AuthService, serverSecret } from "../submission/index.ts";
import { createResolver } from "../dns/index.ts";
import { contentChecks, inboundChecks } from "./checks.ts";
import { createOutbound } from "../outbound/index.ts";
import { AccountHold } from "../spam/index.ts";
import { EncryptionThread, KeyStore, StoreEncryption } from "../e2e/index.ts";
import { loopDelaySamples, metrics, processSamples, type Sample } from "../metrics/index.ts";

export interface WorkerReady {
  readonly type: "ready";
  readonly shard: number;
  readonly listeners: BoundListener[];
}

export interface WorkerData {
  /**
   * The primary's validated config, copied to the thread: a worker loads no
   * config code (the loader and its key table are ~2.5 MB of heap in each
   * thread that imports them), and a restarted worker runs with the config
   * its siblings run with, not with whatever the file holds by then.
   */
  readonly config: Config;
  readonly shard: number;
  /** Session ticket keys shared by every worker (TICKET_KEYS_LENGTH bytes; a Uint8Array after the copy to the thread). */
  readonly ticketKeys?: Uint8Array;
  /** The per-client counters shared by all workers (clients.ts). */
  readonly clients: SharedArrayBuffer;
  /** A link to the primary's shared task pools (src/threads PoolHost; the verifier threads), when the checks are on. */
  readonly pools?: MessagePort;
}

const LOOP_DELAY_RESOLUTION_MS = 10;

/**
 * The histogram's samples are the intervals between timer ticks (resolution
 * included); the delay is what a tick came late: the sample minus the
 * resolution (never below 0), in milliseconds.
 */
function loopDelayStats(h: IntervalHistogram): { p50Ms: number; p99Ms: number; maxMs: number; samples: number; resolutionMs: number } {
  const late = (ns: number): number => Math.round(Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS) * 1000) / 1000;
  const count = h.count;
  return {
    p50Ms: count > 0 ? late(h.percentile(50)) : 0,
    p99Ms: count > 0 ? late(h.percentile(99)) : 0,
    maxMs: count > 0 ? late(h.max) : 0,
    samples: count,
    resolutionMs: LOOP_DELAY_RESOLUTION_MS,
  };
}

export async function runWorker(data: WorkerData): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error("runWorker must run in a worker thread");
  const { shard, ticketKeys } = data;
  // Event loop delay of this thread from "ready" until "shutdown", logged once
  // at stop ("event loop delay"): how late a 10 ms timer fired, so a check
  // that blocks the loop shows up.
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  loopDelay.enable();
  const config = deepFrozen(data.config); // frozen as loadConfig returns it (the copy is not)
  const logger = createLogger({ level: config.log.level, base: { worker: shard } });
  const pairs = await resolveCertificatePairs(config, logger);
  const tls = await TlsManager.create({
    pairs: [...pairs],
    minVersion: config.tls.minVersion,
    ciphers: config.tls.ciphers,
    groups: config.tls.groups,
    mxSessionTickets: config.tls.mxSessionTickets,
    ...(ticketKeys !== undefined ? { ticketKeys: Buffer.from(ticketKeys) } : {}),
    watch: config.tls.watch,
    logger,
  });
  const spool = Spool.open({
    dataDir: config.server.dataDir,
    shard,
    maxBatch: config.spool.maxBatch,
    handoffMaxBytes: config.limits.max_handoff_bytes,
    encrypt: config.spool.encrypt,
    logger,
    retryBaseMs: config.queue.retryMin * 1000,
    retryMaxMs: config.queue.retryMax * 1000,
    retryJitter: 0.2,
    // The queue manager (src/qmgr) fails expired recipients (with a DSN) at queue.lifetime; this is the backstop.
    expireAfterMs: (config.queue.lifetime + 86_400) * 1000,
  });
  // The shard files were created by whoever we are now; the unprivileged user must own them.
  await chownTo(config, join(config.server.dataDir, "spool"));
  const accounts = AccountStore.open(config.server.dataDir, { create: true, localDomains: config.local.domains });
  for (const f of [ACCOUNTS_FILE, `${ACCOUNTS_FILE}-wal`, `${ACCOUNTS_FILE}-shm`]) {
    if (existsSync(join(config.server.dataDir, f))) await chownTo(config, join(config.server.dataDir, f));
  }
  const guard = new AuthGuard(accounts.db, config);
  const auth = new AuthService(accounts, guard, serverSecret(accounts.db, "fake-scram-salt"), config.auth.mechanisms.includes("SCRAM-SHA-256-PLUS"));
  const resolver = createResolver(config.dns);
  const pools = data.pools ? new PoolLink(data.pools) : undefined;
  const checks = await inboundChecks({ config, resolver, logger, accounts, ...(pools ? { pools } : {}) });
  const content = await contentChecks({ config, resolver, logger });
  const sink = new MessageSink({
    spool: spool.writer,
    shard,
    hostname: config.server.hostname,
    authservId: config.checks.authservId || config.server.hostname,
    local: config.local,
    dataDir: config.server.dataDir,
    isAccount: (a) => accounts.resolve(a) === a,
    logger,
  });
  // Records queued by an older Wardmail get their routes once, before delivery starts (src/queue route-old.ts).
  spool.routeOldRecords((address) => sink.router.routeInPlace(address));
  const hold = new AccountHold(accounts.db, config.accountHold);
  const receiver = new Receiver({ config, sink, accounts, auth, guard, hold, ...(checks ? { checks } : {}), ...(content ? { contentChecks: content } : {}) });
  const outbound = createOutbound(config, resolver, logger);
  for (const f of outbound.files) if (existsSync(f)) await chownTo(config, f);
  // Encrypt-on-store: large messages are encrypted in a thread of their own.
  const encryption = new EncryptionThread();
  const delivery = new QueueManager({
    spool: { scheduler: spool.scheduler, writer: spool.writer },
    dataDir: config.server.dataDir,
    remote: outbound.transport,
    bounces: { hostname: config.server.hostname, queue: config.queue, sink },
    logger,
    hostname: config.server.hostname,
    concurrency: config.queue.concurrency,
    onPermanentFailures: (account, count) => hold.recordRefused(account, count),
    encryption: new StoreEncryption(new KeyStore(accounts), encryption.encrypt),
  });
  // limits.min_free_space at MAIL, 452 4.3.1 for a spool write that ran out of space.
  const space = new FreeSpace({ dir: join(config.server.dataDir, "spool"), floor: config.limits.min_free_space, logger });
  const host = new StorageGuard(receiver, space);
  const clients = new ClientTable(data.clients, config.limits.client_ipv6_prefix);
  const server = new SmtpServer({ config, logger, host, tls, clients, idPrefix: `${shard.toString(36)}${Date.now().toString(36)}` });
  const listeners = await server.listen();

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    loopDelay.disable();
    logger.info("worker stopping");
    await server.close(10_000);
    await delivery.stop();
    encryption.close();
    spool.close();
    accounts.close();
    outbound.close();
    resolver.close();
    tls.close();
    logger.info(loopDelayStats(loopDelay), "event loop delay");
    await logWritten(logger, 2000);
    port.postMessage({ type: "stopped", shard });
  };
  port.on("message", (m: unknown) => {
    if (m === "go") {
      delivery.start();
      if (shard === 0) outbound.startReports(sink);
    }
    else if (m === "reload") void tls.reload();
    else if (m === "shutdown") void stop();
    else if (typeof m === "object" && m !== null && (m as { type?: unknown }).type === "metrics") {
      // A scrape: this thread's counters, its queue shard by state, its event loop delay and heap.
      const stats = spool.stats();
      const oldest = spool.oldestCreatedAt();
      const now = Date.now();
      const samples: Sample[] = [
        ...metrics.snapshot(),
        ...(["queued", "active", "deferred", "held", "damaged"] as const).map((state) => ({ name: "wardmail_queue_messages", labels: { state }, value: stats[state] })),
        ...(["queued", "deferred", "held"] as const).map((state) => {
          const at = oldest[state];
          return { name: "wardmail_queue_oldest_seconds", labels: { state }, value: at === undefined ? 0 : Math.max(0, (now - at) / 1000) };
        }),
        ...loopDelaySamples(loopDelay, LOOP_DELAY_RESOLUTION_MS, `worker ${shard}`),
        ...processSamples(`worker ${shard}`, false),
      ];
      port.postMessage({ type: "metrics", id: (m as { id?: unknown }).id, samples });
    }
    // SIGHUP also re-reads the spool key file at once (it is looked at once a second anyway).
    if (m === "reload") spool.refreshKeys();
  });
  const ready: WorkerReady = { type: "ready", shard, listeners };
  loopDelay.reset(); // start-up (config, certificates, spool) is not what it is for
  port.postMessage(ready);
  logger.info({ listeners }, "worker ready");
}

/** `value` with every object in it frozen (the structured copy of a frozen Config is not). The twin of config/load.ts deepFreeze: importing that would load the config loader into every worker, which passing the config avoids. */
function deepFrozen<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFrozen(v);
    Object.freeze(value);
  }
  return value;
}
