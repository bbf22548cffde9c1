// The DATA/BDAT receivers' bounds: the header section limit (exact at its
// edge, whatever the chunking) and output copied out of the input (never
// views of it), so memory is the content's size whatever the line structure.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ReferenceDataReceiver } from "../../test/helpers/data-reference.ts";
import { BdatReceiver, DataReceiver } from "./data.ts";

const MAX = 1 << 20;

function viaData(content: string, maxHeader: number, step = 0): ReturnType<DataReceiver["result"]> {
  const rx = new DataReceiver(MAX, "reject", maxHeader);
  const input = Buffer.from(content + ".\r\n", "latin1");
  const size = step > 0 ? step : input.length;
  for (let i = 0; i < input.length && !rx.done; i += size) rx.push(input.subarray(0, Math.min(i + size, input.length)), i);
  assert.ok(rx.done);
  return rx.result();
}

function viaBdat(content: string, maxHeader: number): ReturnType<BdatReceiver["result"]> {
  const rx = new BdatReceiver(MAX, "reject", maxHeader);
  const input = Buffer.from(content, "latin1");
  rx.startChunk(input.length);
  rx.push(input, 0);
  return rx.result();
}

/** A header section of exactly n bytes (fields with their CRLF), then the empty line and a body. */
function message(n: number): string {
  const field = "X: " + "a".repeat(n - 5) + "\r\n";
  assert.equal(field.length, n);
  return field + "\r\nbody\r\n";
}

void test("a header section of exactly max_header_size passes, one byte more is refused, whatever the chunking", () => {
  for (const step of [0, 1, 2, 3, 7, 64]) {
    assert.equal(viaData(message(1024), 1024, step).problem, undefined, `step ${step}`);
    assert.equal(viaData(message(1025), 1024, step).problem, "header", `step ${step}`);
  }
  assert.equal(viaBdat(message(1024), 1024).problem, undefined);
  assert.equal(viaBdat(message(1025), 1024).problem, "header");
});

void test("the header limit counts the header section only: a large body passes, a header with no end does not", () => {
  const body = "x".repeat(70) + "\r\n";
  assert.equal(viaData("Subject: s\r\n\r\n" + body.repeat(1000), 1024).problem, undefined);
  // No empty line at all: the whole content is header.
  assert.equal(viaData(body.repeat(20), 1024).problem, "header");
  // An empty header section (content starts with the empty line).
  assert.equal(viaData("\r\n" + body.repeat(1000), 1024).problem, undefined);
  // One field folded over many lines is one header section too.
  assert.equal(viaData("Subject: x\r\n" + " a\r\n".repeat(1000) + "\r\nbody\r\n", 1024).problem, "header");
});

void test("content is copied out of the input: dot-led lines, 1-byte lines and one huge line come out whole", () => {
  const shapes = ["..\r\n".repeat(50_000), "a\r\n".repeat(50_000), "y".repeat(300_000) + "\r\n"];
  for (const body of shapes) {
    const input = Buffer.from("Subject: s\r\n\r\n" + body + ".\r\n", "latin1");
    const rx = new DataReceiver(MAX, "reject", 1024);
    // Socket-sized reads, as the adapter gets them.
    for (let i = 0; i < input.length && !rx.done; i += 65536) rx.push(input.subarray(0, Math.min(i + 65536, input.length)), i);
    const r = rx.result();
    assert.equal(r.problem, undefined);
    const expected = "Subject: s\r\n\r\n" + body.replace(/^\./gm, "");
    assert.equal(r.content.toString("latin1"), expected);
    assert.notEqual(r.content.buffer, input.buffer, "the content must not be a view of the input");
  }
});

void test("content of every size around the block edges comes out whole, in reads of any size", () => {
  const sizes = [0, 1, 4095, 8191, 8192, 8193, 10_240, 16_384, 32_769, 65_535, 65_536, 65_537, 131_073, 200_000];
  for (const n of sizes) {
    // Lines of 1 to 97 bytes, some dot-led, so the output comes in spans of many lengths.
    let body = "";
    for (let i = 0; body.length < n; i++) body += (i % 7 === 0 ? ".." : "") + "x".repeat(i % 97) + "\r\n";
    const text = "Subject: s\r\n\r\n" + body + ".\r\n";
    // Buffer.alloc is never from the shared pool, so a buffer of its own tells a copy from a view.
    const input = Buffer.alloc(text.length);
    input.write(text, "latin1");
    const expected = "Subject: s\r\n\r\n" + body.replace(/^\./gm, "");
    for (const step of [1000, 4096, 65_536, input.length]) {
      const rx = new DataReceiver(MAX, "reject", 1024);
      for (let i = 0; i < input.length && !rx.done; i += step) rx.push(input.subarray(0, Math.min(i + step, input.length)), i);
      assert.ok(rx.done);
      const r = rx.result();
      assert.equal(r.problem, undefined);
      assert.equal(r.content.toString("latin1"), expected, `size ${n}, reads of ${step}`);
      assert.notEqual(r.content.buffer, input.buffer, "the content must not be a view of the input");
    }
  }
});

