/**
 * The checks of the [dnsbl] section's zone list: each entry is a table
 * { zone = "bl.example", weight = 1, answers = [] }. Pure, no I/O.
 *
 * - zone: a domain name (lowercased, trailing dot dropped), each listed once;
 * - weight: a non-zero integer from -100 to 100 (negative: an allowlist,
 *   DNSWL); default 1;
 * - answers: the A answers that count as a listing, IPv4 addresses or
 *   networks in 127.0.0.0/8 ("127.0.0.2", "127.0.0.4/30"); empty (the
 *   default): any answer that is not an error code.
 */
import type { PathSegment } from "./locate.ts";
import type { CheckContext } from "./keys.ts";
import type { DnsblZone } from "./types.ts";
import { arrayOf, parseCidr } from "./checkers.ts";
import { describe, isTable, parseDomain } from "./syntax.ts";

/** Most zones one server asks (each is a query per new client address). */
export const MAX_DNSBL_ZONES = 20;
const KEYS = ["zone", "weight", "answers"];

function answer(v: unknown, path: readonly PathSegment[], ctx: CheckContext): string | undefined {
  const expected = 'an IPv4 address or network in 127.0.0.0/8 (e.g. "127.0.0.2", "127.0.0.4/30")';
  const p = typeof v === "string" ? parseCidr(v) : undefined;
  if (p === undefined || !p.ok || !/^127\.\d+\.\d+\.\d+\/(\d+)$/.test(p.value) || Number(p.value.split("/")[1]) < 8) {
    ctx.issue(path, `expected ${expected}, got ${describe(v)}`);
    return undefined;
  }
  return p.value;
}

function zoneEntry(v: unknown, path: readonly PathSegment[], ctx: CheckContext): DnsblZone | undefined {
  if (!isTable(v)) {
    ctx.issue(path, `expected a table { zone = "bl.example.org", weight = 1, answers = [] }, got ${describe(v)}`);
    return undefined;
  }
  let ok = true;
  for (const k of Object.keys(v)) {
    if (!KEYS.includes(k)) {
      ctx.issue([...path, k], 'unknown key; a DNSBL zone has "zone", "weight" and "answers"');
      ok = false;
    }
  }
  const zone = typeof v.zone === "string" ? parseDomain(v.zone) : undefined;
  if (zone === undefined || !zone.ok) {
    ctx.issue([...path, "zone"], `expected the DNS zone of the list, a domain name such as "zen.spamhaus.org", got ${describe(v.zone)}`);
    ok = false;
  }
  const weight = v.weight ?? 1;
  if (typeof weight !== "number" || !Number.isInteger(weight) || weight === 0 || weight < -100 || weight > 100) {
    ctx.issue([...path, "weight"], `expected a non-zero integer from -100 to 100 (negative for an allowlist), got ${describe(v.weight)}`);
    ok = false;
  }
  let answers: (string | undefined)[] = [];
  if (v.answers !== undefined) {
    if (!Array.isArray(v.answers)) {
      ctx.issue([...path, "answers"], `expected an array of addresses or networks in 127.0.0.0/8, got ${describe(v.answers)}`);
      ok = false;
    } else {
      answers = v.answers.map((a: unknown, i) => answer(a, [...path, "answers", i], ctx));
      if (answers.includes(undefined)) ok = false;
    }
  }
  if (!ok || zone === undefined || !zone.ok) return undefined;
  return { zone: zone.value, weight: weight as number, answers: answers as string[] };
}

const zoneList = arrayOf("DNSBL zone tables", zoneEntry, (z) => z.zone);

export function dnsblZones(v: unknown, path: readonly PathSegment[], ctx: CheckContext): unknown {
  if (Array.isArray(v) && v.length > MAX_DNSBL_ZONES) {
    ctx.issue(path, `expected at most ${MAX_DNSBL_ZONES} zones, got ${v.length}`);
    return undefined;
  }
  return zoneList(v, path, ctx);
}
