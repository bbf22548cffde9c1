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
