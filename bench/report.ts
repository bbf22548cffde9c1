// Small helpers the benchmark scripts share for their reports: median,
// number formatting, aligned text tables, case names, the JSON result file.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmt = (x: number | null | undefined, digits = 0): string => (x === null || x === undefined ? "-" : x.toFixed(digits));

/** Rows as an aligned table: the first column left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")).join("\n");
}

export function caseName(perConn: number): string {
  return perConn === 1 ? "1 msg/conn" : `${perConn} msgs/conn`;
}

/**
 * Writes a bench's JSON result to `out` and a copy named PREFIX-<start time>.json
 * beside it (bench/out/ keeps every run), and says where.
 */
export async function writeResult(out: string, prefix: string, startedAt: string, result: unknown): Promise<void> {
  await mkdir(path.dirname(out), { recursive: true });
  const text = `${JSON.stringify(result, null, 2)}\n`;
  await writeFile(out, text);
  await writeFile(path.join(path.dirname(out), `${prefix}-${startedAt.replace(/[:.]/g, "-")}.json`), text);
  console.log(`wrote ${path.relative(process.cwd(), out) || out}`);
}

/**
 * What the machine's cores leave for a ratio against a peer. The load
 * generator (and what else a run needs beside the server: the bench, the
 * DNS server) runs on the same cores as the server, so with `loadMsPerMsg`
 * of their CPU per message no server accepts more than
 * cores × 1000 / loadMsPerMsg messages a second, even at no CPU of its own:
 * `ceiling` is that rate over the peer's. For the ratio `target`, the
 * server's own CPU per message must be at most `budgetMs` = cores × 1000 /
 * (target × peerMsgsPerSec) − loadMsPerMsg: necessary, not sufficient (a
 * server also waits for the disk and the network). `budgetMs` ≤ 0: no
 * server reaches the target on this machine with this load side.
 */
export function coreBudget(cores: number, loadMsPerMsg: number, peerMsgsPerSec: number, target: number): { ceiling: number; budgetMs: number } {
  const capacity = cores * 1000; // CPU ms per second of wall time
  return { ceiling: capacity / loadMsPerMsg / peerMsgsPerSec, budgetMs: capacity / (target * peerMsgsPerSec) - loadMsPerMsg };
}

/** A target's report line: the case, the ratio's name, its median against the target, met or not. */
export function targetLine(caseLabel: string, ratio: string, value: number, target: number): string {
  const met = value >= target;
  return `target ${caseLabel.padEnd(12)} ${ratio.padEnd(9)} median ${fmt(value, 2)} ${met ? ">=" : "<"} ${target}: ${met ? "met" : "NOT met"}`;
}

/** One report line for coreBudget: the ceiling, and what the target asks of the server's CPU against what it used. */
export function budgetLine(what: string, cores: number, loadSide: string, loadMsPerMsg: number, peerMsgsPerSec: number, target: number, serverMsPerMsg: number | null): string {
  const b = coreBudget(cores, loadMsPerMsg, peerMsgsPerSec, target);
  const need = b.budgetMs > 0 ? `${target}x needs the server's CPU at most ${fmt(b.budgetMs, 2)} ms/msg (used ${fmt(serverMsPerMsg, 2)})` : `${target}x is out of reach on this machine whatever the server's CPU`;
  return `${what}: ${cores} cores shared with ${loadSide} (${fmt(loadMsPerMsg, 2)} ms CPU/msg): at most ${fmt(b.ceiling, 2)} even at zero server CPU; ${need}`;
}
