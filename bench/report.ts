// Small helpers the benchmark scripts share for their reports: median,
// number formatting, aligned text tables, case names.

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
