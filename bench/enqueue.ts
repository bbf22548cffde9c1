/**
 * Enqueue throughput measurement (not a test): N concurrent producers each
 * enqueue 10 KB messages back to back for a few seconds against a real shard
 * file in a temp directory, then the delivery side drains what was queued.
 * Run: node bench/enqueue.ts [producers=50] [seconds=2] [sizeBytes=10240] [maxBatch=256] [sealed|plain]
 * (the last: spool.encrypt on, the default, or off; the CPU time per message is printed too).
 */
import pino from "pino";
import { Spool } from "../src/queue/spool.ts";
import { sampleMessage, tempDir } from "../test/helpers/queue.ts";

const producers = Number(process.argv[2] ?? 50);
const seconds = Number(process.argv[3] ?? 2);
const size = Number(process.argv[4] ?? 10_240);
const maxBatch = Number(process.argv[5] ?? 256);
const encrypt = process.argv[6] !== "plain";

const { dir, cleanup } = tempDir("wardmail-bench-");
const spool = Spool.open({ dataDir: dir, shard: 0, logger: pino({ level: "warn" }), maxBatch, encrypt });
const messages = Array.from({ length: producers }, () => sampleMessage({ size, to: ["a@example.test", "b@example.test"] }));
const latencies: number[] = [];
const deadline = performance.now() + seconds * 1000;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
await Promise.all(
  messages.map(async (m) => {
    while (performance.now() < deadline) {
      const s = performance.now();
      await spool.enqueue(m);
      latencies.push(performance.now() - s);
    }
  }),
);
const elapsed = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const st = spool.stats();
latencies.sort((a, b) => a - b);
const pct = (p: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0).toFixed(2);
console.log(
  `enqueue: ${producers} producers, ${size} B, ${elapsed.toFixed(2)} s: ${st.committedMessages} messages, ` +
    `${Math.round(st.committedMessages / elapsed)} msg/s, ${Math.round(st.commits / elapsed)} commits/s, ` +
    `avg batch ${(st.committedMessages / st.commits).toFixed(1)}, latency p50 ${pct(0.5)} ms p99 ${pct(0.99)} ms, ` +
    `CPU ${((cpu.user + cpu.system) / st.committedMessages).toFixed(1)} µs/msg (${encrypt ? "sealed" : "plain"})`,
);

// Drain: claim, record delivered, until empty (spool side only, no disk delivery).
const d0 = performance.now();
let drained = 0;
for (;;) {
  const batch = spool.claimDue(Date.now(), 256);
  if (batch.length === 0) break;
  for (const m of batch) spool.recordOutcome(m.id, m.recipients.map((r) => ({ index: r.index, result: "delivered" as const })));
  drained += batch.length;
}
spool.flush();
const ds = (performance.now() - d0) / 1000;
console.log(`claim+complete: ${drained} messages in ${ds.toFixed(2)} s, ${Math.round(drained / ds)} msg/s; left ${JSON.stringify(spool.admin.counts())}`);
spool.close();
cleanup();
