/**
 * Authentication-Results (RFC 8601): Wardmail needs only the authserv-id of an
 * incoming header, to strip the ones that claim its own id (RFC 8601 §5).
 * authservIdOf() from src/mailauth/authres.ts extracts it (RFC 8601 §2.2:
 * CFWS and nested comments, quoted ids, an optional version after the id;
 * the id is lowercased, since it is compared case-insensitively). It is
 * checked against every case of authres-python-cases.json and
 * go-msgauth-cases.json that states an authserv-id, and against the two
 * syntax-error cases (handled without throwing). It reads the first token
 * even when the rest does not parse: for removing forgeries that claim our
 * id, the lenient reading is the safe one.
 *
 *   node --test test/conformance/authres.test.ts
 *
 * mailauth has no public Authentication-Results parser. Internally
 * lib/parse-dkim-headers.js (not exported by the package's main module or
 * types) splits A-R and ARC-Authentication-Results values; its idea of the
 * authserv-id is compared here for information only, not counted.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { conformanceFile } from "../helpers/conformance.ts";
import { Tally } from "./zones.ts";
import { authservIdOf } from "../../src/message/index.ts";
import type { ReasonTable } from "./zones.ts";


// ---------------------------------------------------------------------------
// Skips and known failures, case id -> reason.

const SKIP: ReasonTable = {};
const KNOWN: ReasonTable = {};

interface PythonCase {
  section: string;
  header: string;
  checks?: { path: string; expect: string }[];
  expect_error?: string;
}

interface GoCase {
  value: string;
  authserv_id: string;
}

const readJson = <T,>(file: string): T => JSON.parse(readFileSync(conformanceFile("auth-results", file), "utf8")) as T;
const python = readJson<{ parse_cases: PythonCase[]; rendered: { section: string; header: string }[] }>("authres-python-cases.json");
const go = readJson<{ cases: GoCase[] }>("go-msgauth-cases.json");

/** The field value of a full "Authentication-Results: ..." header line. */
const fieldValue = (header: string): string => header.slice(header.indexOf(":") + 1);

/** Every case that states an authserv-id: [id, field value, expected authserv-id]. */
const stated: [string, string, string | undefined][] = [];
python.parse_cases.forEach((c, index) => {
  const want = c.checks?.find((x) => x.path === "authserv_id")?.expect;
  if (want !== undefined) stated.push([`authres-python #${index + 1}: ${c.header}`, fieldValue(c.header), want === "None" ? undefined : want]);
});
go.cases.forEach((c, index) => {
  // go-msgauth reads the empty value as an empty id (its own leniency, says the file);
  // the value has no authserv-id at all, which this function reports as undefined
  stated.push([`go-msgauth #${index + 1}: ${JSON.stringify(c.value)}`, c.value, c.authserv_id === "" ? undefined : c.authserv_id]);
});

{
  const tally = new Tally("AUTHRES authserv-id (stated cases)");
  for (const [id, value, want] of stated) {
    tally.case(id, { skip: SKIP[id], todo: KNOWN[id] }, () => {
      assert.equal(authservIdOf(value), want?.toLowerCase());
    });
  }
}

{
  // The two syntax-error cases: the error is in the results, after the id, so the id is
  // still reported (a malformed tail must not hide a header claiming our id), and nothing throws.
  const tally = new Tally("AUTHRES syntax-error cases");
  for (const c of python.parse_cases.filter((x) => x.expect_error !== undefined)) {
    const id = `authres-python error case: ${c.header}`;
    tally.case(id, { skip: SKIP[id], todo: KNOWN[id] }, () => {
      let got: string | undefined;
      assert.doesNotThrow(() => {
        got = authservIdOf(fieldValue(c.header));
      });
      const leading = /^\s*([^\s;]+)/.exec(fieldValue(c.header))?.[1];
      assert.equal(got, leading?.toLowerCase());
    });
  }
}

{
  // The valid headers the file does not state an id for (parse cases without an
  // authserv_id check, and the headers the library rendered) must all yield one.
  const tally = new Tally("AUTHRES other valid headers yield an id");
  const headers = [
    ...python.parse_cases.filter((c) => c.expect_error === undefined && !c.checks?.some((x) => x.path === "authserv_id")).map((c) => c.header),
    ...python.rendered.map((r) => r.header),
  ];
  for (const header of headers) {
    const id = `valid: ${header}`;
    tally.case(id, { skip: SKIP[id], todo: KNOWN[id] }, () => {
      assert.equal(authservIdOf(fieldValue(header)), /^\s*([^\s;]+)/.exec(fieldValue(header))?.[1]?.toLowerCase());
    });
  }
}

// ---------------------------------------------------------------------------
// The grammar corners the data files touch only lightly.

test("authservIdOf: CFWS, quoted ids, versions; lenient where the rest does not parse", () => {
  assert.equal(authservIdOf(" (testing) lists.example.org (test); arc=none;"), "lists.example.org");
  assert.equal(authservIdOf(" (a (nested) comment)\r\n\tmx.example.org\r\n (x) 1 (y) ; none"), "mx.example.org");
  assert.equal(authservIdOf(' "MX.example.org"; spf=pass'), "mx.example.org");
  assert.equal(authservIdOf(" mx.example.org 1; none"), "mx.example.org");
  assert.equal(authservIdOf(" mx.example.org1; none"), "mx.example.org1");
  // Malformed tails still name the id a reader would see: such a forgery is removed too.
  assert.equal(authservIdOf(" mx.example.org junk; spf=pass"), "mx.example.org");
  assert.equal(authservIdOf(" mx.example.org"), "mx.example.org");
  assert.equal(authservIdOf(" (unterminated mx.example.org; none"), undefined);
  assert.equal(authservIdOf(' "unterminated; none'), undefined);
  assert.equal(authservIdOf(" ; spf=pass"), undefined);
  assert.equal(authservIdOf(""), undefined);
});

test("mailauth's internal A-R splitter on the stated cases (information, not counted)", () => {
  const mailauthRequire = createRequire(fileURLToPath(import.meta.resolve("mailauth")));
  const headerParser = mailauthRequire("./parse-dkim-headers.js") as (line: string) => { parsed: { value?: unknown } };
  let agree = 0;
  const disagree: string[] = [];
  for (const [id, value, want] of stated) {
    let got: unknown;
    try {
      got = headerParser(`Authentication-Results:${value}`).parsed.value;
    } catch (err) {
      got = `throws ${String(err)}`;
    }
    if ((got === "" || got === undefined ? undefined : got) === want) agree++;
    else disagree.push(`${id} -> ${JSON.stringify(got)}`);
  }
  console.log(`AUTHRES note: mailauth lib/parse-dkim-headers.js agrees on ${agree} of ${stated.length} stated authserv-ids${disagree.length ? `; differs on: ${disagree.join(" | ")}` : ""}`);
  assert.ok(stated.length > 0);
});
