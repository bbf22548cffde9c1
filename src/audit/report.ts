/**
 * The three faces of an audit report: a terminal report card (ANSI colour
 * only when asked, i.e. on a TTY without NO_COLOR), JSON with the stable
 * schema of docs/audit.md, and a self-contained HTML page (no scripts, no
 * external resources; every value HTML-escaped). Evidence was sanitized when
 * the finding was made (types.ts); titles and fixes are ours.
 */
import { AREAS, AREA_TITLES, SEVERITIES, type Report, type Severity } from "./types.ts";

/** JSON schema version of toJson(); bumped on any incompatible change. */
export const SCHEMA_VERSION = 1;

export function toJson(r: Report): string {
  return (
    JSON.stringify(
      {
        schema: SCHEMA_VERSION,
        kind: r.kind ?? "server",
        target: r.target,
        grade: r.grade,
        areas: r.areas,
        findings: r.findings.map((f) => ({ id: f.id, severity: f.severity, area: f.area, title: f.title, evidence: f.evidence, fix: f.fix })),
        checks: r.checks,
        ...(r.servers !== undefined ? { servers: r.servers } : {}),
        startedAt: r.startedAt,
        durationMs: r.durationMs,
      },
      null,
      2,
    ) + "\n"
  );
}

const COLOUR: Readonly<Record<Severity | "A" | "B" | "C" | "D" | "F" | "-", string>> = {
  critical: "\x1b[1;31m",
  high: "\x1b[31m",
  medium: "\x1b[33m",
  low: "\x1b[36m",
  info: "\x1b[2m",
  A: "\x1b[1;32m",
  B: "\x1b[32m",
  C: "\x1b[33m",
  D: "\x1b[31m",
  F: "\x1b[1;31m",
  "-": "\x1b[2m",
};

export function toText(r: Report, opts: { colour: boolean }): string {
  const c = (k: keyof typeof COLOUR, s: string): string => (opts.colour ? `${COLOUR[k]}${s}\x1b[0m` : s);
  const lines: string[] = [];
  lines.push(`Wardmail audit of ${r.target}`);
  lines.push(`overall grade: ${c(r.grade, r.grade)}`);
  for (const a of AREAS) {
    const g = r.areas[a];
    if (g !== undefined) lines.push(`  ${AREA_TITLES[a].padEnd(18)} ${c(g, g)}`);
  }
  for (const sv of r.servers ?? []) {
    const per = AREAS.filter((a) => sv.areas[a] !== undefined).map((a) => `${a} ${sv.areas[a] ?? "-"}`).join(", ");
    lines.push(`  MX ${sv.host} (${sv.address}): ${c(sv.grade, sv.grade)}${per !== "" ? ` (${per})` : ""}${sv.error !== undefined ? ` unreachable: ${sv.error}` : ""}`);
  }
  const counts = SEVERITIES.map((s) => `${r.findings.filter((f) => f.severity === s).length} ${s}`).join(", ");
  lines.push("", `findings: ${counts}`);
  for (const f of r.findings) {
    lines.push("", `[${c(f.severity, f.severity.toUpperCase())}] ${f.title}  (${f.id}, ${AREA_TITLES[f.area]})`);
    lines.push(`    evidence: ${f.evidence}`);
    if (f.severity !== "info" || f.fix !== "nothing to do") lines.push(`    fix:      ${f.fix}`);
  }
  const skipped = r.checks.filter((x) => !x.ran);
  if (skipped.length > 0) {
    lines.push("", "not run:");
    for (const x of skipped) lines.push(`  ${x.id}: ${x.note ?? ""}`);
  }
  lines.push("", `took ${(r.durationMs / 1000).toFixed(1)} s, started ${r.startedAt}`);
  return lines.join("\n") + "\n";
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const HTML_COLOUR: Readonly<Record<string, string>> = {
  critical: "#a00",
  high: "#d33",
  medium: "#b80",
  low: "#088",
  info: "#777",
  A: "#080",
  B: "#4a4",
  C: "#b80",
  D: "#d33",
  F: "#a00",
  "-": "#777",
};

export function toHtml(r: Report): string {
  const badge = (k: string): string => `<span class="b" style="background:${HTML_COLOUR[k] ?? "#777"}">${esc(k)}</span>`;
  const areas = AREAS.filter((a) => r.areas[a] !== undefined)
    .map((a) => `<tr><td>${esc(AREA_TITLES[a])}</td><td>${badge(r.areas[a] ?? "-")}</td></tr>`)
    .join("");
  const findings = r.findings
    .map(
      (f) =>
        `<tr><td>${badge(f.severity)}</td><td><b>${esc(f.title)}</b><br><code>${esc(f.id)}</code> &middot; ${esc(AREA_TITLES[f.area])}` +
        `<div class="e">${esc(f.evidence)}</div><div class="f">Fix: ${esc(f.fix)}</div></td></tr>`,
    )
    .join("\n");
  const skipped = r.checks
    .filter((x) => !x.ran)
    .map((x) => `<li><code>${esc(x.id)}</code>: ${esc(x.note ?? "")}</li>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Wardmail audit of ${esc(r.target)}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}table{border-collapse:collapse;width:100%}td{border-bottom:1px solid #ddd;padding:.4em;vertical-align:top}
.b{color:#fff;padding:.1em .5em;border-radius:.3em;font-weight:bold}.e{font-family:monospace;white-space:pre-wrap;word-break:break-all;margin:.3em 0}.f{color:#333}</style>
</head><body>
<h1>Wardmail audit of ${esc(r.target)}</h1>
<p>Overall grade ${badge(r.grade)} &middot; started ${esc(r.startedAt)} &middot; ${(r.durationMs / 1000).toFixed(1)} s</p>
<table>${areas}</table>
${(r.servers ?? []).length > 0 ? `<h2>MX hosts</h2><table>${(r.servers ?? []).map((sv) => `<tr><td>${esc(sv.host)} (${esc(sv.address)})</td><td>${badge(sv.grade)}</td><td>${esc(sv.error ?? "")}</td></tr>`).join("")}</table>` : ""}
<h2>Findings</h2>
<table>${findings}</table>
${skipped !== "" ? `<h2>Not run</h2><ul>${skipped}</ul>` : ""}
</body></html>
`;
}
