/**
 * End-to-end throughput measurement (not a test): producers enqueue 10 KB
 * messages for a few seconds while the local agent delivers them to Maildirs
 * in a temp directory (every file and directory fsynced), then the backlog
 * drains. Run: node bench/delivery.ts [producers=50] [seconds=2] [concurrency=16]
 */
import pino from "pino";
import { Spool } from "../src/queue/index.ts";
import { routed, sampleMessage, tempDir } from "../test/helpers/queue.ts";
import { QueueManager } from "../src/qmgr/index.ts";
import { Router } from "../src/sink/index.ts";

const producers = Number(process.argv[2] ?? 50);
const seconds = Number(process.argv[3] ?? 2);
const concurrency = Number(process.argv[4] ?? 16);

const { dir, cleanup } = tempDir("wardmail-bench-");
const logger = pino({ level: "warn" });
const spool = Spool.open({ dataDir: dir, shard: 0, logger });
const local = {
  domains: ["example.test"],
  mailboxes: Array.from({ length: 20 }, (_, i) => `user${i}@example.test`),
  discard: [],
  aliases: {},
  maildir: "mail/%d/%n/Maildir",
  lmtp: {},
};
const agent = new QueueManager({ spool, dataDir: dir, logger, concurrency });
agent.start();
// Routed as the sink stores them.
const router = new Router({ local });
const messages = Array.from({ length: producers }, (_, i) => routed(sampleMessage({ size: 10_240, to: [`user${i % 20}@example.test`] }), (a) => router.routeInPlace(a)));
const t0 = performance.now();
const deadline = t0 + seconds * 1000;
await Promise.all(
  messages.map(async (m) => {
    while (performance.now() < deadline) await spool.enqueue(m);
  }),
);
const t1 = performance.now();
const enq = spool.stats().committedMessages;
const storedAtEnd = agent.stats().stored;
while (spool.nextDueAt() !== undefined || agent.stats().inFlight > 0) {
  await new Promise((r) => setTimeout(r, 10));
}
const t2 = performance.now();
const st = agent.stats();
console.log(
  `with delivery running: enqueued ${enq} in ${((t1 - t0) / 1000).toFixed(2)} s = ${Math.round(enq / ((t1 - t0) / 1000))} msg/s ` +
    `(${Math.round(spool.stats().commits / ((t1 - t0) / 1000))} commits/s); delivered meanwhile ${storedAtEnd}; ` +
    `all ${st.stored} stored after ${((t2 - t0) / 1000).toFixed(2)} s = ${Math.round(st.stored / ((t2 - t0) / 1000))} deliveries/s overall`,
);
await agent.stop();
spool.close();
cleanup();
