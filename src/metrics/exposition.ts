/**
 * Prometheus text exposition format (version 0.0.4): the samples of every
 * thread added up by series, grouped by metric with its HELP and TYPE.
 */
import { METRICS, seriesKey, type Sample } from "./registry.ts";

/** Adds up samples of the same series (counters from several workers, per-shard queue gauges). */
export function aggregate(snapshots: readonly (readonly Sample[])[]): Sample[] {
  const sums = new Map<string, { name: string; labels: Sample["labels"]; value: number }>();
  for (const snap of snapshots) {
    for (const s of snap) {
      const key = seriesKey(s.name, s.labels);
      const cur = sums.get(key);
      if (cur) cur.value += s.value;
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

/** The text Prometheus scrapes. Metrics without a definition in METRICS are left out. */
export function exposition(samples: readonly Sample[]): string {
  const byName = new Map<string, Sample[]>();
  for (const s of samples) {
    if (METRICS[s.name] === undefined) continue;
    const list = byName.get(s.name) ?? [];
    list.push(s);
    byName.set(s.name, list);
  }
  let out = "";
  for (const name of [...byName.keys()].sort()) {
    const def = METRICS[name];
    if (def === undefined) continue;
    out += `# HELP ${name} ${def.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${name} ${def.type}\n`;
    const list = (byName.get(name) ?? []).slice().sort((a, b) => seriesKey(a.name, a.labels).localeCompare(seriesKey(b.name, b.labels)));
    for (const s of list) {
      const labels = Object.keys(s.labels)
        .filter((k) => LABEL_NAME.test(k))
        .sort()
        .map((k) => `${k}="${escapeLabel(s.labels[k] ?? "")}"`);
      out += `${name}${labels.length > 0 ? `{${labels.join(",")}}` : ""} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}
