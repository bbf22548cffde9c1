/**
 * The metrics registry, the aggregation of the threads' snapshots and the
 * Prometheus text format: sums, escaping, bounds; and that the policy
 * checks count their verdicts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { aggregate, exposition, MAX_SERIES, metrics, Registry } from "./index.ts";
import { CheckRunner } from "../policy/index.ts";

test("counters of several threads add up by series; labels are escaped and sorted", () => {
  const a = new Registry();
  const b = new Registry();
  a.inc("wardmail_connections_total", { listener: "smtp" });
  a.inc("wardmail_connections_total", { listener: "smtp" }, 2);
  b.inc("wardmail_connections_total", { listener: "smtp" });
  b.inc("wardmail_connections_total", { listener: "submission" });
  b.inc("wardmail_check_verdicts_total", { verdict: 'x"y\\z\nw', check: "c" });
  b.inc("not_a_wardmail_metric", {});
  const text = exposition(aggregate([a.snapshot(), b.snapshot()]));
  assert.match(text, /^# HELP wardmail_check_verdicts_total /m);
  assert.match(text, /^# TYPE wardmail_connections_total counter$/m);
  assert.match(text, /^wardmail_connections_total\{listener="smtp"\} 4$/m);
  assert.match(text, /^wardmail_connections_total\{listener="submission"\} 1$/m);
  assert.ok(text.includes('wardmail_check_verdicts_total{check="c",verdict="x\\"y\\\\z\\nw"} 1\n'), text);
  assert.ok(!text.includes("not_a_wardmail_metric"));
});

test("wardmail_queue_oldest_seconds over threads is the largest value, not the sum", () => {
  const a = new Registry();
  const b = new Registry();
  a.set("wardmail_queue_oldest_seconds", { state: "deferred" }, 30);
  b.set("wardmail_queue_oldest_seconds", { state: "deferred" }, 120);
  a.set("wardmail_queue_messages", { state: "deferred" }, 1);
  b.set("wardmail_queue_messages", { state: "deferred" }, 2);
  const text = exposition(aggregate([a.snapshot(), b.snapshot()]));
  assert.match(text, /^# TYPE wardmail_queue_oldest_seconds gauge$/m);
  assert.match(text, /^wardmail_queue_oldest_seconds\{state="deferred"\} 120$/m);
  assert.match(text, /^wardmail_queue_messages\{state="deferred"\} 3$/m);
});

test("gauges are set, not added, within a thread", () => {
  const r = new Registry();
  r.set("wardmail_queue_messages", { state: "queued" }, 5);
  r.set("wardmail_queue_messages", { state: "queued" }, 2);
  assert.deepEqual(r.snapshot(), [{ name: "wardmail_queue_messages", labels: { state: "queued" }, value: 2 }]);
});

test("a thread keeps at most MAX_SERIES series; what is dropped is counted; long label values are cut", () => {
  const r = new Registry();
  for (let i = 0; i < MAX_SERIES + 10; i++) r.inc("wardmail_check_verdicts_total", { check: "x", verdict: `v${i}` });
  const snap = r.snapshot();
  assert.equal(snap.length, MAX_SERIES + 1);
  assert.deepEqual(snap.at(-1), { name: "wardmail_metrics_dropped_total", labels: {}, value: 10 });
  const s = new Registry();
  s.inc("wardmail_check_verdicts_total", { check: "x", verdict: "a".repeat(10_000) });
  assert.equal(s.snapshot()[0]?.labels.verdict?.length, 100);
});

test("CheckRunner counts each check's verdicts (and a failed check as check.error) in this thread's registry", async () => {
  const count = (verdict: string): number => metrics.snapshot().find((s) => s.name === "wardmail_check_verdicts_total" && s.labels.verdict === verdict)?.value ?? 0;
  const before = count("unit.bad");
  const runner = new CheckRunner(
    [
      { name: "unit", data: () => Promise.resolve({ verdicts: ["unit.bad"] }) },
      { name: "broken", data: () => Promise.reject(new Error("boom")) },
    ],
    { "unit.bad": "tag" },
    1000,
  );
  const log = pino({ level: "silent" });
  const input = { clientIp: "192.0.2.1", helo: "h", mailFrom: "", recipients: [], listener: "smtp" } as unknown as Parameters<CheckRunner["run"]>[1];
  await runner.run("data", input, log);
  assert.equal(count("unit.bad"), before + 1);
  assert.ok(count("broken.error") >= 1);
});

test("a histogram keeps cumulative buckets (le ordered numerically, +Inf last), _sum and _count", () => {
  const r = new Registry();
  for (const v of [0.2, 3, 3, 100]) r.observe("wardmail_delivery_delay_seconds", { destination: "local" }, v, [1, 5, 60]);
  const text = exposition(aggregate([r.snapshot()]));
  const lines = text.split("\n").filter((l) => l.startsWith("wardmail_delivery_delay_seconds"));
  assert.deepEqual(lines, [
    'wardmail_delivery_delay_seconds_bucket{destination="local",le="1"} 1',
    'wardmail_delivery_delay_seconds_bucket{destination="local",le="5"} 3',
    'wardmail_delivery_delay_seconds_bucket{destination="local",le="60"} 3',
    'wardmail_delivery_delay_seconds_bucket{destination="local",le="+Inf"} 4',
    'wardmail_delivery_delay_seconds_count{destination="local"} 4',
    'wardmail_delivery_delay_seconds_sum{destination="local"} 106.2',
  ]);
  assert.match(text, /^# TYPE wardmail_delivery_delay_seconds histogram$/m);
});

test("bound counters and histograms (counter, histogram) write the same series as inc and observe", () => {
  const a = new Registry();
  const b = new Registry();
  const buckets = [0.05, 0.1, 0.5];
  for (const v of [0.01, 0.2, 0.07, 3]) {
    a.inc("wardmail_deliveries_total", { outcome: "delivered", destination: "local" });
    a.observe("wardmail_delivery_delay_seconds", { destination: "local" }, v, buckets);
  }
  const delivered = b.counter("wardmail_deliveries_total", { outcome: "delivered", destination: "local" });
  const delay = b.histogram("wardmail_delivery_delay_seconds", { destination: "local" }, buckets);
  for (const v of [0.01, 0.2, 0.07, 3]) {
    delivered.inc();
    delay.observe(v);
  }
  assert.equal(exposition(aggregate([b.snapshot()])), exposition(aggregate([a.snapshot()])));
  // Nothing is made before the first write; over MAX_SERIES a bound series is dropped and counted like any other.
  const c = new Registry();
  const late = c.counter("wardmail_deliveries_total", { outcome: "failed", destination: "local" });
  assert.deepEqual(c.snapshot(), []);
  for (let i = 0; i < MAX_SERIES; i++) c.inc("wardmail_check_verdicts_total", { verdict: `v${i}` });
  late.inc();
  late.inc();
  assert.equal(c.snapshot().find((s) => s.name === "wardmail_metrics_dropped_total")?.value, 2);
});
