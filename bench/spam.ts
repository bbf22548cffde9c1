// bench/run.ts --rspamd: a second Wardmail with spam scoring on, measured in
// the same run as Postfix and the plain Wardmail ("wardmail+rspamd"), and
// rspamd's own CPU per message (its process tree, from /proc, during the
// load). rspamd runs with the test config of test/peers/rspamd.ts (no
// Redis, no DNS, no stock rule set: the cost of the protocol, MIME parsing
// and the scan loop, not of a production rule set) and one normal worker
// per CPU.
import os from "node:os";
import { startRspamd, rspamdMissing, type Rspamd } from "../test/peers/rspamd.ts";
import { treeCpuSeconds } from "../test/peers/procs.ts";
import { fmt } from "./report.ts";

export const RSPAMD_SERVER = "wardmail+rspamd";

export interface SpamBench {
  readonly rspamd: Rspamd;
  /** TOML for the Wardmail that scans. */
  readonly extra: string;
  /** Runs fn and returns its result with rspamd's CPU milliseconds per message. */
  measure<T>(messages: number, fn: () => Promise<T>): Promise<{ value: T; rspamdCpuMsPerMsg: number }>;
}

export async function startSpamBench(): Promise<SpamBench> {
  const missing = rspamdMissing();
  if (missing !== undefined) throw new Error(`--rspamd: ${missing}`);
  const rspamd = await startRspamd({ workers: os.availableParallelism() });
  return {
    rspamd,
    extra: `[spam]\nrspamd = "${rspamd.url}"\n`,
    async measure(messages, fn) {
      const before = treeCpuSeconds(rspamd.daemon.pid);
      const value = await fn();
      return { value, rspamdCpuMsPerMsg: ((treeCpuSeconds(rspamd.daemon.pid) - before) * 1000) / messages };
    },
  };
}

/** The summary line of the rspamd case: its rate against the plain Wardmail and Postfix, and the CPU of both sides per message. */
export function spamSummary(c: { case: string; wardmail: number | null; scanning: number | null; postfix: number | null; serverCpu: number | null; rspamdCpu: number | null }): string {
  const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);
  return `median ${c.case.padEnd(12)} Wardmail+rspamd ${fmt(c.scanning)} msg/s: ${fmt(ratio(c.scanning, c.wardmail), 2)} x Wardmail without it, ${fmt(ratio(c.scanning, c.postfix), 2)} x Postfix` +
    `; CPU per message: Wardmail ${fmt(c.serverCpu, 2)} ms + rspamd ${fmt(c.rspamdCpu, 2)} ms`;
}

/** The "event loop delay" lines (one per worker, written at stop) of a Wardmail log, as one line of text. */
export function loopDelayText(name: string, log: string): string {
  const parts: string[] = [];
  for (const line of log.split("\n")) {
    if (!line.startsWith("{") || !line.includes('"msg":"event loop delay"')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      parts.push(`worker ${String(o.worker)}: p50 ${String(o.p50Ms)} ms, p99 ${String(o.p99Ms)} ms, max ${String(o.maxMs)} ms`);
    } catch {
      /* not a log line */
    }
  }
  return `${name} event loop delay (ready to shutdown): ${parts.length > 0 ? parts.join("; ") : "no line in the log"}`;
}