// The fast path (lines skipped to their CR or LF, 8-bit found by isAscii,
// NUL sending the read to the byte-at-a-time path) against the machine it
// replaced (test/helpers/data-reference.ts): same consumed counts, content,
// problem and 8-bit flag for hostile input, split anywhere, both policies.
const wirePieces = ["\r\n", "\r", "\n", ".", "..", "\r\n.\r\n", "\r\n.\n", "\n.\r\n", ".\r\n", "\r.\r", "\0", "\xe9", "\xff", "a", "Subject: x", "\r\n\r\n", "MAIL FROM:<\xe9@x>\r\n"];
const wire = fc.array(
  fc.oneof(
    fc.constantFrom(...wirePieces),
    fc.integer({ min: 1, max: 300 }).map((k) => "x".repeat(k)),
    fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a).toString("latin1")),
  ),
  { maxLength: 60 },
);

interface Fed {
  consumed: number[];
  done: boolean;
  result: { problem?: string; content: Buffer; eightBit: boolean } | undefined;
}

function feed(rx: { push(b: Buffer, s: number, following?: number): number; done: boolean; result(): Fed["result"] }, input: Buffer, cuts: number[], hint = false): Fed {
  const consumed: number[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    if (rx.done || cut <= from) continue;
    // Sometimes the read is a buffer of its own, sometimes the whole input with a start offset (as the session resumes in one read);
    // with `hint`, the input after the cut is told as the rest of the same read (the first block is sized to it: src/server/connection.ts).
    const following = hint ? input.length - cut : 0;
    const n = cut % 2 === 0 ? rx.push(input.subarray(from, cut), 0, following) + from : rx.push(input.subarray(0, cut), from, following);
    consumed.push(n);
    from = n;
  }
  return { consumed, done: rx.done, result: rx.done ? rx.result() : undefined };
}

