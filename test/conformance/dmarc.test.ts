/**
 * DMARC conformance: the 51 evaluation cases transcribed from mailauth's test
 * suite (RFC 7489 and RFC 9989), run against Wardmail's evaluateDmarc()
 * (src/mailauth/dmarc.ts: mailauth's dmarc() with a guard for a DMARC record
 * set at the author domain) with Wardmail's options (strict: true) and a zone
 * resolver, checking only the keys each case
 * states; and the Public Suffix List's own algorithm tests against
 * registrableDomain() (src/mailauth/psl.ts), the registrable-domain function
 * of verifyDkim's PSL-based alignment guess.
 *
 *   node --test test/conformance/dmarc.test.ts
 *
 * Where the Organizational Domain comes from in mailauth 7.1.0: dmarc() finds
 * it with the RFC 9989 §4.10 DNS Tree Walk over _dmarc records, not with the
 * PSL (lib/dmarc/get-dmarc-record.js, also in strict mode; there is no option
 * to use the PSL). The PSL is used only by tools.getAlignment(): the DKIM
 * verifier's per-signature `aligned` guess made before DMARC runs, the strict
 * re-check authenticate() makes for failing signatures, and BIMI. That
 * function is tldts.getDomain() with ICANN and PRIVATE sections, from the
 * tldts 7.4.15 package mailauth depends on, which bundles its own PSL snapshot
 * (not the shared public_suffix_list.dat; the package does not record its date).
 * Wardmail's verifyDkim makes the `aligned` guess with registrableDomain():
 * that same call, except that a name with an empty first label has none.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { DMARCResult } from "mailauth";
import { evaluateDmarc } from "../../src/mailauth/dmarc.ts";
import { registrableDomain } from "../../src/mailauth/index.ts";
import { conformanceFile } from "../helpers/conformance.ts";
import { STRICT, Tally, Zone } from "./zones.ts";
import type { ReasonTable } from "./zones.ts";

// ---------------------------------------------------------------------------
// Skips and known failures, case id -> reason. The 11 cases the file marks
// `skipped-in-mailauth` (tree walk, np=, psd=, t=) run like the others:
// mailauth 7.1.0 implements RFC 9989.

const SKIP: ReasonTable = {};

// psl-tests lines 13 and 14 (a leading dot -> null) pass through
// registrableDomain (src/mailauth/psl.ts), which refuses an empty first label
// that tldts would drop.
const KNOWN: ReasonTable = {};

interface DmarcCase {
  id: string;
  status: string;
  spec: string;
  zone: Record<string, { TXT?: string[][]; A?: string[]; MX?: [number, string][] } | string>;
  input: { header_from: string; dkim_pass_domains: string[]; spf_pass_domains: string[] };
  expect: Record<string, unknown>;
}

function caseZone(c: DmarcCase): Zone {
  const zone = new Zone();
  for (const [name, rrs] of Object.entries(c.zone)) {
    if (name === "*") {
      if (rrs === "TIMEOUT") zone.failWhen = () => "TIMEOUT";
      continue;
    }
    if (typeof rrs === "string") throw new Error(`${c.id}: unknown zone value ${rrs}`);
    const e = zone.entry(name);
    for (const t of rrs.TXT ?? []) e.TXT.push(t);
    e.A.push(...(rrs.A ?? []));
    for (const [priority, exchange] of rrs.MX ?? []) e.MX.push({ priority, exchange });
  }
  return zone;
}

/** The parsed record dmarc() applied, a non-enumerable property of its result. */
const appliedRecord = (r: DMARCResult): Record<string, unknown> | undefined =>
  (Object.getOwnPropertyDescriptor(r, "record")?.value as Record<string, unknown> | undefined) ?? undefined;

