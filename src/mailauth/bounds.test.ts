// bounds.ts: the linear header parser gives mailauth's result on generated
// header sections, and the worst shapes of a max_header_size (100 KiB)
// header section are parsed in linear time; the signature caps.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseHeaders as mailauthParseHeaders } from "mailauth/lib/tools.js";
import { dkimVerify } from "mailauth";
import { BOUNDS_INSTALLED, MAX_SIGNATURES, parseHeaders } from "./bounds.ts";

const PIECES = ["Subject: x", "From: <a@b.example>", " folded", "\tfolded", "a", "", " ", ":", "X :y", "Na\u00efme: v", "Ab\u00c9: v", "name", " : x", "  X-Y  : z", "a b: c", "x:"];

function randomHeader(rand: () => number): Buffer {
  const n = 1 + Math.floor(rand() * 12);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(PIECES[Math.floor(rand() * PIECES.length)] as string);
  const ends = ["\r\n", "\n"];
  return Buffer.from(lines.map((l) => l + (ends[Math.floor(rand() * 2)] as string)).join("") + (rand() < 0.5 ? "\r\n" : ""), "latin1");
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

void test("parseHeaders gives mailauth's result (rows, keys, cased keys, lines)", () => {
  const rand = seeded(7);
  for (let i = 0; i < 5000; i++) {
    const input = randomHeader(rand);
    assert.deepEqual(parseHeaders(input), mailauthParseHeaders(input), JSON.stringify(input.toString("latin1")));
  }
  for (const edge of ["", "\r\n", "a", ":", "\r\n\r\n", " a\r\n"]) {
    const input = Buffer.from(edge, "latin1");
    assert.deepEqual(parseHeaders(input), mailauthParseHeaders(input));
  }
});

/** Milliseconds parseHeaders takes on `text` (the best of five runs: the machine is shared). */
function timed(text: string): number {
  const input = Buffer.from(text, "latin1");
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    parseHeaders(input);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

void test("the worst shapes of a 100 KiB header section parse in linear time", () => {
  const shapes = [(n: number) => "Subject: x\r\n" + " a\r\n".repeat(n), (n: number) => "a:\r\n a\r\n".repeat(n / 2), (n: number) => " ".repeat(n * 4) + "x: y\r\n"];
  for (const shape of shapes) {
    timed(shape(1000)); // warm up
    const small = timed(shape(25600)); // ~100 KiB
    const large = timed(shape(102400)); // ~400 KiB
    // Four times the input: linear is ~4x, quadratic ~16x (mailauth's own parser took seconds at 100 KiB); and well under a second.
    assert.ok(small < 500, `${small} ms for 100 KiB`);
    assert.ok(large < Math.max(small, 10) * 9, `100 KiB: ${small} ms, 400 KiB: ${large} ms`);
  }
});

void test("mailauth's own dkimVerify gets the bounds too: a folded header and many signatures", async () => {
  assert.ok(BOUNDS_INSTALLED);
  const resolver = (): Promise<never> => Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  const folded = Buffer.from("From: a@example.org\r\nSubject: x\r\n" + " a\r\n".repeat(24_000) + "\r\nbody\r\n", "latin1");
  const t0 = performance.now();
  await dkimVerify(folded, { resolver, strict: true } as never);
  assert.ok(performance.now() - t0 < 1000, `${performance.now() - t0} ms`);
  const sigs = Array.from({ length: 30 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=e${i}.example; s=s; l=${100 + i}; h=from; bh=AAAA; b=AAAA\r\n`).join("");
  const res = await dkimVerify(Buffer.from(sigs + "From: a@example.org\r\n\r\nbody\r\n", "latin1"), { resolver, strict: true } as never);
  const skipped = (res.results ?? []).filter((r) => r.status.comment === "too many signatures");
  assert.equal(skipped.length, 30 - MAX_SIGNATURES);
  assert.ok((res.results ?? []).every((r) => r.status.comment === "too many signatures" || r.status.result !== "neutral" || r.status.comment !== undefined));
});