void test("DATA: the fast path gives what the byte-at-a-time machine gave, for any input and any split", () => {
  fc.assert(
    fc.property(
      wire,
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.constantFrom("reject" as const, "normalize" as const),
      fc.constantFrom(MAX, 200),
      fc.constantFrom(MAX, 40),
      fc.boolean(),
      (parts, rawCuts, policy, maxSize, maxHeader, hint) => {
        const input = Buffer.from(parts.join("") + "\r\n.\r\nQUIT \xe9\r\n", "latin1");
        const cuts = [...new Set(rawCuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        const got = feed(new DataReceiver(maxSize, policy, maxHeader), input, cuts, hint);
        const want = feed(new ReferenceDataReceiver(maxSize, policy, maxHeader), input, cuts);
        assert.deepEqual(got.consumed, want.consumed);
        assert.equal(got.done, want.done);
        assert.equal(got.result?.problem, want.result?.problem);
        assert.equal(got.result?.eightBit, want.result?.eightBit);
        assert.ok((got.result?.content ?? Buffer.alloc(0)).equals(want.result?.content ?? Buffer.alloc(0)));
      },
    ),
    { numRuns: 3000 },
  );
});

void test("DATA: 8-bit bytes after the end of the content (the next commands) do not mark the message 8-bit", () => {
  const rx = new DataReceiver(MAX, "reject", MAX);
  const input = Buffer.from("Subject: a\r\n\r\nplain\r\n.\r\nMAIL FROM:<\xe9@x.test>\r\n", "latin1");
  const n = rx.push(input, 0);
  assert.ok(rx.done);
  assert.equal(input.subarray(n).toString("latin1"), "MAIL FROM:<\xe9@x.test>\r\n");
  assert.equal(rx.result().eightBit, false);
  const rx8 = new DataReceiver(MAX, "reject", MAX);
  rx8.push(Buffer.from("Subject: \xe9\r\n\r\nx\r\n.\r\n", "latin1"), 0);
  assert.equal(rx8.result().eightBit, true);
});

// The first block is sized to the content bytes already read (the rest of
// the socket read, given as `following` when the adapter feeds it in
// slices): a message that came in one read takes one buffer of about its
// size, not 8 KB and a grown copy; bytes not yet read never count. The
// blocks may be slices of Node's pool, so the sizes asked of it are watched.
function allocations(run: () => void): number[] {
  const sizes: number[] = [];
  const original = Object.getOwnPropertyDescriptor(Buffer, "allocUnsafe") as PropertyDescriptor;
  const allocUnsafe = original.value as (n: number) => Buffer;
  Object.defineProperty(Buffer, "allocUnsafe", {
    ...original,
    value: (n: number): Buffer => {
      sizes.push(n);
      return allocUnsafe.call(Buffer, n);
    },
  });
  try {
    run();
  } finally {
    Object.defineProperty(Buffer, "allocUnsafe", original);
  }
  return sizes;
}

void test("a message in one read, fed in slices with the rest of the read, takes one buffer of about its size", () => {
  let body = "";
  for (let i = 0; body.length < 11_000; i++) body += (i % 9 === 0 ? ".." : "") + "y".repeat(i % 80) + "\r\n";
  const input = Buffer.from("Subject: s\r\n\r\n" + body + ".\r\nQUIT\r\n", "latin1");
  const expected = "Subject: s\r\n\r\n" + body.replace(/^\./gm, "");
  for (const hint of [true, false]) {
    const rx = new DataReceiver(MAX, "reject", 1024);
    let consumed = 0;
    const sizes = allocations(() => {
      // 4 KB slices of one read, as src/server/connection.ts feeds them.
      for (let at = 0; at < input.length && !rx.done; at += 4096) {
        const end = Math.min(input.length, at + 4096);
        consumed = at + rx.push(input.subarray(at, end), 0, hint ? input.length - end : 0);
      }
    });
    assert.ok(rx.done);
    assert.equal(input.subarray(consumed).toString("latin1"), "QUIT\r\n");
    assert.equal(rx.result().content.toString("latin1"), expected);
    if (hint) assert.deepEqual(sizes, [input.length], "one buffer, the size of the read");
    else assert.deepEqual(sizes, [8192, 16384], "without the rest of the read: 8 KB, then a grown copy");
  }
});

void test("the first block counts only bytes in hand: capped by the block size, the size limit and a BDAT chunk's announced size", () => {
  // A read of 200 KB: the first block stops at 64 KB, the rest goes on in further blocks.
  const big = Buffer.from("Subject: s\r\n\r\n" + ("a".repeat(98) + "\r\n").repeat(2000) + ".\r\n", "latin1");
  const rx = new DataReceiver(MAX, "reject", 1024);
  const sizes = allocations(() => rx.push(big, 0, 1 << 30));
  assert.ok(rx.done);
  assert.equal(sizes[0], 65536);
  assert.equal(rx.result().content.length, big.length - 3);
  // Under a size limit of 1000, a hint of 50 KB asks for no more than the limit.
  const small = new DataReceiver(1000, "reject", 1024);
  assert.deepEqual(allocations(() => small.push(Buffer.from("Subject: s\r\n\r\n" + "b".repeat(500) + "\r\n", "latin1"), 0, 50_000)), [1000]);
  small.push(Buffer.from("c".repeat(600) + "\r\n.\r\n", "latin1"), 0);
  assert.equal(small.result().problem, "size");
  // BDAT: a chunk in one read takes one buffer of exactly its size; a chunk announced larger than what came is not allocated ahead.
  const content = Buffer.from("Subject: s\r\n\r\n" + "d".repeat(9000) + "\r\n", "latin1");
  const one = new BdatReceiver(MAX, "reject", 1024);
  one.startChunk(content.length);
  assert.deepEqual(allocations(() => one.push(content, 0)), [content.length]);
  assert.ok(one.result().content.equals(content));
  const split = new BdatReceiver(MAX, "reject", 1024);
  split.startChunk(1_000_000);
  assert.deepEqual(allocations(() => split.push(content.subarray(0, 30), 0)), [8192], "30 bytes in hand: the smallest first block");
  split.push(content.subarray(30), 0);
  assert.ok(split.result().content.equals(content));
});
