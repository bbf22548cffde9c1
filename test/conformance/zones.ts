/**
 * Shared pieces of the conformance harnesses: an in-memory DNS zone with a
 * resolver shaped like node's dns.promises.resolve (what mailauth's `resolver`
 * option expects), YAML loading, message helpers, and the pass/skip/known
 * failure tally every harness prints at the end.
 *
 * No network: every answer comes from a zone map built from the suite's own
 * data. Errors carry the codes node uses: ENOTFOUND (NXDOMAIN), ENODATA
 * (the name exists, the type does not), ETIMEOUT, ESERVFAIL.
 */
import { after, test } from "node:test";
import { readFileSync } from "node:fs";
import { isIPv4, isIPv6 } from "node:net";
import { parseAllDocuments, isMap, isScalar } from "yaml";
import type { DNSResolver } from "mailauth";
import { conformanceFile } from "../helpers/conformance.ts";

/** The options every harness gives mailauth: Wardmail runs it RFC-exact. */
export const STRICT = true;

export type DnsFailure = "TIMEOUT" | "SERVFAIL";

export interface MxRecord {
  priority: number;
  exchange: string;
}

/** The records of one owner name. `fail` makes queries fail (see `failOnlyEmpty`). */
export interface ZoneEntry {
  A: string[];
  AAAA: string[];
  /** One entry per TXT record, each a list of character-strings. */
  TXT: string[][];
  MX: MxRecord[];
  PTR: string[];
  CNAME: string[];
  fail?: DnsFailure;
  /**
   * pyspf's driver semantics for a bare TIMEOUT entry: a query for a type
   * that has records still answers, every other query times out.
   */
  failOnlyEmpty?: boolean;
}

export type RRType = "A" | "AAAA" | "TXT" | "MX" | "PTR" | "CNAME";

/** A DNS name as a zone key: lower case, no trailing dot. */
export function normName(name: string): string {
  return name.trim().toLowerCase().replace(/\.+$/, "");
}

/** An error shaped like the ones node's resolver throws. */
export function dnsError(code: string, name: string, rrtype: string): Error & { code: string; hostname: string } {
  return Object.assign(new Error(`query${rrtype} ${code} ${name}`), { code, hostname: name });
}

export class Zone {
  readonly names = new Map<string, ZoneEntry>();
  /** Every question asked, "TYPE name", in order (DMARC checks the query sequence). */
  readonly queries: string[] = [];
  /** Names for which every query fails, decided by a predicate (Stalwart's `_dns_error.`). */
  failWhen: ((name: string) => DnsFailure | undefined) | undefined;

  /** The entry of a name, created empty (an existing name without records) if missing. */
  entry(name: string): ZoneEntry {
    const key = normName(name);
    let e = this.names.get(key);
    if (!e) {
      e = { A: [], AAAA: [], TXT: [], MX: [], PTR: [], CNAME: [] };
      this.names.set(key, e);
    }
    return e;
  }

  /** A copy whose later changes do not touch this zone. */
  clone(): Zone {
    const z = new Zone();
    for (const [k, v] of this.names) z.names.set(k, structuredClone(v));
    z.failWhen = this.failWhen;
    return z;
  }

  txt(name: string, ...strings: string[]): this {
    this.entry(name).TXT.push(strings);
    return this;
  }

  /** The resolver function to hand to mailauth. */
  resolver(): DNSResolver {
    const fn = async (name: string, rrtype: string): Promise<unknown> => {
      await Promise.resolve();
      return this.answer(name, rrtype.toUpperCase() as RRType);
    };
    return fn as unknown as DNSResolver;
  }

  answer(name: string, type: RRType): unknown[] {
    this.queries.push(`${type} ${normName(name)}`);
    let key = normName(name);
    const seen = new Set<string>();
    for (;;) {
      const forced = this.failWhen?.(key);
      if (forced) throw dnsError(forced === "TIMEOUT" ? "ETIMEOUT" : "ESERVFAIL", key, type);
      // the root (an alias to ".") has no records; a label that is empty or longer than 63
      // octets is refused by node's resolver before any query (EBADNAME)
      if (key === "") throw dnsError("ENODATA", key, type);
      if (key.split(".").some((label) => label.length === 0 || label.length > 63)) throw dnsError("EBADNAME", key, type);
      const e = this.names.get(key);
      if (!e) throw dnsError("ENOTFOUND", key, type);
      const records = e[type];
      if (e.fail && !(e.failOnlyEmpty && records.length)) {
        throw dnsError(e.fail === "TIMEOUT" ? "ETIMEOUT" : "ESERVFAIL", key, type);
      }
      if (records.length) return structuredClone(records);
      const target = e.CNAME[0];
      if (type !== "CNAME" && target !== undefined) {
        // follow the alias like a recursive resolver; a loop is a server failure (RFC 1034 3.6.2)
        seen.add(key);
        key = normName(target);
        if (seen.has(key) || seen.size > 8) throw dnsError("ESERVFAIL", normName(name), type);
        continue;
      }
      throw dnsError("ENODATA", key, type);
    }
  }
}

