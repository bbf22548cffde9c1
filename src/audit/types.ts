/**
 * The audit's vocabulary: findings, areas, grades, the report, and the
 * grading rule (docs/audit.md "Grading").
 *
 * A finding is `{id, severity, area, title, evidence, fix}`: `id` is a
 * stable dotted name (documented in docs/audit.md), `evidence` what the
 * server actually said or did (its text is hostile: sanitize() strips
 * control characters, including C1 and bidi controls, and caps the length
 * before it reaches a terminal or a page), `fix` what the operator does.
 *
 * Grading: an area's grade is fixed by its worst finding: critical F, high
 * D, medium C, low B, otherwise (info only, or nothing) A. An area with no
 * check run is not graded ("-"). The overall grade is the worst area grade.
 */

export const SEVERITIES = ["critical", "high", "medium", "low", "info"] as const;
export type Severity = (typeof SEVERITIES)[number];

export const AREAS = ["transport", "relay", "authentication", "domain"] as const;
export type Area = (typeof AREAS)[number];

/** What each area is called in reports. */
export const AREA_TITLES: Readonly<Record<Area, string>> = {
  transport: "transport (TLS)",
  relay: "relay/abuse",
  authentication: "authentication",
  domain: "domain",
};

export interface Finding {
  readonly id: string;
  readonly severity: Severity;
  readonly area: Area;
  readonly title: string;
  readonly evidence: string;
  readonly fix: string;
}

export type Grade = "A" | "B" | "C" | "D" | "F" | "-";

/** One MX host's server audit inside a domain audit. */
export interface ServerSummary {
  readonly host: string;
  readonly address: string;
  readonly target: string;
  readonly grade: Grade;
  readonly areas: Readonly<Partial<Record<Area, Grade>>>;
  /** Why the server could not be audited (unreachable). */
  readonly error?: string;
}

export interface Report {
  /** What was audited, e.g. "smtp://127.0.0.1:25", or a domain name. */
  readonly target: string;
  /** "domain" for a domain audit; absent for a server audit. */
  readonly kind?: "server" | "domain";
  readonly grade: Grade;
  readonly areas: Readonly<Partial<Record<Area, Grade>>>;
  readonly findings: readonly Finding[];
  /** The checks that ran (ids), and those that could not run with the reason. */
  readonly checks: readonly { readonly id: string; readonly ran: boolean; readonly note?: string }[];
  /** Domain audit: each MX host's server audit. */
  readonly servers?: readonly ServerSummary[];
  readonly startedAt: string;
  readonly durationMs: number;
}

const GRADE_OF: Readonly<Record<Severity, Grade>> = { critical: "F", high: "D", medium: "C", low: "B", info: "A" };
const GRADE_ORDER: readonly Grade[] = ["A", "B", "C", "D", "F"];

/** The worse of two grades ("-" counts as nothing). */
export function worse(a: Grade, b: Grade): Grade {
  if (a === "-") return b;
  if (b === "-") return a;
  return GRADE_ORDER.indexOf(a) >= GRADE_ORDER.indexOf(b) ? a : b;
}

/** Grades per area (only `graded` areas) and overall, by the rule above. */
export function gradeFindings(findings: readonly Finding[], graded: readonly Area[]): { grade: Grade; areas: Partial<Record<Area, Grade>> } {
  const areas: Partial<Record<Area, Grade>> = {};
  for (const a of graded) areas[a] = "A";
  for (const f of findings) areas[f.area] = worse(areas[f.area] ?? "A", GRADE_OF[f.severity]);
  let grade: Grade = "-";
  for (const g of Object.values(areas)) grade = worse(grade, g);
  return { grade, areas };
}

/** True when a finding is high or critical (exit code 1). */
export function isSerious(f: Finding): boolean {
  return f.severity === "critical" || f.severity === "high";
}

/** Sorts findings: most severe first, then by area and id (stable output). */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (x, y) => SEVERITIES.indexOf(x.severity) - SEVERITIES.indexOf(y.severity) || AREAS.indexOf(x.area) - AREAS.indexOf(y.area) || x.id.localeCompare(y.id),
  );
}

/**
 * Text from the audited server made safe to show: C0 and C1 controls, DEL
 * and Unicode bidi/format controls become "?", at most `max` characters.
 */
export function sanitize(s: string, max = 400): string {
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g, "?");
  return clean.length > max ? clean.slice(0, max) + "..." : clean;
}

/** A finding with its evidence sanitized. */
export function finding(f: Finding): Finding {
  return { ...f, evidence: sanitize(f.evidence, 1000) };
}