{
  const tally = new Tally("DMARC mailauth-dmarc-cases");
  const file = JSON.parse(readFileSync(conformanceFile("dmarc", "mailauth-dmarc-cases.json"), "utf8")) as { cases: DmarcCase[] };
  for (const c of file.cases) {
    const id = `${c.id}${c.status !== "active" ? ` [${c.status}]` : ""}`;
    tally.case(id, { skip: SKIP[c.id], todo: KNOWN[c.id] }, async () => {
      const zone = caseZone(c);
      const result = await evaluateDmarc({
        headerFrom: c.input.header_from,
        spfDomains: c.input.spf_pass_domains,
        dkimDomains: c.input.dkim_pass_domains.map((domain) => ({ domain })),
        resolver: zone.resolver(),
        strict: STRICT,
      });
      assert.ok(result, "dmarc() evaluated the message");
      const r = result;
      const why = `${c.spec}: ${r.status.result} policy=${r.policy} policyDomain=${r.policyDomain ?? "-"} ${r.error ?? ""}`;
      for (const [key, want] of Object.entries(c.expect)) {
        switch (key) {
          case "result":
            assert.equal(r.status.result, want, `result — ${why}`);
            break;
          case "policy":
            // null: no policy applies to the message
            assert.equal(r.status.result === "none" ? null : r.policy, want, `policy — ${why}`);
            break;
          case "policy_domain":
            assert.equal(r.policyDomain, want, `policy_domain — ${why}`);
            break;
          case "dkim_aligned":
            assert.equal(Boolean(r.alignment.dkim.result), want, `dkim_aligned — ${why}`);
            break;
          case "spf_aligned":
            assert.equal(Boolean(r.alignment.spf.result), want, `spf_aligned — ${why}`);
            break;
          case "spf_aligned_domain":
            assert.equal(r.alignment.spf.result, want, `spf_aligned_domain — ${why}`);
            break;
          case "dkim_alignment_mode":
            assert.equal(r.alignment.dkim.strict ? "strict" : "relaxed", want, `dkim_alignment_mode — ${why}`);
            break;
          case "spf_alignment_mode":
            assert.equal(r.alignment.spf.strict ? "strict" : "relaxed", want, `spf_alignment_mode — ${why}`);
            break;
          case "record": {
            // the published tags, with the RFC 7489 defaults: sp = p, pct = 100
            const rec = appliedRecord(r);
            const published = { p: rec?.["p"], sp: rec?.["sp"] ?? rec?.["p"], pct: rec?.["pct"] ?? 100 };
            const wanted = want as Record<string, unknown>;
            for (const k of Object.keys(wanted)) assert.equal(published[k as keyof typeof published], wanted[k], `record.${k} — ${why}`);
            break;
          }
          case "dmarc_query_sequence": {
            const asked = zone.queries.filter((q) => q.startsWith("TXT _dmarc.")).map((q) => q.slice(4));
            assert.deepEqual(asked, want, `dmarc_query_sequence — ${why}`);
            break;
          }
          case "record_contains":
            assert.ok((r.rr ?? "").includes(String(want)), `record_contains ${String(want)} in ${r.rr ?? "(none)"}`);
            break;
          default:
            throw new Error(`unknown expect key ${key}`);
        }
      }
    });
  }
}

// ---------------------------------------------------------------------------
// psl-tests.txt: "<input> <registrable domain>" per line, `null` = none.

{
  // registrableDomain: tldts as mailauth resolves and calls it (lib/tools.js TLDTS_OPTS), used for verifyDkim's alignment guess.
  const tally = new Tally("DMARC psl-tests (registrableDomain, src/mailauth/psl.ts)");
  const lines = readFileSync(conformanceFile("dmarc", "psl-tests.txt"), "utf8").split("\n");
  lines.forEach((line, index) => {
    const m = /^(\S+)\s+(\S+)\s*$/.exec(line.trim());
    if (!m || line.trim().startsWith("//")) return;
    const [, input = "", expected = ""] = m;
    const id = `line ${index + 1}: ${input} -> ${expected}`;
    tally.case(id, { skip: SKIP[id], todo: KNOWN[id] }, () => {
      const got = registrableDomain(input === "null" ? null : input);
      assert.equal(got, expected === "null" ? null : expected);
    });
  });
}