/** The PTR owner name of an address: a.b.c.d.in-addr.arpa or the 32 nibbles under ip6.arpa. */
export function ptrName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split(".").reverse().join(".")}.in-addr.arpa`;
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  let text = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4 !== undefined) {
    const [a = 0, b = 0, c = 0, d = 0] = v4.split(".").map(Number);
    text = text.slice(0, -v4.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  const nibbles = groups.map((g) => g.padStart(4, "0")).join("");
  return `${nibbles.split("").reverse().join(".")}.ip6.arpa`;
}

/**
 * A TXT character-string from YAML or JSON text. YAML escapes such as "\x80"
 * arrive as code points U+0080..U+00FF and stand for raw bytes; node hands TXT
 * bytes to JavaScript as latin1, so such a string is served unchanged. Text
 * with code points above U+00FF is UTF-8 in the file and is served as its
 * bytes read as latin1, which is what node would give for those bytes.
 */
export function txtBytes(s: string): string {
  return /^[\u0000-\u00ff]*$/.test(s) ? s : Buffer.from(s, "utf8").toString("latin1");
}

/** All documents of a YAML file, as plain data. Duplicate keys keep the last value. */
export function loadYaml(...path: string[]): unknown[] {
  const docs = parseAllDocuments(readFileSync(conformanceFile(...path), "utf8"), { uniqueKeys: false });
  return docs.map((d) => {
    if (d.errors.length) throw new Error(`${path.join("/")}: ${d.errors[0]?.message ?? "YAML error"}`);
    return d.toJS({ maxAliasCount: -1 }) as unknown;
  });
}

/**
 * The `tests` map of every document as [name, data] pairs, keeping entries
 * whose name repeats within a document (the ValiMail validation suite names
 * four tests twice; a plain YAML load would silently keep only the second).
 */
export function loadYamlTests(...path: string[]): { doc: Record<string, unknown>; tests: [string, Record<string, unknown>][] }[] {
  const docs = parseAllDocuments(readFileSync(conformanceFile(...path), "utf8"), { uniqueKeys: false });
  return docs.map((d) => {
    if (d.errors.length) throw new Error(`${path.join("/")}: ${d.errors[0]?.message ?? "YAML error"}`);
    const doc = d.toJS() as Record<string, unknown>;
    const tests: [string, Record<string, unknown>][] = [];
    const root = d.contents;
    const node = isMap(root) ? root.get("tests", true) : undefined;
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const value = (pair.value as { toJSON?: () => unknown } | null)?.toJSON?.() as Record<string, unknown> | undefined;
        tests.push([key, value ?? {}]);
      }
    }
    return { doc, tests };
  });
}

/** A scalar from parsed YAML as text: "" for a missing or null value. */
export function str(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error(`expected a scalar, got ${JSON.stringify(v)}`);
}

/** A text with LF (or mixed) line ends, as CRLF bytes: what an MTA receives. */
export function crlf(text: string): Buffer {
  return Buffer.from(text.replace(/\r?\n/g, "\r\n"), "utf8");
}

/**
 * The "DNS lines, one empty line, message" files of Stalwart (dkim/stalwart,
 * arc/stalwart): `<name> <TXT>` per line, then the message with LF line ends.
 */
export function stalwartMessageFile(...path: string[]): { zone: Zone; message: Buffer } {
  const text = readFileSync(conformanceFile(...path), "utf8");
  const split = text.indexOf("\n\n");
  if (split < 0) throw new Error(`${path.join("/")}: no empty line after the DNS records`);
  const zone = new Zone();
  for (const line of text.slice(0, split).split("\n")) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) zone.txt(m[1], m[2]);
  }
  return { zone, message: crlf(text.slice(split + 2)) };
}

/** A list of [name, reason] pairs as a lookup table. */
export type ReasonTable = Record<string, string>;

/**
 * Counts the outcome of every case of one suite and prints
 * "SUITE: passed X of Y, skipped Z (...), known failures W" when the file ends.
 * A case listed as a known failure runs as a node:test `todo`: the run stays
 * green, the case is counted as not passing, and if it starts to pass the
 * summary says so (the table then needs updating).
 */
export class Tally {
  readonly name: string;
  total = 0;
  passed = 0;
  readonly skipped: [string, string][] = [];
  readonly known: [string, string][] = [];
  readonly fixed: string[] = [];
  /** Extra lines for the summary, computed when it is printed. */
  readonly notes: (() => string)[] = [];

  constructor(name: string) {
    this.name = name;
    after(() => {
      console.log(this.summary());
    });
  }

  /** Registers one case. `skip` and `todo` are the reasons from the harness tables. */
  case(name: string, opts: { skip?: string | undefined; todo?: string | undefined }, fn: () => Promise<void> | void): void {
    this.total++;
    if (opts.skip !== undefined) {
      this.skipped.push([name, opts.skip]);
      test(name, { skip: opts.skip }, () => {});
      return;
    }
    const todo = opts.todo;
    test(name, todo !== undefined ? { todo } : {}, async () => {
      try {
        await fn();
      } catch (err) {
        if (todo !== undefined) this.known.push([name, todo]);
        throw err;
      }
      this.passed++;
      if (todo !== undefined) this.fixed.push(name);
    });
  }

  summary(): string {
    const lines = [
      `${this.name}: passed ${this.passed} of ${this.total}, skipped ${this.skipped.length}` +
        (this.skipped.length ? ` (${this.skipped.map(([n]) => n).join(", ")})` : "") +
        `, known failures ${this.known.length}` +
        (this.known.length ? ` (${this.known.map(([n]) => n).join(", ")})` : ""),
    ];
    for (const [n, r] of this.skipped) lines.push(`  skip  ${n}: ${r}`);
    for (const [n, r] of this.known) lines.push(`  known ${n}: ${r}`);
    for (const n of this.fixed) lines.push(`  NOTE  ${n} is listed as a known failure but passed: update the table`);
    for (const n of this.notes) lines.push(`  note  ${n()}`);
    return lines.join("\n");
  }
}
