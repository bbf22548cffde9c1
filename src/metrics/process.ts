/** Samples about the process and a thread: memory, and event loop delay from a histogram. */
import type { IntervalHistogram } from "node:perf_hooks";
import type { Sample } from "./registry.ts";

/**
 * How late a timer of `resolutionMs` fired, in seconds: median (p50), 99th
 * percentile (p99) and max, for one thread ("stat", not "quantile": that
 * label belongs to summaries).
 */
export function loopDelaySamples(h: IntervalHistogram, resolutionMs: number, thread: string): Sample[] {
  const late = (ns: number): number => Math.max(0, ns / 1e6 - resolutionMs) / 1000;
  const has = h.count > 0;
  return [
    { name: "wardmail_event_loop_delay_seconds", labels: { thread, stat: "p50" }, value: has ? late(h.percentile(50)) : 0 },
    { name: "wardmail_event_loop_delay_seconds", labels: { thread, stat: "p99" }, value: has ? late(h.percentile(99)) : 0 },
    { name: "wardmail_event_loop_delay_seconds", labels: { thread, stat: "max" }, value: has ? late(h.max) : 0 },
  ];
}

/** The heap of this thread (and, with rss, the whole process's resident memory). */
export function processSamples(thread: string, rss: boolean): Sample[] {
  const m = process.memoryUsage();
  const out: Sample[] = [{ name: "wardmail_heap_used_bytes", labels: { thread }, value: m.heapUsed }];
  if (rss) out.push({ name: "wardmail_resident_memory_bytes", labels: {}, value: m.rss });
  return out;
}
