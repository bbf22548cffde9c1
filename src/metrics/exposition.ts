/**
 * Prometheus text exposition format (version 0.0.4): the samples of every
 * thread added up by series, grouped by metric with its HELP and TYPE.
 */
import { METRICS, seriesKey, type Sample } from "./registry.ts";

/** Gauges whose series over several threads is the largest value, not the sum (the oldest message of any shard). */
const MAX_OVER_THREADS: ReadonlySet<string> = new Set(["wardmail_queue_oldest_seconds"]);

/** Adds up samples of the same series (counters from several workers, per-shard queue gauges); for MAX_OVER_THREADS the largest wins. */
export function aggregate(snapshots: readonly (readonly Sample[])[]): Sample[] {
  const sums = new Map<string, { name: string; labels: Sample["labels"]; value: number }>();
  for (const snap of snapshots) {
    for (const s of snap) {
      const key = seriesKey(s.name, s.labels);
      const cur = sums.get(key);
      if (cur) cur.value = MAX_OVER_THREADS.has(s.name) ? Math.max(cur.value, s.value) : cur.value + s.value;
      else sums.set(key, { name: s.name, labels: s.labels, value: s.value });
    }
  }
  return [...sums.values()];
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The metric a sample belongs to: its own name, or a histogram's name for its _bucket, _sum and _count series. */
function familyOf(name: string): string | undefined {
  if (METRICS[name] !== undefined) return name;
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  return m?.[1] !== undefined && METRICS[m[1]]?.type === "histogram" ? m[1] : undefined;
}

/** Series order within a metric: by name (_bucket, _count, _sum), labels other than le, then le numerically. */
function compareSeries(a: Sample, b: Sample): number {
  const strip = (s: Sample): string => seriesKey(s.name, Object.fromEntries(Object.entries(s.labels).filter(([k]) => k !== "le")));
  const c = strip(a).localeCompare(strip(b));
  if (c !== 0) return c;
  const le = (s: Sample): number => (s.labels.le === undefined ? 0 : s.labels.le === "+Inf" ? Infinity : Number(s.labels.le));
  return le(a) - le(b);
}

/** The text Prometheus scrapes. Metrics without a definition in METRICS are left out. */
export function exposition(samples: readonly Sample[]): string {
  const byName = new Map<string, Sample[]>();
  for (const s of samples) {
    const family = familyOf(s.name);
    if (family === undefined) continue;
    const list = byName.get(family) ?? [];
    list.push(s);
    byName.set(family, list);
  }
  let out = "";
  for (const name of [...byName.keys()].sort()) {
    const def = METRICS[name];
    if (def === undefined) continue;
    out += `# HELP ${name} ${def.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${name} ${def.type}\n`;
    const list = (byName.get(name) ?? []).slice().sort(compareSeries);
    for (const s of list) {
      const labels = Object.keys(s.labels)
        .filter((k) => LABEL_NAME.test(k))
        .sort()
        .map((k) => `${k}="${escapeLabel(s.labels[k] ?? "")}"`);
      out += `${s.name}${labels.length > 0 ? `{${labels.join(",")}}` : ""} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}
